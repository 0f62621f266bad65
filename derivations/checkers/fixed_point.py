"""Checker ``fixed_point``: a scalar equation solved numerically at high precision.

The derivation provides ``extra["fixed_point"] = fn(params, dps, perturb=1) -> dict`` with the
solution ``root``, the equation's residual as a function ``residual(x)`` and its ``scale``.  The
checker evaluates the residual at the root and at the root scaled by ``1 -/+ 10^-6`` (the root
is isolated: the residual changes sign).  The check passes when the residual is below
``10^-(dps-10)`` relative to the equation's scale on every
instance, the sign changes across the root, and the root lies in the claimed domain (``"in_domain"``,
when the derivation returns it: e.g. ``kappa > 0``).  A negative control passes ``perturb != 1`` (a
wrong root) and must fail.
"""
from __future__ import annotations

import mpmath as mp

from numeric.precision import default_tolerance

from ..core import Certificate
from . import checker


ISOLATION = mp.mpf(10) ** -6


@checker("fixed_point")
def check_fixed_point(step, derivation, cfg, formula=None) -> Certificate:
    fn = derivation.extra["fixed_point"]
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
        in_domain = bool(res.get("in_domain", True))     # e.g. the claimed root is positive
        ok &= bool(rel <= tol and bracket and in_domain)
        rows.append({"root": mp.nstr(res["root"], 20), "relative_residual": mp.nstr(rel, 3),
                     "sign_change": bool(bracket), "in_domain": in_domain})
    worst = max(mp.mpf(r["relative_residual"]) for r in rows)
    return Certificate("fixed_point", "pass" if ok else "fail",
                       {"instances": rows, "dps": cfg.dps, "tolerance": mp.nstr(tol, 3)}, 0.0,
                       f"{len(rows)} instances at {cfg.dps} digits: worst relative residual "
                       f"{mp.nstr(worst, 3)}")
