"""Paper-style UPPER BOUNDS on LoRA's excess risk (THEORY.md 4.2), with every constant explicit.

These are bounds, not predictions: they are what the paper's style of argument (truncation
error + Gordon + a smallest-eigenvalue bound) yields, and ``derivations.theorems.lora_bounds``
checks each step.  Chain (overdetermined; ``m = d``, ``W = Sigma^{-1/2} S Sigma^{-1/2}``):

    R(Delta_L) = ||D S^{-1/2} Sigma^{1/2}||_F^2 <= ||D||_F^2 / lambda_min(W)        (submult.)
    ||D||_F^2 = ||P_r(M + G) - M||_F^2 <= 8 r ||G||_op^2       (rank M = s <= r; Weyl)
    E ||G||_op^2 <= sigma^2 [(sqrt k + sqrt m)^2 + 1]     (Gordon + Gaussian Poincare)
    G independent of X (given X it is i.i.d. N(0, sigma^2)), so the expectations factor;
    (a) expectation form:  E 1/lambda_min(W) <= E tr W^{-1} = m/(n - m - 1);
    (b) high-probability form: lambda_min(W) >= (sqrt n - sqrt m - t)^2 w.p. >= 1 - e^{-t^2/2}
        (Davidson-Szarek), a bound on E_E[R | X] on that event.

Underdetermined (``Sigma = I``, ``m = n``, ``W = X^T X``): the same chain for the variance part
``||(P_r(M + E) - M) X^+||_F^2`` with ``E`` (``k x n``) in place of ``G`` and ``d`` and ``n``
swapped in the eigenvalue bounds, plus the exact bias ``(1 - n/d) ||Delta*||_F^2``.

Exact FFT risks for the comparison (THEORY 3): ``sigma^2 k d/(n - d - 1)`` and
``(1 - n/d)||Delta*||^2 + sigma^2 k n/(d - n - 1)``.
"""
from __future__ import annotations

import math

from . import sharp
from .errors import InputError

TRUNCATION_CONSTANT = 8   # ||P_r(M+G) - M||_F^2 <= 8 r ||G||_op^2 (rank of the difference <= 2r,
                          # operator norm <= 2 ||G||_op by Weyl)


_LONG = {"over": "overdetermined", "under": "underdetermined"}


def _regime(d, n, regime):
    """The regime's long name; the one boundary is ``sharp._regime``'s (THEORY 2: over iff
    ``n >= d``)."""
    return _LONG[sharp._regime(d, n, regime)]


def _check(d, k, n, sigma, r, shift_sv, regime, t):
    for name, v in (("d", d), ("k", k), ("n", n), ("r", r)):
        if int(v) != v or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    if not 1 <= r <= min(d, k):
        raise InputError(f"r must satisfy 1 <= r <= min(d, k) = {min(d, k)}, got r = {r}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InputError(f"sigma must be a positive number, got {sigma}")
    if regime == "overdetermined" and not n > d + 1:
        raise InputError(f"the overdetermined bound needs n > d + 1, got n = {n}, d = {d}")
    if regime == "underdetermined" and not d > n + 1:
        raise InputError(f"the underdetermined bound needs d > n + 1, got d = {d}, n = {n}")
    if len(shift_sv) > min(d, k):
        raise InputError(f"shift_sv has {len(shift_sv)} values, at most min(d, k) = {min(d, k)}")
    if t is not None:
        big, small = (n, d) if regime == "overdetermined" else (d, n)
        if not 0 < t < math.sqrt(big) - math.sqrt(small):
            raise InputError(f"t must lie in (0, sqrt({big}) - sqrt({small})) = (0, "
                             f"{math.sqrt(big) - math.sqrt(small):.4g}), got t = {t}")


def fft_risk(d, k, n, sigma, shift_sv, regime) -> float:
    """Exact expected excess risk of FFT (Gaussian design; Sigma = I in the under regime): the
    one closed form, ``sharp.fft_risk``, with ``||Delta*||_F^2`` from ``shift_sv``.  The regime
    is given by the caller (resolved once, by ``lora_bound``), never inferred twice."""
    if regime not in ("overdetermined", "underdetermined"):
        raise InputError(f"regime must be 'overdetermined' or 'underdetermined', got {regime!r}")
    fro2 = None if regime == "overdetermined" else sum(v * v for v in shift_sv)
    return sharp.fft_risk(d, k, n, sigma, fnorm2=fro2)


def lora_bound(d, k, n, sigma, r, shift_sv, regime=None, t=None) -> dict:
    """UPPER BOUND on LoRA's expected excess risk (labelled ``kind = "bound"``).

    ``t = None``: the expectation form, ``E R(Delta_L) <= value`` (holds with probability 1).
    ``t > 0``: the high-probability form, ``E_E[R(Delta_L) | X] <= value`` on an event of
    probability ``>= 1 - exp(-t^2/2)`` over the design.
    Requires ``s = rank Delta* <= r``; otherwise the value is ``inf`` (no bound of this form)
    and ``conditions`` says so.
    """
    regime = _regime(d, n, regime)
    shift_sv = tuple(float(v) for v in shift_sv)
    _check(d, k, n, sigma, r, shift_sv, regime, t)
    s = sum(1 for v in shift_sv if v != 0)
    m = d if regime == "overdetermined" else n          # the whitened noise is k x m
    big = n if regime == "overdetermined" else d
    gordon2 = sigma ** 2 * ((math.sqrt(k) + math.sqrt(m)) ** 2 + 1)
    trunc = TRUNCATION_CONSTANT * r
    if t is None:
        inv_eig = m / (big - m - 1)
        eig_text = f"E 1/lambda_min <= E tr W^-1 = {m}/({big} - {m} - 1)"
        prob = 1.0
    else:
        inv_eig = 1.0 / (math.sqrt(big) - math.sqrt(m) - t) ** 2
        eig_text = f"1/lambda_min <= 1/(sqrt {big} - sqrt {m} - t)^2 (Davidson-Szarek)"
        prob = 1 - math.exp(-t * t / 2)
    fro2 = sum(v * v for v in shift_sv)
    bias = (1 - n / d) * fro2 if regime == "underdetermined" else 0.0
    variance = trunc * gordon2 * inv_eig
    conditions = [f"rank Delta* = s = {s} <= r = {r}" + ("" if s <= r else "  VIOLATED"),
                  "Gaussian design x ~ N(0, Sigma), noise N(0, sigma^2)"]
    if regime == "overdetermined":
        conditions.append(f"n > d + 1 ({n} > {d + 1})")
    else:
        conditions += [f"d > n + 1 ({d} > {n + 1})", "Sigma = I (isotropic design)"]
    value = bias + variance if s <= r else math.inf
    return {
        "kind": "bound",
        "form": "expectation" if t is None else "high-probability (conditional on X)",
        "regime": regime,
        "value": value,
        "terms": {"bias_exact": bias, "truncation_constant": trunc,
                  "gordon_second_moment": gordon2, "inverse_eigenvalue": inv_eig,
                  "variance_bound": variance, "eigenvalue_step": eig_text},
        "formula": ("(1 - n/d)||Delta*||^2 + " if regime == "underdetermined" else "")
        + f"8 r sigma^2 ((sqrt k + sqrt {'d' if m == d else 'n'})^2 + 1) * "
        + ("m/(N - m - 1)" if t is None else "1/(sqrt N - sqrt m - t)^2"),
        "conditions": conditions,
        "holds_with_probability": prob,
        "t": t,
    }


def bound_beats_fft(d, k, n, sigma, r, shift_sv, regime=None, t=None) -> dict:
    """When is the LoRA upper bound below the exact FFT risk?

    Both share the bias ``(1 - n/d)||Delta*||^2`` in the under regime, so the comparison is of
    the variance parts: ``8 r [(sqrt k + sqrt m)^2 + 1] * c_eig < k m / (N - m - 1)`` with
    ``c_eig = m/(N - m - 1)`` (expectation form) -- never true, since
    ``8 r [(sqrt k + sqrt m)^2 + 1] > k`` -- or ``c_eig = 1/(sqrt N - sqrt m - t)^2``
    (high-probability form; compares a conditional bound with an expectation, stated as such).
    The condition does not depend on sigma (it cancels) nor on ||Delta*|| (beyond s <= r).
    """
    b = lora_bound(d, k, n, sigma, r, shift_sv, regime, t)
    regime = b["regime"]
    f = fft_risk(d, k, n, sigma, shift_sv, regime)
    m = d if regime == "overdetermined" else n
    big = n if regime == "overdetermined" else d
    lhs = TRUNCATION_CONSTANT * r * ((math.sqrt(k) + math.sqrt(m)) ** 2 + 1) \
        * b["terms"]["inverse_eigenvalue"]
    rhs = k * m / (big - m - 1)
    return {"regime": regime, "lora_bound": b["value"], "fft_risk": f,
            "bound_over_fft": b["value"] / f if f > 0 else math.inf,
            "beats": b["value"] < f,
            "condition": (f"8 r [(sqrt k + sqrt m)^2 + 1] * c_eig < k m/(N - m - 1), "
                          f"m = {m}, N = {big}: {lhs:.6g} < {rhs:.6g}"),
            "condition_lhs": lhs, "condition_rhs": rhs,
            "form": b["form"], "holds_with_probability": b["holds_with_probability"],
            "note": ("the expectation-form bound never beats FFT: 8r[(sqrt k + sqrt m)^2 + 1] "
                     "> k for every r >= 1" if t is None else
                     "compares a high-probability conditional bound with FFT's expected risk")}
