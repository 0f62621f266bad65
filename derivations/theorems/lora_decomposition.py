"""THEORY 4.1 -- LoRA's excess risk decomposed, deterministically, in both regimes.

Overdetermined (``n > d``): with ``M = Delta* S^{1/2}``, ``G = E X^T S^{-1/2}`` and
``D = P_r(M + G) - M``,

    Delta_L - Delta* = D S^{-1/2},      R(Delta_L) = ||D S^{-1/2} Sigma^{1/2}||_F^2,

and given ``X`` the matrix ``X^T S^{-1/2}`` has orthonormal columns, so ``G`` has i.i.d.
``N(0, sigma^2)`` entries (independent of ``X``).  Underdetermined (``n < d``, ``Sigma = I``):
with ``M = Delta* X``, ``D = P_r(M + E) - M`` and ``P = X X^+``,

    Delta_L - Delta* = D X^+ - Delta*(I - P),   R(Delta_L) = ||D X^+||_F^2 + ||Delta*(I - P)||_F^2,

the second term being FFT's bias exactly, with mean ``(1 - n/d)||Delta*||_F^2``.

Every deterministic step is checked at 50 digits on random instances; the statement compares
the decomposition route (with ``G`` drawn i.i.d., independent of ``X``) against the estimator
implemented independently in ``numeric.estimators`` (two-sample Monte Carlo).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from numeric import estimators
from numeric.device import generator, randn
from numeric.instances import draw_torch, torch_instance
from numeric.params import make_params
from numeric.seeds import stable_seed
from numeric.stats import summarize
from symbolic.ops import Expect, Frob2, PInv, TruncSVD

from ..common import (Delta, DeltaF, E, Id, R, S, Sigma, SigmaHalf, X, d, half, hp_sizes, k,
                      msym, n, r, require, risk, sigma, sym)
from ..core import Control, Derivation, Justification, Statement, Step

ORDER = 40

DeltaL, P = sym("DeltaL"), sym("P")
G = sym("G")
M_over, D_over = msym("M", k, d), msym("D", k, d)
M_under, D_under = msym("M", k, n), msym("D", k, n)
Shalf, Sihalf = S ** half, S ** (-half)


def _batches(trials, fn):
    import torch

    return torch.cat([fn(min(4000, trials - s)) for s in range(0, trials, 4000)])


# ------------------------------------------------------------------------------ overdetermined
def validate_over(p):
    require(p.n > p.d, f"lora_decomp_over needs n > d (S invertible), got n = {p.n}, d = {p.d}")
    require(p.r <= min(p.d, p.k), f"r = {p.r} exceeds min(d, k) = {min(p.d, p.k)}")


def simulate_over(p, trials, gen, device):
    return estimators.simulate_risk(p, lambda X_, R_: estimators.lora(X_, R_, p.r),
                                    trials, gen, device)


def route_over(p, trials, gen, device, g_scale=1.0, with_sigma=True, rank_shift=0):
    """E ||D S^{-1/2} Sigma^{1/2}||^2 with G drawn i.i.d. N(0, sigma^2), independent of X."""
    import torch

    inst = torch_instance(p, device)
    metric = inst["SigmaHalf"] if with_sigma else inst["I_d"]

    def one(b):
        Xb = draw_torch(("X",), inst, b, gen, device)["X"]
        w, v = torch.linalg.eigh(Xb @ Xb.transpose(-1, -2))      # S^{1/2}, S^{-1/2}: one eigh
        Gb = g_scale * p.sigma * randn((b, p.k, p.d), gen, device)
        M = inst["Delta"] @ ((v * w.sqrt().unsqueeze(-2)) @ v.transpose(-1, -2))
        D = estimators.truncate(M + Gb, p.r + rank_shift) - M
        F = D @ ((v * w.rsqrt().unsqueeze(-2)) @ v.transpose(-1, -2)) @ metric
        return (F * F).sum(dim=(-2, -1))
    return _batches(trials, one)


@lru_cache(maxsize=64)
def _route_value(der_id, p, trials=40000):
    route = route_over if der_id == "lora_decomp_over" else route_under
    s = summarize(route(p, trials, generator(stable_seed(p.seed, der_id, "formula")), "cpu"))
    return s.mean, s.se, trials


_OVER = dict(d=4, k=3, n=12, r=2, sigma=0.8, shift_sv=(3.0, 1.5), cov_eigs=(3.0, 1.5, 1.0, 0.5))

steps_over = (
    Step("whitened-fit", R * X.T * Sihalf, "=", M_over + G,
         Justification("algebra", r"$R X^\top S^{-1/2} = \Delta^* X X^\top S^{-1/2} + E X^\top "
                       r"S^{-1/2} = \Delta^* S^{1/2} + G$"), ("hp",)),
    Step("error", DeltaL - Delta, "=", D_over * Sihalf,
         Justification("algebra", r"$\hat\Delta_L = P_r(M + G) S^{-1/2}$ (step \emph{whitened-fit}) "
                       r"and $\Delta^* = M S^{-1/2}$"), ("hp",)),
    Step("risk", risk(DeltaL), "=", Frob2(D_over * Sihalf * SigmaHalf),
         Justification("definition", r"excess risk of the error in step \emph{error}"), ("hp",)),
    Step("orthonormal", (X.T * Sihalf).T * (X.T * Sihalf), "=", Id,
         Justification("algebra", r"$S^{-1/2} X X^\top S^{-1/2} = I$: the $n\times d$ matrix "
                       r"$X^\top S^{-1/2}$ has orthonormal columns"), ("hp",)),
    Step("G-iid", Expect(Frob2(Delta * Delta.T * G * Sigma), E), "=",
         sigma ** 2 * Frob2(Delta * Delta.T) * Frob2(Sigma),
         Justification("expectation", r"given $X$, $G = E\,(X^\top S^{-1/2})$ is a linear image of "
                       r"the Gaussian $E$ through orthonormal columns, so "
                       r"$\operatorname{Cov}(\operatorname{vec} G) = \sigma^2 I$ and "
                       r"$\mathbb E\lVert U G V\rVert_F^2 = \sigma^2\lVert U\rVert_F^2\lVert V\rVert_F^2$ "
                       r"for fixed $U$, $V$; the law does not depend on $X$ (independence)"),
         ("mc",)),
)

DER_OVER = Derivation(
    id="lora_decomp_over",
    title=r"LoRA, overdetermined: deterministic risk decomposition (rank-$r$ error in the whitened problem)",
    regime="overdetermined",
    assumptions=(r"$n > d$ so that $S = X X^\top$ is invertible (almost surely)",
                 r"$\hat\Delta_L = P_r(R X^\top S^{-1/2}) S^{-1/2}$ (the global minimiser, "
                 r"\texttt{lora\_estimator\_over})",
                 r"$\varepsilon\sim\mathcal N(0, \sigma^2 I_k)$ independent of $x$"),
    definitions=(("S", X * X.T), ("R", Delta * X + E),
                 ("DeltaL", TruncSVD(R * X.T * Sihalf, r) * Sihalf),
                 ("M", Delta * Shalf), ("G", E * X.T * Sihalf),
                 ("D", TruncSVD(M_over + G, r) - M_over)),
    steps=steps_over,
    statement=Statement(Expect(risk(DeltaL), X, E), "=",
                        Expect(Frob2(D_over * Sihalf * SigmaHalf), X, G), "exact",
                        (r"$n > d$", r"on the right, $G$ is i.i.d.\ $\mathcal N(0,\sigma^2)$ and "
                         r"independent of $X$"), checks=("two_sample",)),
    controls=(
        Control("whitened-fit sign", r"step \emph{whitened-fit} as $M - G$", "whitened-fit",
                rhs=M_over - G),
        Control("error without S^{-1/2}", r"step \emph{error} with the factor $S^{-1/2}$ dropped",
                "error", rhs=D_over),
        Control("risk without Sigma", r"step \emph{risk} in the Euclidean metric", "risk",
                rhs=Frob2(D_over * Sihalf)),
        Control("G variance sigma", r"step \emph{G-iid} with $\sigma$ instead of $\sigma^2$", "G-iid",
                rhs=sigma * Frob2(Delta * Delta.T) * Frob2(Sigma)),
        Control("route without Sigma", r"statement with the risk metric $\Sigma^{1/2}$ dropped",
                "statement", formula=lambda p, t, g, dev: route_over(p, t, g, dev, with_sigma=False)),
        Control("route rank r+1", r"statement with $P_{r+1}$ in place of $P_r$", "statement",
                formula=lambda p, t, g, dev: route_over(p, t, g, dev, rank_shift=1)),
        Control("route noise sigma/2", r"statement with $G$ of standard deviation $\sigma/2$",
                "statement", formula=lambda p, t, g, dev: route_over(p, t, g, dev, g_scale=0.5)),
    ),
    validate=validate_over,
    formula=lambda p: _route_value("lora_decomp_over", p)[0],
    simulate=simulate_over,
    hp_params=lambda cfg: hp_sizes(cfg, _OVER),
    mc_params=lambda cfg: [make_params(**_OVER, seed=cfg.seed)],
    check_points=lambda cfg: [
        make_params(**_OVER, seed=cfg.seed),
        # n - d - 1 = 12: at n = 9 the risk's relative variance (0.95 per data set) needs 1.4
        # million draws per route to detect 0.5 %; at n = 16 (0.48) 0.68 million do
        make_params(d=3, k=5, n=16, r=1, sigma=1.3, shift_sv=(2.0,), cov_eigs=(4.0, 1.0, 0.25),
                    seed=cfg.seed + 1),
    ],
    summary=(r"LoRA's error is the rank-$r$ truncation error $D = P_r(M+G) - M$ of the whitened "
             r"problem, mapped back by $S^{-1/2}$; the whitened noise $G$ is i.i.d.\ Gaussian and "
             r"independent of the design."),
    references=("Eckart-Young; reduced-rank regression (Izenman 1975)",),
    extra={"route_samples": route_over,
           "no_closed_form": "the value is a Monte Carlo mean of the decomposition (the statement "
                             "is an identity between two expectations, checked by simulation)",
           "evaluate_details": lambda p: dict(zip(
               ("monte_carlo_mean", "monte_carlo_se", "monte_carlo_trials"),
               _route_value("lora_decomp_over", p)), note="value = Monte Carlo of the "
               "decomposition E||D S^{-1/2} Sigma^{1/2}||^2 with G i.i.d. (no closed form)")},
)


# ----------------------------------------------------------------------------- underdetermined
def validate_under(p):
    require(p.d > p.n + 1, f"lora_decomp_under needs d > n + 1, got d = {p.d}, n = {p.n}")
    require(p.isotropic, "lora_decomp_under needs Sigma = I (cov_eigs empty or all 1): for other "
                         "covariances a cross term appears (derivation misalign_cross_under)")


def simulate_under(p, trials, gen, device):
    return estimators.simulate_risk(p, lambda X_, R_: estimators.lora(X_, R_, p.r),
                                    trials, gen, device)


def route_under(p, trials, gen, device, bias_factor=None, rank_shift=0):
    """E ||D X^+||^2 + (1 - n/d) ||Delta*||^2 (the bias in expectation)."""
    import torch

    inst = torch_instance(p, device)
    bias = (1 - p.n / p.d) if bias_factor is None else bias_factor(p)
    fro2 = float((inst["Delta"] ** 2).sum())

    def one(b):
        dr = draw_torch(("X", "E"), inst, b, gen, device)
        M = inst["Delta"] @ dr["X"]
        D = estimators.truncate(M + dr["E"], p.r + rank_shift) - M
        F = D @ torch.linalg.pinv(dr["X"])
        return (F * F).sum(dim=(-2, -1)) + bias * fro2
    return _batches(trials, one)


_UNDER = dict(d=12, k=3, n=5, r=2, sigma=0.8, shift_sv=(3.0, 1.5))
Xp = PInv(X)
Id_n = sp.Identity(n)

steps_under = (
    Step("left-inverse", Xp * X, "=", Id_n,
         Justification("algebra", r"$X$ has full column rank $n$ almost surely, so $X^+ X = I_n$"),
         ("hp",)),
    Step("error", DeltaL - Delta, "=", D_under * Xp - Delta * (Id - P),
         Justification("algebra", r"$P_r(R) X^+ - \Delta^* = (P_r(M + E) - M) X^+ + "
                       r"\Delta^* X X^+ - \Delta^*$ with $M = \Delta^* X$"), ("hp",)),
    Step("pythagoras", Frob2(D_under * Xp - Delta * (Id - P)), "=",
         Frob2(D_under * Xp) + Frob2(Delta * (Id - P)),
         Justification("algebra", r"$X^+ (I - P) = 0$: the rows of $D X^+$ lie in the span of $X$, "
                       r"those of $\Delta^*(I - P)$ in its complement"), ("hp",)),
    Step("risk", risk(DeltaL), "=", Frob2(D_under * Xp) + Frob2(Delta * (Id - P)),
         Justification("definition", r"$\Sigma = I$: the excess risk is $\lVert\hat\Delta_L - "
                       r"\Delta^*\rVert_F^2$; steps \emph{error} and \emph{pythagoras}"), ("hp",)),
    Step("fft-same-bias", risk(DeltaF), "=", Frob2(E * Xp) + Frob2(Delta * (Id - P)),
         Justification("algebra", r"$\hat\Delta_F - \Delta^* = E X^+ - \Delta^*(I - P)$, same "
                       r"orthogonality: LoRA and FFT pay the \emph{same} bias"), ("hp",)),
    Step("bias-mean", Expect(Frob2(Delta * (Id - P)), X), "=", (1 - n / d) * Frob2(Delta),
         Justification("expectation", r"for $\Sigma = I$, $P$ is a uniformly random rank-$n$ "
                       r"projection: $\mathbb E P = (n/d) I$"), ("mc",)),
)

DER_UNDER = Derivation(
    id="lora_decomp_under",
    title=r"LoRA, underdetermined, isotropic: risk $=$ truncation error through $X^{+}$ plus FFT's bias",
    regime="underdetermined",
    assumptions=(r"$d > n + 1$, $\Sigma = I$",
                 r"$\hat\Delta_L = P_r(R) X^+$ (minimum-norm global minimiser, "
                 r"\texttt{lora\_estimator\_under})",
                 r"$\varepsilon\sim\mathcal N(0, \sigma^2 I_k)$ independent of $x$"),
    definitions=(("R", Delta * X + E), ("P", X * Xp), ("DeltaL", TruncSVD(R, r) * Xp),
                 ("DeltaF", R * Xp), ("M", Delta * X), ("D", TruncSVD(M_under + E, r) - M_under)),
    steps=steps_under,
    statement=Statement(Expect(risk(DeltaL), X, E), "=",
                        Expect(Frob2(D_under * Xp), X, E) + (1 - n / d) * Frob2(Delta), "exact",
                        (r"$d > n + 1$", r"$\Sigma = I$"), checks=("two_sample",)),
    controls=(
        Control("error sign", r"step \emph{error} with $+\Delta^*(I - P)$", "error",
                rhs=D_under * Xp + Delta * (Id - P)),
        Control("pythagoras without bias", r"step \emph{pythagoras} with the bias term dropped",
                "pythagoras", rhs=Frob2(D_under * Xp)),
        Control("risk without X^+", r"step \emph{risk} with $\lVert D\rVert_F^2$ for "
                r"$\lVert D X^+\rVert_F^2$", "risk", rhs=Frob2(D_under) + Frob2(Delta * (Id - P))),
        Control("bias n/d", r"step \emph{bias-mean} with $n/d$ for $1 - n/d$", "bias-mean",
                rhs=(n / d) * Frob2(Delta)),
        Control("route bias n/d", r"statement with bias $(n/d)\lVert\Delta^*\rVert_F^2$",
                "statement", formula=lambda p, t, g, dev: route_under(p, t, g, dev,
                                                                     bias_factor=lambda q: q.n / q.d)),
        Control("route rank r+1", r"statement with $P_{r+1}$ in place of $P_r$", "statement",
                formula=lambda p, t, g, dev: route_under(p, t, g, dev, rank_shift=1)),
    ),
    validate=validate_under,
    formula=lambda p: _route_value("lora_decomp_under", p)[0],
    simulate=simulate_under,
    hp_params=lambda cfg: hp_sizes(cfg, _UNDER),
    mc_params=lambda cfg: [make_params(**_UNDER, seed=cfg.seed)],
    check_points=lambda cfg: [
        make_params(**_UNDER, seed=cfg.seed),
        make_params(d=9, k=6, n=4, r=1, sigma=1.2, shift_sv=(2.5,), seed=cfg.seed + 1),
    ],
    summary=(r"In the underdetermined isotropic regime LoRA's excess risk is the rank-$r$ "
             r"truncation error seen through $X^+$ plus exactly FFT's bias "
             r"$\lVert\Delta^*(I - P)\rVert_F^2$, whose mean is $(1 - n/d)\lVert\Delta^*\rVert_F^2$: "
             r"low rank cannot reduce the bias."),
    references=("Eckart-Young", "Hastie, Montanari, Rosset, Tibshirani (2022)"),
    extra={"route_samples": route_under, "chain": ("risk", "bias-mean"),
           "no_closed_form": "the value is a Monte Carlo mean of the decomposition (the statement "
                             "is an identity between two expectations, checked by simulation)",
           "evaluate_details": lambda p: dict(zip(
               ("monte_carlo_mean", "monte_carlo_se", "monte_carlo_trials"),
               _route_value("lora_decomp_under", p)), note="value = Monte Carlo of the "
               "decomposition E||D X^+||^2 + (1 - n/d)||Delta*||^2 (no closed form)")},
)

DERIVATIONS = [DER_OVER, DER_UNDER]
