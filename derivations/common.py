"""Pieces shared by several derivations: symbols, the excess risk, standard lemmas."""
from __future__ import annotations

import sympy as sp

from numeric.errors import InputError
from numeric.params import make_params
from symbolic.ops import Frob2
from symbolic.registry import msym, sym

d, k, n, r, sigma = (sym(x) for x in ("d", "k", "n", "r", "sigma"))
Sigma, Delta, X, E, S, R, P = (sym(x) for x in ("Sigma", "Delta", "X", "E", "S", "R", "P"))
DeltaF, DeltaL = sym("DeltaF"), sym("DeltaL")
Id = sp.Identity(d)
half = sp.Rational(1, 2)
SigmaHalf = Sigma ** half


def risk(Delta_hat):
    """Excess risk ``R(Delta_hat) = ||(Delta_hat - Delta*) Sigma^{1/2}||_F^2``."""
    return Frob2((Delta_hat - Delta) * SigmaHalf)


def require(cond: bool, message: str):
    if not cond:
        raise InputError(message)


def hp_sizes(cfg, base: dict, count=None, **override):
    """Small random instances for high-precision checks, seeds derived from the master seed."""
    count = count or cfg.hp_instances
    out = []
    for i in range(count):
        vals = dict(base)
        vals.update(override)
        vals["seed"] = cfg.seed * 1000 + i
        out.append(make_params(**vals))
    return out


__all__ = ["d", "k", "n", "r", "sigma", "Sigma", "Delta", "X", "E", "S", "R", "P", "DeltaF",
           "DeltaL", "Id", "half", "SigmaHalf", "risk", "require", "hp_sizes", "msym", "sym"]
