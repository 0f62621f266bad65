"""Theorem 3 -- full fine-tuning, underdetermined, general covariance (proportional limit).

    E R(Delta_F)  ~  sum_j kappa^2 sum_i b_ji^2 lam_i/(lam_i+kappa)^2 / (1 - df2)
                     + k sigma^2 df2/(1 - df2)                 (asymptotic: d/n -> gamma > 1)

Hastie, Montanari, Rosset, Tibshirani (Ann. Statist. 2022), Thm 2, with ``kappa`` the root of
``sum_i lam_i/(lam_i + kappa) = n``.  Finite-sample steps (the error decomposition and the noise
average) are exact and checked as such; the deterministic equivalent is *asymptotic* and is
checked by simulation at growing dimensions with fixed ratios, where the relative error must
shrink.  The reduction to theorem 2 at ``Sigma = I`` is checked symbolically.
"""
from __future__ import annotations

from functools import lru_cache

import mpmath as mp
import numpy as np
import sympy as sp

from numeric import estimators
from numeric.instances import torch_instance
from numeric.params import make_params
from numeric.ridgeless import fixed_point_residual, risk_terms, solve_kappa
from numeric.stats import summarize
from symbolic.ops import Expect, Frob2, PInv

from numeric.seeds import stable_seed
from ..common import (Delta, DeltaF, E, Id, P, R, SigmaHalf, X, d, hp_sizes, k, n, require, risk,
                      sigma, sym)
from ..core import Control, Derivation, Justification, Statement, Step

ORDER = 30

kappa, df2, F2 = sym("kappa"), sym("df2"), sym("Fnorm2")
lam, bq = sp.IndexedBase(sym("lam")), sp.IndexedBase(sym("bq"))
i, j = sp.symbols("i j", integer=True, positive=True)
Xp = PInv(X)

bias_expr = sp.Sum(kappa ** 2 * sp.Sum(bq[j, i] ** 2 * lam[i] / (lam[i] + kappa) ** 2, (i, 1, d)),
                   (j, 1, k)) / (1 - df2)
var_expr = k * sigma ** 2 * df2 / (1 - df2)
df2_expr = sp.Sum(lam[i] ** 2 / (lam[i] + kappa) ** 2, (i, 1, d)) / n


# ----------------------------------------------------------------------------- numeric hooks
def validate(p):
    require(p.d > p.n + 1, f"fft_under_general needs d > n + 1, got d = {p.d}, n = {p.n}")


@lru_cache(maxsize=64)
def _spectral_data(p):
    """Eigenvalues of Sigma and Delta* in its eigenbasis, from the very instance simulated."""
    inst = torch_instance(p, "cpu")
    sig = inst["Sigma"].numpy()
    w, q = np.linalg.eigh(sig)
    return w, inst["Delta"].numpy() @ q


@lru_cache(maxsize=64)
def terms(p, dps=50):
    w, bq_ = _spectral_data(p)
    return risk_terms(w, bq_, p.n, p.sigma, dps)


def formula(p):
    return float(terms(p)["risk"])


def formula_no_df2_in_variance(p):
    t = terms(p)
    return float(t["bias"] + p.k * p.sigma ** 2 * t["df2"])


def formula_isotropic(p):
    f2 = sum(v * v for v in p.shift_sv)
    return (1 - p.n / p.d) * f2 + p.sigma ** 2 * p.k * p.n / (p.d - p.n - 1)


def formula_naive_bias(p):
    """Bias (1 - n/d) ||Delta* Sigma^{1/2}||_F^2: isotropic shortcut in the Sigma metric."""
    t = terms(p)
    w, bq_ = _spectral_data(p)
    return float((1 - p.n / p.d) * float((bq_ ** 2 * w).sum()) + t["variance"])


def simulate(p, trials, gen, device):
    return estimators.simulate_risk(p, estimators.fft, trials, gen, device, chunk=2000)


def fixed_point(p, dps, perturb=1):
    """The code's root of the fixed-point equation and the equation's residual (the checker
    ``fixed_point`` evaluates it at the root and beside it, to show the root is isolated)."""
    w, _ = _spectral_data(p)
    with mp.workdps(dps):
        root = solve_kappa(w, p.n, dps) * mp.mpf(perturb)
        return {"root": root, "residual": lambda kap: fixed_point_residual(w, p.n, kap),
                "scale": mp.mpf(p.n), "in_domain": root > 0,
                "values": {"lam": [mp.mpf(x) for x in w], "d": p.d, "n": p.n},
                "unknown": "kappa"}


def truth_env(p, dps):
    """The spectral data the formula's SymPy expression needs, at ``dps`` digits from the
    mpmath instance (independently of the float64 path of ``formula``); ``kappa`` is the
    root certified by step *fixed-point*."""
    from numeric.instances import mp_instance

    inst = mp_instance(p)
    w, q = mp.eigsy((inst["Sigma"] + inst["Sigma"].T) / 2)
    lam_ = [w[i_] for i_ in range(w.rows)]
    # the root of the step's own equation, polished from the solver's value (a wrong solver
    # cannot move it: the root is unique)
    f = lambda kap: mp.fsum(x / (x + kap) for x in lam_) - p.n  # noqa: E731
    kap = mp.findroot(f, solve_kappa([float(x) for x in lam_], p.n, dps))
    return {"lam": lam_, "bq": inst["Delta"] * q, "kappa": kap}


# Convergence: spectrum with three levels in equal thirds, d/n = 3, growing together; k = 25 lies
# above n at the smallest size and below it at the others (both sides of the output dimension).
_CONV = dict(d=60, k=25, n=20, r=1, sigma=0.8, shift_sv=(3.0, 1.5))
_LEVELS = (4.0, 1.0, 0.25)


def conv_params(scale: int, seed: int):
    d, n = _CONV["d"] * scale, _CONV["n"] * scale
    eigs = tuple(v for v in _LEVELS for _ in range(d // 3))
    return make_params(**{**_CONV, "d": d, "n": n, "cov_eigs": eigs, "seed": seed})


@lru_cache(maxsize=64)
def _simulated(scale: int, seed: int, trials: int, device: str):
    """Simulated mean risk at one size (memoised: controls reuse the same simulation)."""
    from numeric.device import generator

    gen = generator(stable_seed(seed, "fft_under_general", "conv", scale))
    return summarize(simulate(conv_params(scale, seed), trials, gen, device))


def convergence(cfg, formula=None):
    from numeric.device import resolve

    f = formula or globals()["formula"]
    device = str(resolve(cfg.device))
    rows = []
    top = max(cfg.asym_scales)
    for scale in cfg.asym_scales:
        p = conv_params(scale, cfg.seed)
        # smaller sizes are cheap (cost ~ scale^3): give them more draws so that their
        # finite-size error is resolved rather than drowned in Monte Carlo noise
        trials = cfg.asym_trials * top // scale
        summ = _simulated(scale, cfg.seed, trials, device)
        rows.append({"scale": scale, "dims": {"d": p.d, "n": p.n, "k": p.k},
                     "formula": float(f(p)), "mean": summ.mean, "se": summ.se, "trials": summ.trials})
    return rows


def details(p):
    t = terms(p)
    return {"kappa": float(t["kappa"]), "df2": float(t["df2"]), "bias": float(t["bias"]),
            "variance": float(t["variance"]), "fixed_point_residual": float(t["residual"])}


_HP = dict(d=10, k=2, n=4, r=1, sigma=1.3, shift_sv=(2.0, 1.0),
           cov_eigs=(5.0, 3.0, 2.0, 1.5, 1.0, 1.0, 0.7, 0.5, 0.3, 0.1))

# ------------------------------------------------------------------------------------- steps
kap_iso = d / n - 1
steps = (
    Step("error", DeltaF - Delta, "=", E * Xp - Delta * (Id - P),
         Justification("algebra", r"$\hat\Delta_F = R X^+$ and $X X^+ = P$ (any $\Sigma$)"),
         ("hp",)),
    Step("noise-average", Expect(risk(DeltaF), E), "=",
         Frob2(Delta * (Id - P) * SigmaHalf) + sigma ** 2 * k * Frob2(Xp * SigmaHalf),
         Justification("expectation", r"$E$ has mean zero and i.i.d.\ $\mathcal N(0,\sigma^2)$ entries, "
                       r"independent of $X$: the cross term averages out (it does \emph{not} vanish "
                       r"per realisation when $\Sigma\neq I$)"),
         ("mc",)),
    Step("fixed-point", sp.Sum(lam[i] / (lam[i] + kappa), (i, 1, d)), "=", n,
         Justification("numerical", r"unique root $\kappa>0$ (the left side decreases from $d > n$ to 0); "
                       r"solved at high precision"),
         ("fixed_point",)),
    Step("deterministic-equivalent", Expect(risk(DeltaF), X, E), "~", bias_expr + var_expr,
         Justification("literature", r"deterministic equivalents of the bias and variance of ridgeless "
                       r"least squares in the proportional limit",
                       "Hastie, Montanari, Rosset, Tibshirani (Ann. Statist. 2022), Thm 2"),
         ("convergence",), note="checked by the statement's convergence certificate"),
    Step("isotropic-root", d / (1 + kap_iso), "=", n,
         Justification("algebra", r"at $\Sigma = I$ the fixed point is $\kappa = d/n - 1$"),
         ("symbolic",)),
    Step("isotropic-bias", kap_iso ** 2 / (1 + kap_iso) ** 2 * F2 / (1 - n / d), "=", (1 - n / d) * F2,
         Justification("algebra", r"bias at $\lambda_i = 1$, $\kappa = d/n-1$, "
                       r"$\mathrm{df}_2 = n/d$: theorem 2's bias"),
         ("symbolic",)),
    Step("isotropic-variance", k * sigma ** 2 * (n / d) / (1 - n / d), "=", sigma ** 2 * k * n / (d - n),
         Justification("algebra", r"variance at $\Sigma = I$: theorem 2's $\sigma^2 k n/(d-n-1)$ "
                       r"up to $O(1/d)$"),
         ("symbolic",)),
)

_statement = Statement(Expect(risk(DeltaF), X, E), "~", bias_expr + var_expr, "asymptotic",
                       (r"$d, n\to\infty$ with $d/n\to\gamma>1$",
                        r"bounded spectrum of $\Sigma$"), checks=("convergence",))


DERIVATIONS = [Derivation(
    id="fft_under_general",
    title="Full fine-tuning, underdetermined, general covariance: proportional-limit risk",
    regime="underdetermined",
    assumptions=(r"$x\sim\mathcal N(0,\Sigma)$, $\Sigma$ symmetric positive definite",
                 r"$\varepsilon\sim\mathcal N(0,\sigma^2 I_k)$",
                 r"$d > n + 1$; the formula is a limit as $d/n\to\gamma>1$",
                 r"$\hat\Delta_F = R X^+$ (minimum-norm interpolator)"),
    definitions=(("R", Delta * X + E), ("P", X * Xp), ("DeltaF", R * Xp)),
    steps=steps,
    statement=_statement,
    controls=(
        Control("variance without 1/(1-df2)", r"variance $k\sigma^2\mathrm{df}_2$", "statement",
                formula=formula_no_df2_in_variance),
        Control("isotropic formula", r"theorem 2's formula applied to a non-identity $\Sigma$",
                "statement", formula=formula_isotropic),
        Control("naive bias", r"bias $(1-n/d)\lVert\Delta^*\Sigma^{1/2}\rVert_F^2$", "statement",
                formula=formula_naive_bias),
        Control("formula 5% high", r"the whole formula multiplied by 1.05 (the gate's resolution)",
                "statement", formula=lambda p: 1.05 * formula(p)),
        Control("formula 5% low", r"the whole formula multiplied by 0.95", "statement",
                formula=lambda p: 0.95 * formula(p)),
        Control("wrong root", r"$\kappa$ replaced by $1.001\,\kappa$", "fixed-point",
                options={"perturb": 1.001}),
        Control("noise-average without k", r"step \emph{noise-average} without the factor $k$",
                "noise-average",
                rhs=Frob2(Delta * (Id - P) * SigmaHalf) + sigma ** 2 * Frob2(Xp * SigmaHalf)),
        Control("isotropic bias without 1/(1-df2)", r"step \emph{isotropic-bias} without $1/(1-\mathrm{df}_2)$",
                "isotropic-bias", lhs=kap_iso ** 2 / (1 + kap_iso) ** 2 * F2),
    ),
    scalar_assumptions=(sp.Gt(d, n + 1),),
    validate=validate,
    formula=formula,
    simulate=simulate,
    hp_params=lambda cfg: hp_sizes(cfg, _HP),
    mc_params=lambda cfg: [make_params(**_HP, seed=cfg.seed)],
    check_points=lambda cfg: [conv_params(s, cfg.seed) for s in cfg.asym_scales],
    summary=(r"For a general covariance the minimum-norm interpolator has no finite-sample closed "
             r"form; its risk converges to the Hastie--Montanari--Rosset--Tibshirani deterministic "
             r"equivalent, which reduces to theorem 2 at $\Sigma = I$."),
    references=("Hastie, Montanari, Rosset, Tibshirani (Ann. Statist. 2022), Thm 2",),
    extra={"convergence": convergence, "fixed_point": fixed_point, "evaluate_details": details,
           "truth_env": truth_env, "symbol_values": {"df2": df2_expr}},
)]
