"""Scoped precision and the one tolerance helper.

Library code never sets ``mp.dps`` globally: it evaluates inside ``with mp.workdps(dps)``.
``almosteq``/``agreement`` follow mpmath's ``almosteq`` (relative *or* absolute tolerance).
"""
from __future__ import annotations

import math

import mpmath as mp

GUARD_DIGITS = 10     # digits a pass may lose to rounding in a long chain of operations


def default_tolerance(dps: int) -> mp.mpf:
    """Relative tolerance for an identity evaluated at ``dps`` digits."""
    return mp.mpf(10) ** (-(dps - GUARD_DIGITS))


def relative_gap(a, b) -> mp.mpf:
    """|a - b| / max(|a|, |b|, tiny): the relative disagreement of two numbers."""
    a, b = mp.mpf(a), mp.mpf(b)
    scale = max(abs(a), abs(b))
    if scale == 0:
        return mp.mpf(0)
    return abs(a - b) / scale


def almosteq(a, b, rel_eps, abs_eps=None) -> bool:
    """True when ``a`` and ``b`` agree to relative ``rel_eps`` (or absolute ``abs_eps``)."""
    diff = abs(mp.mpf(a) - mp.mpf(b))
    if abs_eps is not None and diff <= abs_eps:
        return True
    return relative_gap(a, b) <= rel_eps


def digits_agreed(gap) -> float:
    """Number of significant decimal digits two values share, from their relative gap."""
    gap = float(gap) if gap != 0 else 0.0
    if gap <= 0:
        return math.inf
    return max(0.0, -math.log10(gap))
