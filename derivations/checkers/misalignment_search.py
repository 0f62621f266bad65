"""Statement checkers for the misalignment derivations (THEORY.md section 5).

* ``stmt_ineq``  -- a bound *statement* checked like every inequality step: it is turned into a
  step and handed to the ``ineq`` checker (random instances + adversarial search over
  ``derivation.extra.statement_options``, worst ratio reported);
* ``stmt_hp``    -- a pointwise identity statement checked at high precision (``hp`` checker);
* ``series_hp``  -- ``lhs ~ c eps^2``: on random instances the exact bias (SVD path, mpmath at
  ``cfg.dps`` digits) divided by ``eps^2`` must approach the claimed coefficient like
  ``eps^2``; a statement control's ``formula`` replaces the coefficient function
  ``params -> c`` (``derivation.extra.leading`` otherwise);
* ``pieces_mc``  -- an expectation identity between an estimator's mean risk and a sum of
  pieces simulated on *independent* draws (``derivation.extra.pieces_mc``); a statement
  control's ``formula`` is passed to that hook as the variant to test (e.g. a piece dropped).
"""
from __future__ import annotations

import math
from dataclasses import replace

import mpmath as mp

from numeric.device import generator, resolve
from numeric.seeds import stable_seed
from numeric.stats import Z_PASS, summarize

from ..core import Certificate, Justification, Step
from . import checker
from .montecarlo import pilot_extension
from .precision import check_hp


def _as_step(statement, derivation, checks):
    return Step("statement", statement.lhs, statement.rel, statement.rhs,
                Justification("inequality" if statement.rel != "=" else "algebra",
                              "the statement itself"), checks,
                options=dict(derivation.extra.statement_options))


@checker("stmt_ineq")
def check_statement_inequality(statement, derivation, cfg, formula=None) -> Certificate:
    from .inequality import check_inequality

    step = _as_step(statement, derivation, ("ineq",))
    try:
        cert = check_cached_inequality(step, derivation, cfg)
    except NameError:  # pragma: no cover
        cert = check_inequality(step, derivation, cfg)
    cert.method = "stmt_ineq"
    return cert


@checker("stmt_hp")
def check_statement_hp(statement, derivation, cfg, formula=None) -> Certificate:
    step = _as_step(statement, derivation, ("hp",))
    step = replace(step, options=dict(statement_options_hp(derivation)))
    cert = check_hp(step, derivation, cfg)
    cert.method = "stmt_hp"
    return cert


def statement_options_hp(derivation):
    opts = derivation.extra.statement_options
    return {k: v for k, v in opts.items() if k == "hp_params"}


@checker("series_hp")
def check_series(statement, derivation, cfg, formula=None) -> Certificate:
    from numeric import instances
    from numeric import misalignment as mis

    coef_fn = formula or derivation.extra.need("leading", derivation.id)
    scales = (1e-2, 1e-4, 1e-6)
    rows = []
    with mp.workdps(cfg.dps):
        for p in derivation.hp_params(cfg):
            c = mp.mpf(coef_fn(p))
            base = math.sqrt(p.fit_eigs[0] * p.fit_eigs[1]) if p.fit_eigs else 1.0
            errs = []
            for s in scales:
                q = replace(p, coupling=s * base)
                inst = instances.mp_instance(q)
                beta = mis.mp_bias(inst["Delta"], inst["C"], q.r)
                e = mp.mpf(q.coupling)
                errs.append(abs(beta / e ** 2 - c) / abs(c))
            rows.append({"params": p.as_dict(), "coefficient": float(c),
                         "relative_error": [float(x) for x in errs]})
    worst_final = max(r["relative_error"][-1] for r in rows)
    # O(eps^2) remainder: the error must fall ~1e4 per step; require >= 1e3 and tiny at the end
    shrink = min(r["relative_error"][i] / max(r["relative_error"][i + 1], 1e-300)
                 for r in rows for i in range(len(scales) - 1))
    ok = worst_final < 1e-8 and shrink > 1e3
    return Certificate("series_hp", "pass" if ok else "fail",
                       {"eps_scales": list(scales), "instances": rows, "dps": cfg.dps,
                        "worst_final_relative_error": worst_final, "min_shrink": shrink}, 0.0,
                       f"|beta/eps^2 - c|/c at eps = 1e-6 (x sqrt(c1 c2)): worst "
                       f"{worst_final:.2g}, shrinks >= {shrink:.3g}x per 100x smaller eps "
                       f"({len(rows)} instances, {cfg.dps} digits)")


@checker("pieces_mc")
def check_pieces(statement, derivation, cfg, formula=None) -> Certificate:
    device = resolve(cfg.device)
    hook = derivation.extra.need("pieces_mc", derivation.id)
    rows = []
    for i, p in enumerate(derivation.check_points(cfg)):
        gen = generator(stable_seed(cfg.seed, derivation.id, "pieces", i))

        def stats(lhs, rhs, scale):
            sl, sr = summarize(lhs), summarize(rhs)
            se = math.sqrt(sl.se ** 2 + sr.se ** 2)
            z = (sl.mean - sr.mean) / se if se > 0 else (0.0 if sl.mean == sr.mean else math.inf)
            return sl, sr, se, z, Z_PASS * se / abs(scale) if scale else math.inf

        out = hook(p, cfg.mc_trials, gen, device, variant=formula)
        lhs, rhs = out[0], out[1]
        # scale of the detectable error: the hook's third output (e.g. the mean risk when the
        # sides are a small piece of it), else the right-hand side
        scale = float(out[2]) if len(out) > 2 else summarize(rhs).mean
        sl, sr, se, z, det = stats(lhs, rhs, scale)
        # as the mc steps do: a pilot that is not decisive draws on from the same generator
        # (same seed, same numbers) until it detects cfg.mc_target_detectable
        extra = pilot_extension(z, det, sl.trials, cfg)
        if extra:
            import torch

            more = hook(p, extra, gen, device, variant=formula)
            lhs, rhs = torch.cat([lhs, more[0]]), torch.cat([rhs, more[1]])
            if len(out) > 2:      # the scale: the trial-weighted mean of the two estimates
                scale = (scale * sl.trials + float(more[2]) * extra) / (sl.trials + extra)
            else:
                scale = summarize(rhs).mean
            sl, sr, se, z, det = stats(lhs, rhs, scale)
        rows.append({"params": p.as_dict(), "lhs_mean": sl.mean, "rhs_mean": sr.mean, "se": se,
                     "z": z, "trials": sl.trials, "scale": scale, "detectable_rel": det})
    worst_z = max(abs(r["z"]) for r in rows)
    worst_det = max(r["detectable_rel"] for r in rows)
    if worst_z > Z_PASS:
        verdict, why = "fail", f"|z| = {worst_z:.1f} > {Z_PASS:g}"
    elif worst_det > cfg.max_detectable:
        verdict, why = "fail", f"underpowered: detects only {100 * worst_det:.2g}% errors"
    else:
        verdict, why = "pass", f"max |z| = {worst_z:.2f}"
    return Certificate("pieces_mc", verdict,
                       {"points": rows, "max_abs_z": worst_z, "max_detectable_rel": worst_det,
                        "z_threshold": Z_PASS, "device": str(device)}, 0.0,
                       f"{why} over {len(rows)} points (independent draws per side), detects "
                       f">= {100 * worst_det:.2g}% errors")


# relative agreement required between the formula (mpmath, 50 digits) and the exact value of
# the actual deterministic estimator (torch, float64): round-off there is ~1e-15 at the value
# points; 1e-9 leaves six digits for conditioning and still rejects any wrong coefficient
EXACT_ESTIMATOR_RTOL = 1e-9


@checker("value_e2e")
def check_value_end_to_end(statement, derivation, cfg, formula=None) -> Certificate:
    """The derivation's *value* (``derivation.formula``, e.g. the exact bias) against the actual
    estimator, two ways at each value point:

    * **exact** (where ``derivation.extra.exact_estimator_value`` is given: the estimator is
      deterministic, e.g. noise-free LoRA on a fixed design): the trained estimator's value
      computed without Monte Carlo must equal the formula to ``EXACT_ESTIMATOR_RTOL``
      (relative) -- this is the check's power: it detects relative errors of ``1e-9``;
    * **Monte Carlo** (``derivation.simulate``, e.g. held-out losses on fresh test sets): the
      ``end_to_end`` rule, within ``Z_PASS`` SE with the smallest detectable error at most
      ``cfg.max_detectable``; it re-derives that the value is the mean held-out loss.

    It ignores a statement control's ``formula`` (which, for the misalignment derivations,
    replaces a coefficient or a piece, not the value), so a control is judged by the
    statement's other checks only."""
    from numeric.precision import relative_gap

    from .montecarlo import end_to_end_certificate

    points = derivation.extra.value_points
    if points is not None:
        derivation = replace(derivation, check_points=points)
    # the held-out Monte Carlo keeps its pilot: the exact rows carry the power
    exact_fn = derivation.extra.exact_estimator_value
    cert = end_to_end_certificate(derivation, cfg, extend=exact_fn is None)
    cert.method = "value_e2e"
    if exact_fn is None:
        return cert
    exact = []
    for p in derivation.check_points(cfg):
        target, value = float(derivation.formula(p)), float(exact_fn(p))
        gap = float(relative_gap(value, target))
        exact.append({"params": p.as_dict(), "formula": target, "estimator_exact": value,
                      "rel_gap": gap, "rtol": EXACT_ESTIMATOR_RTOL,
                      "ok": bool(math.isfinite(value) and gap <= EXACT_ESTIMATOR_RTOL)})
    worst = max(r["rel_gap"] for r in exact)
    cert.evidence["exact"] = exact
    cert.evidence["exact_max_rel_gap"] = worst
    # the check's power is the exact rows' (the held-out Monte Carlo's is kept beside it)
    cert.evidence["mc_max_detectable_rel"] = cert.evidence["max_detectable_rel"]
    cert.evidence["max_detectable_rel"] = EXACT_ESTIMATOR_RTOL
    head = (f"trained estimator's exact value = formula to {worst:.1g} (relative; tolerance "
            f"{EXACT_ESTIMATOR_RTOL:g}) at {len(exact)} points")
    if not all(r["ok"] for r in exact):
        bad = max(exact, key=lambda r: r["rel_gap"])
        cert.verdict = "fail"
        cert.summary = (f"exact value of the trained estimator {bad['estimator_exact']:.12g} "
                        f"!= formula {bad['formula']:.12g} (relative gap {bad['rel_gap']:.2g} > "
                        f"{EXACT_ESTIMATOR_RTOL:g}); held-out Monte Carlo: {cert.summary}")
    else:
        cert.summary = f"{head}; held-out Monte Carlo: {cert.summary}"
    return cert


_INEQ_CACHE: dict = {}


def _ineq_key(step, derivation, cfg):
    import sympy as sp

    opts = {k: (getattr(v, "__qualname__", v) if callable(v) else v)
            for k, v in step.options.items()}
    return (derivation.id, sp.srepr(step.lhs), step.rel, sp.srepr(step.rhs), repr(sorted(
        opts.items(), key=lambda t: t[0])), repr(sorted(cfg.as_dict().items())))


@checker("mis_ineq")
def check_cached_inequality(step, derivation, cfg, formula=None) -> Certificate:
    """The ``ineq`` checker, memoised on (derivation, sides, options, config): a bound that is both
    the last step and the statement is searched once (the statement check reuses it)."""
    from .inequality import check_inequality

    key = _ineq_key(step, derivation, cfg)
    if key not in _INEQ_CACHE:
        cert = check_inequality(step, derivation, cfg)
        cert.method = "ineq"
        _INEQ_CACHE[key] = cert
    c = _INEQ_CACHE[key]
    return Certificate(c.method, c.verdict, c.evidence, c.seconds, c.summary)
