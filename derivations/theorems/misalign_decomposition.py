"""LoRA's risk = best-rank bias + misalignment bias + variance; the underdetermined cross term.

Overdetermined (``misalign_decomposition``), any ``Sigma``, every realisation (THEORY 4.1, 5):

    R(Delta_L) = ||D S^{-1/2} Sigma^{1/2}||^2,  D = P_r(M + G) - M,  M = Delta* S^{1/2}
               = b_r + beta_mis(Sigma_hat) + V,
    b_r + beta_mis(Sigma_hat) = ||(P_r(M) - M) S^{-1/2} Sigma^{1/2}||^2 = R(A_{Sigma_hat}),
    V = ||D S^{-1/2} Sigma^{1/2}||^2 - ||(P_r(M) - M) S^{-1/2} Sigma^{1/2}||^2   (the noise part).
The paper's clean expressions drop ``beta_mis(Sigma_hat)``: the sample covariance is never
aligned.  In expectation the three pieces are simulated on independent draws and must add up to
the simulated risk of the estimator; dropping the misalignment piece must be detected.

Underdetermined (``misalign_cross_under``), ``n < d``, ``P = X X^+``:

    Delta_L - Delta* = D X^+ - Delta*(I - P),   D = P_r(Delta* X + E) - Delta* X,
    R(Delta_L) = ||D X^+ Sigma^{1/2}||^2 + ||Delta*(I - P) Sigma^{1/2}||^2 + chi,
    chi = -2 tr(D^T Delta*(I - P) Sigma X^{+T}) = -2 tr(D^T Delta*(I - P)(Sigma - I) P X^{+T}),
    chi^2 <= 4 ||D||_F^2 ||Delta*(I - P)||_F^2 ||(I - P) Sigma P||^2 ||X^+||^2.
``chi`` vanishes for ``Sigma = I`` (LoRA's bias is then FFT's) and is otherwise controlled by the
misalignment ``||(I - P) Sigma P||`` between ``Sigma`` and the span of the data.
"""
from __future__ import annotations

import sympy as sp

from numeric import estimators
from numeric import misalignment as mis
from numeric.params import make_params
from symbolic.ops import Expect, Frob2, OpNorm, PInv, TruncSVD

from ..common import (Delta, DeltaL, E, Id, P, R, S, Sigma, SigmaHalf, X, half, hp_sizes, k,
                      msym, n, r, require, risk, sym)
from ..core import Control, Derivation, Justification, Statement, Step, Truth
from .misalign_bounds import GENERIC_EXEMPT

ORDER = 62

C, A_C, G = sym("C"), sym("A_C"), sym("G")
b_r, beta, chi = sym("b_r"), sym("beta_mis"), sym("cross")
d = sym("d")

# ------------------------------------------------------------------------ overdetermined
M_o = msym("M", k, d)
D_o = msym("D", k, d)
Sih = S ** (-half)
V_expr = Frob2(D_o * Sih * SigmaHalf) - Frob2((TruncSVD(M_o, r) - M_o) * Sih * SigmaHalf)

over_defs = (
    ("S", X * X.T),
    ("R", Delta * X + E),
    ("DeltaL", TruncSVD(R * X.T * Sih, r) * Sih),
    ("C", S / n),
    ("M", Delta * S ** half),
    ("G", E * X.T * Sih),
    ("D", TruncSVD(M_o + G, r) - M_o),
    ("A_C", TruncSVD(Delta * C ** half, r) * C ** (-half)),
    ("b_r", Frob2(Delta * SigmaHalf - TruncSVD(Delta * SigmaHalf, r))),
    ("beta_mis", risk(A_C) - b_r),
)

_OVER = dict(d=4, k=3, n=9, r=1, sigma=0.7, shift_sv=(3.0, 1.0, 0.6), cov_eigs=(3.0, 1.5, 1.0, 0.5))


def _drop_bias(p):
    """Statement-control marker: the decomposition without the misalignment piece."""
    return 0.0


def over_pieces(p, trials, gen, device, variant=None):
    """(estimator risk, b_r + beta_mis + V) on independent draws (three data sets per index)."""
    import torch

    from numeric.instances import torch_instance

    inst = torch_instance(p, device)
    sh, dl = inst["SigmaHalf"], inst["Delta"]
    X1, R1 = estimators.sample_data(inst, trials, gen, device)
    lhs = estimators.excess_risk(estimators.lora_over(X1, R1, p.r), dl, sh)
    X2, _ = estimators.sample_data(inst, trials, gen, device)
    b = mis.best_rank_risk(dl, p.r, sh)
    beta_ = estimators.excess_risk(estimators.lora_over(X2, dl @ X2, p.r), dl, sh) - b
    X3, R3 = estimators.sample_data(inst, trials, gen, device)
    v = estimators.excess_risk(estimators.lora_over(X3, R3, p.r), dl, sh) \
        - estimators.excess_risk(estimators.lora_over(X3, dl @ X3, p.r), dl, sh)
    rhs = b + v + (torch.zeros_like(beta_) if variant is _drop_bias else beta_)
    return lhs, rhs


def _value_points(cfg):
    return [make_params(d=3, k=4, n=8, r=1, sigma=0.5, shift_sv=(2.0, 1.2, 0.5),
                        fit_eigs=(1.4, 0.7, 1.0), cov_angle=0.6, seed=cfg.seed + 7),
            make_params(d=4, k=3, n=9, r=2, sigma=0.5, shift_sv=(2.0, 1.3, 1.0),
                        fit_eigs=(1.6, 0.6, 1.2, 0.9), cov_angle=0.6, seed=cfg.seed + 8)]


def validate_point(p):
    require(p.n >= p.d, f"misalign_decomposition is the overdetermined case: needs n >= d, "
                        f"got n = {p.n}, d = {p.d}")
    require(p.has_fit_cov, "evaluate/simulate give the noise-free LoRA risk b_r + beta_mis(C) "
                           "for a fitting covariance C: set fit_eigs=... and/or cov_angle=... "
                           "or coupling=... (Sigma = I)")


def over_formula(p):
    s = mis.point_summary(p)
    return s["b_r"] + s["beta_mis"]


def over_simulate(p, trials, gen, device):
    import torch

    from numeric.instances import torch_instance

    b = float(mis.best_rank_risk(torch_instance(p, "cpu")["Delta"], p.r))
    return mis.test_loss_samples(p, trials, gen, device, test_size=64) + b


def over_exact(p):
    """The exact mean of ``over_simulate``: the trained noise-free estimator's risk."""
    from numeric.instances import torch_instance

    return mis.trained_bias(p) + float(mis.best_rank_risk(torch_instance(p, "cpu")["Delta"], p.r))


over_steps = (
    Step("whitened-noise", R * X.T * Sih, "=", M_o + G,
         Justification("algebra", r"$R X^\top S^{-1/2} = \Delta^* S S^{-1/2} + E X^\top S^{-1/2}$"),
         ("hp",)),
    Step("lora-risk", risk(DeltaL), "=", Frob2(D_o * Sih * SigmaHalf),
         Justification("algebra", r"$\hat\Delta_L - \Delta^* = (P_r(M + G) - M)S^{-1/2}$"),
         ("hp",)),
    Step("noise-free", TruncSVD(M_o, r) * Sih, "=", A_C,
         Justification("algebra", r"$P_r(\Delta^* S^{1/2})S^{-1/2} = P_r(\Delta^*\hat\Sigma^{1/2})"
                       r"\hat\Sigma^{-1/2}$: $P_r$ commutes with positive scaling"), ("hp",)),
    Step("best-rank", risk(TruncSVD(Delta * SigmaHalf, r) * SigmaHalf.I), "=", b_r,
         Justification("lemma", r"Eckart--Young in the $\Sigma$ metric: $\mathcal R(A) = \lVert"
                       r"(A - \Delta^*)\Sigma^{1/2}\rVert_F^2$ is minimised over rank $\le r$ by "
                       r"$P_r(\Delta^*\Sigma^{1/2})\Sigma^{-1/2}$, at the tail energy $b_r$ of "
                       r"$\Delta^*\Sigma^{1/2}$ (what makes $b_r$ the best-rank bias)",
                       "Eckart--Young (1936)"), ("hp",)),
    Step("bias-split", Frob2((TruncSVD(M_o, r) - M_o) * Sih * SigmaHalf), "=", b_r + beta,
         Justification("definition", r"the noise-free part is $\mathcal R(A_{\hat\Sigma}) = b_r + "
                       r"\beta_{\mathrm{mis}}(\hat\Sigma)$"), ("hp",)),
)

over = Derivation(
    id="misalign_decomposition",
    title=r"LoRA's risk: best-rank bias $+$ misalignment bias $+$ variance (overdetermined)",
    regime="overdetermined",
    assumptions=(r"$x\sim\mathcal N(0,\Sigma)$, any SPD $\Sigma$; $n \ge d$",
                 r"$\hat\Delta_L = P_r(R X^\top S^{-1/2})S^{-1/2}$ (global minimiser, rank $\le r$)"),
    definitions=over_defs,
    steps=over_steps,
    statement=Statement(risk(DeltaL), "=", b_r + beta + V_expr, "exact",
                        (r"every realisation; in expectation over $X, E$ too",),
                        checks=("stmt_hp", "pieces_mc", "value_e2e")),
    controls=(
        Control("misalignment bias dropped", r"$\mathbb E\mathcal R(\hat\Delta_L) = b_r + "
                r"\mathbb E V$ (the clean, aligned decomposition)", "statement", formula=_drop_bias),
        Control("noise-free with S^{-1}", r"$P_r(M)S^{-1}$ for the noise-free target", "noise-free",
                lhs=TruncSVD(M_o, r) * S.I),
        Control("whitened noise sign", r"$M - G$", "whitened-noise", rhs=M_o - G),
        Control("best rank unweighted", r"$b_r = \lVert\Delta^* - P_r(\Delta^*)\rVert_F^2$ (the "
                r"tail energy of $\Delta^*$, not of $\Delta^*\Sigma^{1/2}$)", "best-rank",
                rhs=Frob2(Delta - TruncSVD(Delta, r))),
        Control("bias split without beta", r"$\mathcal R(A_{\hat\Sigma}) = b_r$", "bias-split",
                rhs=b_r),
    ),
    validate=validate_point, formula=over_formula, simulate=over_simulate,
    hp_params=lambda cfg: hp_sizes(cfg, _OVER),
    mc_params=lambda cfg: [make_params(**_OVER, seed=cfg.seed)],
    check_points=lambda cfg: [make_params(d=4, k=4, n=10, r=1, sigma=0.3,
                                          shift_sv=(3.0, 1.0, 1.0, 1.0), seed=cfg.seed + 11)],
    summary=(r"Every realisation: $\mathcal R(\hat\Delta_L) = b_r + \beta_{\mathrm{mis}}(\hat\Sigma) "
             r"+ V$; the misalignment piece is what the clean expressions omit. The "
             r"decomposition is exact \emph{by construction} ($V$ is defined as the remainder "
             r"$\mathcal R(\hat\Delta_L) - \mathcal R(A_{\hat\Sigma})$), so its checks certify the "
             r"bookkeeping, not the estimator (that is \texttt{lora\_estimator\_over}); their "
             r"content is that $\mathbb E\beta_{\mathrm{mis}}(\hat\Sigma)$ is detectably non-zero "
             r"(the control that drops it is rejected) and how large it is."),
    extra={"evaluate_details": mis.point_summary, "pieces_mc": over_pieces,
           "value_points": _value_points, "exact_estimator_value": over_exact,
           "generic_exempt": {k_: v_ for k_, v_ in GENERIC_EXEMPT.items() if k_ != "sigma != 1"},
           "truth_statement": False,
           "truth": (Truth("noise-free risk b_r + beta_mis(C) (code) vs R(A_C)",
                           Frob2(TruncSVD(Delta * C ** half, r) * C ** (-half) - Delta),
                           over_formula, points=_value_points),),
           "chain_exempt": ("an identity of every realisation, checked at 50 digits by stmt_hp "
                            "(V is defined as the remainder)"),
           "statement_options": {"hp_params": lambda cfg: hp_sizes(cfg, _OVER)}},
)

# ----------------------------------------------------------------------- underdetermined
M_u = msym("M", k, n)
D_u = msym("D", k, n)
Xp = PInv(X)
cross_expr = -2 * sp.Trace(D_u.T * Delta * (Id - P) * Sigma * Xp.T)

under_defs = (
    ("R", Delta * X + E),
    ("P", X * Xp),
    ("DeltaL", TruncSVD(R, r) * Xp),
    ("M", Delta * X),
    ("D", TruncSVD(M_u + E, r) - M_u),
    ("cross", cross_expr),
)

_UNDER = dict(d=6, k=3, n=4, r=2, sigma=1.3, shift_sv=(3.0, 2.0, 1.5),
              cov_eigs=(10.0, 5.0, 1.0, 1.0, 0.2, 0.1))


def _drop_cross(p):
    """Statement-control marker: the Sigma = I decomposition (no cross term) for any Sigma."""
    return 0.0


def under_pieces(p, trials, gen, device, variant=None):
    """(R(estimator) - variance - bias on one set of draws, chi on an independent set)."""
    import torch

    from numeric.instances import torch_instance

    inst = torch_instance(p, device)
    X1, R1 = estimators.sample_data(inst, trials, gen, device)
    est = estimators.excess_risk(estimators.lora_under(X1, R1, p.r), inst["Delta"],
                                 inst["SigmaHalf"])
    pc = mis.under_pieces(X1, R1 - inst["Delta"] @ X1, inst["Delta"], inst["SigmaHalf"], p.r)
    lhs = est - pc["variance"] - pc["bias"]
    X2, R2 = estimators.sample_data(inst, trials, gen, device)
    rhs = mis.under_pieces(X2, R2 - inst["Delta"] @ X2, inst["Delta"], inst["SigmaHalf"],
                           p.r)["cross"]
    # errors are judged relative to the mean risk of the estimator (chi is a piece of it)
    return lhs, (torch.zeros_like(rhs) if variant is _drop_cross else rhs), float(est.mean())


def validate_under(p):
    require(p.n < p.d, f"misalign_cross_under is the underdetermined case: need n < d, got "
                       f"n = {p.n}, d = {p.d}")


def under_simulate(p, trials, gen, device):
    return under_pieces(p, trials, gen, device)[0]


def under_details(p):
    import torch

    from numeric.device import generator
    from numeric.instances import torch_instance

    inst = torch_instance(p, "cpu")
    X, Rr = estimators.sample_data(inst, 4000, generator(p.seed), "cpu")
    pc = mis.under_pieces(X, Rr - inst["Delta"] @ X, inst["Delta"], inst["SigmaHalf"], p.r)
    return {"clean_value_of_E_cross": 0.0,
            "mc_E_cross (4000 draws)": float(pc["cross"].mean()),
            "mc_E_cross_se": float(pc["cross"].std() / 4000 ** 0.5),
            "mc_E_bias_term": float(pc["bias"].mean()),
            "mc_E_variance_term": float(pc["variance"].mean()),
            "mc_mean_data_misalignment": float(pc["data_misalignment"].mean()),
            "mc_mean_cross_bound": float(pc["cross_bound"].mean())}


def _cross_draws(p):
    """One data set (X, E) of the instance, drawn in mpmath from a seed of the point: the same
    numbers for the SymPy side and (rounded to float64) for the code."""
    import numpy as np

    from numeric.instances import draw_mp, mp_instance

    from numeric.seeds import stable_seed

    inst = mp_instance(p)
    return inst, draw_mp(("X", "E"), inst, np.random.default_rng(stable_seed(p.seed, "cross")))


def _cross_code(key):
    """``numeric.misalignment.under_pieces`` (what evaluate prints) on that data set."""
    def value(p):
        import mpmath as mp
        import torch

        with mp.workdps(30):
            inst, dr = _cross_draws(p)
            t = lambda m: torch.tensor([[float(m[i, j]) for j in range(m.cols)]  # noqa: E731
                                        for i in range(m.rows)], dtype=torch.float64)
            X_, E_, D_, H_ = t(dr["X"]), t(dr["E"]), t(inst["Delta"]), t(inst["SigmaHalf"])
        return float(mis.under_pieces(X_[None], E_[None], D_, H_, p.r)[key][0])
    return value


def _cross_points(cfg):
    return [make_params(**{**_UNDER, "seed": cfg.seed * 100 + i}) for i in range(3)]


def _cross_truths():
    env = lambda p, dps: _cross_draws(p)[1]  # noqa: E731
    mis_expr = OpNorm((Id - P) * Sigma * P)
    bound = 2 * sp.sqrt(Frob2(D_u)) * sp.sqrt(Frob2(Delta * (Id - P))) * mis_expr * OpNorm(Xp)
    pairs = (("variance", Frob2(D_u * Xp * SigmaHalf)),
             ("bias", Frob2(Delta * (Id - P) * SigmaHalf)), ("cross", chi),
             ("data_misalignment", mis_expr), ("cross_bound", bound))
    return tuple(Truth(f"under_pieces {key} (printed by evaluate) vs SymPy", expr,
                       _cross_code(key), points=_cross_points, env=env, tol=1e-8)
                 for key, expr in pairs)


under_steps = (
    Step("error-split", DeltaL - Delta, "=", D_u * Xp - Delta * (Id - P),
         Justification("algebra", r"$P_r(R)X^+ - \Delta^* = (P_r(M + E) - M)X^+ + \Delta^*(P - I)$ "
                       r"with $M X^+ = \Delta^* P$"), ("hp",)),
    Step("risk-split", risk(DeltaL), "=",
         Frob2(D_u * Xp * SigmaHalf) + Frob2(Delta * (Id - P) * SigmaHalf) + chi,
         Justification("algebra", r"expand the square in the $\Sigma$ metric; "
                       r"$\chi = -2\operatorname{tr}(D^\top\Delta^*(I-P)\Sigma X^{+\top})$"), ("hp",)),
    Step("misalignment-form", chi, "=",
         -2 * sp.Trace(D_u.T * Delta * (Id - P) * (Sigma - Id) * P * Xp.T),
         Justification("algebra", r"$P X^{+\top} = X^{+\top}$ and $(I - P)P = 0$: only the "
                       r"coupling $(I-P)\Sigma P$ of $\Sigma$ between the span of the data and its "
                       r"complement enters; $\chi = 0$ for $\Sigma = I$"), ("hp",)),
    Step("cross-bound", chi ** 2, "<=",
         4 * Frob2(D_u) * Frob2(Delta * (Id - P)) * OpNorm((Id - P) * Sigma * P) ** 2
         * OpNorm(Xp) ** 2,
         Justification("inequality", r"Cauchy--Schwarz and $\lVert ABC\rVert_F\le\lVert A\rVert_F"
                       r"\lVert B\rVert\lVert C\rVert$"), ("ineq",),
         options={"ineq_params": lambda cfg: hp_sizes(cfg, _UNDER, count=8), "search_iters": 40}),
)

under = Derivation(
    id="misalign_cross_under",
    title=r"Underdetermined LoRA with $\Sigma\ne I$: the cross term",
    regime="underdetermined",
    assumptions=(r"$x\sim\mathcal N(0,\Sigma)$, $n < d$",
                 r"$\hat\Delta_L = P_r(R)X^+$ (minimum-norm global minimiser)"),
    definitions=under_defs,
    steps=under_steps,
    statement=Statement(Expect(risk(DeltaL) - Frob2(D_u * Xp * SigmaHalf)
                               - Frob2(Delta * (Id - P) * SigmaHalf), X, E), "=",
                        Expect(chi, X, E), "exact", (r"$n < d$",), checks=("pieces_mc",)),
    controls=(
        Control("cross term dropped", r"the $\Sigma = I$ decomposition ($\chi = 0$) used for "
                r"$\Sigma\ne I$", "statement", formula=_drop_cross),
        Control("cross sign", r"$+\chi$ replaced by $-\chi$", "risk-split",
                rhs=Frob2(D_u * Xp * SigmaHalf) + Frob2(Delta * (Id - P) * SigmaHalf) - chi),
        Control("bound without ||X^+||", r"$\chi^2\le 4\lVert D\rVert^2\lVert\Delta^*(I-P)\rVert^2"
                r"\lVert(I-P)\Sigma P\rVert^2$", "cross-bound",
                rhs=4 * Frob2(D_u) * Frob2(Delta * (Id - P)) * OpNorm((Id - P) * Sigma * P) ** 2),
    ),
    validate=validate_under, formula=lambda p: 0.0, simulate=under_simulate,
    hp_params=lambda cfg: hp_sizes(cfg, _UNDER),
    mc_params=lambda cfg: [make_params(**_UNDER, seed=cfg.seed)],
    check_points=lambda cfg: [make_params(**_UNDER, seed=5),
                              make_params(d=7, k=5, n=4, r=2, sigma=0.8, shift_sv=(3.0, 1.8, 1.0),
                                          cov_eigs=(6.0, 3.0, 1.5, 1.0, 0.6, 0.3, 0.15), seed=6)],
    summary=(r"For $n < d$ LoRA's risk splits into variance, FFT's bias $\lVert\Delta^*(I-P)"
             r"\Sigma^{1/2}\rVert^2$ and a cross term $\chi$ that vanishes for $\Sigma = I$ and is "
             r"driven by $\lVert (I-P)\Sigma P\rVert$ otherwise. evaluate gives the clean "
             r"($\Sigma = I$) value $\mathbb E\chi = 0$; simulate measures $\mathbb E\chi$."),
    extra={"evaluate_details": under_details, "pieces_mc": under_pieces,
           "chain": ("risk-split",), "truth": _cross_truths(),
           "value_label": "E chi for Sigma = I (the clean value, 0); `simulate` measures E chi "
                          "for the given Sigma"},
)

DERIVATIONS = [over, under]
