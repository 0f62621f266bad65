"""Checker ``convergence`` for asymptotic statements: the relative error must shrink and end small.

The derivation provides ``extra["convergence"] = fn(cfg, formula=None) -> rows``: one row per
dimension multiplier in ``cfg.asym_scales`` (all dimensions scaled together, ratios fixed), each
``{"scale", "dims", "formula", "mean", "se", "trials"}`` -- the asymptotic formula at those
dimensions (``formula`` replaces the derivation's own when a negative control is run) and a
simulation of the actual estimator.

With ``e_i = (mean_i - formula_i)/|mean_i|`` and ``s_i = se_i/|mean_i|`` (both relative to the
*simulation*, so that a formula that is too low does not inflate its own noise scale and pass as
"underpowered") the check passes iff

* **small**: ``|e_last| <= 4 s_last + cfg.asym_tol`` (the formula is accurate at the largest size);
  judged first: an inaccurate formula is reported as such, whatever the power;
* **powered**: ``4 s_last <= cfg.asym_detectable`` (the largest size resolves errors that small);
* **shrinking**: ``|e_last| + 2 sqrt(s_first^2 + s_last^2) < |e_first|`` (the error fell by more
  than the noise of both ends) or ``|e_last| <= 4 s_last`` (it is already zero within the noise).

So a formula wrong by a constant factor ``1 + f`` is rejected once ``|f|`` exceeds
``4 s_last + asym_tol`` -- the *resolution* reported in every certificate (about 3-4 % in the
quick configuration, 2-3 % in the full one); the derivations carry "5 % too high/low" controls
that demonstrate it.  Smaller errors in one piece of a formula (a per-component cost a few
percent off) are below this resolution by construction: they are caught by the derivation's
``source_of_truth`` integrity check (numeric code against its SymPy expression at 50 digits),
not here.  A formula only asymptotically equivalent to the truth is not a negative control for
this check (it would rightly pass).  Rows may carry a ``family`` key (several convergence
sequences, e.g. both sides of an aspect ratio): each family is judged on its own and all must
pass.  The observed rate is the least-squares slope of ``log|e_i|`` against ``log(scale)`` over
the sizes whose error exceeds 2 SE (reported, not judged).
"""
from __future__ import annotations

import math

from numeric.stats import Z_PASS

from ..core import Certificate
from . import checker


def judge(rows, cfg) -> tuple[str, str, dict]:
    for r in rows:
        ref = abs(r["mean"]) if r["mean"] != 0 else abs(r["formula"])
        r["rel_error"] = (r["mean"] - r["formula"]) / ref if ref else math.inf
        r["rel_se"] = r["se"] / ref if ref else math.inf
    first, last = rows[0], rows[-1]
    e0, e1, s1 = abs(first["rel_error"]), abs(last["rel_error"]), last["rel_se"]
    s0 = first["rel_se"]
    powered = Z_PASS * s1 <= cfg.asym_detectable
    small = e1 <= Z_PASS * s1 + cfg.asym_tol
    shrinking = (e1 + 2 * math.hypot(s0, s1) < e0) or (e1 <= Z_PASS * s1)
    resolution = Z_PASS * s1 + cfg.asym_tol
    pts = [(math.log(r["scale"]), math.log(abs(r["rel_error"]))) for r in rows
           if abs(r["rel_error"]) > 2 * r["rel_se"] and r["rel_error"] != 0]
    rate = None
    if len(pts) >= 2:
        mx = sum(p[0] for p in pts) / len(pts)
        my = sum(p[1] for p in pts) / len(pts)
        sxx = sum((p[0] - mx) ** 2 for p in pts)
        if sxx > 0:
            rate = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    evidence = {"rows": rows, "powered": powered, "small": small, "shrinking": shrinking,
                "observed_rate": rate, "tolerance": cfg.asym_tol, "z_threshold": Z_PASS,
                "resolution": resolution}
    errs = ", ".join(f"{100 * r['rel_error']:+.2f}%" for r in rows)
    if not small:
        return "fail", (f"error at the largest size too large: {errs} (allowed "
                        f"{100 * resolution:.2g}%)"), evidence
    if not powered:
        return "fail", f"underpowered at the largest size (4 SE = {100 * Z_PASS * s1:.2g}%)", evidence
    if not shrinking:
        return "fail", f"error does not shrink: {errs}", evidence
    rate_txt = f", rate ~ scale^{rate:.2f}" if rate is not None else ""
    return "pass", (f"relative error {errs} (4 SE at largest: {100 * Z_PASS * s1:.2g}%; a constant "
                    f"factor off by > {100 * resolution:.2g}% would fail){rate_txt}"), evidence


@checker("convergence")
def check_convergence(statement, derivation, cfg, formula=None) -> Certificate:
    fn = derivation.extra.convergence
    if fn is None:
        raise KeyError(f"{derivation.id} declares no extra['convergence'] hook")
    rows = fn(cfg, formula=formula)
    families: dict = {}
    for row in rows:
        families.setdefault(row.get("family", ""), []).append(row)
    if any(len(f) < 2 for f in families.values()):
        raise ValueError("a convergence check needs at least two sizes per family")
    if len(families) == 1:
        verdict, summary, evidence = judge(rows, cfg)
        return Certificate("convergence", verdict, evidence, 0.0, summary)
    judged = {name: judge(fam, cfg) for name, fam in families.items()}
    verdict = "pass" if all(v == "pass" for v, _, _ in judged.values()) else "fail"
    summary = "; ".join(f"{name}: {s}" for name, (_, s, _) in judged.items())
    evs = [ev for _, _, ev in judged.values()]
    evidence = {"families": {name: ev for name, (_, _, ev) in judged.items()}, "rows": rows,
                "resolution": max(ev["resolution"] for ev in evs),
                "powered": all(ev["powered"] for ev in evs), "small": all(ev["small"] for ev in evs),
                "shrinking": all(ev["shrinking"] for ev in evs)}
    return Certificate("convergence", verdict, evidence, 0.0, summary)
