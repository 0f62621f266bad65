"""The inequality checker: true bounds pass with ratio < 1, false ones are caught -- some only by
the adversarial search, which is why it exists."""
from types import SimpleNamespace

import pytest
import sympy as sp

from derivations.checkers import get_checker, run_checker
from derivations.common import Delta, Sigma, SigmaHalf, d, hp_sizes, k, r, sigma
from derivations.core import Justification, Step
from numeric.params import make_params
from symbolic.ops import Expect, Frob2, OpNorm, SigmaMin, TruncSVD
from symbolic.registry import msym, sym

G = sym("G")
M = msym("M", k, d)
WHY = Justification("inequality", "test")
BASE = dict(d=3, k=3, n=10, r=1, sigma=1.0, shift_sv=(2.0,), cov_eigs=())


def _der(base=BASE, count=4):
    return SimpleNamespace(id="mock-ineq", definitions=(("M", Delta * SigmaHalf),),
                           hp_params=lambda cfg: hp_sizes(cfg, base, count=count),
                           mc_params=lambda cfg: [make_params(**base, seed=cfg.seed),
                                                  make_params(**dict(base, d=6, k=2), seed=1)])


def _trunc_step(const):
    return Step("trunc", Frob2(TruncSVD(M + G, r) - M), "<=", const * r * OpNorm(G) ** 2, WHY,
                ("ineq",), options=dict(search=("Delta", "G"), parametrize={"Delta": "rank_r"}))


def test_registered():
    assert get_checker("ineq") is not None


def test_true_bound_passes_with_ratio_below_one(quick_cfg):
    cert = run_checker("ineq", _trunc_step(8), _der(), quick_cfg)
    ev = cert.evidence
    assert cert.verdict == "pass", cert.summary
    assert ev["worst_ratio"] < 1 and ev["worst_ratio_random"] < 1
    # the search pushes far beyond typical instances, and never below the random worst
    assert ev["worst_ratio_search"] > 1.3 * ev["worst_ratio_random"]
    assert ev["evaluations"] > ev["random_instances"] >= quick_cfg.ineq_instances
    assert ev["worst_ratio_hp"] == pytest.approx(ev["worst_ratio_float64"], rel=1e-9)


def test_false_bound_caught_only_by_the_search(quick_cfg):
    """Constant 4r instead of 8r: typical instances satisfy it, the search finds a violation."""
    cert = run_checker("ineq", _trunc_step(4), _der(), quick_cfg)
    ev = cert.evidence
    assert ev["worst_ratio_random"] < 1          # random sampling alone would have passed it
    assert cert.verdict == "fail" and ev["found_by"] == "adversarial search"
    assert ev["worst_ratio_hp"] > 1              # confirmed at 50 digits, not round-off
    cex = ev["worst_instance"]["matrices"]
    assert set(cex) >= {"Delta", "G"} and len(cex["G"]) == 3   # the counterexample is shown


def test_grossly_false_bound_caught(quick_cfg):
    cert = run_checker("ineq", _trunc_step(sp.Rational(1, 4)), _der(), quick_cfg)
    assert cert.verdict == "fail" and cert.evidence["worst_ratio_random"] > 1


def test_greater_equal_relation(quick_cfg):
    ok = Step("ge", Frob2(M), ">=", OpNorm(M) ** 2, WHY, ("ineq",),
              options=dict(search=("Delta",)))
    bad = Step("ge-bad", OpNorm(M) ** 2, ">=", Frob2(M), WHY, ("ineq",),
               options=dict(search=("Delta",)))
    der = _der(dict(BASE, shift_sv=(2.0, 1.0)))
    assert run_checker("ineq", ok, der, quick_cfg).verdict == "pass"
    assert run_checker("ineq", bad, der, quick_cfg).verdict == "fail"


def test_spd_search_keeps_covariance_admissible(quick_cfg):
    """||Sigma||_F^2 <= tr(Sigma)^2/d is false except at Sigma = I: random isotropic instances
    sit exactly at ratio 1; only the (SPD-preserving) search leaves them and breaks it."""
    step = Step("cs", Frob2(Sigma), "<=", sp.Trace(Sigma) ** 2 / d, WHY, ("ineq",),
                options=dict(search=("Sigma",), parametrize={"Sigma": "spd"}))
    cert = run_checker("ineq", step, _der(), quick_cfg)
    assert cert.verdict == "fail"
    assert cert.evidence["worst_ratio_random"] == pytest.approx(1.0, abs=1e-12)
    import numpy as np

    cex = np.array(cert.evidence["worst_instance"]["matrices"]["Sigma"])
    assert np.allclose(cex, cex.T) and np.linalg.eigvalsh(cex).min() > 0
    true = step.with_sides(lhs=sp.Trace(Sigma) ** 2 / d, rhs=Frob2(Sigma))
    assert run_checker("ineq", true, _der(), quick_cfg).verdict == "pass"


def test_expectation_mode_gordon(quick_cfg):
    gordon = Step("gordon", Expect(OpNorm(G), G), "<=", sigma * (sp.sqrt(k) + sp.sqrt(d)), WHY,
                  ("ineq",))
    cert = run_checker("ineq", gordon, _der(), quick_cfg)
    assert cert.verdict == "pass", cert.summary
    assert cert.evidence["mode"] == "expectation" and 0.5 < cert.evidence["worst_ratio"] < 1
    # E||G||_op / (sqrt k + sqrt d) is about 0.73-0.75 at these sizes: a constant 2/3 is false
    too_small = gordon.with_sides(rhs=sp.Rational(2, 3) * sigma * (sp.sqrt(k) + sp.sqrt(d)))
    assert run_checker("ineq", too_small, _der(), quick_cfg).verdict == "fail"


def test_equality_refused(quick_cfg):
    step = Step("eq", Frob2(M), "=", Frob2(M), WHY, ("ineq",))
    assert run_checker("ineq", step, _der(), quick_cfg).verdict == "error"


def test_a_never_firing_event_cannot_certify_a_rate_below_three_over_n():
    """Zero events in N draws support only 'rate <= 3/N' (95%): a smaller claimed bound fails."""
    import sympy as sp

    from derivations import get
    from derivations.checkers import run_checker
    from derivations.config import make_config
    from symbolic.registry import sym

    cfg = make_config(quick=True, device="cpu")
    der = get("lora_bound_over")
    step = der.step("davidson-szarek")
    assert run_checker("ineq", step, der, cfg).verdict == "pass"
    wrong = step.with_sides(rhs=sp.exp(-4 * sym("t") ** 2))      # 1.2e-4 < 3/16000
    cert = run_checker("ineq", wrong, der, cfg)
    assert cert.verdict == "fail" and "underpowered" in cert.summary


def test_search_stops_at_a_clear_violation_and_still_fails(quick_cfg):
    """A violation beyond EARLY_STOP needs no worst case: the search stops early, the high-
    precision re-evaluation confirms it, and the verdict is the full search's."""
    from derivations.checkers import inequality as ineq

    cert = run_checker("ineq", _trunc_step(4), _der(), quick_cfg)
    ev = cert.evidence
    assert cert.verdict == "fail" and ev["stopped_early"]
    assert ev["worst_ratio_hp"] > 1 + ineq.EARLY_STOP
    full = ineq._check_pointwise(_trunc_step(4), _der(), quick_cfg, early_stop=False)
    assert full.verdict == "fail" and not full.evidence["stopped_early"]
    assert full.evidence["evaluations"] > ev["evaluations"]     # the saving
    # a random instance already violating the grossly false bound: no search at all
    gross = run_checker("ineq", _trunc_step(sp.Rational(1, 4)), _der(), quick_cfg).evidence
    assert gross["stopped_early"] and gross["restarts"] == 0


def test_early_stop_unconfirmed_at_high_precision_reruns_the_full_search(quick_cfg, monkeypatch):
    """If the float64 violation did not survive at 50 digits the checker searches in full."""
    from derivations.checkers import inequality as ineq

    calls = []
    real = ineq._hp_ratio

    def fake_hp(*a, **k):           # first call: pretend the violation was round-off
        calls.append(1)
        return 0.5 if len(calls) == 1 else real(*a, **k)

    monkeypatch.setattr(ineq, "_hp_ratio", fake_hp)
    cert = run_checker("ineq", _trunc_step(4), _der(), quick_cfg)
    assert len(calls) == 2 and not cert.evidence["stopped_early"]
    assert cert.verdict == "fail"
