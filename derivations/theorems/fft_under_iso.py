"""Theorem 2 -- full fine-tuning, underdetermined, isotropic covariance.

    E_{X,E} R(Delta_F) = (1 - n/d) ||Delta*||_F^2 + sigma^2 k n / (d - n - 1)
                                            (exact; Sigma = I; d > n + 1; Gaussian design)

The minimum-norm interpolator's error splits into a noise part ``E X^+`` and a bias part
``-Delta*(I - P)``, ``P = X X^+``; they are orthogonal for every realisation because
``(I - P) (X^+)^T = 0``.  ``P`` is a uniformly random rank-``n`` projection (rotation
invariance of the isotropic Gaussian), so ``E P = (n/d) I``; ``X^T X ~ Wishart_n(I, d)`` gives
``E tr((X^T X)^{-1}) = n/(d - n - 1)``.
"""
from __future__ import annotations

import sympy as sp

from numeric import estimators, samplers
from numeric.params import make_params
from symbolic.ops import Expect, Frob2, PInv

from ..common import Delta, DeltaF, E, Id, P, R, X, d, hp_sizes, k, n, require, risk, sigma, sym
from ..core import Control, Derivation, Justification, Statement, Step

ORDER = 20

F2 = sym("Fnorm2")                   # ||Delta*||_F^2 as a scalar symbol in the final formula
Xp = PInv(X)
formula_expr = (1 - n / d) * F2 + sigma ** 2 * k * n / (d - n - 1)


def validate(p):
    require(p.isotropic, "theorem fft_under_iso assumes Sigma = I; use fft_under_general for a "
                         "non-identity covariance")
    require(p.d > p.n + 1, f"theorem fft_under_iso needs d > n + 1 (inverse-Wishart mean of "
                           f"X^T X), got d = {p.d}, n = {p.n}")


def formula(p, bias_factor=True, shift=1, k_factor=True):
    f2 = sum(v * v for v in p.shift_sv)
    bias = (1 - p.n / p.d) * f2 if bias_factor else f2
    return bias + p.sigma ** 2 * (p.k if k_factor else 1) * p.n / (p.d - p.n - shift)


def simulate(p, trials, gen, device):
    """Exact fast sampler (shift row space and a Wishart_n(I, d - s) block; numeric.samplers)."""
    return samplers.simulate(p, "fft", trials, gen, device, path="fast")


def simulate_raw(p, trials, gen, device):
    """The reference, through the dispatching estimator (the one the sweep and the
    falsification test use, so its choice of branch is audited too): raw (X, E), minimum-norm fit, exact risk (the end-to-end check's first
    point)."""
    return estimators.simulate_risk(p, estimators.fft, trials, gen, device, chunk=4000)


_BASE = dict(d=12, k=3, n=5, r=1, sigma=1.3, shift_sv=(3.0, 2.0, 1.0), cov_eigs=())

steps = (
    Step("error", DeltaF - Delta, "=", E * Xp - Delta * (Id - P),
         Justification("algebra", r"$\hat\Delta_F = R X^+$, $R = \Delta^* X + E$, $X X^+ = P$"),
         ("hp",)),
    Step("projection-kills-noise", (Id - P) * Xp.T, "=", sp.ZeroMatrix(d, n),
         Justification("algebra", r"$X^+ P = X^+ X X^+ = X^+$ and $P$ is symmetric"),
         ("hp",), note="the reason the noise and bias parts are orthogonal; judged relative to "
                       r"$\lVert X^+\rVert_F$",
         options={"scale": sp.sqrt(Frob2(Xp))}),
    Step("pythagoras", risk(DeltaF), "=", Frob2(Delta * (Id - P)) + Frob2(E * Xp),
         Justification("algebra", r"$\Sigma = I$; cross term $\operatorname{tr}(X^{+\top}E^\top\Delta^*(I-P)) = 0$ "
                       r"by step \emph{projection-kills-noise}"),
         ("hp",)),
    Step("bias-trace", Frob2(Delta * (Id - P)), "=", Frob2(Delta) - sp.Trace(Delta * P * Delta.T),
         Justification("algebra", r"$I - P$ is a symmetric idempotent"),
         ("hp",)),
    Step("random-projection", Expect(sp.Trace(Delta * P * Delta.T), X), "=", (n / d) * Frob2(Delta),
         Justification("lemma", r"$P$ is a uniformly random rank-$n$ projection (the law of $X$ is "
                       r"rotation invariant when $\Sigma = I$), so $\mathbb E P = (n/d) I$",
                       "rotation invariance of the isotropic Gaussian"),
         ("mc",)),
    Step("noise-average", Expect(Frob2(E * Xp), E), "=", sigma ** 2 * k * Frob2(Xp),
         Justification("expectation", r"rows of $E$ i.i.d.\ $\mathcal N(0,\sigma^2 I_n)$, independent of $X$"),
         ("mc",)),
    Step("pinv-trace", Frob2(Xp), "=", sp.Trace((X.T * X).I),
         Justification("algebra", r"$X^+ = (X^\top X)^{-1}X^\top$ for full column rank, cyclic trace"),
         ("hp",)),
    Step("inverse-wishart", Expect(sp.Trace((X.T * X).I), X), "=", n / (d - n - 1),
         Justification("lemma", r"$X^\top X\sim\mathcal W_n(I, d)$, $\mathbb E (X^\top X)^{-1} = I/(d-n-1)$",
                       "inverse-Wishart mean (Muirhead 1982, Thm 3.2.12)"),
         ("mc",)),
    Step("assemble", F2 - (n / d) * F2 + sigma ** 2 * k * n / (d - n - 1), "=", formula_expr,
         Justification("algebra", r"tower rule and steps \emph{pythagoras}--\emph{inverse-wishart}, "
                       r"with $\lVert\Delta^*\rVert_F^2$ written as one symbol"),
         ("symbolic",)),
)

DERIVATIONS = [Derivation(
    id="fft_under_iso",
    title="Full fine-tuning, underdetermined, isotropic covariance: exact expected excess risk",
    regime="underdetermined",
    assumptions=(r"$x\sim\mathcal N(0, I_d)$ ($\Sigma = I$)",
                 r"$\varepsilon\sim\mathcal N(0,\sigma^2 I_k)$ independent of $x$",
                 r"$d > n + 1$",
                 r"$\hat\Delta_F = R X^+$, the minimum-norm interpolator (limit of gradient descent from $W_0$)"),
    definitions=(("R", Delta * X + E), ("P", X * Xp), ("DeltaF", R * Xp)),
    steps=steps,
    statement=Statement(Expect(risk(DeltaF), X, E), "=", formula_expr, "exact",
                        (r"$\Sigma = I$", r"$d > n + 1$")),
    controls=(
        Control("bias without (1-n/d)", r"bias $\lVert\Delta^*\rVert_F^2$ instead of $(1-n/d)\lVert\Delta^*\rVert_F^2$",
                "statement", formula=lambda p: formula(p, bias_factor=False)),
        Control("denominator d-n", r"variance $\sigma^2 k n/(d-n)$", "statement",
                formula=lambda p: formula(p, shift=0)),
        Control("missing k", r"variance $\sigma^2 n/(d-n-1)$", "statement",
                formula=lambda p: formula(p, k_factor=False)),
        Control("projection mean d/n", r"step \emph{random-projection} with $(d/n)$",
                "random-projection", rhs=(d / n) * Frob2(Delta)),
        Control("bias-trace sign", r"step \emph{bias-trace} with the sign of the trace flipped",
                "bias-trace", rhs=Frob2(Delta) + sp.Trace(Delta * P * Delta.T)),
        Control("projection keeps noise", r"step \emph{projection-kills-noise} with $P$ in place of $I - P$",
                "projection-kills-noise", lhs=P * Xp.T),
        Control("inverse-wishart d-n", r"step \emph{inverse-wishart} with $n/(d-n)$",
                "inverse-wishart", rhs=n / (d - n)),
    ),
    scalar_assumptions=(sp.Gt(d, n + 1),),
    validate=validate,
    formula=formula,
    simulate=simulate,
    hp_params=lambda cfg: hp_sizes(cfg, _BASE),
    mc_params=lambda cfg: [make_params(**_BASE, seed=cfg.seed)],
    check_points=lambda cfg: [
        make_params(**_BASE, seed=cfg.seed),
        make_params(d=20, k=2, n=8, r=1, sigma=0.5, shift_sv=(4.0, 0.5), seed=cfg.seed + 1),
        make_params(d=9, k=4, n=3, r=2, sigma=2.0, shift_sv=(1.0, 1.0, 1.0, 1.0), seed=cfg.seed + 2),
    ],
    summary=(r"With isotropic inputs the minimum-norm interpolator pays the full shift outside the "
             r"span of the data, $(1-n/d)\lVert\Delta^*\rVert_F^2$, plus a variance "
             r"$\sigma^2 k n/(d-n-1)$; the two parts are orthogonal for every realisation."),
    references=("Muirhead (1982), Thm 3.2.12", "Hastie, Montanari, Rosset, Tibshirani (2022), Sec. 3"),
    # the report's figure: formula vs simulation across n (n <= d - 4 keeps the variance of
    # tr((X^T X)^-1) finite, so every point's standard error is meaningful)
    extra={"simulate_raw": simulate_raw,
           "report_sweep": {"param": "n", "values": [1, 2, 3, 4, 5, 6, 7, 8], "base": _BASE},
           # the statement's scalar symbol, defined in SymPy (the source-of-truth check uses it)
           "symbol_values": {"Fnorm2": Frob2(Delta)}},
)]
