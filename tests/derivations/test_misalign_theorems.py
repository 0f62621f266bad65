"""The misalignment derivations: enough controls and the CLI contract (evaluate gives the exact
bias and the bounds; simulate agrees within SE).
(Every step passing and every control rejected, for every derivation: test_registry_audit.py.)"""
import pytest

from derivations import get
from derivations.cli import main
from derivations.points import evaluate_point, simulate_point
from numeric.errors import InputError
from numeric.params import make_params

IDS = ["misalign_exact", "misalign_first_order", "misalign_second_order",
       "misalign_decomposition", "misalign_cross_under"]


@pytest.mark.parametrize("der_id", IDS)
def test_at_least_three_controls(audit_cache, der_id):
    assert len(audit_cache(der_id).controls) >= 3


def test_bounds_report_worst_ratios(audit_cache):
    first = audit_cache("misalign_first_order")
    cert = first.statement[0]
    assert 0.5 < cert.evidence["worst_ratio"] <= 1 + 1e-9      # nearly tight (order flips)
    second = audit_cache("misalign_second_order")
    cert = second.statement[0]
    assert 0 < cert.evidence["worst_ratio"] < 0.2               # valid but loose


def test_wrong_leading_coefficient_rejected_by_series(audit_cache):
    res = audit_cache("misalign_exact")
    ctl = {c.name: c for c in res.controls}
    for name in ("series: gap not squared", "series: coefficient x 1.01"):
        series = [x for x in ctl[name].certificates if x.method == "series_hp"][0]
        assert series.verdict == "fail"


POINTS = [
    ("misalign_exact", dict(d=2, k=2, r=1, sigma=0.5, shift_sv=(2.0, 1.0), fit_eigs=(1.2, 0.8),
                            coupling=0.4)),
    ("misalign_first_order", dict(d=3, k=3, r=1, sigma=0.5, shift_sv=(2.0, 1.2, 0.5),
                                  fit_eigs=(1.4, 0.7, 1.0), cov_angle=0.6)),
]


@pytest.mark.parametrize("der_id, point", POINTS)
def test_evaluate_and_simulate_agree(der_id, point):
    p = make_params(**point, seed=5)
    ev = evaluate_point(der_id, p)
    det = ev["details"]
    assert ev["value"] == pytest.approx(det["beta_mis"])
    assert det["beta_mis"] <= det["first_order_bound"]
    sim = simulate_point(der_id, p, trials=8000, seed=2, device="cpu")
    assert abs(sim["z"]) < 4
    assert 4 * sim["se"] / ev["value"] < 0.08


def test_evaluate_refuses_missing_covariance():
    with pytest.raises(InputError, match="fitting covariance"):
        evaluate_point("misalign_first_order", make_params(d=3, k=3, shift_sv=(2, 1, 0.5)))
    with pytest.raises(InputError, match="a > b"):
        get("misalign_exact").validate(make_params(d=2, k=2, shift_sv=(1, 2), coupling=0.1))


def test_cli_evaluate_exit_codes(capsys):
    assert main(["evaluate", "misalign_exact", "--set", "d=2", "k=2", "shift_sv=2,1",
                 "coupling=0.3"]) == 0
    out = capsys.readouterr().out
    assert "leading_coefficient" in out and "first_order_bound" in out
    assert main(["evaluate", "misalign_exact", "--set", "d=2", "k=2", "shift_sv=2,1",
                 "coupling=5"]) == 2


VALUE_IDS = ["misalign_exact", "misalign_first_order", "misalign_second_order",
             "misalign_decomposition"]


@pytest.mark.parametrize("der_id", VALUE_IDS)
def test_value_check_exact_row_rejects_what_the_held_out_monte_carlo_cannot(der_id):
    """value_e2e's exact row (the deterministic trained estimator's risk, no Monte Carlo) passes
    the right formula and rejects a 1e-6 relative error and a flipped sign, which the held-out
    Monte Carlo (detects only ~3 %) lets through."""
    import dataclasses

    from derivations.checkers.misalignment_search import EXACT_ESTIMATOR_RTOL, \
        check_value_end_to_end
    from derivations.config import make_config

    der = get(der_id)
    cfg = make_config(quick=True)
    good = check_value_end_to_end(der.statement, der, cfg)
    assert good.verdict == "pass", good.summary
    assert good.evidence["exact_max_rel_gap"] < 1e-12
    assert good.evidence["max_detectable_rel"] == EXACT_ESTIMATOR_RTOL
    assert good.evidence["mc_max_detectable_rel"] > 1e-3      # the Monte Carlo alone is weak
    for wrong in (lambda p: der.formula(p) * (1 + 1e-6), lambda p: -der.formula(p)):
        bad = check_value_end_to_end(der.statement, dataclasses.replace(der, formula=wrong), cfg)
        assert bad.verdict == "fail", bad.summary
        assert not all(r["ok"] for r in bad.evidence["exact"])
    tiny = dataclasses.replace(der, formula=lambda p: der.formula(p) * (1 + 1e-6))
    mc_only = dataclasses.replace(tiny, extra=dataclasses.replace(der.extra,
                                                                  exact_estimator_value=None))
    assert check_value_end_to_end(der.statement, mc_only, cfg).verdict == "pass"
