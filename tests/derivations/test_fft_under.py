import pytest

from derivations import get
from derivations.points import evaluate_point, simulate_point
from numeric.errors import InputError
from numeric.params import make_params


def test_under_iso_refuses_non_identity_covariance():
    with pytest.raises(InputError, match="Sigma = I"):
        get("fft_under_iso").validate(make_params(d=12, n=5, cov_eigs=(2,) + (1,) * 11))


def test_under_iso_refuses_d_le_n_plus_1():
    with pytest.raises(InputError, match="d > n \\+ 1"):
        get("fft_under_iso").validate(make_params(d=6, n=5))


@pytest.mark.parametrize("point", [dict(d=15, k=3, n=6), dict(d=8, k=2, n=2, shift_sv=(5, 0.1))])
def test_under_iso_evaluate_matches_simulate(point):
    p = make_params(**point, seed=2)
    ev = evaluate_point("fft_under_iso", p)
    sim = simulate_point("fft_under_iso", p, trials=20000, seed=4, device="cpu")
    assert abs(sim["z"]) < 4 and 4 * sim["se"] / ev["value"] < 0.05


def test_general_reduces_to_isotropic_formula_in_the_limit():
    # identity covariance: the asymptotic formula equals theorem 2's up to n/(d-n) vs n/(d-n-1)
    p = make_params(d=300, k=2, n=100, shift_sv=(3, 1), cov_eigs=(1.0,) * 300)
    g = evaluate_point("fft_under_general", p)
    i = evaluate_point("fft_under_iso", p)
    assert abs(g["value"] - i["value"]) / i["value"] < 0.01
    assert g["details"]["kappa"] == pytest.approx(2.0, rel=1e-12)
    assert g["details"]["df2"] == pytest.approx(1 / 3, rel=1e-12)
