"""Proportional-limit risk of the minimum-norm interpolator for a general covariance.

Hastie, Montanari, Rosset, Tibshirani (Ann. Statist. 2022), Thm 2 (THEORY.md section 3): with
``kappa > 0`` solving ``sum_i s_i/(s_i + kappa) = n`` over the eigenvalues ``s_i`` of ``Sigma``
and ``df2 = (1/n) sum_i s_i^2/(s_i + kappa)^2``, per output row ``b`` of ``Delta*`` in
``Sigma``'s eigenbasis

    bias     = kappa^2 sum_i b_i^2 s_i/(s_i + kappa)^2 / (1 - df2)
    variance = sigma^2 df2 / (1 - df2)

summed over the ``k`` rows.  This is an *asymptotic* (deterministic-equivalent) formula, exact
only as ``d, n -> infinity`` with ``d/n`` fixed.  The fixed point is solved at high precision.
"""
from __future__ import annotations

import mpmath as mp
import numpy as np

from .errors import InputError


def solve_kappa(eigs, n: int, dps: int = 50) -> mp.mpf:
    """The unique ``kappa > 0`` with ``sum s_i/(s_i+kappa) = n`` (needs ``#eigs > n``)."""
    if len(eigs) <= n:
        raise InputError(f"the fixed point needs d > n (got d = {len(eigs)}, n = {n})")
    with mp.workdps(dps + 10):
        s = [mp.mpf(e) for e in eigs]
        f = lambda kap: mp.fsum(si / (si + kap) for si in s) - n  # noqa: E731
        # a bracket by construction: f(0) = #eigs - n > 0, and at hi = max(s) #eigs every term
        # is <= 1/(1 + #eigs), so f(hi) < 1 - n <= 0
        lo, hi = mp.mpf(0), max(s) * len(s)
        # f is strictly decreasing: bisection to a bracket, then a secant polish.
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
        kap = mp.findroot(f, (lo, hi), solver="anderson")
        # postcondition, wherever the root is used (evaluate, the report): the unique positive
        # root, to the working precision -- a wrong bracket can only make this raise
        if not (kap > 0 and abs(f(kap)) <= mp.mpf(10) ** (-dps) * n):
            raise ArithmeticError(f"solve_kappa: no positive root found (kappa = "
                                  f"{mp.nstr(kap, 8)}, residual {mp.nstr(f(kap), 3)})")
        return +kap


def fixed_point_residual(eigs, n: int, kappa) -> mp.mpf:
    return mp.fsum(mp.mpf(e) / (mp.mpf(e) + kappa) for e in eigs) - n


def risk_terms(eigs, Bq, n: int, sigma: float, dps: int = 50) -> dict:
    """Bias and variance of the asymptotic formula.

    ``eigs``: eigenvalues of Sigma; ``Bq``: ``k x d`` array, the rows of ``Delta*`` expressed in
    Sigma's eigenbasis (``Delta* Q`` with ``Sigma = Q diag(eigs) Q^T``).
    """
    kap = solve_kappa(eigs, n, dps)
    with mp.workdps(dps):
        s = [mp.mpf(e) for e in eigs]
        df2 = mp.fsum(si ** 2 / (si + kap) ** 2 for si in s) / n
        bias = mp.mpf(0)
        for row in np.asarray(Bq):
            bias += kap ** 2 * mp.fsum(mp.mpf(float(b)) ** 2 * si / (si + kap) ** 2
                                       for b, si in zip(row, s)) / (1 - df2)
        k = np.asarray(Bq).shape[0]
        var = k * mp.mpf(sigma) ** 2 * df2 / (1 - df2)
        return {"kappa": kap, "df2": df2, "bias": bias, "variance": var, "risk": bias + var,
                "residual": fixed_point_residual(eigs, n, kap)}
