"""The checkers themselves: each rejects a wrong statement and reports its evidence."""
import pytest
import sympy as sp

from derivations import get
from derivations.checkers import run_checker
from derivations.config import make_config
from derivations.checkers.convergence import judge
from numeric.errors import InputError


def _rows(errors, rel_se=0.002):
    return [{"scale": s, "formula": 1.0, "mean": 1.0 + e, "se": rel_se, "trials": 100}
            for s, e in zip((1, 2, 4, 8), errors)]


def test_convergence_judge_accepts_shrinking_error(quick_cfg):
    verdict, _, ev = judge(_rows([0.08, 0.04, 0.02, 0.01]), quick_cfg)
    assert verdict == "pass"
    assert ev["observed_rate"] == pytest.approx(-1.0, abs=0.05)


@pytest.mark.parametrize("errors,why", [
    ([0.10, 0.10, 0.10, 0.10], "too large"),
    ([0.009, 0.009, 0.0095, 0.0095], "does not shrink"),
])
def test_convergence_judge_rejects(quick_cfg, errors, why):
    verdict, summary, _ = judge(_rows(errors), quick_cfg)
    assert verdict == "fail" and why in summary


def test_convergence_judge_rejects_underpowered(quick_cfg):
    verdict, summary, _ = judge(_rows([0.05, 0.0, 0.0, 0.0], rel_se=0.05), quick_cfg)
    assert verdict == "fail" and "underpowered" in summary


def test_mc_checker_flags_underpowered_runs():
    # a budget of 30 draws in all (no adaptive extension beyond mc_max_trials)
    cfg = make_config(quick=True, device="cpu", mc_trials=30, mc_outer=1, mc_max_trials=30)
    der = get("fft_over")
    cert = run_checker("mc", der.step("inverse-wishart"), der, cfg)
    assert cert.verdict == "fail" and "underpowered" in cert.summary


def test_extra_trials_reach_the_target_power_within_the_cap():
    from derivations.checkers.montecarlo import extra_trials

    cfg = make_config(quick=True)                      # target 2 %, cap 100000
    assert extra_trials(0.01, 16000, cfg) == 0          # already there
    n = extra_trials(0.04, 16000, cfg)                  # twice the target: 4x the draws (+10 %)
    assert 70400 - 16000 <= n <= 70401 - 16000
    assert extra_trials(0.5, 16000, cfg) == 100000 - 16000   # capped
    assert extra_trials(float("nan"), 16000, cfg) == 0


def test_mc_step_spends_draws_until_it_detects_the_target(quick_cfg):
    """G-iid detected only 3.2 % with the 16000 pilot draws; now it draws on to the 2 % target,
    same seed same numbers, and a wrong right-hand side is still rejected."""
    der = get("lora_decomp_over")
    step = der.step("G-iid")
    cert = run_checker("mc", step, der, quick_cfg)
    assert cert.verdict == "pass", cert.summary
    assert cert.evidence["max_detectable_rel"] <= quick_cfg.mc_target_detectable
    assert all(r["trials"] > quick_cfg.mc_trials for r in cert.evidence["instances"])
    again = run_checker("mc", step, der, quick_cfg)
    assert again.evidence["instances"] == cert.evidence["instances"]
    wrong = run_checker("mc", step.with_sides(rhs=step.rhs * sp.Rational(103, 100)), der, quick_cfg)
    assert wrong.verdict == "fail"
    # a grossly wrong statement is rejected by the pilot already: no draws spent beyond it
    gross = run_checker("mc", step.with_sides(rhs=2 * step.rhs), der, quick_cfg)
    assert gross.verdict == "fail"
    assert all(r["trials"] == quick_cfg.mc_trials for r in gross.evidence["instances"])


def test_hp_checker_rejects_dropped_factor(quick_cfg):
    der = get("fft_over")
    step = der.step("trace")
    cert = run_checker("hp", step.with_sides(rhs=2 * step.rhs), der, quick_cfg)
    assert cert.verdict == "fail"
    assert float(cert.evidence["digits_agreed"]) < 1


def test_symbolic_checker_rejects_off_by_one(quick_cfg):
    der = get("fft_over")
    step = der.step("assemble")
    d, n = sp.Symbol("d", integer=True, positive=True), sp.Symbol("n", integer=True, positive=True)
    wrong = step.rhs.subs(n - d - 1, n - d)
    assert wrong != step.rhs
    assert run_checker("symbolic", step.with_sides(rhs=wrong), der, quick_cfg).verdict == "fail"


def test_unknown_checker_is_an_error_not_a_pass(quick_cfg):
    der = get("fft_over")
    step = der.steps[0]
    from dataclasses import replace
    cert = run_checker("no-such-checker", replace(step, checks=("no-such-checker",)), der, quick_cfg)
    assert cert.verdict == "error"


def test_config_rejects_unknown_keys():
    with pytest.raises(InputError, match="unknown audit setting"):
        make_config(mc_trails=5)
    with pytest.raises(InputError, match="dps must be at least 50"):
        make_config(dps=30)


def test_only_a_decisive_pilot_is_judged_without_more_draws():
    """The pilot decides the number of draws, not the verdict: a pilot at |z| = 4.4 (above the
    pass line, within chance of a true statement over a whole audit) is extended like a passing
    one; only |z| > Z_DECISIVE stops at the pilot."""
    from derivations.checkers.montecarlo import Z_DECISIVE, extra_trials, pilot_extension
    from derivations.config import make_config
    from numeric.stats import Z_PASS

    cfg = make_config(quick=True)
    assert Z_DECISIVE >= 2 * Z_PASS
    want = extra_trials(0.04, 16000, cfg)
    assert want > 0
    for z in (0.3, -4.4, 4.4, 7.9):
        assert pilot_extension(z, 0.04, 16000, cfg) == want
    for z in (8.1, -30.0):
        assert pilot_extension(z, 0.04, 16000, cfg) == 0
    assert pilot_extension(1.0, 0.01, 16000, cfg) == 0    # already at the target power


def test_every_checker_has_the_one_signature():
    import inspect

    from derivations.checkers import load_all

    known = load_all()
    assert {"symbolic", "hp", "mc", "end_to_end", "ineq", "formal", "two_sample", "lora_train",
            "spiked", "sampler_identity", "sampler_two_sample", "rank_rule"} <= set(known)
    for name, fn in known.items():
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[1:]] == ["derivation", "cfg", "formula"], name
        assert params[3].default is None, name


def test_a_formula_for_a_step_is_refused_and_a_second_registration_too(quick_cfg):
    import pytest

    from derivations import get
    from derivations.checkers import checker

    der = get("fft_over")
    cert = run_checker("hp", der.steps[0], der, quick_cfg, formula=lambda p: 0.0)
    assert cert.verdict == "error" and "formula" in cert.summary
    cert = run_checker("no_such_checker", der.steps[0], der, quick_cfg)
    assert cert.verdict == "error" and "no checker named" in cert.summary
    with pytest.raises(ValueError, match="registered twice"):
        checker("hp")(lambda item, derivation, cfg, formula=None: None)


def test_fixed_point_ties_the_typeset_equation_to_the_code(quick_cfg):
    """The report typesets sum_i lam_i/(lam_i + kappa) = n; the checker solves the code's
    equation.  A typeset equation that is not the code's (a '/' made '*') is refused."""
    import sympy as sp

    from derivations import get
    from derivations.theorems import fft_under_general as F

    der = get("fft_under_general")
    step = der.step("fixed-point")
    good = run_checker("fixed_point", step, der, quick_cfg)
    assert good.verdict == "pass"
    assert all(float(r["typeset_vs_code_gap"]) < 1e-40 for r in good.evidence["instances"])
    bad = step.with_sides(lhs=sp.Sum(F.lam[F.i] * (F.lam[F.i] + F.kappa), (F.i, 1, F.d)))
    assert run_checker("fixed_point", bad, der, quick_cfg).verdict == "fail"


def test_pieces_mc_draws_on_to_the_target_power_and_keeps_same_seed_same_numbers():
    """``pieces_mc`` extends a passing but underpowered pilot from the same generator (as the
    ``mc`` steps do) and still rejects a wrong piece; the same seed gives the same numbers."""
    from types import SimpleNamespace

    import torch

    from derivations.checkers.misalignment_search import check_pieces
    from derivations.config import make_config
    from numeric.params import make_params

    calls = []

    def hook(p, trials, gen, device, variant=None):
        calls.append(trials)
        lhs = 1.0 + 0.3 * torch.randn(trials, generator=gen, dtype=torch.float64)
        rhs = (1.0 + (0.05 if variant else 0.0)) + 0.3 * torch.randn(trials, generator=gen,
                                                                      dtype=torch.float64)
        return lhs, rhs
    der = SimpleNamespace(id="fake", extra=SimpleNamespace(need=lambda name, owner: hook),
                          check_points=lambda cfg: [make_params(d=4, k=3, n=12, r=1)])
    cfg = make_config(quick=False, device="cpu")
    cert = check_pieces(None, der, cfg)
    assert cert.verdict == "pass" and len(calls) == 2 and calls[0] == cfg.mc_trials
    row = cert.evidence["points"][0]
    assert row["trials"] == sum(calls) < cfg.mc_max_trials
    assert row["detectable_rel"] <= cfg.mc_target_detectable
    again = check_pieces(None, der, cfg)
    assert again.evidence["points"][0]["lhs_mean"] == row["lhs_mean"]   # same seed, same numbers
    calls.clear()
    wrong = check_pieces(None, der, cfg, formula="shifted")     # a 5 % error in one side
    assert wrong.verdict == "fail" and calls == [cfg.mc_trials]  # decisive pilot: not extended


def _normal_route(shift=0.0, calls=None):
    import torch

    def route(p, trials, gen, device):
        if calls is not None:
            calls.append(trials)
        return 1.0 + shift + 0.3 * torch.randn(trials, generator=gen, dtype=torch.float64)
    return route


def test_two_sample_draws_on_to_the_target_power_and_judges_a_decisive_pilot_at_once():
    """``two_sample`` extends each passing but underpowered pilot on both routes from their own
    generators (same seed, same numbers), within the cap; a decisive pilot at any point (a 5 %
    error) fails the check without a single further draw anywhere."""
    from types import SimpleNamespace

    from derivations.checkers.estimators import check_two_sample
    from numeric.params import make_params

    sims, routes = [], []
    pts = [make_params(d=4, k=3, n=12, r=1), make_params(d=3, k=5, n=9, r=1)]
    der = SimpleNamespace(id="fake", simulate=_normal_route(calls=sims),
                          extra=SimpleNamespace(need=lambda name, owner: _normal_route(
                              calls=routes)), check_points=lambda cfg: pts)
    cfg = make_config(quick=False, device="cpu")
    pilot = 2 * cfg.mc_trials
    cert = check_two_sample(None, der, cfg)
    assert cert.verdict == "pass", cert.summary
    for row in cert.evidence["points"]:
        assert pilot < row["trials"] <= cfg.mc_max_trials and row["pilot_trials"] == pilot
        assert row["detectable_rel"] <= cfg.mc_target_detectable
    assert sims == routes and len(sims) == 4             # a pilot and one extension per point
    sims.clear()
    again = check_two_sample(None, der, cfg)
    assert again.evidence["points"] == cert.evidence["points"]      # same seed, same numbers
    assert sims == routes[2:4]           # the estimator's pilot is reused, its extension redrawn
    capped = check_two_sample(None, der, make_config(quick=False, device="cpu",
                                                     mc_max_trials=100000))
    assert all(r["trials"] == 100000 for r in capped.evidence["points"])
    # the cap stops short of the target; the pass rule stays max_detectable
    assert capped.verdict == "pass"
    assert cfg.mc_target_detectable < capped.evidence["max_detectable_rel"] < cfg.max_detectable
    sims.clear()
    routes_wrong = []

    def half_wrong(p, trials, gen, device):          # wrong at the second point only
        return _normal_route(0.05 if p.d == 3 else 0.0, routes_wrong)(p, trials, gen, device)
    wrong = check_two_sample(None, der, cfg, formula=half_wrong)
    # decisive: route B's pilots only; route A's (the estimator's) pilots are the statement's
    assert wrong.verdict == "fail" and routes_wrong == [pilot, pilot] and sims == []


def test_end_to_end_raw_points_draw_on_to_the_target_unless_told_not_to():
    """A raw-data end-to-end point extends an underpowered pilot to the target power; with
    ``extend=False`` (value_e2e's held-out Monte Carlo, bound_e2e) it keeps the pilot; a
    decisive wrong formula is judged on the pilot."""
    from types import SimpleNamespace

    from derivations.checkers.montecarlo import end_to_end_points
    from numeric.params import make_params

    calls = []
    der = SimpleNamespace(id="fake", simulate=_normal_route(calls=calls), formula=lambda p: 1.0,
                          extra=SimpleNamespace(simulate_raw=None),
                          check_points=lambda cfg: [make_params(d=4, k=3, n=12, r=1)])
    cfg = make_config(quick=False, device="cpu")
    rows, _ = end_to_end_points(der, cfg)
    assert rows[0]["trials"] > cfg.mc_trials and rows[0]["detectable_rel"] <= 0.005
    assert abs(rows[0]["z"]) < 4 and len(calls) == 2
    again, _ = end_to_end_points(der, cfg)
    assert again == rows
    calls.clear()
    kept, _ = end_to_end_points(der, cfg, extend=False)
    assert kept[0]["trials"] == cfg.mc_trials and calls == [cfg.mc_trials]
    calls.clear()
    wrong, _ = end_to_end_points(der, cfg, formula=lambda p: 1.05)
    assert abs(wrong[0]["z"]) > 8 and calls == [cfg.mc_trials]


def test_bound_e2e_settles_a_decisive_pilot_and_draws_on_otherwise():
    """bound_e2e judges on a pilot of mc_trials/16 when every point clears (or breaks) the bound
    by more than Z_DECISIVE SE, and otherwise draws on to mc_trials; a broken bound fails."""
    from types import SimpleNamespace

    from derivations.checkers.inequality import check_bound_end_to_end
    from numeric.params import make_params

    calls = []
    st = SimpleNamespace(rel="<=")
    der = SimpleNamespace(id="fake", simulate=_normal_route(calls=calls), formula=lambda p: 1.5,
                          extra=SimpleNamespace(simulate_raw=None),
                          check_points=lambda cfg: [make_params(d=4, k=3, n=12, r=1)])
    cfg = make_config(quick=False, device="cpu")
    pilot = cfg.mc_trials // 16
    loose = check_bound_end_to_end(st, der, cfg)
    assert loose.verdict == "pass" and calls == [pilot]
    calls.clear()
    tight = check_bound_end_to_end(st, dict_replace(der, formula=lambda p: 1.005), cfg)
    assert tight.verdict == "pass" and calls == [pilot, cfg.mc_trials - pilot]
    calls.clear()
    broken = check_bound_end_to_end(st, dict_replace(der, formula=lambda p: 0.9), cfg)
    assert broken.verdict == "fail" and calls == [pilot]


def dict_replace(ns, **kw):
    from types import SimpleNamespace

    return SimpleNamespace(**{**vars(ns), **kw})
