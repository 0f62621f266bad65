"""Checker ``fixed_point``: a scalar equation solved numerically at high precision.

The derivation provides ``extra["fixed_point"] = fn(params, dps, perturb=1) -> dict`` with the
solution, the residual of the equation at the solution, and the residual at the solution
scaled by ``1 +/- 10^-6`` (to show the root is isolated: the residual changes sign).  The check
passes when the residual is below ``10^-(dps-10)`` relative to the equation's scale on every
instance and the sign changes across the root.  A negative control passes ``perturb != 1`` (a
wrong root) and must fail.
"""
from __future__ import annotations

import mpmath as mp

from numeric.precision import default_tolerance

from ..core import Certificate
from . import checker


@checker("fixed_point")
def check_fixed_point(step, derivation, cfg, formula=None) -> Certificate:
    fn = derivation.extra["fixed_point"]
    perturb = step.options.get("perturb", 1)
    rows = []
    ok = True
    tol = default_tolerance(cfg.dps)
    for p in step.options.get("params", derivation.hp_params)(cfg):
        res = fn(p, cfg.dps, perturb=perturb)
        rel = abs(res["residual"]) / res["scale"]
        bracket = res["residual_below"] * res["residual_above"] < 0
        ok &= bool(rel <= tol and bracket)
        rows.append({"root": mp.nstr(res["root"], 20), "relative_residual": mp.nstr(rel, 3),
                     "sign_change": bool(bracket)})
    worst = max(mp.mpf(r["relative_residual"]) for r in rows)
    return Certificate("fixed_point", "pass" if ok else "fail",
                       {"instances": rows, "dps": cfg.dps, "tolerance": mp.nstr(tol, 3)}, 0.0,
                       f"{len(rows)} instances at {cfg.dps} digits: worst relative residual "
                       f"{mp.nstr(worst, 3)}")
