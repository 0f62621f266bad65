"""The sensitivity sweep engine: rank-risk identity, instances, reproducibility, resume after an
interruption or a crash, optimal rank against simulation, and a wrong prediction being flagged."""
import json
import math

import numpy as np
import pytest
import torch

from numeric import estimators as est
from numeric import sensitivity as sens
from numeric.sensitivity import config as sc
from numeric import sharp
from numeric.device import generator

TINY = ["base.d=12", "base.k=6", "base.s=2", "run.trials=50", "run.batch=25",
        "exact.s_values=[1,3]", "exact.n_over_d=[0.5,3]", "tail.alphas=[1.0]",
        "tail.n_over_d=[3]", "snr.values=[0.5]", "snr.n_over_d=[3]",
        "misalignment.angles_deg=[0,45]", "misalignment.head=2"]


def tiny(*extra):
    return sc.load(sets=TINY + list(extra), quick=True)


def _numbers(sweep):
    """Every record's result without its timing, keyed by point key."""
    return {k: {kk: vv for kk, vv in r["result"].items() if kk != "seconds"}
            for k, r in sweep["records"].items()}


# ----------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("d, k, n", [(16, 8, 10), (16, 8, 40), (8, 16, 40), (12, 12, 5)])
def test_rank_risks_equal_the_estimators_at_every_rank(d, k, n):
    point = {"d": d, "k": k, "n": n, "n_over_d": n / d, "sigma": 1.0, "snr": 1.0,
             "shape": {"family": "power", "alpha": 1.0}, "r_max": 0,
             "cov": {"kind": "rotated", "theta_deg": 30.0, "head": 2, "high": 4.0, "low": 1.0}}
    inst = sens.make_instance(point, 3)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    ti = {"d": d, "k": k, "n": n, "sigma": 1.0, "Delta": t(inst["Delta"]),
          "SigmaHalf": t(inst["SigmaHalf"])}
    X, R = est.sample_data(ti, 4, generator(1))
    fft, lora = sens.rank_risks(X, R, ti["Delta"], ti["SigmaHalf"])
    assert torch.allclose(fft, est.excess_risk(est.fft(X, R), ti["Delta"], ti["SigmaHalf"]))
    for r in range(1, min(d, k, n) + 1):
        ref = est.excess_risk(est.lora(X, R, r), ti["Delta"], ti["SigmaHalf"])
        assert torch.allclose(lora[:, r - 1], ref, rtol=1e-9, atol=1e-10), r
    # a wrong rank (off by one) is not equal: the identity is not vacuous
    ref2 = est.excess_risk(est.lora(X, R, 2), ti["Delta"], ti["SigmaHalf"])
    assert not torch.allclose(lora[:, 0], ref2, rtol=1e-6)


def test_instances_snr_effective_rank_and_misalignment():
    base = {"d": 20, "k": 10, "n": 60, "n_over_d": 3.0, "sigma": 0.5, "snr": 2.0, "r_max": 0}
    exact = sens.make_instance(dict(base, shape={"family": "exact", "s": 3},
                                    cov={"kind": "identity"}), 1)
    sv = exact["sv_weighted"]
    assert math.isclose(float(np.sum(sv ** 2)), 2.0 * 10 * 0.25, rel_tol=1e-12)
    er = sens.effective_ranks(sv)
    assert math.isclose(er["stable_rank"], 3, rel_tol=1e-9)
    assert math.isclose(er["entropy_rank"], 3, rel_tol=1e-9)
    tail = sens.effective_ranks(sens.profile({"family": "power", "alpha": 1.0}, 10))
    assert 1 < tail["stable_rank"] < tail["entropy_rank"] < 10
    for theta in (0.0, 30.0, 90.0):
        inst = sens.make_instance(dict(base, shape={"family": "exact", "s": 3},
                                       cov={"kind": "rotated", "theta_deg": theta, "head": 3,
                                            "high": 4.0, "low": 1.0}), 1)
        th = math.radians(theta)
        assert math.isclose(inst["eps"], 3 * math.sin(th) * math.cos(th), abs_tol=1e-9)
        assert math.isclose(float(np.sum(inst["sv_weighted"] ** 2)), 5.0, rel_tol=1e-12)


# -------------------------------------------------------------------------- reproducibility
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = tiny()
    out = tmp_path_factory.mktemp("ref")
    return cfg, sens.run_sweep(cfg, out, "cpu")


def test_same_seed_same_numbers_and_batch_does_not_matter(reference, tmp_path):
    """The contract of ``numeric.sensitivity`` (module docstring): bitwise the same numbers for
    the same seed, device and thread count, *whatever* ``run.batch`` is."""
    cfg, ref = reference
    assert ref["computed"] == ref["unique_points"] > 5
    again = sens.run_sweep(tiny(), tmp_path / "a", "cpu")          # same seed, same batch
    assert _numbers(again) == _numbers(ref)
    for batch in (50, 75, 10):                                      # 10 < CHUNK: one chunk a step
        other_batch = sens.run_sweep(tiny(f"run.batch={batch}"), tmp_path / f"b{batch}", "cpu")
        assert _numbers(other_batch) == _numbers(ref), batch
    other = sens.run_sweep(tiny("run.seed=7"), tmp_path / "c", "cpu")
    a = [r["result"]["fft_mean"] for r in ref["records"].values()]
    b = [r["result"]["fft_mean"] for r in other["records"].values()]
    assert a != b


@pytest.mark.parametrize("trials", [50, 37])
@pytest.mark.parametrize("axis", ["exact", "misalignment"])
def test_the_arithmetic_never_sees_the_batch(monkeypatch, trials, axis):
    """Why the contract holds independently of the BLAS: every kernel call of a point works on
    one chunk, with shapes that depend on the point only (a batched kernel may block a batch of
    50 differently from two of 25, which changed the last bits on another machine).  Both
    paths: the exact fast sampler (exact axis) and raw data (underdetermined, Sigma != I)."""
    from numeric import samplers
    from numeric.sensitivity import engine

    calls = {}
    real_raw, real_fast = sens.rank_risks, samplers.risks

    def raw(X, R, Delta, SigmaHalf):
        calls.setdefault(batch, []).append(("raw", tuple(X.shape), tuple(R.shape)))
        return real_raw(X, R, Delta, SigmaHalf)

    def fast(setup, stats, lora=True):
        calls.setdefault(batch, []).append(("fast",) + tuple(tuple(v.shape)
                                                             for v in stats.values()))
        return real_fast(setup, stats, lora)

    monkeypatch.setattr(engine, "rank_risks", raw)
    monkeypatch.setattr(samplers, "risks", fast)
    grid = sens.build_grid(tiny("misalignment.n_over_d=[0.5]", "misalignment.angles_deg=[30]"))
    point = next(e["point"] for e in grid if e["axis"] == axis and e["point"]["n"] < 12)
    results = {}
    for batch in (25, 50, 1000):
        run = {"seed": 0, "trials": trials, "pred_rel_tol": 0.25, "batch": batch}
        res = sens.compute_point(point, 11, run, torch.device("cpu"), None)
        results[batch] = {k: v for k, v in res.items() if k != "seconds"}
    assert {c[0] for c in calls[25]} == {"raw" if axis == "misalignment" else "fast"}
    assert calls[25] == calls[50] == calls[1000]
    assert max(c[1][0] for c in calls[25]) == sens.CHUNK
    assert sum(c[1][0] for c in calls[25]) == trials
    assert results[25] == results[50] == results[1000]


def test_outputs_csv_json(reference, tmp_path):
    cfg, ref = reference
    summary = sens.summarize_sweep(ref, cfg)
    files = sens.write_outputs(summary, ref, cfg, tmp_path, "cpu")
    data = json.loads(files["json"].read_text())
    assert data["provenance"]["trials"] == cfg["run"]["trials"]
    assert data["provenance"]["seed"] == cfg["run"]["seed"]
    assert "git_revision" in data["provenance"] and "device" in data["provenance"]
    lines = files["csv"].read_text().splitlines()
    assert lines[0].startswith("axis,label,")
    assert len(lines) == 1 + len(summary["rows"])
    assert sc.load(files["config"], quick=True) == cfg


# ------------------------------------------------------------------------------------ resume
class Stop(KeyboardInterrupt):
    pass


def test_interrupt_then_resume_computes_only_the_rest(reference, tmp_path):
    cfg, ref = reference
    m = 3

    def stop_after(done, total, label, reused):
        if done == m:
            raise Stop

    with pytest.raises(Stop):
        sens.run_sweep(cfg, tmp_path, "cpu", progress=stop_after)
    done, bad = sens.load_journal(tmp_path / sens.JOURNAL)
    assert len(done) == m and bad == 0

    calls = []

    def counting(point, seed, run, device, predictor):
        calls.append(point)
        return sens.compute_point(point, seed, run, device, predictor)

    res = sens.run_sweep(cfg, tmp_path, "cpu", compute=counting)
    assert res["reused"] == m and res["computed"] == ref["unique_points"] - m
    assert len(calls) == ref["unique_points"] - m
    assert _numbers(res) == _numbers(ref)
    assert sens.summarize_sweep(res, cfg)["rows"] == sens.summarize_sweep(ref, cfg)["rows"]
    # a third run computes nothing
    assert sens.run_sweep(cfg, tmp_path, "cpu", compute=counting)["computed"] == 0
    assert len(calls) == ref["unique_points"] - m


def test_a_crashing_point_and_a_torn_line_never_corrupt_finished_points(reference, tmp_path):
    cfg, ref = reference
    state = {"n": 0}

    def crash_on_third(point, seed, run, device, predictor):
        state["n"] += 1
        if state["n"] == 3:
            raise RuntimeError("simulated crash")
        return sens.compute_point(point, seed, run, device, predictor)

    with pytest.raises(RuntimeError):
        sens.run_sweep(cfg, tmp_path, "cpu", compute=crash_on_third)
    journal = tmp_path / sens.JOURNAL
    done, bad = sens.load_journal(journal)
    assert len(done) == 2 and bad == 0
    with open(journal, "ab") as fh:          # a write cut short by a crash
        fh.write(b'{"key": "abc", "result": {"fft_me')
    res = sens.run_sweep(cfg, tmp_path, "cpu")
    assert res["torn_bytes"] > 0 and res["reused"] == 2
    assert _numbers(res) == _numbers(ref)
    assert sens.load_journal(journal)[1] == 0
    assert sens.run_sweep(cfg, tmp_path, "cpu", fresh=True)["computed"] == ref["unique_points"]


# -------------------------------------------------------------- optimal rank and predictions
AGREE = ["base.d=40", "base.k=20", "base.snr=2", "run.trials=200", "run.pred_rel_tol=0.25",
         "exact.s_values=[1,2,4]", "exact.n_over_d=[0.5,4]", "tail.enabled=false",
         "snr.enabled=false", "misalignment.enabled=false"]


class WrongSharp:
    """Deliberately wrong theory: variance x1.5 and 'keep every direction' as the rank rule."""
    NAME = "wrong-sharp"

    def fft_risk(self, *a, **kw):
        return sharp.fft_risk(*a, **kw)

    def lora_risk_sharp(self, *a, **kw):
        res = dict(sharp.lora_risk_sharp(*a, **kw))
        res["variance"] *= 1.5
        res["risk"] = res["bias"] + res["variance"]
        return res

    def optimal_rank(self, d, k, n, sigma, sv):
        return min(d, k, n)


@pytest.fixture(scope="module")
def agree_cfg():
    return sc.load(sets=AGREE, quick=True)


def test_predicted_and_simulated_optimal_rank_agree_on_a_tiny_grid(agree_cfg, tmp_path):
    sweep = sens.run_sweep(agree_cfg, tmp_path, "cpu")
    summary = sens.summarize_sweep(sweep, agree_cfg)
    pts = summary["points"]
    assert len(pts) == 6
    assert all(p["rank_verdict"] in ("agree", "tie") for p in pts), \
        [(p["label"], p["r_rule"], p["r_sim"]) for p in pts]
    # the optimum is not trivial: it moves with s
    assert sorted({p["r_sim"] for p in pts}) == [1, 2, 4]
    # the sharp prediction agrees with the simulation at every rank of these points
    assert all(r["pred_agree"] for r in summary["rows"])
    assert summary["optimal_rank"]["counts"]["disagree"] == 0


def test_a_wrong_prediction_is_flagged(agree_cfg, tmp_path):
    sweep = sens.run_sweep(agree_cfg, tmp_path, "cpu", predictor=WrongSharp())
    assert sweep["predictor"] == "wrong-sharp"
    summary = sens.summarize_sweep(sweep, agree_cfg)
    assert all(p["rank_verdict"] == "disagree" for p in summary["points"])
    agree = [r["pred_agree"] for r in summary["rows"]]
    assert sum(agree) < 0.5 * len(agree)
    # its results never mix with the correct predictor's in a journal: the key differs
    version, settings = sens.code_version(), sens.run_settings(agree_cfg)
    right = {sens.point_key(e["point"], settings, sens.predictor_name(None), version)
             for e in sweep["entries"]}
    assert not right & set(sweep["records"])


def test_phase_boundaries_and_headline(reference):
    cfg, ref = reference
    summary = sens.summarize_sweep(ref, cfg)
    names = {(pl["rank_rule"], pl["name"]) for pl in summary["phase"]}
    assert ("fixed", "exact") in names and ("matched", "tail-power") in names
    h = summary["headline"]["fixed"]
    assert set(h) >= {"exact/over", "exact/under", "prediction"}
    # matched rank at s = min(k, d, n): LoRA *is* FFT -- counted as a tie, ratio 1
    for p in summary["points"]:
        b = p["by_rule"]["matched"]
        if p["family"] == "exact" and b["r"] == min(p["k"], p["d"], p["n"]):
            assert b["wins_sim"] == "tie" and math.isclose(b["ratio_sim"], 1, rel_tol=1e-9)


def test_crossings():
    assert sens._crossings([1, 2, 4], [-1.0, 1.0, 2.0]) == [pytest.approx(math.sqrt(2))]
    assert sens._crossings([1, 2, 4], [-1.0, -0.5, -2.0]) == []
    assert sens._crossings([1, 2], [None, 1.0]) == []
