"""The FFT theorems: every step certified, every negative control rejected, CLI contract."""
import pytest

from derivations import get, registry
from derivations.cli import evaluate_point, simulate_point
from numeric.errors import InputError
from numeric.params import make_params
from derivations.core import NEUTRAL_VERDICTS  # formal: skipped / not formalised

FFT_IDS = [i for i in ("fft_over", "fft_under_iso", "fft_under_general") if i in registry()]


@pytest.mark.parametrize("der_id", FFT_IDS)
def test_every_step_passes(audit_cache, der_id):
    res = audit_cache(der_id)
    bad = [(s["id"], c["method"], c["summary"]) for s in res["steps"] for c in s["certificates"]
           if c["verdict"] not in ("pass", *NEUTRAL_VERDICTS)]
    assert not bad, bad
    assert all(c["verdict"] == "pass" for c in res["statement"]["certificates"])


@pytest.mark.parametrize("der_id", FFT_IDS)
def test_every_control_rejected(audit_cache, der_id):
    res = audit_cache(der_id)
    assert res["controls"], "a derivation without negative controls"
    missed = [c["name"] for c in res["controls"] if not c["rejected"]]
    assert not missed, f"wrong statements that passed: {missed}"
    assert res["verdict"] == "pass"


def test_steps_name_their_justification():
    for der in registry().values():
        for step in der.steps:
            assert step.why.text and step.checks


def test_fft_over_refuses_undefined_n():
    der = get("fft_over")
    with pytest.raises(InputError, match="n > d \\+ 1"):
        der.validate(make_params(d=4, n=5))


@pytest.mark.parametrize("point", [
    dict(d=4, k=3, n=20, cov_eigs=(4, 3, 2, 1)),
    dict(d=6, k=2, n=30, sigma=0.5, shift_sv=(2, 1)),
    dict(d=3, k=5, n=7, cov_eigs=(10, 1, 0.1), shift_sv=(1, 1, 1)),
])
def test_fft_over_evaluate_matches_simulate(point):
    p = make_params(**point, seed=5)
    ev = evaluate_point("fft_over", p)
    sim = simulate_point("fft_over", p, trials=20000, seed=11, device="cpu")
    assert abs(sim["mean"] - ev["value"]) < 4 * sim["se"]
    assert 4 * sim["se"] / ev["value"] < 0.05  # the comparison has power
