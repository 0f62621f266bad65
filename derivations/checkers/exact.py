"""``symbolic``: SymPy proves ``lhs - rhs == 0`` exactly (scalar steps), or ``rhs - lhs >= 0``
from the symbols' assumptions."""
from __future__ import annotations

import sympy as sp

from ..core import Certificate
from . import checker


@checker("symbolic")
def check_symbolic(step, derivation, cfg, formula=None) -> Certificate:
    if step.rel == "=":
        diff = sp.simplify(sp.together(sp.expand(step.lhs - step.rhs)))
        ok = diff == 0
        return Certificate("symbolic", "pass" if ok else "fail",
                           {"simplified_difference": str(diff)}, 0.0,
                           "lhs - rhs simplifies to 0" if ok else f"lhs - rhs = {diff}")
    if step.rel in ("<=", ">="):
        gap = step.rhs - step.lhs if step.rel == "<=" else step.lhs - step.rhs
        gap = sp.factor(sp.simplify(gap))
        ok = bool(gap.is_nonnegative)
        return Certificate("symbolic", "pass" if ok else "fail", {"gap": str(gap)}, 0.0,
                           "gap >= 0 from the symbols' assumptions" if ok
                           else f"could not prove {gap} >= 0")
    raise ValueError(f"symbolic checker cannot decide relation {step.rel!r}")
