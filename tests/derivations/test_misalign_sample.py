"""misalign_growth (deterministic bound proportional to the tail) and misalign_sample (sample
covariance: failure probabilities, E tau^2 = r b_r/n, the bound on E beta_mis): certified, every
control rejected by a failing check, tightness reported; and the numeric module's contract."""
import math

import pytest

from derivations.cli import main
from derivations.points import evaluate_point
from numeric import sample_misalignment as sm
from numeric.params import make_params

IDS = ["misalign_growth", "misalign_sample"]


@pytest.mark.parametrize("der_id", IDS)
def test_certified_and_controls_rejected(audit_cache, der_id):
    res = audit_cache(der_id)
    bad = [(s.id, c.method, c.summary) for s in res.steps for c in s.certificates
           if c.verdict != "pass"]
    assert not bad, bad
    assert all(c.verdict == "pass" for c in res.statement)
    assert len(res.controls) >= 5
    for c in res.controls:
        assert c.rejected, c.name
        assert any(x.verdict == "fail" for x in c.certificates), c.name


def test_growth_lemma_is_tight_and_bound_within_factor_five(audit_cache):
    res = audit_cache("misalign_growth")
    steps = {s.id: s.certificates[0] for s in res.steps}
    assert steps["growth"].evidence["worst_ratio"] > 0.99         # 1 - rho cannot be improved
    worst = res.statement[0].evidence["worst_ratio"]
    assert 0.15 < worst <= 1 + 1e-9


def test_sample_controls_name_the_wrong_rates(audit_cache):
    res = audit_cache("misalign_sample")
    names = {c.name for c in res.controls}
    assert {"tau rate d/n", "tail exponent 2t^2", "eta bound quartered",
            "DS deviation sign flipped", "half the leading term"} <= names
    stmt = res.statement[0]
    assert stmt.method == "bound_e2e"
    assert all(1 < p["bound_over_simulated"] < 1e4 for p in stmt.evidence["points"])


def test_thresholds_and_bounds_contract():
    ee = sm.eta_eps_thresholds(100, 4, 1, 2.0)
    a = (2 + 2) / 10
    assert ee["eta_t"] == pytest.approx(2 * a + a * a)
    assert ee["fail_prob"] == pytest.approx(2 * math.exp(-2.0))
    assert sm.eta_eps_thresholds(100, 4, 1, 0.5)["fail_prob"] == 1.0      # vacuous, clipped
    # no admissible deviation at n/d = 1.5: the bound is infinite, not a number
    assert sm.mean_bias_bound(12, 8, 1, (3, 0.1, 0.1, 0.1))["value"] == math.inf
    big = sm.mean_bias_bound(8192, 8, 1, (3, 0.1, 0.1, 0.1))
    assert math.isfinite(big["value"]) and big["main"] > big["tail"] > 0
    # leading order: the constant tends to 4 (1 + rho) / gamma^2 as n grows
    rho = 0.1 / 3
    lim = 4 * (1 + rho) / (1 - rho) ** 2
    c = [sm.mean_bias_bound(n, 8, 1, (3, 0.1, 0.1, 0.1))["constant"] for n in (2 ** 13, 2 ** 16, 2 ** 20)]
    assert c[0] > c[1] > c[2] > lim and c[2] < 1.25 * lim
    with pytest.raises(ValueError):
        sm.thresholds(100, 4, 3, (1.0, 0.5, 0.2), 1.0)


def test_simulated_bias_is_order_r_b_r_over_n_and_below_the_deterministic_bound():
    import torch

    from numeric.device import generator

    p = make_params(d=6, k=3, n=30, r=1, shift_sv=(3.0, 0.3, 0.3),
                    cov_eigs=(3.0, 2.0, 1.0, 1.0, 0.5, 0.25), seed=4)
    out = sm.simulate(p, 30, 2000, generator(3), "cpu")
    assert torch.allclose(out["beta"], out["beta_estimator"], atol=1e-10, rtol=1e-6)
    b_r = float((out["weighted_sv"][1:] ** 2).sum())
    ratio = float(out["beta"].mean()) * 30 / b_r
    assert 0.9 < ratio < 1.5                       # E beta ~ r b_r / (n - r - 1), not d b_r / n
    v = out["valid"]
    assert bool(v.any()) and bool((out["beta"][v] <= out["bound"][v] * (1 + 1e-9)).all())


def test_evaluate_and_bad_input(capsys):
    p = make_params(d=4, k=3, n=512, r=1, shift_sv=(3.0, 0.3, 0.2), seed=0)
    ev = evaluate_point("misalign_sample", p)
    assert math.isfinite(ev["value"]) and ev["details"]["mean_bound_over_r_b_r_over_n"] > 4
    rc = main(["evaluate", "misalign_sample", "--set", "d=4", "k=3", "n=6", "r=1",
               "shift_sv=3,0.3,0.2"])
    assert rc == 2 and "n > d + 3" in capsys.readouterr().err
