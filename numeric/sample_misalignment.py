"""Misalignment of the *sample* covariance (referee, major comment 1): bounds with constants.

Derived and certified in ``derivations.theorems.misalign_growth`` (the deterministic bound) and
``derivations.theorems.misalign_sample`` (the probabilities and the expectation); this module
only evaluates them.  Frame: whitened, population covariance ``I``; ``Delta`` stands for
``Delta* Sigma^{1/2}`` with singular values ``s_1 >= s_2 >= ...``, ``Q`` the projection on its
top-``r`` row space, ``b_r = sum_{i>r} s_i^2``, ``rho = s_{r+1}/s_r``, ``gamma = 1 - rho``.  The
sample covariance is ``W = Z Z^T/n`` with ``Z`` a ``d x n`` standard Gaussian matrix (after
whitening; in the singular basis of ``Delta``, ``Z1`` are the first ``r`` rows, ``Z2`` the rest).

Deterministic bound (every SPD ``C``; ``C0 = QCQ + Q_perp C Q_perp`` its aligned part)::

    m0     = lambda_min(C0)
    et     = ||C0^{-1/2} Q_perp C Q C0^{-1/2}||        normalised misalignment, < 1 always
    tau^2  = ||Delta Q_perp C Q C0^{-1/2}||_F^2        tail-weighted coupling
    gamma0 = 1 - sigma_1(Delta Q_perp C0^{1/2}) / sigma_r(Delta Q C0^{1/2})   weighted gap
    beta_mis(C) <= 4 (1 + rho) tau^2 / (m0 (gamma0 - et)^2)     when gamma0 > et.

At ``C = W``: ``tau^2 = ||S2 G||_F^2 / n`` with ``G = Z2 U1`` a ``(d-r) x r`` standard Gaussian
matrix (``U1`` an orthonormal basis of the row space of ``Z1``), so ``E tau^2 = r b_r / n``
*exactly*: the bias is of order ``r b_r / n`` (not ``d b_r / n``) once the conditions hold.

High-probability events (each fails with probability ``<= exp(-t^2/2)``; Davidson-Szarek 2001,
Vershynin 2012 Cor. 5.35, Chevet 1977, Gaussian concentration of Lipschitz functions):

    E1: s_min(Z)  >= sqrt n - sqrt d - t          E2: ||G|| <= sqrt(d-r) + sqrt r + t
    E3: ||S2 G||_F <= sqrt(r b_r) + s_{r+1} t      E4: ||S2 Z2|| <= s_{r+1}(sqrt n + t) + sqrt b_r
    E5: s_min(Z1) >= sqrt n - sqrt r - t

and on them ``m0 >= m_t``, ``et <= et_t``, ``gamma0 >= gamma_t``, ``tau^2 <= tau2_t``
(:func:`thresholds`).  ``eta(W) = ||W - I||`` and ``eps(W) = ||Q_perp W Q||`` (THEORY 5) get the
two-sided bounds of :func:`eta_eps_thresholds`.

Expectation (``n > d + 3``), for every admissible ``t``::

    E beta_mis(W) <= 4(1+rho) r b_r / (n m_t (gamma_t - et_t)^2)
                     + b_r nu_n (4 exp(-t^2/2))^{1/4},
    nu_n = (n(n+2)(n+4)(n+6))^{1/4} (d(n-1)/((n-d)(n-d-1)(n-d-3)))^{1/2}

(second term: on the failure event ``beta <= ||S2 Z2||_F^2 / lambda_min(Z Z^T)``, Hoelder with
exponents (4, 2, 4), the chi-square fourth moment and the inverse-Wishart second moment).
"""
from __future__ import annotations

import math

from . import estimators
from .misalignment import best_rank_risk, lora_target, row_projector, sym_pow

N_EVENTS_BIAS = 5          # E1..E5 for the high-probability bias bound
N_EVENTS_MEAN = 4          # E1, E2, E4, E5 for the expectation (tau enters through E tau^2)


def _t(a):
    return a.transpose(-1, -2)


# ------------------------------------------------------------------ deterministic quantities
def pieces(Delta, C, r: int) -> dict:
    """The quantities of the deterministic bound at ``C`` (batched torch, whitened frame)."""
    import torch

    d = C.shape[-1]
    eye = torch.eye(d, dtype=C.dtype, device=C.device)
    Q = row_projector(Delta, r)
    Qp = eye - Q
    C0 = Q @ C @ Q + Qp @ C @ Qp
    C0h, C0mh = sym_pow(C0, 0.5), sym_pow(C0, -0.5)
    off = Qp @ C @ Q
    et = torch.linalg.matrix_norm(C0mh @ off @ C0mh, ord=2)
    tau2 = ((Delta @ off @ C0mh) ** 2).sum(dim=(-2, -1))
    m0 = torch.linalg.eigvalsh((C0 + _t(C0)) / 2)[..., 0]
    head = torch.linalg.svdvals(Delta @ Q @ C0h)[..., r - 1]
    tail = torch.linalg.svdvals(Delta @ Qp @ C0h)[..., 0]
    gamma0 = 1 - tail / head
    s = torch.linalg.svdvals(Delta)
    rho = s[..., r] / s[..., r - 1]
    valid = gamma0 > et
    room = torch.where(valid, gamma0 - et, torch.ones_like(et))
    bound = torch.where(valid, 4 * (1 + rho) * tau2 / (m0 * room ** 2),
                        torch.full_like(et, math.inf))
    beta = ((lora_target(Delta, C, r) - Delta) ** 2).sum(dim=(-2, -1)) - best_rank_risk(Delta, r)
    eps = torch.linalg.matrix_norm(off, ord=2)
    eta = torch.linalg.matrix_norm(C - eye, ord=2)
    w = torch.linalg.eigvalsh((C + _t(C)) / 2)
    return {"kappa": w[..., -1] / w[..., 0], "beta": beta, "bound": bound, "valid": valid, "et": et, "tau2": tau2, "m0": m0,
            "gamma0": gamma0, "rho": rho, "eps": eps, "eta": eta}


# --------------------------------------------------------------------- probability thresholds
def _spectrum(sv, r):
    s = sorted((float(v) for v in sv), reverse=True)
    if r >= len(s) or s[r - 1] <= 0:
        raise ValueError(f"need r < number of singular values and s_r > 0 (r = {r}, sv = {s})")
    return s, s[r - 1], s[r], sum(v * v for v in s[r:])


def eta_eps_thresholds(n: int, d: int, r: int, t: float) -> dict:
    """``eta(W) <= eta_t`` and ``eps(W) <= eps_t``, each with probability ``>= 1 - 2 exp(-t^2/2)``.

    ``eta_t = 2a + a^2``, ``a = (sqrt d + t)/sqrt n`` (both extreme singular values of ``Z``);
    ``eps_t = (sqrt(d-r) + sqrt r + t)(sqrt n + sqrt r + t)/n`` (``Q_perp W Q = Z2 Z1^T/n =
    G (Z1 Z1^T)^{1/2}/n`` in distribution, ``G`` a ``(d-r) x r`` Gaussian matrix).
    """
    a = (math.sqrt(d) + t) / math.sqrt(n)
    eps_t = (math.sqrt(d - r) + math.sqrt(r) + t) * (math.sqrt(n) + math.sqrt(r) + t) / n
    return {"eta_t": 2 * a + a * a, "eps_t": eps_t, "fail_prob": min(1.0, 2 * math.exp(-t * t / 2))}


def thresholds(n: int, d: int, r: int, sv, t: float) -> dict:
    """Bounds on ``m0, et, gamma0, tau^2`` that hold on the events E1..E5 (module docstring)."""
    s, s_r, s_r1, b_r = _spectrum(sv, r)
    sn = math.sqrt(n)
    lo = sn - math.sqrt(d) - t
    m_t = (lo / sn) ** 2 if lo > 0 else 0.0
    et_t = (math.sqrt(d - r) + math.sqrt(r) + t) / lo if lo > 0 else math.inf
    head = s_r * (1 - (math.sqrt(r) + t) / sn)
    tail = s_r1 * (1 + t / sn) + math.sqrt(b_r / n)
    gamma_t = 1 - tail / head if head > 0 else -math.inf
    tau2_t = (math.sqrt(r * b_r) + s_r1 * t) ** 2 / n
    return {"m_t": m_t, "et_t": et_t, "gamma_t": gamma_t, "tau2_t": tau2_t, "b_r": b_r,
            "rho": s_r1 / s_r, "admissible": m_t > 0 and gamma_t > et_t}


def hp_bias_bound(n: int, d: int, r: int, sv, t: float) -> dict:
    """``beta_mis(W) <= value`` with probability ``>= 1 - 5 exp(-t^2/2)`` (``inf`` if ``t`` is
    not admissible at these sizes: ``m_t = 0`` or ``gamma_t <= et_t``)."""
    th = thresholds(n, d, r, sv, t)
    val = (4 * (1 + th["rho"]) * th["tau2_t"] / (th["m_t"] * (th["gamma_t"] - th["et_t"]) ** 2)
           if th["admissible"] else math.inf)
    return {"value": val, "fail_prob": min(1.0, N_EVENTS_BIAS * math.exp(-t * t / 2)), **th}


def tail_moment_factor(n: int, d: int) -> float:
    """``nu_n``: ``E[||S2 Z2||_F^2 / lambda_min(ZZ^T) 1_B] <= b_r nu_n P(B)^{1/4}`` (``n > d+3``)."""
    if not n > d + 3:
        return math.inf
    chi4 = (n * (n + 2) * (n + 4) * (n + 6)) ** 0.25
    inv2 = d * (n - 1) / ((n - d) * (n - d - 1) * (n - d - 3))
    return chi4 * math.sqrt(inv2)


def mean_bias_bound(n: int, d: int, r: int, sv, t: float | None = None) -> dict:
    """The non-asymptotic bound on ``E beta_mis(W)``; minimised over a grid of ``t`` when ``t``
    is None.  Returns ``value`` (``inf`` where no ``t`` is admissible), ``t``, ``main`` (the
    good-event part ``4(1+rho) r b_r/(n m_t (gamma_t - et_t)^2)``) and ``tail`` (the failure-event
    part), and the leading-order constant ``main * n / (r b_r)``."""
    s, s_r, s_r1, b_r = _spectrum(sv, r)
    grid = [t] if t is not None else [0.05 * i for i in range(1, 401)]
    nu = tail_moment_factor(n, d)
    best = {"value": math.inf, "t": None, "main": math.inf, "tail": math.inf, "constant": math.inf}
    for tv in grid:
        th = thresholds(n, d, r, sv, tv)
        if not th["admissible"] or not math.isfinite(nu):
            continue
        main = 4 * (1 + th["rho"]) * r * b_r / (n * th["m_t"] * (th["gamma_t"] - th["et_t"]) ** 2)
        tail = b_r * nu * (N_EVENTS_MEAN * math.exp(-tv * tv / 2)) ** 0.25
        if main + tail < best["value"]:
            best = {"value": main + tail, "t": tv, "main": main, "tail": tail,
                    "constant": main * n / (r * b_r)}
    return best


def fft_threshold_tail(n: int, d: int, k: int, r: int, sv, sigma: float, t: float) -> dict:
    """Condition for the misalignment bias to stay below FFT's risk ``sigma^2 k d/(n-d-1)``.

    On the events E1, E2, E4, E5 the bound is ``c_t r b_r / n`` with ``c_t = 4(1+rho)/(m_t
    (gamma_t - et_t)^2)``; it is below FFT's risk iff ``b_r < sigma^2 k d n / (c_t r (n-d-1))``
    (the gap and ``rho`` depend on the spectrum, so this is a condition on the tail energy at a
    fixed head).  Returns ``c_t`` and the largest admissible ``b_r`` at this spectrum's shape."""
    th = thresholds(n, d, r, sv, t)
    if not th["admissible"] or not n > d + 1:
        return {"c_t": math.inf, "b_r_max": 0.0, "holds": False}
    c_t = 4 * (1 + th["rho"]) / (th["m_t"] * (th["gamma_t"] - th["et_t"]) ** 2)
    b_max = sigma ** 2 * k * d * n / (c_t * r * (n - d - 1))
    return {"c_t": c_t, "b_r_max": b_max, "holds": th["b_r"] < b_max}


# ------------------------------------------------------------------------------- simulation
def simulate(p, n: int, trials: int, gen, device="cpu") -> dict:
    """Draw ``trials`` sample covariances of size ``n`` for the instance ``p`` (any ``Sigma``),
    fit the noise-free LoRA estimator (``estimators.lora_over`` on the raw data: an independent
    code path) and return per draw its misalignment bias ``beta`` and, in the whitened frame,
    the pieces of the deterministic bound (:func:`pieces`)."""
    import dataclasses

    from .instances import draw_torch, torch_instance

    pp = p if p.n == n else dataclasses.replace(p, n=n)
    inst = torch_instance(pp, device)
    X = draw_torch(("X",), inst, trials, gen, device)["X"]
    Sih = sym_pow(inst["Sigma"], -0.5)
    Dw = inst["Delta"] @ inst["SigmaHalf"]
    Cw = Sih @ (X @ _t(X) / n) @ Sih
    out = pieces(Dw.expand(trials, *Dw.shape), Cw, p.r)
    A = estimators.lora_over(X, inst["Delta"] @ X, p.r)
    out["beta_estimator"] = estimators.excess_risk(A, inst["Delta"], inst["SigmaHalf"]) \
        - best_rank_risk(inst["Delta"], p.r, inst["SigmaHalf"])
    import torch

    out["weighted_sv"] = torch.linalg.svdvals(Dw)
    return out
