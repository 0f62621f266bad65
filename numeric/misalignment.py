"""Covariance--subspace misalignment (THEORY.md section 5; the referee's major comment 1).

Everything is stated in the frame where the population covariance is the identity: a general
``Sigma`` reduces to it with ``Delta* -> Delta* Sigma^{1/2}`` and ``C -> Sigma^{-1/2} C
Sigma^{-1/2}`` (the rank-``r`` minimiser of ``||(A - Delta*) C^{1/2}||_F`` does not depend on the
square root of ``C`` used).  With ``Q`` the projection on the top-``r`` row space of ``Delta*``:

* misalignment ``eps(C) = ||Q_perp C Q||_op``, distance to isotropy ``eta(C) = ||C - I||_op``;
* noise-free LoRA target in metric ``C``: ``A_C = P_r(Delta* C^{1/2}) C^{-1/2}``;
* best rank-``r`` risk ``b_r = sum_{i>r} sigma_i^2(Delta* Sigma^{1/2})``;
* misalignment bias ``beta_mis(C) = R(A_C) - b_r >= 0``.

Bounds (derived in ``derivations.theorems.misalign_bounds``; these functions only evaluate them):

* first order (``eta < 1``): ``beta_mis <= 2 eta / (1 - eta) b_r`` (an upper bound);
* second order: ``beta_mis <= K^2 (1 + s_{r+1} / (s_r - K))`` with ``K`` an explicit multiple of
  ``eps`` (Davis--Kahan/Wedin chain, :func:`second_order_bound`), valid when the weighted
  head/tail gap ``delta > 0`` and ``K < s_r`` (an upper bound; ``inf`` otherwise).

Torch functions are batched over leading dimensions and device-agnostic; random numbers come
from CPU generators (``numeric.device``).  ``mp_*`` functions work at the caller's precision
(call inside ``mp.workdps``).
"""
from __future__ import annotations

import math

import mpmath as mp

from . import estimators
from .evaluate import MpBackend

# ------------------------------------------------------------------------------------ torch


def _t(a):
    return a.transpose(-1, -2)


def sym_pow(C, p: float):
    import torch

    w, v = torch.linalg.eigh((C + _t(C)) / 2)
    return (v * w.pow(p).unsqueeze(-2)) @ _t(v)


def row_projector(M, r: int):
    """Projection on the top-``r`` right singular space of ``M`` (``d x d``)."""
    _, _, vh = __import__("torch").linalg.svd(M, full_matrices=False)
    v = _t(vh[..., :r, :])
    return v @ _t(v)


def measures(Delta, C, r: int) -> dict:
    """``eps(C)``, ``eta(C)``, the extreme eigenvalues and the spread of ``C`` (isotropic frame)."""
    import torch

    Q = row_projector(Delta, r)
    eye = torch.eye(C.shape[-1], dtype=C.dtype, device=C.device)
    Qp = eye - Q
    w = torch.linalg.eigvalsh((C + _t(C)) / 2)
    return {"eps": torch.linalg.matrix_norm(Qp @ C @ Q, ord=2),
            "eta": torch.linalg.matrix_norm(C - eye, ord=2),
            "lam_min": w[..., 0], "lam_max": w[..., -1]}


def lora_target(Delta, C, r: int):
    """``A_C = P_r(Delta* C^{1/2}) C^{-1/2}`` (the noise-free LoRA fit in metric ``C``)."""
    return estimators.truncate(Delta @ sym_pow(C, 0.5), r) @ sym_pow(C, -0.5)


def risk(A, Delta, SigmaHalf=None):
    D = A - Delta
    if SigmaHalf is not None:
        D = D @ SigmaHalf
    return (D * D).sum(dim=(-2, -1))


def best_rank_risk(Delta, r: int, SigmaHalf=None):
    """``b_r = sum_{i>r} sigma_i^2(Delta* Sigma^{1/2})``."""
    import torch

    M = Delta if SigmaHalf is None else Delta @ SigmaHalf
    s = torch.linalg.svdvals(M)
    return (s[..., r:] ** 2).sum(-1)


def first_order_bound(eta, b_r):
    """``2 eta/(1 - eta) b_r`` where ``eta < 1``; ``inf`` elsewhere (an upper bound)."""
    import torch

    eta = torch.as_tensor(eta, dtype=torch.float64)
    b_r = torch.as_tensor(b_r, dtype=torch.float64)
    out = 2 * eta / (1 - eta) * b_r
    return torch.where(eta < 1, out, torch.full_like(out, math.inf))


def second_order_bound(Delta, C, r: int) -> dict:
    """The explicit second-order bound of ``misalign_bounds`` (isotropic frame), its pieces.

    With ``m, M`` the extreme eigenvalues of ``C``, ``C0 = QCQ + Q_perp C Q_perp``,
    ``B0 = Delta* C0^{1/2}``, ``h = eps/(2 sqrt m)`` (bounds ``||C^{1/2} - C0^{1/2}||``),
    ``delta = sigma_r^2(Delta* Q C0^{1/2}) - sigma_1^2(Delta* Q_perp C0^{1/2})`` and
    ``s_i = sigma_i(Delta*)``::

        sin_F = 2 (2 ||B0|| + s_1 h) sqrt(r) s_1 h / delta          (Wedin, Yu-Wang-Samworth)
        K     = (||Delta*||_F h + sqrt(2) ||B0|| sin_F) / sqrt(m) + ||Delta* Q||_F sqrt(M) h / m
        beta_mis <= K^2 (1 + s_{r+1} / (s_r - K))     if delta > 0 and K < s_r.
    """
    import torch

    d = C.shape[-1]
    eye = torch.eye(d, dtype=C.dtype, device=C.device)
    Q = row_projector(Delta, r)
    Qp = eye - Q
    meas = measures(Delta, C, r)
    eps, m, M = meas["eps"], meas["lam_min"], meas["lam_max"]
    C0 = Q @ C @ Q + Qp @ C @ Qp
    C0h = sym_pow(C0, 0.5)
    B0 = Delta @ C0h
    s = torch.linalg.svdvals(Delta)
    head = torch.linalg.svdvals(Delta @ Q @ C0h)[..., r - 1]
    tail = torch.linalg.svdvals(Delta @ Qp @ C0h)[..., 0]
    delta = head ** 2 - tail ** 2
    h = eps / (2 * m.sqrt())
    b0 = torch.linalg.matrix_norm(B0, ord=2)
    s1 = s[..., 0]
    sin_f = 2 * (2 * b0 + s1 * h) * math.sqrt(r) * s1 * h / delta.clamp_min(0)
    fro = torch.linalg.matrix_norm(Delta)
    K = (fro * h + math.sqrt(2) * b0 * sin_f) / m.sqrt() \
        + torch.linalg.matrix_norm(Delta @ Q) * M.sqrt() * h / m
    s_r = s[..., r - 1]
    s_r1 = s[..., r] if s.shape[-1] > r else torch.zeros_like(s_r)
    room = (s_r - K).clamp_min(0)
    with torch.no_grad():
        valid = (delta > 0) & (room > 0)
    bound = torch.where(valid, K ** 2 * (1 + s_r1 / torch.where(valid, room, torch.ones_like(room))),
                        torch.full_like(K, math.inf))
    return {"bound": bound, "K": K, "delta": delta, "eps": eps, "eta": meas["eta"],
            "lam_min": m, "lam_max": M, "valid": valid}


# ----------------------------------------------------------------------- 2 x 2 closed form


def leading_coefficient_2x2(a, b, c1, c2):
    """``c`` in ``beta_mis = c eps^2 + O(eps^4)`` for ``Delta* = diag(a, b)``, ``C = [[c1, eps],
    [eps, c2]]``, ``r = 1``, ``a^2 c1 > b^2 c2`` (derived in ``misalign_exact``)."""
    return a ** 2 * b ** 2 * (a ** 2 - b ** 2) / (a ** 2 * c1 - b ** 2 * c2) ** 2


def exact_bias_2x2(a, b, c1, c2, e):
    """Closed form of ``beta_mis`` in the ``2 x 2`` case (mpmath or floats; ``misalign_exact``)."""
    sq = mp.sqrt if isinstance(a, mp.mpf) else math.sqrt
    tr = a ** 2 * c1 + b ** 2 * c2
    det = a ** 2 * b ** 2 * (c1 * c2 - e ** 2)
    lam = (tr + sq(tr ** 2 - 4 * det)) / 2
    num, den = _bias_2x2_num_den(a, b, c1, c2, e, lam)
    return b ** 2 * e ** 2 * num / den ** 2


def _bias_2x2_num_den(a, b, c1, c2, e, lam):
    num = (a**2*b**6*c1**2*c2**2 - 2*a**2*b**6*c1*c2*e**2 + a**2*b**6*e**4
           - 2*a**2*b**4*c1**2*c2*lam + 2*a**2*b**4*c1*e**2*lam + a**2*b**2*c1**2*lam**2
           + a**2*b**2*e**2*lam**2 - 2*b**6*c1*c2**2*lam + 2*b**6*c2*e**2*lam
           + 4*b**4*c1*c2*lam**2 + b**4*c2**2*lam**2 - 3*b**4*e**2*lam**2
           - 2*b**2*c1*lam**3 - 2*b**2*c2*lam**3 + lam**4)
    den = b**4*c1*c2**2 - b**4*c2*e**2 - 2*b**2*c1*c2*lam + 2*b**2*e**2*lam + c1*lam**2
    return num, den


# ------------------------------------------------------------------------- high precision


def mp_bias(Delta, C, r: int, SigmaHalf=None):
    """``beta_mis(C)`` in mpmath (call inside ``mp.workdps``)."""
    be = MpBackend()
    A = be.trunc_svd(Delta * be.sym_pow(C, mp.mpf(1) / 2), r) * be.sym_pow(C, -mp.mpf(1) / 2)
    S = SigmaHalf if SigmaHalf is not None else mp.eye(C.rows)
    risk_a = be.frob2((A - Delta) * S)
    sv = be.svd(Delta * S)[1]
    return risk_a - mp.fsum(x ** 2 for x in sv[r:])


def point_summary(p, dps: int = 50) -> dict:
    """Exact bias (mpmath, ``dps`` digits), measures and bounds at a parameter point with a
    fitting covariance (``p.has_fit_cov``; isotropic population)."""
    import torch

    from .instances import mp_instance, torch_instance

    with mp.workdps(dps):
        inst = mp_instance(p)
        beta = mp_bias(inst["Delta"], inst["C"], p.r)
        sv = MpBackend().svd(inst["Delta"])[1]
        b_r = mp.fsum(x ** 2 for x in sv[p.r:])
        beta_f, b_r_f = float(beta), float(b_r)
    ti = torch_instance(p, "cpu")
    so = second_order_bound(ti["Delta"], ti["C"], p.r)
    eta = float(so["eta"])
    out = {"beta_mis": beta_f, "b_r": b_r_f, "risk_A_C": beta_f + b_r_f,
           "eps": float(so["eps"]), "eta": eta, "lam_min": float(so["lam_min"]),
           "lam_max": float(so["lam_max"]), "delta_gap": float(so["delta"]),
           "kappa_bound": (float(so["lam_max"] / so["lam_min"]) - 1) * b_r_f,
           "first_order_bound": float(first_order_bound(eta, b_r_f)),
           "second_order_K": float(so["K"]), "second_order_bound": float(so["bound"])}
    if p.d == 2 and p.k == 2 and p.r == 1 and len(p.shift_sv) == 2:
        a, b = sorted(p.shift_sv, reverse=True)
        eigs = p.fit
        if p.cov_angle == 0 and a ** 2 * eigs[0] > b ** 2 * eigs[1]:
            c = leading_coefficient_2x2(a, b, eigs[0], eigs[1])
            out["leading_coefficient"] = c
            out["leading_order_c_eps2"] = c * p.coupling ** 2
    for key in ("first_order_bound", "second_order_bound"):
        v = out[key]
        out[key.replace("bound", "ratio")] = beta_f / v if math.isfinite(v) and v > 0 else 0.0
    return out


# ------------------------------------------------------------------------------ simulation


def test_loss_samples(p, trials: int, gen, device="cpu", test_size: int = 256):
    """Held-out-loss Monte Carlo of ``beta_mis(C)``: mean equals the exact bias.

    The noise-free LoRA estimator (``estimators.lora_over``: eigendecomposition and SVD, a code
    path independent of :func:`lora_target`) is trained on a design ``X`` with ``X X^T = d C``
    (Cholesky factor) and labels ``Delta* X``; the best rank-``r`` predictor is ``P_r(Delta*)``.
    Each sample is the difference of their mean losses on a fresh test set of ``test_size``
    pairs ``(x, y)``, ``x ~ N(0, I)``, ``y - W0 x = Delta* x + noise``: its mean is
    ``R(A_C) - b_r`` (the difference is ``O(eps)`` per pair but has mean ``O(eps^2)``, hence
    the test sets).
    """
    import torch

    from .device import randn

    Delta, A, Astar = _trained_fit(p, device)
    out = []
    chunk = max(1, 2 ** 20 // (test_size * max(p.d, p.k)))
    for start in range(0, trials, chunk):
        b = min(chunk, trials - start)
        x = randn((b, test_size, p.d), gen, device)
        e = randn((b, test_size, p.k), gen, device) * p.sigma
        y = x @ Delta.T + e
        la = ((y - x @ A.T) ** 2).sum(-1)
        ls = ((y - x @ Astar.T) ** 2).sum(-1)
        out.append((la - ls).mean(-1))
    return torch.cat(out)


def _trained_fit(p, device="cpu"):
    """``(Delta*, A, P_r(Delta*))``: the noise-free LoRA estimator (``estimators.lora_over``)
    trained on the design ``X = chol(d C)`` (so ``X X^T = d C``) with labels ``Delta* X``."""
    import torch

    from .instances import torch_instance

    inst = torch_instance(p, device)
    Delta, C = inst["Delta"], inst["C"]
    X = torch.linalg.cholesky(p.d * C)
    A = estimators.lora_over(X[None], (Delta @ X)[None], p.r)[0]
    return Delta, A, estimators.truncate(Delta, p.r)


def trained_bias(p, device="cpu") -> float:
    """The exact mean of :func:`test_loss_samples`, without Monte Carlo: the trained estimator's
    excess risk minus the best rank-``r`` risk, ``||A - Delta*||_F^2 - ||P_r(Delta*) - Delta*||_F^2``
    (``Sigma = I``), in float64.  The estimator is deterministic (noise-free labels on a fixed
    design), so this is its risk exactly; the held-out Monte Carlo only re-derives the
    definition of the risk.  (``estimators.excess_risk``, not the formula's mpmath route.)"""
    import torch

    Delta, A, Astar = _trained_fit(p, device)
    eye = torch.eye(p.d, dtype=Delta.dtype, device=Delta.device)
    return float(estimators.excess_risk(A, Delta, eye) - estimators.excess_risk(Astar, Delta, eye))


def sample_cov_measures(p, n: int, trials: int, gen, device="cpu") -> dict:
    """``eps``, ``eta`` of the whitened sample covariance and the noise-free LoRA estimator's
    misalignment bias ``beta_mis(Sigma_hat)`` (via ``estimators.lora_over`` with ``E = 0``)."""
    import torch

    from .instances import draw_torch, torch_instance

    pp = p if p.n == n else __import__("dataclasses").replace(p, n=n)
    inst = torch_instance(pp, device)
    X = draw_torch(("X",), inst, trials, gen, device)["X"]
    Sih = sym_pow(inst["Sigma"], -0.5)
    Dw = inst["Delta"] @ inst["SigmaHalf"]                      # whitened shift
    Cw = Sih @ (X @ _t(X) / n) @ Sih                            # whitened sample covariance
    meas = measures(Dw.expand(trials, *Dw.shape), Cw, p.r)
    A = estimators.lora_over(X, inst["Delta"] @ X, p.r)
    beta = estimators.excess_risk(A, inst["Delta"], inst["SigmaHalf"]) \
        - best_rank_risk(inst["Delta"], p.r, inst["SigmaHalf"])
    return {"eps": meas["eps"], "eta": meas["eta"], "beta": beta, "Cw": Cw, "Dw": Dw}


# --------------------------------------------------------------------- underdetermined cross


def under_pieces(X, E, Delta, SigmaHalf, r: int) -> dict:
    """Split of the underdetermined LoRA risk (``n < d``), batched (THEORY 4.1 and 5).

    ``Delta_L - Delta* = D X^+ - Delta* (I - P)`` with ``D = P_r(Delta* X + E) - Delta* X``;
    ``R = ||D X^+ Sigma^{1/2}||^2 + ||Delta*(I - P) Sigma^{1/2}||^2 + cross`` with
    ``cross = -2 tr(D^T Delta* (I - P) Sigma P X^{+T})``, zero when ``Sigma = I``.
    """
    import torch

    Sigma = SigmaHalf @ SigmaHalf
    Xp = torch.linalg.pinv(X)                                   # n x d
    P = X @ Xp
    eye = torch.eye(X.shape[-2], dtype=X.dtype, device=X.device)
    M = Delta @ X
    D = estimators.truncate(M + E, r) - M
    var = risk(D @ Xp, torch.zeros_like(D @ Xp), SigmaHalf)
    bias = risk(Delta @ (eye - P), torch.zeros_like(Delta @ P), SigmaHalf)
    W = Delta @ (eye - P) @ Sigma @ P @ _t(Xp)
    cross = -2 * (D * W).sum(dim=(-2, -1))
    mis = torch.linalg.matrix_norm((eye - P) @ Sigma @ P, ord=2)
    bound = 2 * torch.linalg.matrix_norm(D) * torch.linalg.matrix_norm(Delta @ (eye - P)) \
        * mis * torch.linalg.matrix_norm(Xp, ord=2)
    return {"variance": var, "bias": bias, "cross": cross, "data_misalignment": mis,
            "cross_bound": bound}
