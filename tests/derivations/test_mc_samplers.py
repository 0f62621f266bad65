"""The audit certifies the fast samplers against raw data, the end-to-end check keeps a raw-data
point, and the fast points are held to their own (stricter) power gate."""
import pytest

from derivations.checkers.montecarlo import mc_verdict
from numeric.errors import InputError
from numeric.params import make_params


@pytest.mark.parametrize("der_id", ["mc_samplers_over", "mc_samplers_under"])
def test_samplers_certified_and_wrong_samplers_rejected(audit_cache, quick_cfg, der_id):
    res = audit_cache(der_id)
    assert res.verdict == "pass", [(s.id, s.verdict) for s in res.steps]
    names = {c.name: c.rejected for c in res.controls}
    assert names["dof one too few"] and names["dof one too many"]
    assert any(n.startswith("identity:") and ok for n, ok in names.items())
    stmt = res.statement[0]
    assert stmt.method == "sampler_two_sample"
    assert {p["estimator"] for p in stmt.evidence["points"]} == {"fft", "lora"}
    pilot = 2 * quick_cfg.mc_trials
    for row in stmt.evidence["points"]:           # the raw side reaches the target, or the cap
        assert pilot <= row["raw_trials"] <= quick_cfg.mc_max_trials
        assert row["fast_trials"] in (pilot, 2 * row["raw_trials"])
        assert row["detectable_rel"] <= quick_cfg.mc_target_detectable \
            or row["raw_trials"] == quick_cfg.mc_max_trials
    wrong = [c for c in res.controls if c.name == "dof one too few"][0].certificates[0]
    # a wrong sampler is decisive on the pilot: no fast data set beyond it
    assert all(r["fast_trials"] == pilot for r in wrong.evidence["points"])
    ident = res.steps[0].certificates[0].evidence
    assert ident["worst_relative_gap"] < 1e-9 and ident["draws"] > 0


def test_mc_samplers_have_no_value_to_evaluate():
    from derivations import get

    with pytest.raises(InputError, match="no closed-form"):
        get("mc_samplers_over").formula(make_params(d=4, k=3, n=12, r=1, shift_sv=(1.0,)))


@pytest.mark.parametrize("der_id", ["fft_over", "fft_under_iso"])
def test_end_to_end_keeps_a_raw_point_and_powers_the_fast_ones(audit_cache, quick_cfg, der_id):
    cert = audit_cache(der_id).statement[0]
    rows = cert.evidence["points"]
    assert [r["path"] for r in rows] == ["raw"] + ["fast"] * (len(rows) - 1)
    # the raw point draws on from its pilot to the target power (or the cap)
    assert quick_cfg.mc_trials <= rows[0]["trials"] <= quick_cfg.mc_max_trials
    assert rows[0]["detectable_rel"] <= quick_cfg.mc_target_detectable \
        or rows[0]["trials"] == quick_cfg.mc_max_trials
    for r in rows[1:]:
        assert r["trials"] == quick_cfg.fast_trials
        assert r["detectable_rel"] <= quick_cfg.fast_max_detectable == r["max_detectable"]
    assert "exact fast sampler" in cert.summary and "raw-data point" in cert.summary


def test_a_row_is_held_to_its_own_power_gate(quick_cfg):
    row = {"z": 0.5, "detectable_rel": 0.03}
    assert mc_verdict([dict(row)], quick_cfg)[0] == "pass"            # global gate 5 %
    verdict, why, _, _ = mc_verdict([dict(row, max_detectable=0.02)], quick_cfg)
    assert verdict == "fail" and "underpowered" in why and "2%" in why
