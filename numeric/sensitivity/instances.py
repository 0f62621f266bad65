"""A point's fixed part: the shift ``Delta*`` (Haar singular vectors, the point's profile,
rescaled to its SNR), the covariance, and the effective ranks / misalignment reported with it."""
from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..instances import haar


def profile(shape: dict, m: int) -> np.ndarray:
    """Unnormalised singular-value profile of length ``m = min(k, d)`` (descending)."""
    i = np.arange(1, m + 1, dtype=float)
    if shape["family"] == "exact":
        return (i <= shape["s"]).astype(float)
    if shape["family"] == "power":
        return i ** (-shape["alpha"])
    if shape["family"] == "exp":
        return np.exp(-shape["alpha"] * (i - 1))
    raise InputError(f"unknown shift family {shape['family']!r}")


def effective_ranks(sv) -> dict:
    """Stable rank ``sum s^2 / max s^2`` and entropy effective rank (see module docstring)."""
    sv = np.asarray([v for v in sv if v > 0], dtype=float)
    if sv.size == 0:
        return {"stable_rank": 0.0, "entropy_rank": 0.0}
    p = sv / sv.sum()
    return {"stable_rank": float((sv ** 2).sum() / sv.max() ** 2),
            "entropy_rank": float(np.exp(-(p * np.log(p)).sum()))}


def misalignment_eps(delta: np.ndarray, sigma_m: np.ndarray, h: int) -> float:
    """``||Q_perp Sigma Q||_op`` with ``Q`` the projector on the top-``h`` row space of Delta*."""
    _, _, vt = np.linalg.svd(delta)
    v = vt[:h].T
    q = v @ v.T
    return float(np.linalg.norm((np.eye(len(q)) - q) @ sigma_m @ q, 2))


def make_instance(point: dict, seed: int) -> dict:
    """The fixed part of a point: ``Delta*`` (``k x d``), ``Sigma``, ``Sigma^{1/2}`` (numpy)."""
    d, k = point["d"], point["k"]
    m = min(d, k)
    rng = np.random.default_rng([seed, 6])
    u, v = haar(rng.standard_normal((k, k))), haar(rng.standard_normal((d, d)))
    prof = profile(point["shape"], m)
    cov = point["cov"]
    if cov["kind"] == "identity":
        sig, half = np.eye(d), np.eye(d)
    else:
        h, th = cov["head"], math.radians(cov["theta_deg"])
        c, s = math.cos(th), math.sin(th)
        q = v.copy()
        q[:, :h] = c * v[:, :h] + s * v[:, h:2 * h]
        q[:, h:2 * h] = -s * v[:, :h] + c * v[:, h:2 * h]
        lam = np.full(d, float(cov["low"]))
        lam[:h] = cov["high"]
        sig = (q * lam) @ q.T
        half = (q * np.sqrt(lam)) @ q.T
    delta0 = (u[:, :m] * prof) @ v[:, :m].T
    energy = float(np.sum((delta0 @ half) ** 2))
    scale = math.sqrt(point["snr"] * k * point["sigma"] ** 2 / energy)
    delta = delta0 * scale
    weighted = np.linalg.svd(delta @ half, compute_uv=False)
    out = {"Delta": delta, "Sigma": sig, "SigmaHalf": half, "sv_weighted": weighted,
           "sv_shift": prof * scale, "isotropic": cov["kind"] == "identity"}
    out["eps"] = (misalignment_eps(delta, sig, cov["head"]) if cov["kind"] != "identity" else 0.0)
    return out
