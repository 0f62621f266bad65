"""The fine-tuning estimators, batched over a leading dimension (torch, any device).

Shapes: ``X`` is ``(B, d, n)``, ``R`` is ``(B, k, n)`` (``R = Y - W0 X = Delta* X + E``).  The
estimators return shift estimates ``(B, k, d)``.  Closed forms from THEORY.md section 2; they are
deliberately written with other primitives than the derivations' expressions (solves and
eigendecompositions, not ``pinv``/inverse chains), so the end-to-end checks compare two
independent code paths.
"""
from __future__ import annotations

import torch

from .instances import draw_torch


def _t(a):
    return a.transpose(-1, -2)


def fft_over(X, R):
    """OLS, ``n >= d``: ``R X^T S^{-1}`` via a linear solve with ``S = X X^T``."""
    S = X @ _t(X)
    return _t(torch.linalg.solve(S, X @ _t(R)))


def fft_under(X, R):
    """Minimum-norm interpolator, ``n < d``: ``R (X^T X)^{-1} X^T``."""
    K = _t(X) @ X
    return _t(X @ torch.linalg.solve(K, _t(R)))


def fft(X, R):
    d, n = X.shape[-2], X.shape[-1]
    return fft_over(X, R) if n >= d else fft_under(X, R)


def _sym_inv_sqrt(S):
    w, v = torch.linalg.eigh(S)
    return (v * w.rsqrt().unsqueeze(-2)) @ _t(v)


def truncate(M, r: int):
    """``P_r(M)``: best rank-``r`` approximation (Eckart-Young), batched."""
    u, s, vh = torch.linalg.svd(M, full_matrices=False)
    return (u[..., :, :r] * s[..., None, :r]) @ vh[..., :r, :]


def lora_over(X, R, r: int):
    """Reduced-rank regression, ``n >= d``: ``P_r(R X^T S^{-1/2}) S^{-1/2}``."""
    Sih = _sym_inv_sqrt(X @ _t(X))
    return truncate(R @ _t(X) @ Sih, r) @ Sih


def lora_under(X, R, r: int):
    """Minimum-norm global minimiser, ``n < d``: ``P_r(R) X^+``."""
    K = _t(X) @ X
    return _t(X @ torch.linalg.solve(K, _t(truncate(R, r))))


def lora(X, R, r: int):
    d, n = X.shape[-2], X.shape[-1]
    return lora_over(X, R, r) if n >= d else lora_under(X, R, r)


def excess_risk(Delta_hat, Delta, SigmaHalf):
    """``||(Delta_hat - Delta*) Sigma^{1/2}||_F^2`` per batch element."""
    diff = (Delta_hat - Delta) @ SigmaHalf
    return (diff * diff).sum(dim=(-2, -1))


def sample_data(inst: dict, batch: int, gen, device="cpu"):
    """Draw ``batch`` data sets: ``X`` (B, d, n) and ``R = Delta* X + E`` (B, k, n)."""
    draws = draw_torch(("X", "E"), inst, batch, gen, device)
    X = draws["X"]
    return X, inst["Delta"] @ X + draws["E"]


def simulate_risk(params, fit, trials: int, gen, device="cpu", chunk: int = 4000):
    """Excess risks of ``fit(X, R)`` on ``trials`` simulated data sets (drawn in chunks).

    The data are drawn from the instance of ``params`` (fixed ``Sigma`` and ``Delta*``), so this
    is the end-to-end simulation of fine-tuning: sample data, fit, measure the exact risk.
    One CPU thread (``numeric.device.single_thread``): with two, the batched solves nest
    OpenMP regions (torch over the batch, MKL inside), which on a loaded 2-core machine stalled
    the full audit's raw ``fft_under_general`` convergence for over half an hour.
    """
    from .instances import torch_instance
    from .device import single_thread

    inst = torch_instance(params, device)
    out = []
    with single_thread(device):
        for start in range(0, trials, chunk):
            b = min(chunk, trials - start)
            X, R = sample_data(inst, b, gen, device)
            out.append(excess_risk(fit(X, R), inst["Delta"], inst["SigmaHalf"]))
    return torch.cat(out)
