"""Actual LoRA training, to audit the closed forms of THEORY.md section 2 against it.

LoRA parametrises the shift as ``Delta = B A`` (``B`` is ``k x r``, zero at the start; ``A`` is
``r x d``, small random) and minimises the empirical loss ``||R - B A X||_F^2``.  Two optimisers:

* ``"gd"``  -- plain full-batch gradient descent with a fixed step size.  The theory's implicit
  bias: the gradient with respect to ``A`` is ``-2 B^T (R - B A X) X^T``, whose rows lie in the
  span of ``X``'s columns, so the part ``A_0 (I - P)`` of the initialisation outside that span
  never moves and ``Delta (I - P) = B A_0 (I - P)`` is proportional to the initial scale;
* ``"adam"`` -- Adam (per-coordinate scaling), which does leave that span.

Everything is batched over a leading dimension, float64, on any device; random numbers come from
a CPU generator (same seed, same numbers everywhere).  Step sizes are set from the data alone
(``lambda_max(S)`` and a bound on the solution's norm), never from the closed form.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import estimators
from .device import generator, randn, single_thread
from .errors import InputError
from .instances import torch_instance
from .stats import summarize


def _t(a):
    return a.transpose(-1, -2)




def loss(X, R, Delta):
    """Empirical loss ``||R - Delta X||_F^2`` per batch element."""
    res = R - Delta @ X
    return (res * res).sum(dim=(-2, -1))


@dataclass
class TrainResult:
    Delta: torch.Tensor     # (B, k, d) learned shift B A
    B: torch.Tensor
    A: torch.Tensor
    loss: torch.Tensor      # (B,) final empirical loss
    steps: int              # iterations run
    grad_norm: torch.Tensor  # (B,) final gradient norm (relative to the loss scale)


def _init(X, R, r, init_scale, gen):
    bsz, d = X.shape[0], X.shape[-2]
    k = R.shape[-2]
    A = init_scale * randn((bsz, r, d), gen, X.device) / math.sqrt(d)
    B = torch.zeros(bsz, k, r, dtype=torch.float64, device=X.device)
    return B, A


def _step_size(X, R):
    """A stable GD step from the data: curvature ~ lambda_max(S) * (||A||^2 + ||B||^2) and at the
    solution ||A||^2, ||B||^2 ~ ||Delta||_op <= ||R||_op / sigma_min(X)."""
    sv = torch.linalg.svdvals(X)
    smax, smin = sv[..., 0], sv[..., -1]
    scale = torch.linalg.matrix_norm(R, ord=2) / smin
    return 0.2 / (smax ** 2 * (scale + 1e-12))


def train_gd(X, R, r: int, *, init_scale=1e-3, gen=None, max_steps=60000, tol=1e-11,
             lr=None) -> TrainResult:
    """Plain full-batch gradient descent on ``||R - B A X||_F^2`` from ``B = 0``, small ``A``."""
    with single_thread(X.device):
        return _train_gd(X, R, r, init_scale, gen or generator(0), max_steps, tol, lr)


def _train_gd(X, R, r, init_scale, gen, max_steps, tol, lr):
    B, A = _init(X, R, r, init_scale, gen)
    eta = (_step_size(X, R) if lr is None else torch.full((X.shape[0],), float(lr),
                                                           dtype=torch.float64, device=X.device))
    eta = eta[:, None, None]
    XXt = X @ _t(X)
    RXt = R @ _t(X)
    scale = (R * R).sum(dim=(-2, -1)).sqrt()[:, None, None]
    steps = 0
    gnorm = torch.full((X.shape[0],), math.inf, dtype=torch.float64, device=X.device)
    for steps in range(1, max_steps + 1):
        # gradient of ||R - B A X||^2: G_Delta = -2 (R X^T - B A X X^T)
        gD = -2 * (RXt - B @ A @ XXt)
        gB = gD @ _t(A)
        gA = _t(B) @ gD
        B = B - eta * gB
        A = A - eta * gA
        if steps % 200 == 0:
            gnorm = ((gB * gB).sum(dim=(-2, -1)) + (gA * gA).sum(dim=(-2, -1))).sqrt() \
                / scale[:, 0, 0]
            if not bool(torch.isfinite(gnorm).all()):
                raise FloatingPointError("gradient descent diverged (non-finite gradient)")
            if bool((gnorm < tol).all()):
                break
    Delta = B @ A
    return TrainResult(Delta, B, A, loss(X, R, Delta), steps, gnorm)


def train_adam(X, R, r: int, *, init_scale=1e-3, gen=None, steps=6000, lr=None) -> TrainResult:
    """Adam (default betas) on the same loss and initialisation, cosine-decayed step size.

    The loss is normalised by ``||R||_F^2`` so that one step size fits all instances; the
    decay lets Adam settle at a minimiser instead of oscillating around it."""
    with single_thread(X.device):
        return _train_adam(X, R, r, init_scale, gen or generator(0), steps, lr)


def _train_adam(X, R, r, init_scale, gen, steps, lr, betas=(0.9, 0.999), eps=1e-8):
    # Adam exactly as torch.optim.Adam (bias-corrected moments), with the analytic gradient of
    # the normalised loss ||R - B A X||^2 / ||R||^2 (no autograd: ~10x faster on tiny matrices).
    B, A = _init(X, R, r, init_scale, gen)
    norm = (R * R).sum(dim=(-2, -1))[:, None, None]
    XXt, RXt = X @ _t(X), R @ _t(X)
    base = 1e-2 if lr is None else float(lr)
    b1, b2 = betas
    mB, vB = torch.zeros_like(B), torch.zeros_like(B)
    mA, vA = torch.zeros_like(A), torch.zeros_like(A)
    for i in range(1, steps + 1):
        gD = -2 * (RXt - B @ A @ XXt) / norm
        gB, gA = gD @ _t(A), _t(B) @ gD
        lr_i = base * (0.5 * (1 + math.cos(math.pi * (i - 1) / steps)) + 1e-3)
        for P, g, m, v in ((B, gB, mB, vB), (A, gA, mA, vA)):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            mhat = m / (1 - b1 ** i)
            vhat = v / (1 - b2 ** i)
            P.sub_(lr_i * mhat / (vhat.sqrt() + eps))
    Delta = B @ A
    gD = -2 * (RXt - Delta @ XXt)
    g = ((gD @ _t(A)) ** 2).sum(dim=(-2, -1)) + ((_t(B) @ gD) ** 2).sum(dim=(-2, -1))
    return TrainResult(Delta, B, A, loss(X, R, Delta), steps, g.sqrt() / norm[:, 0, 0].sqrt())


def closed_form(X, R, r: int):
    return estimators.lora(X, R, r)


def _rel(a, b):
    return (torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b)).cpu()


def compare_training(p, trials: int = 8, seed: int = 0, device="cpu", init_scales=(1e-3, 5e-4),
                     adam_steps: int = 6000) -> dict:
    """Train on ``trials`` data sets of instance ``p`` and compare with the closed form.

    Over (``n >= d``): GD's loss and Delta against ``P_r(R X^T S^{-1/2}) S^{-1/2}``.
    Under (``n < d``): GD against ``P_r(R) X^+`` at two initial scales (the deviation must be
    proportional to the scale: it is ``B A_0 (I - P)``), and Adam: same loss, different Delta,
    with the excess-risk gap to the minimum-norm solution (mean and SE over the data sets).
    Returns a JSON-able dict.
    """
    if p.r > min(p.d, p.k):
        raise InputError(f"r = {p.r} exceeds min(d, k) = {min(p.d, p.k)}")
    if p.n == p.d:
        raise InputError("compare_training needs n != d (a regime), got n = d")
    device = torch.device(device)
    inst = torch_instance(p, device)
    gen = generator(seed)
    X, R = estimators.sample_data(inst, trials, gen, device)
    closed = closed_form(X, R, p.r)
    lc = loss(X, R, closed)
    risk = lambda D: estimators.excess_risk(D, inst["Delta"], inst["SigmaHalf"])  # noqa: E731
    out = {"params": p.as_dict(), "trials": trials, "seed": seed,
           "regime": "overdetermined" if p.n > p.d else "underdetermined",
           "closed_form_loss_mean": float(lc.mean())}
    gd = [train_gd(X, R, p.r, init_scale=s, gen=generator(seed + 1)) for s in init_scales]
    out["gd"] = [{"init_scale": s, "steps": g.steps,
                  "max_rel_loss_gap": float(((g.loss - lc) / lc).abs().max()),
                  "max_rel_delta_gap": float(_rel(g.Delta, closed).max()),
                  "max_rel_grad": float(g.grad_norm.max())}
                 for s, g in zip(init_scales, gd)]
    if out["regime"] == "underdetermined":
        P = X @ torch.linalg.pinv(X)
        off = [torch.linalg.matrix_norm(g.Delta - g.Delta @ P) for g in gd]
        # the deviation from the min-norm solution is B A0 (I - P): proportional to the scale
        out["gd_offspan_ratio"] = float((off[0] / off[1]).mean())
        out["gd_init_scale_ratio"] = init_scales[0] / init_scales[1]
        ad = train_adam(X, R, p.r, init_scale=init_scales[0], gen=generator(seed + 1),
                        steps=adam_steps)
        gap = summarize(risk(ad.Delta) - risk(closed))
        base = summarize(risk(closed))
        gd_gap = summarize(risk(gd[0].Delta) - risk(closed))
        out["adam"] = {
            "init_scale": init_scales[0], "steps": ad.steps,
            "max_rel_loss_gap": float(((ad.loss - lc) / lc).abs().max()),
            "mean_rel_delta_gap": float(_rel(ad.Delta, closed).mean()),
            "offspan_norm_mean": float(torch.linalg.matrix_norm(ad.Delta - ad.Delta @ P).mean()),
            "excess_risk_gap_mean": gap.mean, "excess_risk_gap_se": gap.se,
            "min_norm_risk_mean": base.mean, "min_norm_risk_se": base.se,
            "relative_gap": gap.mean / base.mean,
            "gd_excess_risk_gap_mean": gd_gap.mean, "gd_excess_risk_gap_se": gd_gap.se,
        }
    return out


def adam_vs_min_norm(p=None, trials: int = 16, seed: int = 0, device="cpu",
                     adam_steps: int = 6000) -> dict:
    """How far Adam's LoRA solution lands from the minimum-norm one, in excess risk
    (underdetermined regime; the report states this number).  JSON-able dict."""
    from .params import make_params

    p = p or make_params(d=16, k=6, n=8, r=2, sigma=0.5, shift_sv=(3.0, 2.0), seed=seed)
    if p.n >= p.d:
        raise InputError(f"adam_vs_min_norm is about the underdetermined regime: need n < d, "
                         f"got n = {p.n}, d = {p.d}")
    res = compare_training(p, trials=trials, seed=seed, device=device, adam_steps=adam_steps)
    a = res["adam"]
    return {"params": res["params"], "trials": trials, "seed": seed,
            "adam_minus_min_norm_excess_risk": a["excess_risk_gap_mean"],
            "se": a["excess_risk_gap_se"],
            "min_norm_excess_risk": a["min_norm_risk_mean"],
            "relative_gap": a["relative_gap"],
            "adam_rel_loss_gap": a["max_rel_loss_gap"],
            "adam_offspan_norm": a["offspan_norm_mean"],
            "gd_minus_min_norm_excess_risk": a["gd_excess_risk_gap_mean"],
            "gd_se": a["gd_excess_risk_gap_se"],
            "note": ("Adam reaches the minimum training loss (relative gap given) but not the "
                     "minimum-norm solution: its Delta has a component outside the span of the "
                     "data, which the theory (implicit bias of gradient descent) assumes away.")}
