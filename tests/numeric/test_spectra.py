"""Spectra of weight differences: exact against constructed shifts, the readers of every
format (a real PEFT adapter included), the randomized bracket, the thresholds, bad input."""
from __future__ import annotations

import json
import math

import pytest
import sympy as sp
import torch

from numeric import spectra as S
from numeric.checkpoints import Checkpoint, pair_checkpoints, read_adapter
from numeric.errors import InputError

safetensors = pytest.importorskip("safetensors.torch")


def _orth(m, k, g):
    return torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))[0]


def _shift(m, n, sv, seed=0):
    g = torch.Generator().manual_seed(seed)
    sv = torch.tensor(sv, dtype=torch.float64)
    return _orth(m, len(sv), g) @ torch.diag(sv) @ _orth(n, len(sv), g).T


def _pair(tmp_path, shifts: dict, fmt="safetensors", seed=1):
    g = torch.Generator().manual_seed(seed)
    base = {k: torch.randn(*v.shape, generator=g, dtype=torch.float64) for k, v in shifts.items()}
    base["norm.weight"] = torch.ones(7, dtype=torch.float64)          # 1-D: skipped, counted
    tuned = {k: base[k] + shifts[k] for k in shifts}
    tuned["norm.weight"] = base["norm.weight"] * 2
    if fmt == "safetensors":
        safetensors.save_file(base, str(tmp_path / "base.safetensors"))
        safetensors.save_file(tuned, str(tmp_path / "tuned.safetensors"))
        return tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"
    torch.save(base, tmp_path / "base.pt")
    torch.save(tuned, tmp_path / "tuned.pt")
    return tmp_path / "base.pt", tmp_path / "tuned.pt"


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_known_rank_and_tail_spectra_exact(tmp_path, fmt):
    tail = [0.5 * 0.7 ** i for i in range(20)]
    shifts = {"a.weight": _shift(50, 30, [9.0, 4.0, 2.0]),            # exact rank 3
              "b.weight": _shift(24, 64, [6.0, 3.0] + tail)}          # head + geometric tail
    pairs, skipped = pair_checkpoints(*_pair(tmp_path, shifts, fmt))
    assert skipped["not_2d"] == 1 and skipped["names_not_2d"] == ["norm.weight"]
    layers = {x.name: x for x in S.analyse_pairs(pairs, S.SpectraOptions(noise=0.05))}
    a, b = layers["a.weight"], layers["b.weight"]
    assert a.sv[:3] == pytest.approx([9.0, 4.0, 2.0], abs=1e-10)
    assert max(a.sv[3:]) < 1e-10
    assert b.sv[:22] == pytest.approx([6.0, 3.0] + tail, abs=1e-10)
    fro2 = 81 + 16 + 4
    assert a.fro == pytest.approx(math.sqrt(fro2), rel=1e-12)
    assert a.stable_rank == pytest.approx(fro2 / 81, rel=1e-10)
    p = torch.tensor([9.0, 4.0, 2.0], dtype=torch.float64) / 15
    assert a.effective_rank == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-8)
    assert a.rank90 == 2 and a.rank99 == 3        # 97/101 = 96 % at r = 2
    assert a.captured[1] == pytest.approx(81 / fro2, rel=1e-10)
    # noise-free exact low rank: the median is ~0 so every non-zero value is kept
    assert a.keep_rank == 3


def test_gavish_donoho_recovers_the_planted_rank_in_noise():
    g = torch.Generator().manual_seed(5)
    m, n, s = 200, 400, 0.01
    x = [8.0, 5.0, 3.0, 0.5]            # in units of sqrt(n) * s: three above the threshold
    signal = _shift(m, n, [v * math.sqrt(n) * s for v in x], seed=2)
    dw = signal + s * torch.randn(m, n, generator=g, dtype=torch.float64)
    res = S.analyse("w", (m, n), "difference", dw, S.SpectraOptions(noise=s))
    assert res.gd_rank == 3 and res.keep_rank == 3 and res.disagree is False
    assert res.noise_estimate == pytest.approx(s, rel=0.05)
    wrong = S.analyse("w", (m, n), "difference", dw, S.SpectraOptions(noise=10 * s))
    assert wrong.keep_rank < 3 and wrong.disagree is True      # a wrong noise level is named


def test_keep_threshold_is_gavish_donohos_known_noise_threshold():
    b = sp.symbols("beta", positive=True)
    R = sp.sqrt(b ** 2 + 14 * b + 1)
    t = ((1 + b) + R) / 2
    y2 = t + 1 + b + b / t
    lam2 = 2 * (b + 1) + 8 * b / ((b + 1) + R)
    assert sp.simplify(sp.radsimp(y2 - lam2)) == 0
    wrong = 2 * (b + 1) + 8 * b / ((b + 1) - R)        # negative control: a flipped sign
    assert sp.simplify(sp.radsimp(y2 - wrong)) != 0
    for beta in (0.01, 0.3, 1.0):
        assert S.keep_observed(beta) == pytest.approx(S.lambda_star(beta), rel=1e-14)


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0])
def test_marchenko_pastur_median_against_simulation_and_the_published_fit(beta):
    g = torch.Generator().manual_seed(11)
    N = 2000
    m = int(beta * N)
    z = torch.randn(m, N, generator=g, dtype=torch.float64)
    eig = torch.linalg.eigvalsh(z @ z.T / N)
    assert float(eig.median()) == pytest.approx(S.mp_median(beta), abs=0.01)
    # Gavish-Donoho's cubic fit of omega is accurate to about 0.02
    assert S.omega(beta) == pytest.approx(0.56 * beta ** 3 - 0.95 * beta ** 2 + 1.82 * beta + 1.43,
                                          abs=0.02)
    assert abs(S.omega(beta) - S.lambda_star(beta)) > 0.01     # the median matters (control)


def test_randomized_bracket_is_rigorous():
    g = torch.Generator().manual_seed(3)
    dw = _shift(120, 90, [10.0 * 0.8 ** i for i in range(60)], seed=4) \
        + 0.01 * torch.randn(120, 90, generator=g, dtype=torch.float64)
    exact = torch.linalg.svdvals(dw)
    res = S.analyse("w", dw.shape, "difference", dw,
                    S.SpectraOptions(exact_max=50, q=20, niter=2, noise=0.01))
    assert res.method == "randomized" and res.computed == 20
    t = torch.tensor(res.sv, dtype=torch.float64)
    assert bool((t <= exact[:20] + 1e-9).all())
    assert bool((exact[:20] <= t + res.error_bound + 1e-9).all())
    assert res.effective_rank is None and res.gd_rank is None     # needs the whole spectrum
    assert res.rank90 is None or res.rank90 >= int(
        (torch.cumsum(exact ** 2, 0) < 0.9 * (exact ** 2).sum()).sum()) + 1


def test_sharded_folder_and_index(tmp_path):
    shifts = {"a.weight": _shift(20, 10, [3.0, 1.0]), "b.weight": _shift(8, 12, [2.0])}
    for side, seed in (("base", 0), ("tuned", 0)):
        d = tmp_path / side
        d.mkdir()
        g = torch.Generator().manual_seed(seed)
        w = {k: torch.randn(*v.shape, generator=g, dtype=torch.float64) for k, v in shifts.items()}
        if side == "tuned":
            w = {k: w[k] + shifts[k] for k in w}
        safetensors.save_file({"a.weight": w["a.weight"]}, str(d / "model-00001-of-00002.safetensors"))
        safetensors.save_file({"b.weight": w["b.weight"]}, str(d / "model-00002-of-00002.safetensors"))
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
            "a.weight": "model-00001-of-00002.safetensors",
            "b.weight": "model-00002-of-00002.safetensors"}}))
    pairs, _ = pair_checkpoints(tmp_path / "base", tmp_path / "tuned")
    layers = {x.name: x for x in S.analyse_pairs(pairs, S.SpectraOptions())}
    assert layers["a.weight"].sv[:2] == pytest.approx([3.0, 1.0], abs=1e-10)
    assert layers["b.weight"].sv[0] == pytest.approx(2.0, abs=1e-10)


def test_real_peft_adapter(tmp_path):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).double()
    cfg = peft.LoraConfig(r=4, lora_alpha=12, target_modules=["0", "2"], lora_dropout=0.0)
    pm = peft.get_peft_model(model, cfg)
    with torch.no_grad():
        for name, prm in pm.named_parameters():
            if "lora_B" in name:
                prm.copy_(torch.randn_like(prm))
    pm.save_pretrained(tmp_path / "adapter")
    base = {k: v.detach().clone() for k, v in model.state_dict().items() if "lora" not in k}
    merged = pm.merge_and_unload()
    pairs, skipped, acfg = read_adapter(tmp_path / "adapter")
    assert acfg["r"] == 4 and len(pairs) == 2
    res = {x.name: x for x in S.analyse_pairs(pairs, S.SpectraOptions())}
    for idx in ("0", "2"):
        key = [k for k in base if k.endswith(f"{idx}.base_layer.weight") or k == f"{idx}.weight"][0]
        dw = merged.state_dict()[f"{idx}.weight"] - base[key]
        name = [n for n in res if n.endswith(f".{idx}")][0]
        want = torch.linalg.svdvals(dw)
        assert res[name].shape == tuple(dw.shape)
        assert res[name].sv[:4] == pytest.approx(want[:4].tolist(), rel=1e-10, abs=1e-10)
        assert res[name].fro == pytest.approx(float(dw.norm()), rel=1e-10)


def _write(tmp_path, name, obj):
    p = tmp_path / name
    safetensors.save_file(obj, str(p))
    return p


def test_bad_checkpoints_are_refused_with_the_problem_named(tmp_path):
    t = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
    a = _write(tmp_path, "a.safetensors", {"x.weight": t(3, 4), "y.weight": t(2, 2)})
    b = _write(tmp_path, "b.safetensors", {"x.weight": t(3, 4), "z.weight": t(2, 2)})
    c = _write(tmp_path, "c.safetensors", {"x.weight": t(4, 3), "y.weight": t(2, 2)})
    bad = t(3, 4)
    bad[1, 1] = float("nan")
    d = _write(tmp_path, "d.safetensors", {"x.weight": bad, "y.weight": t(2, 2)})
    with pytest.raises(InputError, match="only in BASE.*y.weight.*only in TUNED.*z.weight"):
        pair_checkpoints(a, b)
    with pytest.raises(InputError, match=r"differ in shape.*x.weight \(3, 4\) vs \(4, 3\)"):
        pair_checkpoints(a, c)
    pairs, _ = pair_checkpoints(a, d)
    with pytest.raises(InputError, match="NaN/inf"):
        S.analyse_pairs(pairs, S.SpectraOptions())
    with pytest.raises(InputError, match="no such file"):
        Checkpoint(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a readable safetensors"):
        Checkpoint(tmp_path / "junk.safetensors")
    (tmp_path / "ad").mkdir()
    _write(tmp_path / "ad", "adapter_model.safetensors", {"m.lora_A.weight": t(2, 4)})
    with pytest.raises(InputError, match="adapter_config.json"):
        read_adapter(tmp_path / "ad")
    (tmp_path / "ad" / "adapter_config.json").write_text(json.dumps({"r": 2, "lora_alpha": 4}))
    with pytest.raises(InputError, match="not both LoRA factors"):
        read_adapter(tmp_path / "ad")


def test_cli_spectra_writes_outputs_and_refuses_bad_input(tmp_path, capsys):
    from derivations.cli import main

    base, tuned = _pair(tmp_path, {"a.weight": _shift(12, 10, [3.0, 2.0])})
    out = tmp_path / "out"
    assert main(["spectra", str(base), str(tuned), "--out", str(out), "--noise", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "a.weight" in text and "1 tensors skipped" in text
    data = json.loads((out / "spectra.json").read_text())
    assert data["layers"][0]["sv"][:2] == pytest.approx([3.0, 2.0], abs=1e-10)
    assert "git_revision" in data["provenance"]
    for f in ("spectra.csv", "spectra-sv.csv", "spectra-sv.pdf", "spectra-ranks.pdf"):
        assert (out / f).is_file()
    for argv, needle in ((["spectra", str(base)], "BASE and TUNED"),
                         (["spectra", str(base), str(tmp_path / "nope.pt")], "no such file"),
                         (["spectra", "--adapter", str(tmp_path)], "adapter_config.json"),
                         (["spectra", str(base), str(tuned), "--noise", "-1"], "--noise"),
                         (["spectra", str(base), str(tuned), "--ranks", "1,x"], "--ranks"),
                         (["spectra", str(base), str(tuned), "--out", str(base)], "not a folder")):
        assert main(argv) == 2, argv
        assert needle in capsys.readouterr().err


def test_practical_task_tiny_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    from numeric import practical as pr

    cfg = pr.PracticalConfig(hidden=8, n_down=60, ranks=(1, 2), seeds=2, steps_pre=40, steps=20)
    res = pr.run(cfg, tmp_path)
    again = pr.run(cfg, tmp_path / "again")
    assert [t["per_seed"] for t in res["table"]] == [t["per_seed"] for t in again["table"]]
    methods = {t["method"] for t in res["table"]}
    assert methods == {"fft", "lora-r1", "lora-r2", "pretrained"}
    assert all(0 <= t["test_error"] <= 1 and t["se"] >= 0 for t in res["table"])
    assert (tmp_path / "base.safetensors").is_file() and (tmp_path / "fft-seed1.safetensors").is_file()
    # the saved adapter is read back by the PEFT-layout reader and equals the fitted shift
    pairs, _, acfg = read_adapter(tmp_path / "lora-r2-seed0")
    assert acfg["r"] == 2 and len(pairs) == 3
    layers = S.analyse_pairs(pairs, S.SpectraOptions())
    assert all(x.method == "adapter-exact" and sum(v > 1e-12 for v in x.sv) <= 2 for x in layers)
    assert [x["name"] for x in res["shift_spectra"]] == list(pr.LAYERS)
    with pytest.raises(InputError, match="ranks"):
        pr.PracticalConfig(hidden=4, ranks=(8,))
