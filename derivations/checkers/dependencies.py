"""What a step depends on: the symbols it uses, directly or through the derivation's
definitions, the random ones among them, and the definitions to evaluate before it."""
from __future__ import annotations

import sympy as sp

from numeric import instances


def _names(expr) -> set[str]:
    return {n.name for n in sp.preorder_traversal(expr) if isinstance(n, (sp.Symbol, sp.MatrixSymbol))}

def _used_names(step, derivation) -> set[str]:
    """Symbols the step uses, directly or through the derivation's definitions."""
    defs = dict(derivation.definitions)
    used = _names(step.lhs) | _names(step.rhs)
    frontier = set(used)
    while frontier:
        new = set()
        for name in frontier:
            if name in defs:
                new |= _names(defs[name]) - used
        used |= new
        frontier = new
    return used

def _needed_randoms(step, derivation) -> list[str]:
    return sorted(_used_names(step, derivation) & set(instances.RANDOM_SHAPES))

def needed_definitions(step, derivation) -> tuple:
    """The derivation's definitions the step depends on, in declaration order."""
    used = _used_names(step, derivation)
    return tuple((name, expr) for name, expr in derivation.definitions if name in used)
