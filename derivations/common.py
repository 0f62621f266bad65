"""Pieces shared by several derivations: symbols, the excess risk, standard lemmas."""
from __future__ import annotations

import sympy as sp

from numeric.errors import InputError
from numeric.params import make_params
from symbolic.ops import Frob2, PInv, TruncSVD
from symbolic.registry import msym, sym

d, k, n, r, sigma = (sym(x) for x in ("d", "k", "n", "r", "sigma"))
Sigma, Delta, X, E, S, R, P = (sym(x) for x in ("Sigma", "Delta", "X", "E", "S", "R", "P"))
DeltaF, DeltaL = sym("DeltaF"), sym("DeltaL")
Id = sp.Identity(d)
half = sp.Rational(1, 2)
SigmaHalf = Sigma ** half

# The population objects of the misalignment lemmas (Sigma = I; C is LoRA's fitting covariance),
# defined once for the theorem modules that share them (misalign_exact, misalign_bounds,
# misalign_growth): the best rank-r approximation A_* and the projections on its row space and
# their complement, the C-weighted rank-r fit A_C, the tail b_r and the misalignment bias.
_C, _Q, _Astar, _A_C, _b_r = (sym(x) for x in ("C", "Q", "Astar", "A_C", "b_r"))
MISALIGN_HEAD = (
    ("Astar", TruncSVD(Delta, r)),
    ("Q", PInv(TruncSVD(Delta, r)) * TruncSVD(Delta, r)),
    ("Qperp", Id - _Q),
    ("A_C", TruncSVD(Delta * _C ** half, r) * _C ** (-half)),
)
MISALIGN_BIAS = (
    ("b_r", Frob2(Delta - _Astar)),
    ("beta_mis", Frob2(_A_C - Delta) - _b_r),
)


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
           "DeltaL", "Id", "half", "SigmaHalf", "MISALIGN_HEAD", "MISALIGN_BIAS", "risk", "require", "hp_sizes", "msym", "sym"]
