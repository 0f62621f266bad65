"""Integrity checks of derivations (issue 13): each must refuse a derivation that hides an error
-- special check points, an unvisited region, numeric code that disagrees with its SymPy
expression, a statement its steps do not derive -- and pass the real ones."""
from dataclasses import replace

import mpmath as mp
import pytest
import sympy as sp

from derivations import get, registry
from derivations.audit import audit_derivation
from derivations.core import Statement, Truth
from derivations.checkers.convergence import judge
from derivations.integrity import check_chain, check_generic, check_truth, run_integrity
from numeric import evaluate as ev
from numeric import sharp
from numeric.params import make_params


@pytest.mark.parametrize("der_id", list(registry()))
def test_every_derivation_passes_its_integrity_checks(quick_cfg, der_id):
    der = get(der_id)
    certs = run_integrity(der, quick_cfg)
    bad = [(c.method, c.summary) for c in certs if c.verdict not in ("pass", "waived")]
    assert not bad, bad
    waivers = der.extra.integrity_waivers
    for c in certs:                  # a waiver is declared, carries its reason and the finding
        if c.verdict == "waived":
            assert c.method in waivers and c.evidence["waiver"] == waivers[c.method]
            assert c.summary.startswith("WAIVED") and "finding:" in c.summary


def test_sigma_one_is_refused(quick_cfg):
    der = get("fft_over")
    special = lambda cfg: [make_params(d=4, k=3, n=12, r=1, sigma=1.0, shift_sv=(3.0, 2.0),  # noqa: E731
                                       cov_eigs=(4.0, 2.0, 1.0, 0.5), seed=s) for s in range(3)]
    cert = check_generic(replace(der, hp_params=special, mc_params=special), quick_cfg)
    assert cert.verdict == "error" and "sigma != 1" in cert.summary


def test_identity_covariance_and_equal_dimensions_are_refused(quick_cfg):
    der = get("lora_decomp_over")
    iso = lambda cfg: [make_params(d=4, k=4, n=12, r=2, sigma=0.8, shift_sv=(3.0, 1.5), seed=1)]  # noqa: E731
    cert = check_generic(replace(der, hp_params=iso), quick_cfg)
    rules = {v["rule"] for v in cert.evidence["violations"]}
    assert cert.verdict == "error"
    assert {"Sigma != I with distinct eigenvalues", "d, k, n pairwise different"} <= rules


def test_one_output_side_only_is_refused(quick_cfg):
    der = get("fft_over")
    one_side = lambda cfg: [make_params(d=4, k=3, n=12, r=1, sigma=1.3, shift_sv=(3.0, 2.0),  # noqa: E731
                                        cov_eigs=(4.0, 2.0, 1.0, 0.5), seed=1)]
    cert = check_generic(replace(der, check_points=one_side), quick_cfg)
    assert cert.verdict == "error" and "above the sample side" in cert.summary


def test_unvisited_region_is_refused(quick_cfg):
    from derivations.theorems import lora_sharp as L

    der = get("lora_sharp_under")
    only_a = lambda cfg: [L._conv_params("under", s, cfg.seed, "A") for s in cfg.asym_scales]  # noqa: E731
    cert = check_generic(replace(der, check_points=only_a), quick_cfg)
    assert cert.verdict == "error"
    assert any("dropped by the rank" in v["rule"] for v in cert.evidence["violations"])


def test_step_region_left_unvisited_is_refused(quick_cfg):
    """misalign_second_order: control "square dropped" is false only where K > 1 and the bound
    is tight; points of step "bound" without such a point are an error of the derivation."""
    from derivations.theorems import misalign_bounds as mb

    der = get("misalign_second_order")
    steps = tuple(replace(s, options={**s.options, "ineq_params": lambda cfg: [
        p for p in mb.second_params(cfg) if not mb._k_above_1_tight(p)]})
        if s.id == "bound" else s
        for s in der.steps)
    cert = check_generic(replace(der, steps=steps), quick_cfg)
    assert cert.verdict == "error"
    assert any("region of step bound: K > 1" in v["rule"] for v in cert.evidence["violations"])
    ok = check_generic(der, quick_cfg)
    assert ok.verdict == "pass"
    assert any(r["rule"].startswith("region of step bound") for r in ok.evidence["rules"])


def test_formula_that_disagrees_with_the_statement_is_refused(quick_cfg):
    der = get("fft_over")
    wrong = replace(der, formula=lambda p: der.formula(p, denominator_shift=2))
    cert = check_truth(wrong, quick_cfg)
    assert cert.verdict == "error" and "disagree" in cert.summary


def test_a_per_component_cost_one_percent_off_is_refused(quick_cfg):
    """Below the convergence gate's resolution, but not below the source-of-truth check's."""
    der = get("lora_sharp_over")
    truths = list(der.extra.truth)
    keep = next(t for t in truths if t.name == "keep cost")
    off = replace(keep, value=lambda pt: 1.01 * sharp.spike_components(pt["x"], pt["beta"])["err_keep"])
    cert = check_truth(replace(der, extra=replace(der.extra, truth=[off])), quick_cfg)
    assert cert.verdict == "error" and "keep cost" in cert.summary


def test_printed_bound_is_audited(quick_cfg):
    der = get("lora_bound_over")
    names = [t.name for t in der.extra.truth]
    assert any("high-probability" in n for n in names)
    hp = next(t for t in der.extra.truth if "high-probability" in n_(t))
    off = replace(hp, value=lambda p: 1.001 * hp.value(p))
    cert = check_truth(replace(der, extra=replace(der.extra, truth=[off])), quick_cfg)
    assert cert.verdict == "error"


def n_(t):
    return t.name


def test_statement_constant_not_derived_by_the_steps_is_refused():
    der = get("fft_over")
    st = der.statement
    assert check_chain(der).verdict == "pass"
    from symbolic.registry import sym

    n, d, k, sigma = (sym(x) for x in ("n", "d", "k", "sigma"))
    looser = Statement(st.lhs, st.rel, sigma ** 2 * k * d / (n - d - 2), st.kind, st.conditions,
                       st.checks)
    assert check_chain(replace(der, statement=looser)).verdict == "error"


def test_a_looser_valid_bound_is_refused_by_the_chain():
    """9 r instead of 8 r: still a true bound, but not what the steps derive."""
    from derivations.theorems import lora_bounds as B

    der = get("lora_bound_over")
    assert check_chain(der).verdict == "pass"
    looser = replace(der.statement, rhs=B.bound_over * sp.Rational(9, 8))
    cert = check_chain(replace(der, statement=looser))
    assert cert.verdict == "error" and "not" in cert.summary


def test_chain_with_a_step_that_does_not_apply_is_refused():
    der = get("lora_bound_over")
    bad = replace(der, extra=replace(der.extra, chain=("decomposition", "gordon")))
    assert check_chain(bad).verdict == "error"


def test_integrity_error_fails_the_audit_and_stop_on_failure_stops(quick_cfg):
    der = get("fft_over")
    wrong = replace(der, formula=lambda p: der.formula(p, k_factor=False))
    res = audit_derivation(wrong, quick_cfg, stop_on_failure=True)
    assert res.verdict == "fail" and not res.integrity_ok
    assert res.stopped_at == "integrity source_of_truth" and res.steps == ()


def test_evaluator_sums_indexed_and_piecewise():
    i = sp.Symbol("i", integer=True, positive=True)
    lam = sp.IndexedBase(sp.Symbol("lam"))
    n, x = sp.Symbol("n"), sp.Symbol("x")
    with mp.workdps(50):
        env = {"lam": [mp.mpf(1), mp.mpf(2), mp.mpf(4)], "n": 3, "x": mp.mpf("0.5")}
        val = ev.evaluate(sp.Sum(lam[i] ** 2, (i, 1, n)), env, ev.MpBackend())
        assert val == 21
        pw = sp.Piecewise((x ** 2, x > 1), (-x, True))
        assert ev.evaluate(pw, env, ev.MpBackend()) == mp.mpf("-0.5")


def test_convergence_reports_a_too_low_formula_as_inaccurate(quick_cfg):
    """A formula half the truth used to inflate its own noise scale and read 'underpowered'."""
    rows = [{"scale": s, "formula": 0.5, "mean": 1.0, "se": 0.006, "trials": 250} for s in (1, 2, 4)]
    verdict, summary, _ = judge(rows, quick_cfg)
    assert verdict == "fail" and "too large" in summary and "underpowered" not in summary


def test_truth_dataclass_defaults():
    t = Truth("x", sp.Integer(1), lambda p: 1.0)
    assert t.tol == 1e-9 and t.points is None


def test_threshold_printed_by_evaluate_is_audited(quick_cfg, monkeypatch):
    """effective_threshold computed with a wrong dimension (a survivor of the mutation suite)."""
    der = get("lora_sharp_over")
    real = sharp.effective_threshold
    monkeypatch.setattr(sharp, "effective_threshold",
                        lambda d, k, n, regime=None: real(d, k, n + 3, regime))
    t = next(t for t in der.extra.truth if t.name.startswith("keep threshold at the finite"))
    cert = check_truth(replace(der, extra=replace(der.extra, truth=[t])), quick_cfg)
    assert cert.verdict == "error"


def test_probability_printed_for_a_bound_is_audited(quick_cfg, monkeypatch):
    from derivations.theorems import lora_bounds as B

    der = get("lora_bound_over")
    real = B.lora_bound
    monkeypatch.setattr(B, "lora_bound", lambda *a, **kw: {**real(*a, **kw),
                                                          "holds_with_probability": 0.0})
    cert = check_truth(der, quick_cfg)
    assert cert.verdict == "error" and "probability" in cert.summary


def test_noise_quantile_location_is_audited(quick_cfg, monkeypatch):
    """(j + 1/2)/m instead of (j - 1/2)/m: a survivor of the mutation suite, a few percent of one
    component of the sharp risk."""
    import numpy as np

    der = get("lora_sharp_over")
    monkeypatch.setattr(sharp, "mp_noise_levels", lambda beta, m, count, quantiles=True:
                        sharp.mp_upper_quantile(beta, (np.arange(1, count + 1) + 0.5) / m))
    t = [t for t in der.extra.truth if t.name.startswith("Marchenko")]
    cert = check_truth(replace(der, extra=replace(der.extra, truth=t)), quick_cfg)
    assert cert.verdict == "error"


def test_sample_misalignment_bound_code_is_tied_to_sympy(quick_cfg, monkeypatch):
    """misalign_sample: B_mis and the high-probability bound are assembled in numeric code;
    a change to that code alone (one more failure event) is refused by source_of_truth."""
    from numeric import sample_misalignment as sm

    der = get("misalign_sample")
    assert check_truth(der, quick_cfg).verdict == "pass"
    monkeypatch.setattr(sm, "N_EVENTS_MEAN", 5)
    cert = check_truth(der, quick_cfg)
    assert cert.verdict == "error" and "B_mis" in cert.summary


def test_growth_pieces_computed_by_the_code_are_tied_to_their_definitions(quick_cfg, monkeypatch):
    """misalign_growth: the assembly was tied with the code's own pieces; a piece computed wrongly
    (tau^2 one percent high) is now refused by source_of_truth."""
    from numeric import sample_misalignment as sm

    der = get("misalign_growth")
    real = sm.pieces

    def wrong(*a, **kw):
        out = dict(real(*a, **kw))
        out["tau2"] = out["tau2"] * 1.01      # consistently: the assembly agrees with it
        out["bound"] = out["bound"] * 1.01
        return out

    monkeypatch.setattr(sm, "pieces", wrong)
    cert = check_truth(der, quick_cfg)
    assert cert.verdict == "error" and "piece tau2" in cert.summary


def _with_step(der, step_id, rhs):
    steps = tuple(s.with_sides(rhs=rhs) if s.id == step_id else s for s in der.steps)
    return replace(der, steps=steps)


def test_homogeneity_refuses_a_factor_of_the_wrong_dimension_however_loose(quick_cfg):
    """Scaling (Delta*, sigma) by c: FFT's risk step scales as c^2 on both sides.  A step with an
    extra sigma, or with a term of another dimension added, is refused; a wrong dimensionless
    constant (a factor 2) is beyond this check (the step's own checkers see it)."""
    from derivations.common import sigma
    from derivations.integrity import check_homogeneity

    der = get("fft_over")
    assert check_homogeneity(der, quick_cfg).verdict == "pass"
    rhs = der.step("risk").rhs
    extra_sigma = check_homogeneity(_with_step(der, "risk", sigma * rhs), quick_cfg)
    assert extra_sigma.verdict == "error" and "'risk' is not homogeneous" in extra_sigma.summary
    assert "left side by c^2 and its right side by c^3" in extra_sigma.summary
    assert check_homogeneity(_with_step(der, "risk", rhs + 1), quick_cfg).verdict == "error"
    assert check_homogeneity(_with_step(der, "risk", 2 * rhs), quick_cfg).verdict == "pass"


def test_homogeneity_measures_the_inequalities_too(quick_cfg):
    from derivations.integrity import check_homogeneity

    cert = check_homogeneity(get("misalign_second_order"), quick_cfg)
    rows = {r["id"]: r for r in cert.evidence["relations"]}
    assert cert.verdict == "pass" and rows["schur"]["measured"]
    assert rows["schur"]["degrees"][0][0] == pytest.approx(3)


def test_homogeneity_sees_inside_an_indicator(quick_cfg):
    """A deviation event 1[X > threshold] is dimensionless, but its threshold must have X's
    dimension: sqrt(b_r) -> b_r in misalign_sample's Chevet threshold is refused."""
    from derivations.integrity import check_homogeneity
    from derivations.theorems import misalign_sample as ms

    der = get("misalign_sample")
    assert check_homogeneity(der, quick_cfg).verdict == "pass"
    step = der.step("chevet")
    wrong = step.lhs.subs(sp.sqrt(ms.b_r), ms.b_r)
    assert wrong != step.lhs
    steps = tuple(s.with_sides(lhs=wrong) if s.id == "chevet" else s for s in der.steps)
    cert = check_homogeneity(replace(der, steps=steps), quick_cfg)
    assert cert.verdict == "error" and "indicator" in cert.summary
