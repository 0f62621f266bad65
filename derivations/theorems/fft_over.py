"""Theorem 1 -- full fine-tuning, overdetermined, any covariance.

    E_{X,E} R(Delta_F) = sigma^2 k d / (n - d - 1)        (exact; n > d + 1; Gaussian design)

Derivation (THEORY.md section 3): the OLS error is ``E X^T S^{-1}``; averaging over the noise
gives ``sigma^2 k ||X^T S^{-1} Sigma^{1/2}||_F^2 = sigma^2 k tr(Sigma S^{-1})``; ``S`` is
Wishart_d(Sigma, n) whose inverse has mean ``Sigma^{-1}/(n - d - 1)``.
"""
from __future__ import annotations

import sympy as sp

from numeric import estimators, samplers
from numeric.params import make_params

from ..common import (Delta, DeltaF, E, R, S, Sigma, SigmaHalf, X, d, hp_sizes, k, n, require,
                      risk, sigma)
from ..core import Control, Derivation, Justification, Statement, Step
from symbolic.ops import Expect, Frob2

ORDER = 10

M = X.T * S.I * SigmaHalf          # the matrix multiplying the noise in the risk
formula_expr = sigma ** 2 * k * d / (n - d - 1)


def validate(p):
    require(p.n > p.d + 1, f"theorem fft_over needs n > d + 1 (the inverse-Wishart mean), "
                           f"got n = {p.n}, d = {p.d}")


def formula(p, denominator_shift=1):
    return p.sigma ** 2 * p.k * p.d / (p.n - p.d - denominator_shift)


def _formula_missing_k(p):
    """The negative control 'missing k': the output dimension dropped."""
    return p.sigma ** 2 * p.d / (p.n - p.d - 1)


def simulate(p, trials, gen, device):
    """Exact fast sampler (Bartlett factor of S and the whitened noise; numeric.samplers)."""
    return samplers.simulate(p, "fft", trials, gen, device, path="fast")


def simulate_raw(p, trials, gen, device):
    """The reference, through the dispatching estimator (the one the sweep and the
    falsification test use, so its choice of branch is audited too): raw (X, E), OLS fitted, exact risk (the end-to-end check's first point)."""
    return estimators.simulate_risk(p, estimators.fft, trials, gen, device, chunk=4000)


_BASE = dict(d=4, k=3, n=12, r=1, sigma=1.3, shift_sv=(3.0, 2.0, 1.0), cov_eigs=(4.0, 2.0, 1.0, 0.5))

steps = (
    Step("error", DeltaF - Delta, "=", E * X.T * S.I,
         Justification("algebra", r"$\hat\Delta_F = R X^\top S^{-1}$ with $R = \Delta^* X + E$ and "
                       r"$X X^\top S^{-1} = I$"),
         ("hp",)),
    Step("risk", risk(DeltaF), "=", Frob2(E * M),
         Justification("definition", r"excess risk $\mathcal R$ of the error in step \emph{error}"),
         ("hp",)),
    Step("noise-average", Expect(Frob2(E * M), E), "=", sigma ** 2 * k * Frob2(M),
         Justification("expectation", r"rows of $E$ are i.i.d.\ $\mathcal N(0, \sigma^2 I_n)$ and "
                       r"independent of $X$: $\mathbb E\lVert e^\top M\rVert^2 = \sigma^2\lVert M\rVert_F^2$ per row"),
         ("mc",)),
    Step("trace", Frob2(M), "=", sp.Trace(Sigma * S.I),
         Justification("algebra", r"$\lVert X^\top S^{-1}\Sigma^{1/2}\rVert_F^2 = "
                       r"\operatorname{tr}(\Sigma^{1/2} S^{-1} X X^\top S^{-1}\Sigma^{1/2})$, cyclic trace"),
         ("hp",)),
    Step("inverse-wishart", Expect(sp.Trace(Sigma * S.I), X), "=", d / (n - d - 1),
         Justification("lemma", r"$S \sim \mathcal W_d(\Sigma, n)$, so "
                       r"$\mathbb E S^{-1} = \Sigma^{-1}/(n - d - 1)$ for $n > d + 1$ and "
                       r"$\operatorname{tr}(\Sigma\Sigma^{-1}) = d$",
                       "inverse-Wishart mean; e.g. Muirhead, Aspects of Multivariate Statistical Theory, Thm 3.2.12"),
         ("mc",)),
    Step("assemble", sigma ** 2 * k * (d / (n - d - 1)), "=", formula_expr,
         Justification("algebra", r"tower rule $\mathbb E_{X,E} = \mathbb E_X\mathbb E_E$ and steps "
                       r"\emph{risk}--\emph{inverse-wishart}"),
         ("symbolic",)),
)

DERIVATIONS = [Derivation(
    id="fft_over",
    title="Full fine-tuning, overdetermined: exact expected excess risk",
    regime="overdetermined",
    assumptions=(r"$x\sim\mathcal N(0,\Sigma)$ with $\Sigma$ symmetric positive definite (any spectrum)",
                 r"$\varepsilon\sim\mathcal N(0,\sigma^2 I_k)$ independent of $x$",
                 r"$n > d + 1$ (so that $\mathbb E S^{-1}$ exists)",
                 r"$\hat\Delta_F = R X^\top S^{-1}$ (ordinary least squares from $W_0$)"),
    definitions=(("S", X * X.T), ("R", Delta * X + E), ("DeltaF", R * X.T * S.I)),
    steps=steps,
    statement=Statement(Expect(risk(DeltaF), X, E), "=", formula_expr, "exact",
                        (r"$n > d + 1$",)),
    controls=(
        Control("denominator n-d", r"off-by-one: $\sigma^2 k d/(n-d)$", "statement",
                formula=lambda p: formula(p, denominator_shift=0)),
        Control("denominator n-d-2", r"off-by-one the other way: $\sigma^2 k d/(n-d-2)$", "statement",
                formula=lambda p: formula(p, denominator_shift=2)),
        Control("missing k", r"dropped output dimension: $\sigma^2 d/(n-d-1)$", "statement",
                formula=_formula_missing_k),
        Control("noise without k", r"step \emph{noise-average} with the factor $k$ dropped",
                "noise-average", rhs=sigma ** 2 * Frob2(M)),
        Control("inverse-wishart n-d", r"step \emph{inverse-wishart} with $d/(n-d)$",
                "inverse-wishart", rhs=d / (n - d)),
        Control("trace without Sigma", r"step \emph{trace} with $\operatorname{tr}(S^{-1})$",
                "trace", rhs=sp.Trace(S.I)),
        Control("error sign", r"step \emph{error} with the sign of the noise flipped",
                "error", rhs=-E * X.T * S.I),
    ),
    scalar_assumptions=(sp.Gt(n, d + 1),),
    validate=validate,
    formula=formula,
    simulate=simulate,
    hp_params=lambda cfg: hp_sizes(cfg, _BASE),
    mc_params=lambda cfg: [make_params(**_BASE, seed=cfg.seed)],
    check_points=lambda cfg: [
        make_params(**_BASE, seed=cfg.seed),
        make_params(d=5, k=2, n=14, r=1, sigma=0.7, shift_sv=(2.0, 1.0), cov_eigs=(), seed=cfg.seed + 1),
        make_params(d=3, k=4, n=9, r=2, sigma=1.5, shift_sv=(5.0,), cov_eigs=(9.0, 1.0, 0.1),
                    seed=cfg.seed + 2),
    ],
    summary=(r"The least-squares fit from $W_0$ has expected excess risk $\sigma^2 k d/(n-d-1)$ "
             r"for every covariance: the shift $\Delta^*$ and the spectrum of $\Sigma$ drop out."),
    references=("Muirhead (1982), Thm 3.2.12 (inverse-Wishart mean)",),
    # the report's figure: formula vs simulation across n (n >= d + 5 = 9 keeps the variance of
    # tr(Sigma S^-1) finite, so every point's standard error is meaningful)
    extra={"simulate_raw": simulate_raw,
           "report_sweep": {"param": "n", "values": [9, 10, 11, 12, 14, 16, 20, 26, 32, 40],
                            "base": _BASE}},
)]
