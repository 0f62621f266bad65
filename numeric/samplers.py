"""Exact-in-distribution samplers of FFT's and LoRA's excess risks from sufficient statistics.

The end-to-end simulation of fine-tuning (``numeric.estimators.simulate_risk``) draws the raw
data ``X`` (``d x n``) and ``E`` (``k x n``), fits and measures: its cost grows with the larger
dimension.  For the Gaussian design the risks of both estimators depend on the data only through
a few small statistics whose joint law is known exactly, so they can be drawn directly:

**Overdetermined, any Sigma** (``n >= d``).  Let ``W = Sigma^{-1/2} S Sigma^{-1/2} ~
Wishart_d(I, n)`` and ``L`` its Cholesky factor, ``T = Sigma^{1/2} L`` (so ``T T^T = S``).  Given
``X``, the rows of ``E X^T`` are ``N(0, sigma^2 S)``, so ``G = E X^T T^{-T}`` has i.i.d.
``N(0, sigma^2)`` entries and is independent of ``X`` (THEORY 4.1, with the triangular square
root ``T`` instead of ``S^{1/2}``).  ``L`` has Bartlett's law (Bartlett 1933; Muirhead 1982,
Thm 3.2.14): independent entries, ``L_ii^2 ~ chi^2_{n - i + 1}``, ``L_ij ~ N(0, 1)`` below the
diagonal.  With ``B = Delta* Sigma^{1/2}`` and ``A = B L + G``:

* OLS: ``Delta_F - Delta* = G T^{-1}``, so ``R(Delta_F) = ||G L^{-1}||_F^2``;
* LoRA: the loss is ``||(Delta - Delta_F) T||_F^2 + const``, so ``Delta_L = P_r(A) T^{-1}`` and
  ``R(Delta_L) = ||P_r(A) L^{-1} - B||_F^2``.

Cost ``O(k d^2 + d^3)`` per data set, independent of ``n`` (no ``X``, no ``E``).

**Overdetermined, reduced to ``k x k`` (``s >= 1``, ``k <= d - s``).**  With ``N = G L^{-1}``
(rows ``N(0, sigma^2 W^{-1})`` given ``W``) the risks are ``||N||_F^2`` and ``||B||_F^2 +
sum_{i<=r} u_i^T (N N^T - B B^T) u_i``, ``u_i`` the eigenvectors of ``A A^T = (B + N) W (B +
N)^T`` (descending): functions of ``(W, N)`` only, and invariant under ``(W, N, B) -> (O^T W O,
N O, B O)``, which keeps the law of ``(W, N)``.  Take ``O`` with ``B O = [Bs, 0]`` (``Bs = U_B
diag(s_B)``, ``k x s``) and split the Bartlett factor of ``O^T W O`` and ``G = N L`` after the
first ``s`` coordinates: ``L = [[L11, 0], [L21, L22]]``, ``G = [G1, G2]``.  Then ``N = [(G1 - J)
L11^{-1}, H]`` with ``H = G2 L22^{-1}``, ``J = H L21``, and ``A = [Bs L11 + G1, G2]``, so

* ``R(Delta_F) = ||N1||_F^2 + tr Q``, ``N1 = (G1 - J) L11^{-1}``;
* ``A A^T = (Bs L11 + G1)(Bs L11 + G1)^T + P`` and ``N N^T - B B^T = N1 N1^T + Q - Bs Bs^T``,

with ``P = G2 G2^T``, ``Q = H H^T`` (``k x k``; the code carries ``P`` and a factor ``H`` of
``Q``: ``tr Q = ||H||^2``, ``u^T Q u = ||H^T u||^2``).  Their joint law: ``L11`` is Bartlett
(``chi^2_{n - i + 1}``, ``i <= s``), ``G1`` i.i.d. ``N(0, sigma^2)``; ``J | (P, Q)`` has
i.i.d. columns ``N(0, Q)``, so ``J = C Z`` for any ``C C^T = Q`` and ``Z`` i.i.d. ``N(0, 1)``;
and ``(P, Q) = sigma^2 (Lp Lp^T, Lp Y^{-1} Lp^T)`` in law, with ``Lp Lp^T ~ Wishart_k(I, d -
s)`` and ``Y ~ Wishart_k(I, n - d + k)`` independent.  (Write ``G2^T = sigma Q1 R1`` (QR) and
complete ``Q1`` to an orthogonal ``O2``: ``Q = sigma^2 R1^T [(O2^T V O2)^{-1}]_{11} R1`` with
``V = L22 L22^T ~ Wishart_{d-s}(I, n - s)`` independent of ``G2`` and rotation invariant, and the
inverse's leading block is the inverse of the Schur complement, ``Wishart_k(I, n - s - (d - s -
k))`` (Muirhead 1982, Thm 3.2.10); ``R1`` may be replaced by any ``C`` with ``C^T C = R1^T R1``
because ``Y`` is rotation invariant and independent.)  All ``k x k``: cost ``O(k^3)`` per data
set, independent of ``n`` and ``d`` -- one ``eigh`` of ``A A^T`` dominates.  ``fast_setup``
chooses it where it applies (``form="auto"``); ``form="full"`` keeps the ``d x d`` sampler.

**Underdetermined, Sigma = I** (``n < d``).  With ``Delta* = U diag(s) V^T`` of rank ``s``, only
``Z1 = V^T X`` (``s x n``, i.i.d. ``N(0, 1)``) and ``K = X^T X = Z1^T Z1 + W`` enter, where
``W = X^T (I - V V^T) X ~ Wishart_n(I, d - s)`` is independent of ``Z1`` (Bartlett again when
``d - s >= n``).  With ``K = C C^T`` (Cholesky), ``R = U diag(s) Z1 + E``, ``Rt = R C^{-T}`` and
``Dt = U diag(s) Z1 C^{-T}``:

* ``R(Delta_F) = ||E C^{-T}||_F^2 + ||Delta*||_F^2 - ||Dt||_F^2`` (noise part plus the bias
  ``||Delta*(I - P)||_F^2``);
* ``R(Delta_L) = ||U_r U_r^T Rt - Dt||_F^2 + ||Delta*||_F^2 - ||Dt||_F^2`` (``U_r``: top-``r``
  left singular vectors of ``R``), since ``||A X^+ - Delta*||^2 = tr(A K^{-1} A^T) - 2 tr(A
  K^{-1} (Delta* X)^T) + ||Delta*||^2``.

Cost ``O(k n^2 + n^3)`` per data set, independent of ``d``.

**Underdetermined, reduced to ``m x m``, ``m = s + k`` (``Sigma = I``, ``s + k <= n <= d - s``).**
With ``Phi0 = [Z1; E / sigma]`` (``m x n``, i.i.d. ``N(0, 1)``) the risks are functions of
``Phi0 Phi0^T`` and ``Phi0 K^{-1} Phi0^T``.  Write ``Phi0^T = Q R0`` (QR) and complete ``Q`` to an
orthogonal ``O``: ``O^T Z1^T Z1 O`` lives in the leading ``m x m`` block (``Rs Rs^T``, ``Rs`` the
first ``s`` columns of ``R0``) and ``O^T W O ~ Wishart_n(I, d - s)`` is independent of ``Phi0``,
so ``Q^T K^{-1} Q = T^{-1}`` with ``T = Rs Rs^T + Y`` and ``Y`` the Schur complement of the
trailing block, ``Wishart_m(I, d - n + k)`` (Muirhead 1982, Thm 3.2.10; nonsingular as ``n <= d
- s``); ``R0^T`` is Bartlett (``Wishart_m(I, n)``), independent of ``Q`` and ``Y``.  Then
``Phi0 K^{-1} Phi0^T = M0^T M0`` with ``M0 = C_t^{-1} R0 = [Mz, Me]`` (``T = C_t C_t^T``), ``R R^T
= Ar^T Ar`` with ``Ar = Rs (U diag(s))^T + sigma R0[:, s:]``, and (``reduced_under_risks``)

* ``R(Delta_F) = sigma^2 ||Me||^2 + ||Delta*||^2 - ||Mz (U diag(s))^T||^2``;
* ``R(Delta_L) = ||Delta*||^2 + sum_{i<=r} (sigma^2 ||Me u_i||^2 - ||Mz (U diag(s))^T u_i||^2)``,
  ``u_i`` the eigenvectors of ``Ar^T Ar`` (descending).

Cost ``O(m^3 + k^3)`` per data set, independent of ``d`` and without the ``n x n`` factor.

**Underdetermined, general Sigma: keeps the raw path.**  With ``X = Sigma^{1/2} Z`` the risk
needs ``Z^T Sigma Z``, ``Z^T Sigma^2 Z`` and ``Delta* Sigma^{1/2} Z`` jointly: quadratic forms of
the same Gaussian in different matrices, which no fixed-size statistic captures for a generic
spectrum.  A spectrum with ``m`` distinct levels would reduce to ``m`` independent Wishart
blocks plus the shift's row space (cost ``O(m n^3)``); the project's general-Sigma instances have
``d`` distinct eigenvalues, so there is nothing to gain and ``fft_under_general`` simulates raw.

All ranks at once: with ``F = A Phi`` (``Phi = L^{-1}`` over, ``C^{-T}`` under) and target
``T`` (``B`` over, ``Dt`` under), ``||P_r(A) Phi - T||^2 = ||T||^2 + sum_{i<=r} t_i`` is a
cumulative sum over the eigenpairs of the *small* Gram matrix of ``A`` (``k x k`` or ``m x m``,
whichever is smaller): one ``eigh`` instead of a batched SVD (an order of magnitude slower on
CPUs).  ``truncation_risks`` below.

Random numbers: normals from the CPU ``torch.Generator`` (``numeric.device``), the ``chi^2``
diagonal from numpy seeded by one draw of that generator; everything then runs in float64 torch
on the device (CPU and CUDA share every line).  The samplers are certified against the raw path
(``raw_risks``) by ``tests/numeric/test_samplers.py`` (the same risks, draw by draw, when the
statistics are computed from raw data -- for the reduced form, ``stats_from_data`` rotates and
splits exactly as above; and a two-sample test with wrong-degrees-of-freedom negative controls,
the Schur block's among them) and in the audit (derivations ``mc_samplers_*``).
"""
from __future__ import annotations

import numpy as np


def _t(a):
    return a.transpose(-1, -2)


# ------------------------------------------------------------------------------ the laws
def chunk_rng(gen) -> np.random.Generator:
    """A numpy generator seeded by one draw of the CPU ``torch.Generator`` ``gen``: the fast
    samplers' normals and ``chi^2`` draws (torch's gamma sampler takes no generator) come from
    it, so the same torch seed gives the same statistics on every device."""
    import torch

    return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=gen)))


def _normal(rng, shape, device, scale=1.0):
    import torch

    z = rng.standard_normal(shape)
    if scale != 1.0:
        z *= scale
    return torch.from_numpy(z).to(device)


def bartlett(batch: int, p: int, dof: float, rng, device):
    """Lower-triangular ``L`` (``batch, p, p``) with ``L L^T ~ Wishart_p(I, dof)``, ``dof > p - 1``:
    ``L_ii = sqrt(chi^2_{dof - i + 1})`` (``i = 1..p``), ``L_ij ~ N(0, 1)`` for ``i > j``."""
    import torch

    if dof <= p - 1:
        raise ValueError(f"Bartlett decomposition needs dof > p - 1, got dof = {dof}, p = {p}")
    L = np.zeros((batch, p, p))
    rows, cols = np.tril_indices(p, -1)
    L[:, rows, cols] = rng.standard_normal((batch, rows.size))
    diag = np.sqrt(rng.chisquare(dof - np.arange(p, dtype=float), size=(batch, p)))  # > 0
    np.einsum("bii->bi", L)[...] = diag                     # a writable view of the diagonals
    return torch.from_numpy(L).to(device)


# ---------------------------------------------------------------------- all-rank truncation
def truncation_risks(A, F, T, phi_t, const=0.0):
    """``||P_r(A) Phi - T||_F^2`` for every ``r = 1..min(rows, cols)`` of ``A``, as ``(B, q)``.

    ``F = A Phi``; ``phi_t(V)`` applies ``Phi^T`` to the columns of ``V``.  Left form (``U_r``
    from ``A A^T`` when ``A`` has no more rows than columns): ``P_r(A) Phi = U_r U_r^T F``, so the
    terms are ``||u_i^T F||^2 - 2 u_i^T T F^T u_i``.  Right form (``V_r`` from ``A^T A``):
    ``P_r(A) Phi = sum_i (A v_i)(Phi^T v_i)^T`` with orthogonal ``A v_i`` of squared length
    ``lambda_i``, so the terms are ``lambda_i ||Phi^T v_i||^2 - 2 (A v_i)^T T Phi^T v_i``.
    """
    import torch

    rows, cols = A.shape[-2], A.shape[-1]
    base = (T * T).sum(dim=(-2, -1)) + const
    if rows <= cols:
        _, u = torch.linalg.eigh(A @ _t(A))
        u = u.flip(-1)
        Y = _t(u) @ F
        terms = (Y * Y).sum(-1) - 2 * ((_t(u) @ T) * Y).sum(-1)
    else:
        lam, v = torch.linalg.eigh(_t(A) @ A)
        lam, v = lam.flip(-1), v.flip(-1)
        w = phi_t(v)                                     # columns Phi^T v_i
        av = A @ v                                       # columns A v_i
        terms = lam.clamp_min(0) * (w * w).sum(-2) - 2 * (av * (T @ w)).sum(-2)
    return base.unsqueeze(-1) + torch.cumsum(terms, dim=-1)


# --------------------------------------------------------------------------- statistics
def fast_setup(inst: dict, regime: str, form: str = "auto") -> dict:
    """The fixed part of a fast sampler: ``B = Delta* Sigma^{1/2}`` (over) or the shift's left
    factor ``U diag(s)`` (under, ``Sigma = I`` required).

    ``form`` (over only): ``"full"`` (the Bartlett factor ``L`` and ``G``), ``"reduced"`` (the
    ``k x k`` statistics of the module docstring; needs ``k <= d - s``) or ``"auto"`` (reduced
    where it applies)."""
    import torch

    Delta = inst["Delta"]
    if regime == "over":
        if form not in ("auto", "full", "reduced"):
            raise ValueError(f"unknown form {form!r}: auto, full or reduced")
        B = Delta @ inst["SigmaHalf"]
        k, d = Delta.shape
        setup = {"regime": "over", "form": "full", "B": B, "k": k, "d": d, "n": inst["n"],
                 "sigma": float(inst["sigma"])}
        if form == "full" or (form == "auto" and k >= d):     # k >= d: never reduced (no SVD)
            return setup
        u, s, vh = torch.linalg.svd(B, full_matrices=True)
        rank = _rank(s)
        fits = rank >= 1 and k <= d - rank
        if form == "reduced" and not fits:
            raise ValueError(f"the reduced overdetermined sampler needs 1 <= s and k <= d - s "
                             f"(rank s = {rank}, k = {k}, d = {d})")
        if form == "reduced" or (form == "auto" and fits):
            # rotate the shift's row space onto the first s coordinates: B O = [Bs, 0]
            setup.update(form="reduced", s=rank, Bs=u[:, :rank] * s[:rank], O=_t(vh),
                         fnorm2=float((s * s).sum()))
        return setup
    if regime != "under":
        raise ValueError(f"unknown regime {regime!r}")
    if form not in ("auto", "full", "reduced"):
        raise ValueError(f"unknown form {form!r}: auto, full or reduced")
    eye = torch.eye(Delta.shape[1], dtype=Delta.dtype, device=Delta.device)
    if not torch.equal(inst["SigmaHalf"], eye):
        raise ValueError("the underdetermined fast sampler needs Sigma = I (module docstring: "
                         "general Sigma keeps the raw path)")
    u, s, vh = torch.linalg.svd(Delta, full_matrices=False)
    rank = max(_rank(s), 1)              # a zero shift still gets one (zero) direction
    k, d, n = Delta.shape[0], Delta.shape[1], inst["n"]
    fits = rank + k <= n <= d - rank
    if form == "reduced" and not fits:
        raise ValueError(f"the reduced underdetermined sampler needs s + k <= n <= d - s "
                         f"(rank s = {rank}, k = {k}, n = {n}, d = {d})")
    return {"regime": "under", "form": "reduced" if form != "full" and fits else "full",
            "Ud": u[:, :rank] * s[:rank], "V": _t(vh[:rank]),
            "fnorm2": float((s * s).sum()), "k": k, "d": d, "n": n, "s": rank,
            "sigma": float(inst["sigma"])}


def _rank(s) -> int:
    """Numerical rank of singular values ``s`` (relative threshold ``1e-12``; 0 for a zero
    shift)."""
    return int((s > s.max() * 1e-12).sum()) if float(s.max()) > 0 else 0


def draw_stats(setup: dict, batch: int, gen, device, dof_shift: int = 0,
               schur_dof: int | None = None) -> dict:
    """Draw the sufficient statistics of ``batch`` data sets.  ``dof_shift`` replaces ``n`` by
    ``n + dof_shift`` in the Wishart degrees of freedom (over; under: ``d - s`` by ``d - s +
    dof_shift``) and ``schur_dof`` sets the reduced sampler's Schur-complement degrees of freedom
    (``n - d + k``) -- only for the negative controls (a wrong sampler must be rejected)."""
    import torch

    k, d, n, sig = setup["k"], setup["d"], setup["n"], setup["sigma"]
    rng = chunk_rng(gen)
    if setup["regime"] == "over" and setup["form"] == "reduced":
        s = setup["s"]
        n_ = n + dof_shift
        L11 = bartlett(batch, s, n_, rng, device)
        G1 = _normal(rng, (batch, k, s), device, sig)
        Lp = bartlett(batch, k, d - s, rng, device)
        Ly = bartlett(batch, k, n_ - d + k if schur_dof is None else schur_dof, rng, device)
        Z = _normal(rng, (batch, k, s), device)
        C = sig * torch.linalg.solve_triangular(_t(Ly), Lp, upper=True, left=False)  # Lp Ly^-T
        return {"L11": L11, "G1": G1, "P": (sig * sig) * (Lp @ _t(Lp)), "H": C, "J": C @ Z}
    if setup["regime"] == "under" and setup["form"] == "reduced":
        s = setup["s"]
        m = s + k
        R0 = _t(bartlett(batch, m, n, rng, device))              # Phi0^T = Q R0, upper
        Ly = bartlett(batch, m, d - n + k + dof_shift if schur_dof is None else schur_dof,
                      rng, device)
        Rs = R0[..., :s]
        return {"R0": R0, "T": Rs @ _t(Rs) + Ly @ _t(Ly)}
    if schur_dof is not None:
        raise ValueError("schur_dof applies to the reduced samplers only")
    if setup["regime"] == "over":
        L = bartlett(batch, d, n + dof_shift, rng, device)
        G = _normal(rng, (batch, k, d), device, sig)
        return {"L": L, "G": G}
    s = setup["s"]
    Z1 = _normal(rng, (batch, s, n), device)
    E = _normal(rng, (batch, k, n), device, sig)
    m = d - s + dof_shift
    if m >= n:
        Lw = bartlett(batch, n, m, rng, device)
        W = Lw @ _t(Lw)
    else:                                 # singular Wishart: d - s < n, draw its Gaussian factor
        Y = _normal(rng, (batch, m, n), device)
        W = _t(Y) @ Y
    return {"Z1": Z1, "K": _t(Z1) @ Z1 + W, "E": E}


def stats_from_data(setup: dict, inst: dict, X, E) -> dict:
    """The same statistics computed from raw data (certification: ``risks`` of these equal the
    raw estimators' risks draw by draw)."""
    import torch

    if setup["regime"] == "over":
        Sih = _inv(inst["SigmaHalf"])
        W = Sih @ X @ _t(X) @ Sih
        L = torch.linalg.cholesky(W)
        T = inst["SigmaHalf"] @ L
        G = _t(torch.linalg.solve(T, X @ _t(E)))          # E X^T T^{-T}
        if setup["form"] == "full":
            return {"L": L, "G": G}
        # rotated coordinates: W' = O^T W O, N' = N O (N = G L^{-1}), G' = N' L'
        s, O = setup["s"], setup["O"]
        N = torch.linalg.solve_triangular(L, G, upper=False, left=False)
        Lr = torch.linalg.cholesky(_t(O) @ W @ O)
        Gr = N @ O @ Lr
        L11, L21, L22 = Lr[..., :s, :s], Lr[..., s:, :s], Lr[..., s:, s:]
        G1, G2 = Gr[..., :s], Gr[..., s:]
        H = torch.linalg.solve_triangular(L22, G2, upper=False, left=False)   # G2 L22^{-1}
        return {"L11": L11, "G1": G1, "P": G2 @ _t(G2), "H": H, "J": H @ L21}
    Z1 = _t(setup["V"]) @ X
    if setup["form"] == "reduced":
        # Phi0 = [Z1; E / sigma], Phi0^T = Q R0 (QR); T = (Q^T K^{-1} Q)^{-1}
        Q, R0 = torch.linalg.qr(_t(torch.cat([Z1, E / setup["sigma"]], dim=-2)))
        T = torch.linalg.inv(_t(Q) @ torch.linalg.solve(_t(X) @ X, Q))
        return {"R0": R0, "T": (T + _t(T)) / 2}
    return {"Z1": Z1, "K": _t(X) @ X, "E": E}


def _inv(M):
    import torch

    return torch.linalg.inv(M)


# -------------------------------------------------------------------------------- risks
def risks(setup: dict, stats: dict, lora: bool = True):
    """FFT risk ``(B,)`` and LoRA risk at every rank ``r = 1..q`` ``(B, q)`` from the statistics
    (``None`` for LoRA when ``lora`` is false: FFT alone needs no eigendecomposition)."""
    import torch

    if setup["regime"] == "over" and setup["form"] == "reduced":
        L11, G1 = stats["L11"], stats["G1"]
        N1 = torch.linalg.solve_triangular(L11, G1 - stats["J"], upper=False,
                                           left=False)                        # (G1 - J) L11^-1
        return reduced_risks(setup, L11, G1, stats["P"], stats["H"], N1, lora)
    if setup["regime"] == "over":
        L, G, Bm = stats["L"], stats["G"], setup["B"]
        GLi = torch.linalg.solve_triangular(L, G, upper=False, left=False)     # G L^{-1}
        fft = (GLi * GLi).sum(dim=(-2, -1))
        if not lora:
            return fft, None
        A = Bm @ L + G
        F = Bm + GLi                                                          # A L^{-1}
        lora = truncation_risks(
            A, F, Bm.expand_as(F),
            lambda v: torch.linalg.solve_triangular(_t(L), v, upper=True))    # L^{-T} v
        return fft, lora
    if setup["form"] == "reduced":
        fft, lora, _ = reduced_under_risks(setup, stats, lora)
        return fft, lora
    Z1, K, E, Ud = stats["Z1"], stats["K"], stats["E"], setup["Ud"]
    C = torch.linalg.cholesky(K)
    DX = Ud @ Z1
    R = DX + E
    rt = lambda M: torch.linalg.solve_triangular(_t(C), M, upper=True, left=False)  # M C^{-T}
    Rt, Dt = rt(R), rt(DX)
    Et = Rt - Dt
    bias = setup["fnorm2"] - (Dt * Dt).sum(dim=(-2, -1))
    fft = (Et * Et).sum(dim=(-2, -1)) + bias
    if not lora:
        return fft, None
    lora = truncation_risks(R, Rt, Dt,
                            lambda v: torch.linalg.solve_triangular(C, v, upper=False),  # C^{-1} v
                            const=bias)
    return fft, lora


def reduced_risks(setup: dict, L11, G1, P, H, N1, lora: bool = True):
    """The reduced overdetermined form (module docstring) given ``N1 = (G1 - J) L11^{-1}`` and a
    factor ``H`` of ``Q = H H^T`` (``k x (d - s)`` from data, ``k x k`` drawn): ``R(Delta_F) =
    ||N1||^2 + ||H||^2`` and ``R(Delta_L) = ||B||^2 + sum_{i<=r} (||N1^T u_i||^2 + ||H^T u_i||^2
    - ||Bs^T u_i||^2)`` with ``u_i`` the eigenvectors of ``(Bs L11 + G1)(Bs L11 + G1)^T + P``."""
    import torch

    Bs = setup["Bs"]
    fft = (N1 * N1).sum(dim=(-2, -1)) + (H * H).sum(dim=(-2, -1))
    if not lora:
        return fft, None
    Af = Bs @ L11 + G1
    _, u = torch.linalg.eigh(Af @ _t(Af) + P)                                 # A A^T
    u = u.flip(-1)                                                            # descending
    sq = lambda M: ((_t(M) @ u) ** 2).sum(-2)                   # noqa: E731  ||M^T u_i||^2
    terms = sq(N1) + sq(H) - sq(Bs)                              # u_i^T (N N^T - B B^T) u_i
    return fft, setup["fnorm2"] + torch.cumsum(terms, dim=-1)


def reduced_under_risks(setup: dict, stats: dict, lora: bool = True):
    """The reduced underdetermined form (module docstring): with ``T = C_t C_t^T`` (Cholesky),
    ``M0 = C_t^{-1} R0 = [Mz, Me]`` (after the first ``s`` columns), ``MzU = Mz (U diag(s))^T``
    and ``Ar = R0 [(U diag(s))^T; sigma I]`` (so ``R R^T = Ar^T Ar``): ``R(Delta_F) = sigma^2
    ||Me||^2 + bias`` and ``R(Delta_L) = ||Delta*||^2 + sum_{i<=r} (sigma^2 ||Me u_i||^2 - ||MzU
    u_i||^2)``, ``u_i`` the eigenvectors of ``Ar^T Ar``; ``bias = ||Delta*||^2 - ||MzU||^2``.
    Returns FFT, LoRA (or ``None``) and the bias."""
    import torch

    s, sig, Ud = setup["s"], setup["sigma"], setup["Ud"]
    R0 = stats["R0"]
    M0 = torch.linalg.solve_triangular(torch.linalg.cholesky(stats["T"]), R0, upper=False)
    Mz, Me = M0[..., :s], M0[..., s:]
    MzU = Mz @ _t(Ud)
    bias = setup["fnorm2"] - (MzU * MzU).sum(dim=(-2, -1))
    fft = (sig * sig) * (Me * Me).sum(dim=(-2, -1)) + bias
    if not lora:
        return fft, None, bias
    Ar = R0[..., :s] @ _t(Ud) + sig * R0[..., s:]
    _, u = torch.linalg.eigh(_t(Ar) @ Ar)                                     # R R^T
    u = u.flip(-1)                                                            # descending
    terms = (sig * sig) * ((Me @ u) ** 2).sum(-2) - ((MzU @ u) ** 2).sum(-2)
    return fft, setup["fnorm2"] + torch.cumsum(terms, dim=-1), bias


# ---------------------------------------------------------------------------- simulation
def regime_of(params) -> str:
    from .sharp import _regime

    return _regime(params.d, params.n, None)


def has_fast_path(params) -> bool:
    """An exact fast sampler exists: overdetermined (any Sigma) or underdetermined with Sigma = I."""
    return regime_of(params) == "over" or params.isotropic


def reduced_applies(params) -> bool:
    """A reduced form applies: overdetermined with ``1 <= s`` and ``k <= d - s`` (``k x k``
    statistics), or underdetermined with ``Sigma = I`` and ``s + k <= n <= d - s`` (``(s + k) x
    (s + k)``); ``s`` the shift's rank.  Decided by ``fast_setup`` itself (one rule)."""
    from .instances import torch_instance

    return has_fast_path(params) and \
        fast_setup(torch_instance(params, "cpu"), regime_of(params))["form"] == "reduced"


def fast_chunk(params, setup: dict | None = None) -> int:
    """Data sets per draw of the fast sampler (a function of the dimensions only, so the numbers
    never depend on the machine): about 16 MB of float64 per block of statistics.  ``setup``:
    the sampler's (``fast_setup``), built from ``params`` when not given."""
    if setup is None:
        from .instances import torch_instance

        setup = fast_setup(torch_instance(params, "cpu"), regime_of(params))
    k = params.k
    if setup["form"] == "reduced":
        m = k if setup["regime"] == "over" else setup["s"] + k
        per = 6 * m * m + 3 * m * setup["s"] + 1
    else:
        m = params.d if setup["regime"] == "over" else params.n
        per = m * m + k * m + 1
    return int(max(1, min(20000, 2_000_000 // per)))


def raw_risks(inst: dict, X, R, ranks):
    """The reference: the raw estimators (``numeric.estimators``) fitted on raw data; FFT
    ``(B,)`` and LoRA at each of ``ranks`` ``(B, len(ranks))`` (``None`` for no ranks)."""
    import torch

    from . import estimators as est

    fft = est.excess_risk(est.fft(X, R), inst["Delta"], inst["SigmaHalf"])
    if not ranks:
        return fft, None
    lora = torch.stack([est.excess_risk(est.lora(X, R, r), inst["Delta"], inst["SigmaHalf"])
                        for r in ranks], dim=-1)
    return fft, lora


def simulate_ranks(params, trials: int, gen, device="cpu", *, path="auto", ranks=None,
                   dof_shift: int = 0, schur_dof: int | None = None,
                   chunk: int | None = None):
    """Excess risks of FFT ``(trials,)`` and of LoRA at ``ranks`` (default ``1..q``) ``(trials,
    len(ranks))`` on ``trials`` simulated data sets of the instance of ``params`` (``ranks=[0]``:
    FFT alone, LoRA ``None``).

    ``path``: ``"fast"`` (the exact sampler; an error where none exists), ``"raw"`` (raw ``X``,
    ``E`` and the estimators of ``numeric.estimators``: the reference) or ``"auto"`` (fast where
    it exists, raw otherwise).  Same seed, same path, same numbers."""
    import torch

    from .estimators import sample_data
    from .instances import torch_instance
    from .device import single_thread

    regime = regime_of(params)
    if path == "auto":
        path = "fast" if has_fast_path(params) else "raw"
    if path == "fast" and not has_fast_path(params):
        raise ValueError("no exact fast sampler for an underdetermined design with Sigma != I "
                         "(numeric.samplers docstring); use path='raw'")
    if path not in ("fast", "raw"):
        raise ValueError(f"unknown path {path!r}: fast, raw or auto")
    q = min(params.d, params.k, params.n)
    ranks = list(range(1, q + 1)) if ranks is None else [int(r) for r in ranks]
    if ranks == [0]:                      # FFT only
        pass
    elif any(not 1 <= r <= q for r in ranks):
        raise ValueError(f"LoRA ranks must lie in 1..{q}, got {ranks}")
    idx = torch.as_tensor([max(r - 1, 0) for r in ranks], dtype=torch.long)
    inst = torch_instance(params, device)
    setup = fast_setup(inst, regime) if path == "fast" else None
    chunk = chunk or (fast_chunk(params, setup) if path == "fast" else 2000)
    need_lora = ranks != [0]
    ffts, loras = [], []
    # one CPU thread: batched small matrices gain nothing from intra-op threads on a busy
    # machine (numeric.lora_train.single_thread), and the numbers then do not depend on it
    with torch.no_grad(), single_thread(device):
        for start in range(0, trials, chunk):
            b = min(chunk, trials - start)
            if path == "fast":
                f, lo = risks(setup, draw_stats(setup, b, gen, device, dof_shift, schur_dof),
                              need_lora)
            else:
                if dof_shift or schur_dof is not None:
                    raise ValueError("dof_shift and schur_dof apply to the fast sampler only")
                X, R = sample_data(inst, b, gen, device)
                f, lo = raw_risks(inst, X, R, ranks if need_lora else [])
            ffts.append(f)
            if need_lora:
                loras.append(lo if path == "raw" else lo[:, idx.to(lo.device)])
    return torch.cat(ffts), (torch.cat(loras) if need_lora else None)


def simulate(params, estimator: str, trials: int, gen, device="cpu", *, path="auto",
             dof_shift: int = 0, schur_dof: int | None = None, chunk: int | None = None):
    """Excess-risk samples ``(trials,)`` of ``estimator`` = ``"fft"`` or ``"lora"`` (rank
    ``params.r``); see ``simulate_ranks``."""
    if estimator not in ("fft", "lora"):
        raise ValueError(f"unknown estimator {estimator!r}: fft or lora")
    fft, lora = simulate_ranks(params, trials, gen, device, path=path,
                               ranks=[params.r] if estimator == "lora" else [0],
                               dof_shift=dof_shift, schur_dof=schur_dof, chunk=chunk)
    return fft if estimator == "fft" else lora[:, 0]
