"""Derivations as data, their checkers and the audit.

Every module in ``derivations.theorems`` that defines ``DERIVATIONS`` (a list) and ``ORDER`` (a
number for listing order) is discovered automatically: adding a theorem is adding a module.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from numeric.errors import InputError


@lru_cache(maxsize=1)
def registry() -> dict:
    from . import theorems

    found = []
    for info in pkgutil.iter_modules(theorems.__path__):
        mod = importlib.import_module(f"{theorems.__name__}.{info.name}")
        for i, der in enumerate(getattr(mod, "DERIVATIONS", ())):
            der.module = mod
            found.append((getattr(mod, "ORDER", 1000), i, der))
    found.sort(key=lambda t: (t[0], t[1]))
    from symbolic.text import check_title

    from .checkers import load_all

    known = load_all()                      # every checker, loaded up front
    out = {}
    for _, _, der in found:
        if der.id in out:
            raise ValueError(f"derivation id {der.id!r} declared twice")
        check_title(der.title, f"derivation {der.id}")     # LaTeX, no code in print
        for item in (*der.steps, der.statement):
            unknown = [c for c in item.checks if c not in known]
            if unknown:
                where = f"step {item.id!r}" if hasattr(item, "id") else "its statement"
                raise ValueError(f"derivation {der.id}: {where} names unknown checker(s) "
                                 f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")
        out[der.id] = der
    return out


def get(der_id: str):
    reg = registry()
    if der_id not in reg:
        raise InputError(f"unknown derivation {der_id!r}; known: {', '.join(reg)}")
    return reg[der_id]
