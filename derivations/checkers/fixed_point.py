"""Checker ``fixed_point``: a scalar equation solved numerically at high precision.

The derivation provides ``extra["fixed_point"] = fn(params, dps, perturb=1) -> dict`` with the
solution ``root``, the equation's residual as a function ``residual(x)`` and its ``scale``.  The
checker evaluates the residual at the root and at the root scaled by ``1 -/+ 10^-6`` (the root
is isolated: the residual changes sign).  The check passes when the residual is below
``10^-(dps-10)`` relative to the equation's scale on every
instance, the sign changes across the root, and the root lies in the claimed domain (``"in_domain"``,
when the derivation returns it: e.g. ``kappa > 0``), and -- when the derivation returns the
equation's ``values`` and its ``unknown`` -- the step's own SymPy equation, the one the report
typesets, has the code's residual at the root and beside it.  A negative control passes ``perturb != 1`` (a
wrong root) and must fail.
"""
from __future__ import annotations

import mpmath as mp
import sympy as sp

from numeric.precision import default_tolerance

from ..core import Certificate
from . import checker


ISOLATION = mp.mpf(10) ** -6


def _typeset_residual(step, values: dict, unknown: str, x, dps: int):
    """The step's own SymPy equation ``lhs - rhs`` at ``unknown = x`` (scalars and indexed
    families from ``values``, sums expanded), at ``dps`` digits: what the report typesets."""
    expr = sp.sympify(step.lhs) - sp.sympify(step.rhs)
    by_name = {sym.name: sym for sym in expr.free_symbols if isinstance(sym, sp.Symbol)}
    scalars = {by_name[k]: sp.Integer(v) if isinstance(v, int) else sp.Float(mp.nstr(v, dps + 5), dps)
               for k, v in values.items() if k in by_name and not isinstance(v, (list, tuple))}
    scalars[by_name[unknown]] = sp.Float(mp.nstr(x, dps + 5), dps)
    expr = expr.subs(scalars).doit()
    families = {k: v for k, v in values.items() if isinstance(v, (list, tuple))}
    expr = expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base.label.name in families,
                        lambda e: sp.Float(mp.nstr(families[e.base.label.name][int(e.indices[0]) - 1],
                                                   dps + 5), dps))
    return mp.mpf(str(sp.N(expr, dps)))


@checker("fixed_point")
def check_fixed_point(step, derivation, cfg, formula=None) -> Certificate:
    fn = derivation.extra.need("fixed_point", derivation.id)
    perturb = step.options.get("perturb", 1)
    rows = []
    ok = True
    tol = default_tolerance(cfg.dps)
    for p in step.options.get("params", derivation.hp_params)(cfg):
        with mp.workdps(cfg.dps):
            res = fn(p, cfg.dps, perturb=perturb)
            root, f = res["root"], res["residual"]
            rel = abs(f(root)) / res["scale"]
            # isolated: the residual changes sign across root (1 -/+ 10^-6)
            bracket = f(root * (1 - ISOLATION)) * f(root * (1 + ISOLATION)) < 0
            # the typeset equation is the code's: equal residuals at the root and beside it
            typeset_gap = mp.mpf(0)
            if res.get("values") is not None:
                for xv in (root, root * mp.mpf("1.25")):
                    g = abs(_typeset_residual(step, res["values"], res["unknown"], xv, cfg.dps)
                            - f(xv)) / res["scale"]
                    typeset_gap = max(typeset_gap, g)
        in_domain = bool(res.get("in_domain", True))     # e.g. the claimed root is positive
        ok &= bool(rel <= tol and bracket and in_domain and typeset_gap <= tol)
        rows.append({"root": mp.nstr(res["root"], 20), "relative_residual": mp.nstr(rel, 3),
                     "sign_change": bool(bracket), "in_domain": in_domain,
                     "typeset_vs_code_gap": mp.nstr(typeset_gap, 3)})
    worst = max(mp.mpf(r["relative_residual"]) for r in rows)
    return Certificate("fixed_point", "pass" if ok else "fail",
                       {"instances": rows, "dps": cfg.dps, "tolerance": mp.nstr(tol, 3)}, 0.0,
                       f"{len(rows)} instances at {cfg.dps} digits: worst relative residual "
                       f"{mp.nstr(worst, 3)}")
