"""Bounds on the misalignment bias (THEORY.md section 5), derived step by step.

Frame: the population covariance is the identity (a general ``Sigma`` reduces to it by
whitening); LoRA's noise-free target in metric ``C`` is ``A_C = P_r(Delta* C^{1/2}) C^{-1/2}``,
``A_* = P_r(Delta*)``, ``b_r = ||Delta* - A_*||_F^2``, ``beta_mis = ||A_C - Delta*||_F^2 - b_r``.

First order (``misalign_first_order``), an UPPER BOUND, for every SPD ``C`` with ``eta < 1``:

    lambda_min(C) R(A_C) <= ||(A_C - Delta*) C^{1/2}||^2 <= ||(A_* - Delta*) C^{1/2}||^2
                         <= lambda_max(C) b_r,   lambda_max/lambda_min <= (1+eta)/(1-eta),
    hence beta_mis <= 2 eta/(1 - eta) b_r.
It is attained in the limit where an aligned ``C`` swaps the order of two weighted singular
values (no gap), and loose (first order against a second-order truth) when there is a gap.

Second order (``misalign_second_order``), an UPPER BOUND with explicit constants:
``C0 = QCQ + Q_perp C Q_perp`` (aligned part), ``eps = ||Q_perp C Q||``, ``m, M`` the extreme
eigenvalues of ``C``, ``h = eps/(2 sqrt m)``, ``B0 = Delta* C0^{1/2}``, weighted gap
``delta = sigma_r^2(Delta* Q C0^{1/2}) - sigma_1^2(Delta* Q_perp C0^{1/2})``, ``s_i = sigma_i(Delta*)``:

    ||C^{1/2} - C0^{1/2}|| <= h                                 (square-root perturbation)
    ||Pi - Q||_F delta <= 2 sqrt 2 (2||B0|| + s_1 h) sqrt(r) s_1 h   (Wedin; Yu-Wang-Samworth 2015)
    ||P_r(B) - B0 Q||_F <= ||Delta*(C^{1/2} - C0^{1/2})||_F + ||B0|| ||Pi - Q||_F
    ||A_C - A_*||_F <= ||P_r(B) - B0 Q||_F / sqrt m + ||Delta* Q||_F sqrt(M) h / m  =: K
    beta_mis = ||A_C - A_*||^2 - 2 <A_C, Delta* Q_perp>           (exact)
    -2 <A_C, Delta* Q_perp> sigma_r(Q_U A_C Q) <= s_{r+1} ||A_C - A_*||^2   (rank r: Schur complement)
    sigma_r(Q_U A_C Q) >= s_r - ||A_C - A_*||_F                      (Weyl)
    => beta_mis <= K^2 (1 + s_{r+1}/(s_r - K))   when delta > 0 and K < s_r,

``K = eps (k_1 + k_2/delta) + O(eps^2)``, so the bound is ``O((eps/delta)^2)``.  It is checked in
a division-free form that is equivalent where the conditions hold and trivially true elsewhere.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import sympy as sp

from numeric import misalignment as mis
from numeric.instances import random_shape
from numeric.params import make_params
from symbolic.ops import Frob2, OpNorm, PInv, SigmaMin, SingVal, TruncSVD

from numeric.seeds import stable_seed
from ..common import MISALIGN_BIAS, MISALIGN_HEAD, Delta, Id, half, require, sym
from ..core import Control, Derivation, Justification, Statement, Step, Truth

ORDER = 61

C, C0, Q, Qperp, A_C, Astar, Pi, PU = (sym(x) for x in
                                       ("C", "C0", "Q", "Qperp", "A_C", "Astar", "Pi", "PU"))
r, eps, eta, b_r, beta, gap, K = (sym(x) for x in
                                  ("r", "eps", "eta", "b_r", "beta_mis", "delta_gap", "Kmis"))

_common_defs = (
    *MISALIGN_HEAD,
    *MISALIGN_BIAS,
)

# ---------------------------------------------------------------------------- instances


def _draw(cfg, count, tag, *, eps_scale, big=False, flips=False):
    rng = np.random.default_rng(stable_seed(cfg.seed, "misalign_bounds", tag))
    out = []
    for i in range(count):
        d, k, r_, sv = random_shape(rng, 6, 5)
        if i % 3 == 0:                      # near-degenerate head/tail (order flips possible)
            sv[r_] = sv[r_ - 1] * rng.uniform(0.85, 0.99)
        if big and i % 2 == 0:              # scale matters for a bound that is not homogeneous
            sv = sv * 1000.0
        eigs = rng.uniform(0.6, 1.5, d)
        lo_hi = eigs[r_ - 1] * eigs[r_]
        angle = float(rng.uniform(-1, 1) * eps_scale)
        coupling = float(rng.uniform(-1, 1) * eps_scale * np.sqrt(lo_hi))
        if flips and i % 4 == 1:            # aligned C that swaps s_r and s_{r+1}: the tight case
            sv[r_] = sv[r_ - 1] * 0.97
            eta_ = rng.uniform(0.04, 0.3)
            eigs = np.ones(d)
            eigs[r_ - 1], eigs[r_] = 1 - eta_, 1 + eta_
            angle = coupling = 0.0
        p = make_params(d=d, k=k, n=d + 2, r=r_, sigma=1.0, shift_sv=tuple(sv),
                        fit_eigs=tuple(eigs), cov_angle=angle, coupling=coupling,
                        seed=int(rng.integers(1 << 30)))
        out.append(p)
    return out


def first_params(cfg):
    return _draw(cfg, 16 if cfg.quick else 60, "first", eps_scale=0.6, flips=True)


# A fixed instance on the far side of the threshold K = 1 where the second-order bound is
# within a factor K of beta_mis (beta_mis * K / bound = 8.8): there the bound with the square
# dropped, K (1 + s_{r+1}/(s_r - K)), is false.  The drawn instances visit K > 1, but the bound
# is so loose there that whether one of them lands where the dropped square fails depended on
# the seed (it did not at audit seed 8); the region is declared in ``extra["step_regions"]`` so
# the audit refuses a point set that leaves it unvisited.
_TIGHT_K_ABOVE_1 = dict(d=4, k=2, n=6, r=1, sigma=1.0,
                        shift_sv=(2993.88689069521, 1890.5480542864448),
                        fit_eigs=(0.982768441286411, 1.2962334997058476, 0.9239231917321018,
                                  1.4087880785157059),
                        cov_angle=-0.023605622813255726, coupling=0.03370950958111699,
                        seed=68449767)


def second_params(cfg):
    return (_draw(cfg, 12 if cfg.quick else 60, "second", eps_scale=0.03, big=True)
            + [make_params(**_TIGHT_K_ABOVE_1)])


def _K_summary(p):
    s = mis.point_summary(p)
    return s["second_order_K"], s["beta_mis"], s["second_order_bound"]


def _k_below_1(p):
    K, _, bound = _K_summary(p)
    return math.isfinite(bound) and 0 < K <= 1


def _k_above_1_tight(p):
    K, beta_v, bound = _K_summary(p)
    return math.isfinite(bound) and K > 1 and beta_v * K > bound


def _with_rank2(params, count):
    """The first ``count`` instances, the last swapped for the first one of rank ``r >= 2`` when
    none of them has it (the audit refuses high-precision points that all have r = 1); the
    instance lists of the inequality checks are left exactly as drawn."""
    head = list(params[:count])
    if not any(p.r >= 2 for p in head):
        extra = next((p for p in params[count:] if p.r >= 2), None)
        if extra is not None:
            head[-1] = extra
    return head


def hp_first(cfg):
    return _with_rank2(first_params(cfg), cfg.hp_instances)


def hp_second(cfg):
    return _with_rank2(second_params(cfg), cfg.hp_instances)


def validate(p):
    require(p.has_fit_cov, "give LoRA's fitting covariance C: fit_eigs=... and/or cov_angle=... "
                           "or coupling=... (Sigma = I)")
    require(p.r < min(p.d, p.k), f"the misalignment bias needs a tail: r < min(d, k), got r = {p.r}")


def formula(p):
    return mis.point_summary(p)["beta_mis"]


def simulate(p, trials, gen, device):
    return mis.test_loss_samples(p, trials, gen, device, test_size=64)


def details(p):
    return mis.point_summary(p)


_CHECK_POINTS = lambda cfg: [  # noqa: E731
    make_params(d=3, k=4, n=8, r=1, sigma=0.5, shift_sv=(2.0, 1.2, 0.5),
                fit_eigs=(1.4, 0.7, 1.0), cov_angle=0.6, seed=cfg.seed + 7),
    make_params(d=4, k=3, n=9, r=2, sigma=0.5, shift_sv=(2.0, 1.3, 1.0),
                fit_eigs=(1.6, 0.6, 1.2, 0.9), cov_angle=0.6, seed=cfg.seed + 8),
]

GENERIC_EXEMPT = {"sigma != 1": "noise-free: sigma does not enter the misalignment bias (it only scales "
                  "test-label noise whose contribution cancels in the mean)",
    "output dimension k above the sample side": "noise-free: there is no sample side (n is a "
                  "placeholder)",
    "output dimension k below the sample side": "noise-free: there is no sample side (n is a "
                  "placeholder)"}


def _finite_second(cfg):
    out = [p for p in second_params(cfg)
           if math.isfinite(mis.point_summary(p)["second_order_bound"])]
    return out[:4]


def _first_in_range(cfg):
    return [p for p in first_params(cfg) if mis.point_summary(p)["eta"] < 1][:4]

_SEARCH = {"search": ("C", "Delta"), "parametrize": {"C": "spd", "Delta": "free"}}


def _ineq(params_fn, **extra):
    """Options of the ``ineq`` checker: search over C (SPD) and Delta*, random instances."""
    opts = dict(_SEARCH)
    opts["ineq_params"] = params_fn
    opts.update(extra)
    return opts


# ------------------------------------------------------------------------- first order
m_C, M_C = SigmaMin(C), OpNorm(C)
first_steps = (
    Step("metric-lower", m_C * Frob2(A_C - Delta), "<=", Frob2((A_C - Delta) * C ** half),
         Justification("inequality", r"$\lVert Z C^{1/2}\rVert_F^2 = \operatorname{tr}(Z C Z^\top)"
                       r"\ge \lambda_{\min}(C)\lVert Z\rVert_F^2$"), ("ineq",),
         options=_ineq(first_params, search_iters=30)),
    Step("optimality", Frob2((A_C - Delta) * C ** half), "<=", Frob2((Astar - Delta) * C ** half),
         Justification("lemma", r"$A_C$ minimises $\lVert (A - \Delta^*)C^{1/2}\rVert_F$ over "
                       r"$\operatorname{rank} A \le r$ ($A C^{1/2}$ ranges over all rank-$r$ "
                       r"matrices)", "Eckart--Young"), ("ineq",),
         options=_ineq(first_params, search_iters=30)),
    Step("metric-upper", Frob2((Astar - Delta) * C ** half), "<=", M_C * b_r,
         Justification("inequality", r"$\operatorname{tr}(Z C Z^\top)\le\lambda_{\max}(C)"
                       r"\lVert Z\rVert_F^2$ with $Z = A_* - \Delta^*$"), ("ineq",),
         options=_ineq(first_params, search_iters=30)),
    Step("condition-number", m_C * Frob2(A_C - Delta), "<=", M_C * b_r,
         Justification("inequality", r"steps \emph{metric-lower}--\emph{metric-upper}: "
                       r"$\mathcal R(A_C)\le\kappa(C)\,b_r$ for every SPD $C$"), ("ineq",),
         options=_ineq(first_params, search_iters=30)),
    Step("eta", M_C * (1 - eta), "<=", (1 + eta) * m_C,
         Justification("inequality", r"$\lambda_{\max}(C)\le 1+\eta$, $\lambda_{\min}(C)\ge 1-\eta$; "
                       r"written without division it holds for every $\eta$"), ("ineq",),
         options=_ineq(first_params, search_iters=30)),
    Step("bound", beta * (1 - eta), "<=", 2 * eta * b_r,
         Justification("algebra", r"$\beta_{\mathrm{mis}} \le (\kappa - 1) b_r$ and "
                       r"$\kappa - 1 \le 2\eta/(1-\eta)$ for $\eta < 1$ (for $\eta \ge 1$ the "
                       r"left side is $\le 0$)"), ("mis_ineq",),
         options=_ineq(first_params, search_iters=60)),
)

first = Derivation(
    id="misalign_first_order",
    title=r"Misalignment bias: first-order bound $\beta_{\mathrm{mis}}\le 2\eta/(1-\eta)\,b_r$",
    regime="misalignment",
    assumptions=(r"$\Sigma = I$ (a general $\Sigma$ reduces to it by whitening)",
                 r"LoRA fits in a symmetric positive definite $C$; $\eta = \lVert C - I\rVert_{\mathrm{op}} < 1$"),
    definitions=_common_defs + (("eta", OpNorm(C - Id)),),
    steps=first_steps,
    statement=Statement(beta * (1 - eta), "<=", 2 * eta * b_r, "bound", (r"$\eta < 1$",),
                        checks=("stmt_ineq", "value_e2e")),
    controls=(
        Control("constant 1 instead of 2", r"$\beta_{\mathrm{mis}}(1-\eta)\le\eta\,b_r$",
                "bound", rhs=eta * b_r),
        Control("eta squared", r"$\beta_{\mathrm{mis}}(1-\eta)\le 2\eta^2 b_r$ (second order "
                r"claimed without a gap)", "bound", rhs=2 * eta ** 2 * b_r),
        Control("optimality reversed", r"$A_*$ better than $A_C$ in metric $C$",
                "optimality", lhs=Frob2((Astar - Delta) * C ** half),
                rhs=Frob2((A_C - Delta) * C ** half)),
        Control("lambda_max dropped", r"$\lVert (A_*-\Delta^*)C^{1/2}\rVert^2 \le b_r$",
                "metric-upper", rhs=b_r),
    ),
    validate=validate, formula=formula, simulate=simulate,
    hp_params=hp_first, mc_params=hp_first, check_points=_CHECK_POINTS,
    summary=(r"For $\Sigma = I$ and $\eta = \lVert C - I\rVert < 1$: $\mathcal R(A_C)\le"
             r"\frac{1+\eta}{1-\eta}b_r$, hence $\beta_{\mathrm{mis}}\le\frac{2\eta}{1-\eta}b_r$. "
             r"An upper bound; attained when an aligned $C$ swaps two weighted singular values."),
    references=("Eckart--Young",),
    extra={"evaluate_details": details, "exact_estimator_value": mis.trained_bias,
           "statement_options": _ineq(first_params, search_iters=60),
           "generic_exempt": GENERIC_EXEMPT, "truth_statement": False,
           "truth": (Truth("beta_mis (code) vs its definition", beta, formula,
                           points=_first_in_range),
                     Truth("first-order bound printed by evaluate", 2 * eta * b_r / (1 - eta),
                           lambda p: mis.point_summary(p)["first_order_bound"],
                           points=_first_in_range))},
)

# ------------------------------------------------------------------------ second order
h = eps / (2 * sp.sqrt(m_C))
s1 = OpNorm(Delta)
b0 = OpNorm(Delta * C0 ** half)
s_r, s_r1 = SingVal(Delta, r), SingVal(Delta, r + 1)
B = Delta * C ** half
dist = sp.sqrt(Frob2(A_C - Astar))
wedin_rhs = 2 * sp.sqrt(2) * (2 * b0 + s1 * h) * sp.sqrt(r) * s1 * h
# K * delta (division-free): K = (||D||_F h + sqrt2 b0 sinF)/sqrt(m) + ||DQ||_F sqrt(M) h/m
gpos = sp.Max(gap, 0)
K_delta = ((sp.sqrt(Frob2(Delta)) * h / sp.sqrt(m_C)
            + sp.sqrt(Frob2(Delta * Q)) * sp.sqrt(M_C) * h / m_C) * gpos
           + b0 * wedin_rhs / sp.sqrt(m_C))
room = sp.Max(s_r * gpos - K_delta, 0)      # delta (s_r - K), clipped: > 0 iff conditions hold

second_steps = (
    Step("sqrt-perturbation", OpNorm(C ** half - C0 ** half), "<=", h,
         Justification("lemma", r"$X = C^{1/2} - C_0^{1/2}$ solves $C^{1/2}X + XC_0^{1/2} = C - C_0$; "
                       r"at a unit eigenvector of $X$: $|x|\,(2\sqrt{\lambda_{\min}})\le\lVert C - C_0"
                       r"\rVert = \varepsilon$ (the off-diagonal blocks)",
                       "Bhatia, Matrix Analysis, X.1"), ("ineq",),
         options=_ineq(second_params, search_iters=30)),
    Step("wedin", sp.sqrt(Frob2(Pi - Q)) * gpos, "<=", wedin_rhs,
         Justification("literature", r"$\lVert\sin\Theta\rVert_F\le 2(2\sigma_1(B_0)+\lVert B - B_0"
                       r"\rVert)\sqrt r\lVert B-B_0\rVert/\delta$ and $\lVert\Pi - Q\rVert_F = "
                       r"\sqrt2\lVert\sin\Theta\rVert_F$; $\lVert B - B_0\rVert\le s_1 h$; the top-$r$ "
                       r"right singular space of $B_0$ is $Q$ when $\delta > 0$",
                       "Yu, Wang, Samworth (2015), Biometrika 102, Thm 4"), ("ineq",),
         options=_ineq(second_params, search_iters=30)),
    Step("truncation", sp.sqrt(Frob2(TruncSVD(B, r) - Delta * C0 ** half * Q)), "<=",
         sp.sqrt(Frob2(Delta * (C ** half - C0 ** half))) + b0 * sp.sqrt(Frob2(Pi - Q)),
         Justification("algebra", r"$P_r(B) - B_0Q = (B - B_0)\Pi + B_0(\Pi - Q)$ ($C_0$ "
                       r"commutes with $Q$), triangle inequality"), ("ineq",),
         options=_ineq(second_params, search_iters=30)),
    Step("target", dist, "<=",
         sp.sqrt(Frob2(TruncSVD(B, r) - Delta * C0 ** half * Q)) / sp.sqrt(m_C)
         + sp.sqrt(Frob2(Delta * Q)) * sp.sqrt(M_C) * h / m_C,
         Justification("algebra", r"$A_C - A_* = (P_r(B) - B_0Q)C^{-1/2} + \Delta^*QC_0^{1/2}"
                       r"(C^{-1/2} - C_0^{-1/2})$ and $\lVert C^{-1/2} - C_0^{-1/2}\rVert\le h/m$"),
         ("ineq",), options=_ineq(second_params, search_iters=30)),
    Step("K", dist * gpos, "<=", K_delta,
         Justification("algebra", r"steps \emph{sqrt-perturbation}--\emph{target} combined; "
                       r"$\lVert\Delta^*(C^{1/2}-C_0^{1/2})\rVert_F\le\lVert\Delta^*\rVert_F h$"),
         ("ineq",), options=_ineq(second_params, search_iters=30)),
    Step("curvature", beta, "=", Frob2(A_C - Astar) - 2 * sp.Trace(A_C.T * Delta * Qperp),
         Justification("algebra", r"$\mathcal R(A) - b_r = \lVert A - A_*\rVert^2 + "
                       r"2\langle A - A_*, A_* - \Delta^*\rangle$, $A_* - \Delta^* = -\Delta^*Q_\perp$, "
                       r"$\langle A_*, \Delta^* Q_\perp\rangle = 0$"), ("hp",),
         options={"hp_params": hp_second}),
    Step("schur", 2 * sp.Abs(sp.Trace(A_C.T * Delta * Qperp)) * SingVal(PU * A_C * Q, r), "<=",
         s_r1 * Frob2(A_C - Astar),
         Justification("lemma", r"rank $A_C = r$ with invertible head block $A_{11}$: the tail "
                       r"block is $A_{21}A_{11}^{-1}A_{12}$, so $|\langle A_{22}, S_2\rangle|\le "
                       r"s_{r+1}\lVert A_{21}\rVert\lVert A_{12}\rVert/\sigma_r(A_{11})$, and "
                       r"$2xy\le x^2+y^2\le\lVert A_C - A_*\rVert_F^2$"), ("ineq",),
         options=_ineq(second_params, search_iters=30),
         note=("two-sided, as the lemma gives it: the curvature identity needs only "
               "-2<A_C, Delta* Q_perp> <= 2|<A_C, Delta* Q_perp>|; the signed left side was "
               "never positive on any random or adversarial instance (worst ratio about -1e-29), "
               "so only the absolute value lets the check discriminate near the right side; if "
               "<A_C, Delta* Q_perp> >= 0 held in general, this step and the factor "
               "(1 + s_{r+1}/(s_r - K)) could be dropped -- a conjecture, not certified")),
    Step("weyl", SingVal(PU * A_C * Q, r), ">=", s_r - dist,
         Justification("lemma", r"$\sigma_r(A_{11})\ge\sigma_r(S_1) - \lVert A_{11} - S_1\rVert$",
                       "Weyl"), ("ineq",), options=_ineq(second_params)),
    Step("bound", beta * room * gap ** 2, "<=", K_delta ** 2 * (room + s_r1 * gpos),
         Justification("algebra", r"$\beta_{\mathrm{mis}}\le\lVert A_C - A_*\rVert^2(1 + "
                       r"s_{r+1}/\sigma_r(A_{11}))$ with steps \emph{K}, \emph{weyl}; multiplied "
                       r"by $\delta^3(s_r - K)$: equivalent when $\delta>0$, $K<s_r$, trivially "
                       r"true otherwise"), ("mis_ineq",),
         options=_ineq(second_params, search_iters=50)),
)

_second_defs = _common_defs + (
    ("C0", Q * C * Q + Qperp * C * Qperp),
    ("eps", OpNorm(Qperp * C * Q)),
    ("Pi", PInv(TruncSVD(Delta * C ** half, r)) * TruncSVD(Delta * C ** half, r)),
    ("PU", TruncSVD(Delta, r) * PInv(TruncSVD(Delta, r))),
    ("delta_gap", SingVal(Delta * Q * C0 ** half, r) ** 2
     - SingVal(Delta * Qperp * C0 ** half, 1) ** 2),
)

second = Derivation(
    id="misalign_second_order",
    title=r"Misalignment bias: second-order bound in $(\varepsilon/\delta)^2$ (Davis--Kahan/Wedin)",
    regime="misalignment",
    assumptions=(r"$\Sigma = I$ (a general $\Sigma$ reduces to it by whitening)",
                 r"LoRA fits in a symmetric positive definite $C$ with aligned part $C_0$ that keeps "
                 r"the order: weighted gap $\delta > 0$",
                 r"$K < s_r$ (small misalignment)"),
    definitions=_second_defs,
    steps=second_steps,
    statement=Statement(beta * room * gap ** 2, "<=", K_delta ** 2 * (room + s_r1 * gpos), "bound",
                        (r"$\delta > 0$", r"$K < s_r$"), checks=("stmt_ineq", "value_e2e")),
    controls=(
        Control("square dropped", r"$\beta_{\mathrm{mis}}\le K(1 + s_{r+1}/(s_r - K))$",
                "bound", rhs=K_delta * gpos * (room + s_r1 * gpos)),
        Control("sqrt-perturbation constant 4", r"$\lVert C^{1/2}-C_0^{1/2}\rVert\le"
                r"\varepsilon/(4\sqrt m)$", "sqrt-perturbation", rhs=h / 2),
        Control("curvature sign", r"$+2\langle A_C, \Delta^*Q_\perp\rangle$", "curvature",
                rhs=Frob2(A_C - Astar) + 2 * sp.Trace(A_C.T * Delta * Qperp)),
        Control("weyl plus", r"$\sigma_r(A_{11})\ge s_r + \lVert A_C - A_*\rVert$", "weyl",
                rhs=s_r + dist),
    ),
    validate=validate, formula=formula, simulate=simulate,
    hp_params=hp_second, mc_params=hp_second, check_points=_CHECK_POINTS,
    summary=(r"With $\delta$ the weighted head/tail gap of the aligned part of $C$: "
             r"$\beta_{\mathrm{mis}}\le K^2(1 + s_{r+1}/(s_r - K))$, $K = O(\varepsilon/\delta)$ "
             r"explicit -- second order in the misalignment, an upper bound with loose constants."),
    references=("Yu, Wang, Samworth (2015), A useful variant of the Davis--Kahan theorem",
                "Wedin (1972)", "Bhatia, Matrix Analysis (1997)"),
    extra={"evaluate_details": details, "exact_estimator_value": mis.trained_bias,
           "statement_options": _ineq(second_params, search_iters=50),
           "generic_exempt": GENERIC_EXEMPT, "truth_statement": False,
           # both sides of K = 1 at the points of step "bound" (its control "square dropped"
           # is weaker than the bound for K <= 1 and false only beyond it)
           "step_regions": {"K <= 1 (small misalignment)": ("bound", _k_below_1),
                            "K > 1 with beta_mis > K(1 + s_{r+1}/(s_r - K))":
                                ("bound", _k_above_1_tight)},
           "truth": (Truth("beta_mis (code) vs its definition", beta, formula,
                           points=_finite_second),
                     Truth("second-order bound printed by evaluate",
                           K_delta ** 2 * (room + s_r1 * gpos) / (room * gap ** 2),
                           lambda p: mis.point_summary(p)["second_order_bound"],
                           points=_finite_second, tol=1e-7))},
)

DERIVATIONS = [first, second]

# -- display only (issue 15): the report names the long parts of the second-order statement and
# its steps ("where h := ...") instead of shrinking them; the audited expressions are unchanged.
second.extra = dataclasses.replace(
    second.extra,
    display_names=(("h", "h", h), ("dplus", r"\delta_+", gpos), ("Kdelta", r"\bar K", K_delta),
                   ("room", r"\omega", room)),
    display_names_note=(r"The $K$ of the conditions is $\bar K/\delta_+$ "
                        r"(for $\delta > 0$), and $s_r = \sigma_r(\Delta^*)$."))
