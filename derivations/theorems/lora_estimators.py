"""THEORY 2 -- LoRA's estimators: the closed forms are the global minimisers, and training finds them.

Overdetermined: ``||R - Delta X||_F^2 = ||(Delta - Delta_F) S^{1/2}||_F^2 + ||R - Delta_F X||_F^2``
for every ``Delta``, so over ``rank Delta <= r`` Eckart-Young in the metric ``S`` gives
``Delta_L = P_r(R X^T S^{-1/2}) S^{-1/2}``.  Underdetermined: every rank-``r`` ``Delta`` with
``Delta X = P_r(R)`` is a global minimiser; the minimum-norm one is ``P_r(R) X^+`` (any other
differs by ``Z (I - P)``, orthogonal to it).

Training (``numeric.lora_train``): plain gradient descent on ``B A`` from ``B = 0``, small random
``A`` reaches ``Delta_L`` (over: exactly; under: up to ``B A_0 (I - P)``, proportional to the
initial scale -- checked by halving it).  Adam reaches the same loss at a different ``Delta``;
how far its excess risk lands from the minimum-norm one is reported (evidence and
``evaluate``), because the theory's implicit-bias assumption does not hold for it.
"""
from __future__ import annotations

from functools import lru_cache

from numeric import estimators
from numeric import instances
from numeric.device import generator
from numeric.lora_train import compare_training, train_gd
from numeric.params import make_params
from numeric.stats import summarize
from numeric.seeds import stable_seed
from symbolic.ops import Frob2, PInv, TruncSVD

from ..checkers.estimators import INIT_SCALES
from ..common import (Delta, DeltaF, E, Id, R, S, X, half, hp_sizes, r, require, sym)
from ..core import Control, Derivation, Justification, Statement, Step

ORDER = 30

DeltaL, DeltaGD, P, G = sym("DeltaL"), sym("DeltaGD"), sym("P"), sym("G")
Shalf, Sihalf = S ** half, S ** (-half)
C_over = R * X.T * Sihalf
Xp = PInv(X)


# ----------------------------------------------------------------------------- shared hooks
def _simulate_trained(p, trials, gen, device):
    """Excess risk of LoRA *trained by gradient descent* (batched), not of the closed form."""
    import torch

    inst = instances.torch_instance(p, device)
    out = []
    for s in range(0, trials, 2000):
        b = min(2000, trials - s)
        Xb, Rb = estimators.sample_data(inst, b, gen, device)
        res = train_gd(Xb, Rb, p.r, init_scale=INIT_SCALES[0], gen=gen, tol=1e-9)
        out.append(estimators.excess_risk(res.Delta, inst["Delta"], inst["SigmaHalf"]))
    return torch.cat(out)


@lru_cache(maxsize=64)
def _closed_form_risk(p, trials=20000):
    inst = instances.torch_instance(p, "cpu")
    X_, R_ = estimators.sample_data(inst, trials, generator(stable_seed(p.seed, "closed")), "cpu")
    s = summarize(estimators.excess_risk(estimators.lora(X_, R_, p.r), inst["Delta"],
                                         inst["SigmaHalf"]))
    return s.mean, s.se, trials


def _details(p):
    mean, se, trials = _closed_form_risk(p)
    out = {"closed_form_risk_monte_carlo": mean, "closed_form_risk_se": se, "trials": trials,
           "note": "value = Monte Carlo of the closed form's excess risk; simulate trains LoRA"}
    res = compare_training(p, trials=4, seed=p.seed, adam_steps=4000)
    out["gd_max_rel_delta_gap"] = res["gd"][0]["max_rel_delta_gap"]
    if "adam" in res:
        a = res["adam"]
        out.update({"adam_rel_loss_gap": a["max_rel_loss_gap"],
                    "adam_minus_min_norm_excess_risk": a["excess_risk_gap_mean"],
                    "adam_minus_min_norm_se": a["excess_risk_gap_se"],
                    "adam_relative_gap": a["relative_gap"]})
    return out


# ------------------------------------------------------------------------------ overdetermined
_OVER = dict(d=4, k=3, n=12, r=2, sigma=0.8, shift_sv=(3.0, 1.5, 0.5), cov_eigs=(3.0, 1.5, 1.0, 0.5))


def validate_over(p):
    require(p.n > p.d, f"lora_estimator_over needs n > d, got n = {p.n}, d = {p.d}")


steps_over = (
    Step("loss-identity", Frob2(R - G * X), "=",
         Frob2((G - DeltaF) * Shalf) + Frob2(R - DeltaF * X),
         Justification("algebra", r"expand around the OLS fit: the cross term "
                       r"$\operatorname{tr}((R - \hat\Delta_F X) X^\top (\ldots)^\top)$ vanishes since "
                       r"$(R - \hat\Delta_F X) X^\top = 0$; holds for every $k\times d$ matrix (here $G$)"),
         ("hp",)),
    Step("whitened-truncation", (DeltaL - DeltaF) * Shalf, "=", TruncSVD(C_over, r) - C_over,
         Justification("algebra", r"$\hat\Delta_F S^{1/2} = R X^\top S^{-1/2}$"), ("hp",)),
    Step("eckart-young", Frob2((TruncSVD(G, r) - DeltaF) * Shalf), ">=",
         Frob2(TruncSVD(C_over, r) - C_over),
         Justification("lemma", r"$\operatorname{rank}(P_r(G) S^{1/2}) \le r$ and Eckart--Young for "
                       r"$C = R X^\top S^{-1/2}$", "Eckart & Young (1936)"),
         ("ineq",), options=dict(search=("G",))),
    Step("gd-limit", DeltaGD, "=", DeltaL,
         Justification("numerical", r"gradient descent on $\lVert R - BAX\rVert_F^2$ from $B = 0$, "
                       r"$A_0$ small random, fixed step from $\lambda_{\max}(S)$, run to gradient norm "
                       r"$< 10^{-11}$"), ("lora_train",)),
)

DER_OVER = Derivation(
    id="lora_estimator_over",
    title="LoRA estimator, overdetermined: reduced-rank regression is the global minimiser; GD finds it",
    regime="overdetermined",
    assumptions=(r"$n > d$ ($S$ invertible)", r"loss $\lVert R - BAX\rVert_F^2$, $B$: $k\times r$, $A$: $r\times d$"),
    definitions=(("S", X * X.T), ("R", Delta * X + E), ("DeltaF", R * X.T * S.I),
                 ("DeltaL", TruncSVD(C_over, r) * Sihalf)),
    steps=steps_over,
    statement=Statement(Frob2(R - DeltaL * X), "<=", Frob2(R - TruncSVD(G, r) * X), "exact",
                        (r"for every rank-$r$ matrix, here $P_r(G)$",), checks=("ineq",)),
    controls=(
        Control("loss identity without constant", r"step \emph{loss-identity} without "
                r"$\lVert R - \hat\Delta_F X\rVert_F^2$", "loss-identity",
                rhs=Frob2((G - DeltaF) * Shalf)),
        Control("loss identity Euclidean", r"step \emph{loss-identity} in the Euclidean metric",
                "loss-identity", rhs=Frob2(G - DeltaF) + Frob2(R - DeltaF * X)),
        Control("eckart-young rank r-1", r"step \emph{eckart-young} with $P_{r-1}$ on the right",
                "eckart-young", rhs=Frob2(TruncSVD(C_over, r - 1) - C_over)),
        Control("gd-limit Euclidean truncation", r"step \emph{gd-limit} against $P_r(\hat\Delta_F)$ "
                r"(rank-$r$ truncation of OLS in the wrong metric)", "gd-limit",
                rhs=TruncSVD(DeltaF, r)),
    ),
    validate=validate_over,
    formula=lambda p: _closed_form_risk(p)[0],
    simulate=_simulate_trained,
    hp_params=lambda cfg: hp_sizes(cfg, _OVER),
    mc_params=lambda cfg: [make_params(**_OVER, seed=cfg.seed)],
    check_points=lambda cfg: [make_params(**_OVER, seed=cfg.seed)],
    summary=(r"Over $\operatorname{rank}\Delta \le r$ the empirical loss is minimised by "
             r"$P_r(RX^\top S^{-1/2})S^{-1/2}$ (Eckart--Young in the metric $S$, not the truncated "
             r"OLS fit), and gradient descent on the LoRA factors converges to it."),
    references=("Eckart & Young (1936)", "Izenman (1975)"),
    extra={"evaluate_details": _details, "statement_options": dict(search=("G",)),
           "simulate_trials": 400,   # each simulated data set trains LoRA by gradient descent
           "no_closed_form": "the value is a Monte Carlo mean of the closed form's excess risk",
           "chain_exempt": ("the statement (the closed form's loss is at most that of any rank-r "
                            "matrix) is itself checked pointwise, at random and adversarial "
                            "instances, by the inequality checker")},
)

# ----------------------------------------------------------------------------- underdetermined
_UNDER = dict(d=10, k=4, n=5, r=2, sigma=0.5, shift_sv=(3.0, 2.0, 0.5),
              cov_eigs=(2.0, 1.6, 1.3, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5))


def validate_under(p):
    require(p.n < p.d, f"lora_estimator_under needs n < d, got n = {p.n}, d = {p.d}")


steps_under = (
    Step("interpolation", DeltaL * X, "=", TruncSVD(R, r),
         Justification("algebra", r"$X^+ X = I_n$ ($X$ has full column rank)"), ("hp",)),
    Step("eckart-young", Frob2(R - TruncSVD(G, r) * X), ">=", Frob2(R - TruncSVD(R, r)),
         Justification("lemma", r"$\operatorname{rank}(\Delta X) \le r$ for every rank-$r$ $\Delta$; "
                       r"Eckart--Young for $R$", "Eckart & Young (1936)"),
         ("ineq",), options=dict(search=("G",))),
    Step("min-norm", Frob2(DeltaL + G * (Id - P)), "=", Frob2(DeltaL) + Frob2(G * (Id - P)),
         Justification("algebra", r"every $\Delta$ with $\Delta X = P_r(R)$ is $\hat\Delta_L + Z(I - P)$; "
                       r"the rows of $\hat\Delta_L = P_r(R)X^+$ lie in the span of $X$, orthogonal to "
                       r"those of $Z(I-P)$"), ("hp",)),
    Step("gd-limit", DeltaGD, "=", DeltaL,
         Justification("numerical", r"gradient descent from $B = 0$: $A_0(I - P)$ never moves, so "
                       r"$\hat\Delta_{\mathrm{GD}} = \hat\Delta_L + B_\infty A_0 (I - P)$, proportional to "
                       r"the initial scale; Adam (evidence) reaches the same loss elsewhere"),
         ("lora_train",), options=dict(up_to_init_scale=True, adam=True)),
)

DER_UNDER = Derivation(
    id="lora_estimator_under",
    title=r"LoRA estimator, underdetermined: $P_r(R)\,X^{+}$ is the minimum-norm global minimiser; GD (not Adam) finds it",
    regime="underdetermined",
    assumptions=(r"$n < d$", r"$X$ of full column rank $n$"),
    definitions=(("R", Delta * X + E), ("P", X * Xp), ("DeltaL", TruncSVD(R, r) * Xp)),
    steps=steps_under,
    statement=Statement(Frob2(R - DeltaL * X), "<=", Frob2(R - TruncSVD(G, r) * X), "exact",
                        (r"for every rank-$r$ matrix, here $P_r(G)$",), checks=("ineq",)),
    controls=(
        Control("interpolation full rank", r"step \emph{interpolation} with $R$ (no truncation)",
                "interpolation", rhs=R),
        Control("eckart-young rank r-1", r"step \emph{eckart-young} with $P_{r-1}(R)$", "eckart-young",
                rhs=Frob2(R - TruncSVD(R, r - 1))),
        Control("min-norm without Z term", r"step \emph{min-norm} with $\lVert Z(I-P)\rVert_F^2$ dropped",
                "min-norm", rhs=Frob2(DeltaL)),
        Control("gd-limit P_r(R X^+)", r"step \emph{gd-limit} against $P_r(R X^+)$", "gd-limit",
                rhs=TruncSVD(R * Xp, r)),
    ),
    validate=validate_under,
    formula=lambda p: _closed_form_risk(p)[0],
    simulate=_simulate_trained,
    hp_params=lambda cfg: hp_sizes(cfg, _UNDER),
    mc_params=lambda cfg: [make_params(**_UNDER, seed=cfg.seed)],
    check_points=lambda cfg: [make_params(**_UNDER, seed=cfg.seed)],
    summary=(r"Every rank-$r$ $\Delta$ with $\Delta X = P_r(R)$ minimises the loss; $P_r(R)X^+$ is the "
             r"shortest.  Gradient descent from $B = 0$ lands on it up to a term proportional to the "
             r"initial scale; Adam reaches the same loss at a different $\Delta$ (its excess-risk gap is "
             r"reported): the theory's implicit bias is an assumption about the optimiser."),
    references=("Eckart & Young (1936)",),
    extra={"evaluate_details": _details, "statement_options": dict(search=("G",)),
           "simulate_trials": 400,   # each simulated data set trains LoRA by gradient descent
           "no_closed_form": "the value is a Monte Carlo mean of the closed form's excess risk",
           "chain_exempt": ("the statement (the closed form's loss is at most that of any rank-r "
                            "matrix) is itself checked pointwise, at random and adversarial "
                            "instances, by the inequality checker")},
)

DERIVATIONS = [DER_OVER, DER_UNDER]
