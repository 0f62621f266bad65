"""The FFT theorems: justifications named, CLI contract.
(Every step passing and every control rejected, for every derivation: test_registry_audit.py.)"""
import pytest

from derivations import get, registry
from derivations.points import evaluate_point, simulate_point
from numeric.errors import InputError
from numeric.params import make_params

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
