"""Random instances of the model, in mpmath (exact to the working precision) or torch.

An instance fixes the dimensions, the noise level, the covariance ``Sigma`` (eigenvalues from the
parameters, Haar-random eigenbasis) and the shift ``Delta*`` (singular values from the
parameters, Haar-random singular vectors).  The same seed gives the same instance in both
backends (the torch one is the float64 rounding of the mpmath one).  Random data (``X``, ``E``,
``G``) are drawn by ``draw``.
"""
from __future__ import annotations

import mpmath as mp
import numpy as np

from .params import Params


def haar(z: np.ndarray) -> np.ndarray:
    """Haar-distributed orthogonal matrix from a Gaussian one (QR with the sign fix)."""
    q, r = np.linalg.qr(z)
    return q * np.sign(np.diag(r))


def _haar_mp(z: np.ndarray) -> mp.matrix:
    """Orthogonal to the working precision: QR in mpmath of a float64 Gaussian matrix."""
    a = mp.matrix(z.tolist())
    q, r = mp.qr(a)
    for j in range(q.cols):
        if r[j, j] < 0:
            for i in range(q.rows):
                q[i, j] = -q[i, j]
    return q


def random_shape(rng: np.random.Generator, d_hi: int, k_hi: int, sv_lo=0.2, sv_hi=3.0):
    """The random shape of a small lemma instance, drawn in this order from ``rng``:
    ``d`` in ``3..d_hi-1``, ``k`` in ``2..k_hi-1``, ``r`` in ``1..min(d, k)-1`` (a proper rank,
    so a tail exists) and ``min(d, k)`` singular values uniform on ``[sv_lo, sv_hi]``, sorted
    decreasing.  Returns ``(d, k, r, sv)``; the caller shapes the spectrum further."""
    d = int(rng.integers(3, d_hi))
    k = int(rng.integers(2, k_hi))
    r = int(rng.integers(1, min(d, k)))
    sv = np.sort(rng.uniform(sv_lo, sv_hi, min(d, k)))[::-1]
    return d, k, r, sv


def _factors(p: Params):
    rng = np.random.default_rng([p.seed, 2026])
    zu = rng.standard_normal((p.k, p.k))
    zv = rng.standard_normal((p.d, p.d))
    zs = rng.standard_normal((p.d, p.d))
    return zu, zv, zs


# mp_instance's results by (parameters, working precision in bits): an instance is a pure
# function of both, and its Haar factors (QR in mpmath) are most of the cost of a high-precision
# check; the audit asks for the same instance many times (steps, controls, integrity).
_MP_CACHE: dict = {}
_MP_CACHE_SIZE = 512


def mp_instance(p: Params) -> dict:
    """The fixed part of an instance as mpmath values (call inside ``mp.workdps``).  Cached by
    ``(p, mp.prec)``; every call gets its own copies of the matrices (callers may write)."""
    key = (p, mp.mp.prec)
    hit = _MP_CACHE.get(key)
    if hit is None:
        hit = _mp_instance(p)
        if len(_MP_CACHE) >= _MP_CACHE_SIZE:
            _MP_CACHE.pop(next(iter(_MP_CACHE)))          # the oldest entry
        _MP_CACHE[key] = hit
    return {k: (v.copy() if isinstance(v, mp.matrix) else v) for k, v in hit.items()}


def _mp_instance(p: Params) -> dict:
    zu, zv, zs = _factors(p)
    u, v = _haar_mp(zu), _haar_mp(zv)
    sv = list(p.shift_sv) + [0.0] * (min(p.d, p.k) - len(p.shift_sv))
    delta = mp.zeros(p.k, p.d)
    for i, s in enumerate(sv):
        if s:
            delta += mp.mpf(s) * (u[:, i] * v[:, i].T)
    if p.isotropic:
        sigma_m, half = mp.eye(p.d), mp.eye(p.d)
    else:
        q = _haar_mp(zs)
        sigma_m = q * mp.diag([mp.mpf(e) for e in p.eigs]) * q.T
        half = q * mp.diag([mp.sqrt(mp.mpf(e)) for e in p.eigs]) * q.T
    out = {"d": p.d, "k": p.k, "n": p.n, "r": p.r, "sigma": mp.mpf(p.sigma),
           "Sigma": sigma_m, "SigmaHalf": half, "Delta": delta, "I_d": mp.eye(p.d)}
    if p.has_fit_cov:
        out["C"] = _fit_cov_mp(p, v)
    return out


def torch_instance(p: Params, device="cpu", dtype=None) -> dict:
    import torch

    dtype = dtype or torch.float64
    zu, zv, zs = _factors(p)
    u, v = haar(zu), haar(zv)
    sv = np.zeros(min(p.d, p.k))
    sv[: len(p.shift_sv)] = p.shift_sv
    delta = (u[:, : len(sv)] * sv) @ v[:, : len(sv)].T
    if p.isotropic:
        sig = np.eye(p.d)
        half = np.eye(p.d)
    else:
        q = haar(zs)
        e = np.asarray(p.eigs)
        sig = (q * e) @ q.T
        half = (q * np.sqrt(e)) @ q.T
    t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    out = {"d": p.d, "k": p.k, "n": p.n, "r": p.r, "sigma": float(p.sigma),
           "Sigma": t(sig), "SigmaHalf": t(half), "Delta": t(delta), "I_d": t(np.eye(p.d))}
    if p.has_fit_cov:
        out["C"] = t(_fit_cov_np(p, v))
    return out


# LoRA's fitting covariance C (only when a misalignment parameter is set; Sigma = I then).
# Built from the shift's own right singular vectors, so no random numbers are drawn and the
# instances of every other parameter set are unchanged.
def _fit_order(p: Params) -> list[int]:
    """Columns of the Haar factor V in decreasing order of the shift's singular values."""
    m = min(p.d, p.k)
    sv = list(p.shift_sv) + [0.0] * (m - len(p.shift_sv))
    return sorted(range(m), key=lambda i: -sv[i]) + list(range(m, p.d))


def _fit_core(p: Params):
    """(eigenvalues, coupling, angle) of C = R(angle) (diag + coupling J) R(angle)^T, ordered basis."""
    eigs = list(p.fit_eigs) if p.fit_eigs else [1.0] * p.d
    return eigs, p.coupling, p.cov_angle


def _fit_cov_np(p: Params, v: np.ndarray) -> np.ndarray:
    eigs, cpl, ang = _fit_core(p)
    core = np.diag(np.asarray(eigs, dtype=float))
    i, j = p.r - 1, p.r
    if cpl and j < p.d:
        core[i, j] = core[j, i] = cpl
    rot = np.eye(p.d)
    if ang and j < p.d:
        c, s = np.cos(ang), np.sin(ang)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    basis = v[:, _fit_order(p)] @ rot
    return basis @ core @ basis.T


def _fit_cov_mp(p: Params, v: mp.matrix) -> mp.matrix:
    eigs, cpl, ang = _fit_core(p)
    core = mp.diag([mp.mpf(e) for e in eigs])
    i, j = p.r - 1, p.r
    if cpl and j < p.d:
        core[i, j] = core[j, i] = mp.mpf(cpl)
    rot = mp.eye(p.d)
    if ang and j < p.d:
        c, s = mp.cos(mp.mpf(ang)), mp.sin(mp.mpf(ang))
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
    order = _fit_order(p)
    vo = mp.matrix([[v[row, col] for col in order] for row in range(p.d)])
    basis = vo * rot
    return basis * core * basis.T


# Random matrices of the model and how to draw them given the fixed instance.
#   X: d x n, columns i.i.d. N(0, Sigma)     E: k x n, entries i.i.d. N(0, sigma^2)
#   G: k x d, entries i.i.d. N(0, sigma^2)  (the whitened noise of THEORY 4.1)
RANDOM_SHAPES = {"X": ("d", "n"), "E": ("k", "n"), "G": ("k", "d")}


def draw_mp(names, inst: dict, rng: np.random.Generator) -> dict:
    out = {}
    for name in names:
        rows, cols = (inst[s] for s in RANDOM_SHAPES[name])
        z = mp.matrix(rng.standard_normal((rows, cols)).tolist())
        if name == "X":
            out[name] = inst["SigmaHalf"] * z
        else:
            out[name] = z * inst["sigma"]
    return out


def draw_torch(names, inst: dict, batch: int, gen, device="cpu", dtype=None) -> dict:
    """Draw ``batch`` copies of the named random matrices (CPU generator, then moved)."""
    from .device import randn

    out = {}
    for name in names:
        rows, cols = (inst[s] for s in RANDOM_SHAPES[name])
        z = randn((batch, rows, cols), gen, device, dtype)
        out[name] = inst["SigmaHalf"] @ z if name == "X" else z * inst["sigma"]
    return out
