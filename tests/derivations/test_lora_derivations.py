"""LoRA derivations (estimators, decompositions, bounds): enough controls, inequality steps
report their worst ratio, bad input refused.
(Every step passing and every control rejected, for every derivation: test_registry_audit.py.)"""
import math

import pytest

from derivations import get
from derivations.points import evaluate_point, simulate_point
from numeric.errors import InputError
from numeric.lora_bounds import lora_bound
from numeric.params import make_params

IDS = ["lora_estimator_over", "lora_estimator_under", "lora_decomp_over", "lora_decomp_under",
       "lora_bound_over", "lora_bound_under"]


@pytest.mark.parametrize("der_id", IDS)
def test_at_least_four_controls(audit_cache, der_id):
    assert len(audit_cache(der_id).controls) >= 4


@pytest.mark.parametrize("der_id", ["lora_bound_over", "lora_bound_under"])
def test_inequality_steps_report_worst_ratio(audit_cache, der_id):
    res = audit_cache(der_id)
    ineq = [c for s in res.steps for c in s.certificates if c.method == "ineq"]
    assert len(ineq) >= 5
    for c in ineq:
        assert 0 <= c.evidence["worst_ratio"] <= 1 + 1e-9
    trunc = next(s for s in res.steps if s.id == "truncation").certificates[0].evidence
    assert trunc["worst_ratio_search"] > 2 * trunc["worst_ratio_random"]
    four_r = next(c for c in res.controls if c.name == "truncation 4r")
    ev = four_r.certificates[0].evidence
    # the constant 4r survives random instances and is broken only by the adversarial search
    assert ev["worst_ratio_random"] < 1 < ev["worst_ratio"] and ev["found_by"] == "adversarial search"
    stmt = res.statement[0].evidence
    assert stmt["bound_over_simulated_min"] > 1          # a bound, and a conservative one


def test_bound_statement_value_matches_numeric_api():
    p = make_params(d=5, k=8, n=40, r=1, sigma=1.0, shift_sv=(4.0,), seed=3)
    ev = evaluate_point("lora_bound_over", p)
    assert ev["kind"] == "bound"
    assert ev["value"] == pytest.approx(lora_bound(5, 8, 40, 1.0, 1, (4.0,))["value"])
    assert ev["details"]["expectation_beats_fft"] is False


def test_decomposition_evaluate_agrees_with_simulate():
    p = make_params(d=4, k=3, n=14, r=1, sigma=0.9, shift_sv=(2.5,), cov_eigs=(2, 1, 1, 0.5))
    ev = evaluate_point("lora_decomp_over", p)
    sim = simulate_point("lora_decomp_over", p, trials=8000, seed=2, device="cpu")
    se = math.hypot(sim["se"], ev["details"]["monte_carlo_se"])
    assert abs(sim["mean"] - ev["value"]) < 4 * se


@pytest.mark.parametrize("der_id,point,match", [
    ("lora_bound_over", dict(d=4, n=5), "n > d \\+ 1"),
    ("lora_bound_over", dict(d=6, k=3, n=30, r=1, shift_sv=(2, 1)), "s <= r"),
    ("lora_bound_under", dict(d=12, k=3, n=5, r=1, cov_eigs=(2,) * 12, shift_sv=(1,)), "Sigma = I"),
    ("lora_decomp_under", dict(d=6, n=5, r=1, shift_sv=(1,)), "d > n \\+ 1"),
    ("lora_decomp_over", dict(d=6, n=5), "n > d"),
    ("lora_estimator_under", dict(d=4, n=8), "n < d"),
])
def test_validation_refuses_bad_regimes(der_id, point, match):
    with pytest.raises(InputError, match=match):
        get(der_id).validate(make_params(**point))


def test_rank_above_min_dimension_refused():
    with pytest.raises(InputError, match="r must satisfy"):
        make_params(d=3, k=2, r=3)
