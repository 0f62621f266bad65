"""The exact fast Monte Carlo samplers (``numeric.samplers``) are the estimators' risk laws.

The audit's high-power Monte Carlo draws FFT's and LoRA's excess risks from sufficient
statistics instead of raw ``(X, E)`` (the derivation of each law is in ``numeric/samplers.py``):

* over (any ``Sigma``): ``R(Delta_L) = ||P_r(B L + G~) L^{-1} - B||_F^2`` with ``B = Delta*
  Sigma^{1/2}``, ``L`` the Bartlett factor of ``Sigma^{-1/2} S Sigma^{-1/2} ~ Wishart_d(I, n)``
  and ``G~ = E X^T T^{-T}`` (``T = Sigma^{1/2} L``) i.i.d. ``N(0, sigma^2)`` independent of ``L``;
  where ``k <= d - s`` the sampler draws the ``k x k`` reduction of ``(L, G~)`` instead (the
  shift's ``s`` coordinates split off; ``P``, ``Q`` from two ``k x k`` Bartlett factors, the
  second with the Schur complement's ``n - d + k`` degrees of freedom);
* under (``Sigma = I``): the risks are functions of ``Z1 = V^T X``, ``K = Z1^T Z1 + W`` with
  ``W ~ Wishart_n(I, d - s)`` independent of ``Z1``, and ``E``; where ``s + k <= n <= d - s``
  the sampler draws their ``(s + k) x (s + k)`` reduction (``R0`` of the QR of ``[Z1; E /
  sigma]^T`` and ``T = Rs Rs^T + Y``, ``Y`` a Schur complement with ``d - n + k`` degrees of
  freedom).

Two checks certify them against the raw path, the reference:

1. step ``risk-identity`` (checker ``sampler_identity``; over: also ``reduced-identity`` for the
   ``k x k`` form): computed from raw data, the statistics give the raw estimators' risks draw
   by draw, at every rank and for FFT, to float64 rounding (a deterministic identity; the
   controls plant a wrong one);
2. the statement (checker ``sampler_two_sample``): the fast sampler's and the raw simulation's
   mean risks agree by a two-sample test (FFT and LoRA), powered to ``cfg.max_detectable``; a
   sampler with one degree of freedom too few or too many in its Wishart factor (Bartlett /
   ``W``) must be rejected, and so must a reduced sampler whose Schur block has ``n - d``
   degrees of freedom instead of ``n - d + k``.
"""
from __future__ import annotations

from numeric import samplers
from numeric.params import make_params
from symbolic.ops import Expect, Frob2, TruncSVD

from ..common import Delta, E, SigmaHalf, X, require, risk, sym
from ..core import Control, Derivation, Justification, Statement, Step, Truth

ORDER = 15

DeltaL, r = sym("DeltaL"), sym("r")
Lb, Gt, Z1, Wb, Rfast, Rred = (sym(s) for s in ("Lb", "Gt", "Z1", "Wb", "Rfast", "Rred"))
B_ = Delta * SigmaHalf


def _no_formula(p):
    from numeric.errors import InputError

    raise InputError("mc_samplers_* certify a sampler against raw data: they have no closed-form "
                     "value to evaluate (use `simulate` for the fast sampler's LoRA risk)")


def _stats_draw(p):
    """One raw data set of the instance (a seed of its own) and its statistics (float64)."""
    from numeric.device import generator
    from numeric.estimators import sample_data
    from numeric.instances import torch_instance
    from numeric.seeds import stable_seed

    inst = torch_instance(p, "cpu")
    X, R = sample_data(inst, 1, generator(stable_seed(p.seed, "mc_samplers", "truth")), "cpu")
    setup = samplers.fast_setup(inst, "over", "full")      # the typeset identity's (L, G~)
    return setup, samplers.stats_from_data(setup, inst, X, R - inst["Delta"] @ X)


def _fast_lora_risk(p):
    """LoRA's risk at rank ``r`` as ``samplers.risks`` computes it from the statistics."""
    setup, stats = _stats_draw(p)
    return float(samplers.risks(setup, stats)[1][0, p.r - 1])


def _stats_env(p, dps):
    import mpmath as mp

    _, stats = _stats_draw(p)
    return {"Lb": mp.matrix(stats["L"][0].tolist()), "Gt": mp.matrix(stats["G"][0].tolist())}


def _wrong_dof(shift):
    return lambda p, est, t, g, dev: samplers.simulate(p, est, t, g, dev, path="fast",
                                                       dof_shift=shift)


def _wrong_reduced_dof(p, est, t, g, dev):
    """The reduced sampler drawn with one degree of freedom too few (over: ``n``; under: ``d -
    s``; the correct sampler where the reduced form does not apply): the reduced point must
    reject it on its own."""
    extra = {"dof_shift": -1} if samplers.reduced_applies(p) else {}
    return samplers.simulate(p, est, t, g, dev, path="fast", **extra)


def _wrong_schur(p, est, t, g, dev):
    """The reduced sampler with the Schur block's ``|n - d| + k`` degrees of freedom mistaken
    for ``|n - d|`` (the correct sampler where the reduced form does not apply)."""
    extra = {"schur_dof": abs(p.n - p.d)} if samplers.reduced_applies(p) else {}
    return samplers.simulate(p, est, t, g, dev, path="fast", **extra)


_POINTS = {
    # left (k <= d) and right (k > d) truncation forms; non-identity covariances
    "over": [dict(d=4, k=3, n=12, r=1, sigma=1.0, shift_sv=(3.0, 2.0, 1.0),
                  cov_eigs=(4.0, 2.0, 1.0, 0.5)),
             dict(d=3, k=5, n=9, r=2, sigma=1.0, shift_sv=(2.0, 1.0), cov_eigs=(3.0, 1.0, 0.5)),
             # k <= d - s: the reduced k x k sampler (s = 2, so L11^{-T} != L11^{-1}; sigma != 1,
             # so that a dropped or squared noise scale shows)
             dict(d=6, k=2, n=14, r=1, sigma=1.3, shift_sv=(2.0, 1.0),
                  cov_eigs=(3.0, 2.0, 1.5, 1.0, 0.7, 0.4))],
    # noise-dominated, so that a wrong d - s is visible in the mean (it moves bias and variance
    # in opposite directions); left (k <= n) and right (k > n) forms
    "under": [dict(d=12, k=3, n=5, r=1, sigma=1.0, shift_sv=(1.0, 0.5, 0.25)),
              dict(d=10, k=6, n=4, r=2, sigma=1.0, shift_sv=(1.0, 0.5)),
              # s + k <= n <= d - s: the reduced (s + k) x (s + k) sampler (sigma != 1)
              dict(d=14, k=3, n=7, r=2, sigma=1.3, shift_sv=(1.0, 0.5)),
              # d - s < n: W is a singular Wishart (drawn from its Gaussian factor)
              dict(d=16, k=7, n=11, r=2, sigma=1.2, shift_sv=(1.0, 0.8, 0.6, 0.5, 0.4, 0.3))],
}


def _make(regime) -> Derivation:
    if regime == "over":
        rhs = Frob2(TruncSVD(B_ * Lb + Gt, r) * Lb.I - B_)
        title = "Exact fast sampler, overdetermined: LoRA's risk from the Bartlett factor"
        assumptions = (r"$x\sim\mathcal N(0,\Sigma)$, any $\Sigma\succ 0$; $n \ge d$; Gaussian noise",
                       r"$L$: Bartlett factor of $\mathcal W_d(I, n)$ ($L_{ii}^2\sim\chi^2_{n-i+1}$, "
                       r"$L_{ij}\sim\mathcal N(0,1)$ for $i > j$); $\tilde G$ i.i.d.\ "
                       r"$\mathcal N(0,\sigma^2)$, independent")
        why = (r"$T = \Sigma^{1/2}L$ has $TT^\top = S$; the loss is $\lVert(\Delta - \hat\Delta_F)T"
               r"\rVert_F^2 + $ const, so $\hat\Delta_L = P_r(\Delta^* T + \tilde G)T^{-1}$ and "
               r"$T^{-1}\Sigma^{1/2} = L^{-1}$")
        randoms, wrong_id, dof_txt = (Lb, Gt), "transposed factor", "Bartlett factor with"
        summary = (r"LoRA's (and FFT's) excess risk depends on the data only through the Bartlett "
                   r"factor $L$ and the whitened noise $\tilde G$: drawn directly, a data set "
                   r"costs $O(kd^2 + d^3)$ instead of $O(knd + nd^2)$, exactly in distribution; "
                   r"where $k \le d - s$ a further rotation reduces it to $k\times k$ statistics, "
                   r"$O(k^3)$ per data set, independent of $n$ and $d$.")
    else:
        rhs = Rfast
        title = r"Exact fast sampler, underdetermined ($\Sigma = I$): risks from $Z_1$ and $W_\perp$"
        assumptions = (r"$x\sim\mathcal N(0, I_d)$; $d > n$; Gaussian noise",
                       r"$\Delta^* = U\operatorname{diag}(s)V^\top$ of rank $s$; $Z_1 = V^\top X$ "
                       r"i.i.d.\ $\mathcal N(0,1)$; $W\sim\mathcal W_n(I, d - s)$ independent")
        why = (r"$X^\top X = Z_1^\top Z_1 + W$ and $\Delta^* X = U\operatorname{diag}(s) Z_1$; "
               r"$\lVert A X^+ - \Delta^*\rVert_F^2 = \operatorname{tr}(A K^{-1}A^\top) - 2\operatorname"
               r"{tr}(A K^{-1}(\Delta^* X)^\top) + \lVert\Delta^*\rVert_F^2$ for $A = R$, $P_r(R)$")
        randoms, wrong_id, dof_txt = (Z1, Wb, E), "bias dropped", r"$W\sim\mathcal W_n(I, d - s$"
    steps = (
        Step("risk-identity", risk(DeltaL), "=", rhs,
             Justification("algebra", why),
             ("sampler_identity",),
             note="checked draw by draw on raw data, with the statistics computed from it, "
                  "at every rank and for FFT (float64)"),
    )
    if regime == "over":
        steps += (
            Step("reduced-identity", risk(DeltaL), "=", Rred,
                 Justification("lemma", r"rotate $B = \Delta^*\Sigma^{1/2}$ to $[B_s, 0]$ "
                               r"($(W, N)\mapsto(O^\top W O, NO)$ keeps the law of $W = L L^\top$ and "
                               r"$N = \tilde G L^{-1}$) and split $L$, $\tilde G$ after the shift's $s$ "
                               r"coordinates: $N = [(G_1 - J)L_{11}^{-1}, H]$, $AA^\top = (B_sL_{11} + "
                               r"G_1)(\cdot)^\top + P$, $P = G_2G_2^\top$, $Q = HH^\top$, $J = HL_{21}$; in law "
                               r"$(P, Q) = \sigma^2(L_pL_p^\top, L_pY^{-1}L_p^\top)$ with $L_pL_p^\top\sim"
                               r"\mathcal W_k(I, d - s)$, $Y\sim\mathcal W_k(I, n - d + k)$ (Schur "
                               r"complement) and $J = Q^{1/2}Z$",
                               "Muirhead (1982), Thm 3.2.10 (Schur complement of a Wishart matrix)"),
                 ("sampler_identity",),
                 note=r"where $k \le d - s$ the sampler draws these $k\times k$ statistics "
                      r"(cost $O(k^3)$, independent of $n$ and $d$); the identity is checked draw by "
                      r"draw on raw data (the statistics computed from it by the same rotation), "
                      r"the law by the statement's two-sample test",
                 options={"form": "reduced"}),
        )
    else:
        steps += (
            Step("reduced-identity", risk(DeltaL), "=", Rred,
                 Justification("lemma", r"$\Phi_0 = [Z_1; E/\sigma]$, $\Phi_0^\top = QR_0$: the risks "
                               r"need $\Phi_0\Phi_0^\top = R_0^\top R_0$ and $\Phi_0K^{-1}\Phi_0^\top = "
                               r"R_0^\top T^{-1}R_0$, $T = R_sR_s^\top + Y$; completing $Q$ to $O$, "
                               r"$O^\top WO\sim\mathcal W_n(I, d - s)$ is independent of $\Phi_0$, so "
                               r"$Y\sim\mathcal W_{s+k}(I, d - n + k)$ (Schur complement) and $R_0^\top$ "
                               r"is Bartlett, independent",
                               "Muirhead (1982), Thm 3.2.10 (Schur complement of a Wishart matrix)"),
                 ("sampler_identity",),
                 note=r"where $s + k \le n \le d - s$ the sampler draws these $(s+k)\times(s+k)$ "
                      r"statistics (no $n\times n$ factor); the identity is checked draw by draw on "
                      r"raw data (the statistics computed from it by the same QR), the law by the "
                      r"statement's two-sample test",
                 options={"form": "reduced"}),
        )
    controls = (
        Control(f"identity: {wrong_id}", f"step \\emph{{risk-identity}} with the planted error "
                f"``{wrong_id}''", "risk-identity", options={"variant": wrong_id}),
        Control("dof one too few", f"{dof_txt} one degree of freedom too few", "statement",
                formula=_wrong_dof(-1)),
        Control("dof one too many", f"{dof_txt} one degree of freedom too many", "statement",
                formula=_wrong_dof(1)),
    )
    if regime == "over":
        controls += (
            Control("reduced identity: transposed factor", r"step \emph{reduced-identity} with "
                    r"$L_{11}^{-\top}$ for $L_{11}^{-1}$", "reduced-identity",
                    options={"variant": "transposed factor"}),
            Control("reduced identity: other block dropped", r"step \emph{reduced-identity} "
                    r"without $J$ and $Q$ (the noise outside the shift's coordinates)",
                    "reduced-identity", options={"variant": "other block dropped"}),
            Control("reduced sampler, n one too few", r"reduced sampler with $n - 1$ for $n$ "
                    r"in $L_{11}$ and $Y$ (at the reduced check point alone)", "statement",
                    formula=_wrong_reduced_dof),
            Control("Schur block dof n - d", r"reduced sampler with $Y\sim\mathcal W_k(I, n - d)$ "
                    r"instead of $\mathcal W_k(I, n - d + k)$", "statement", formula=_wrong_schur),
        )
    if regime == "under":
        controls = controls[:1] + tuple(
            Control(c.name, c.description + ")", "statement", formula=c.formula)
            for c in controls[1:]) + (
            Control("reduced identity: bias dropped", r"step \emph{reduced-identity} without "
                    r"the bias $\lVert\Delta^*\rVert_F^2 - \lVert M_z(U\operatorname{diag}(s))^\top"
                    r"\rVert_F^2$", "reduced-identity", options={"variant": "bias dropped"}),
            Control("reduced sampler, d - s one too few", r"reduced sampler with $Y\sim\mathcal "
                    r"W_{s+k}(I, d - n + k - 1)$ (at the reduced check point alone)", "statement",
                    formula=_wrong_reduced_dof),
            Control("Schur block dof d - n", r"reduced sampler with $Y\sim\mathcal W_{s+k}(I, d - n)$ "
                    r"instead of $\mathcal W_{s+k}(I, d - n + k)$", "statement",
                    formula=_wrong_schur),
        )

    def validate(p):
        if regime == "over":
            require(p.n >= p.d, f"mc_samplers_over needs n >= d, got n = {p.n}, d = {p.d}")
        else:
            require(p.d > p.n and p.isotropic, "mc_samplers_under needs d > n and Sigma = I")

    return Derivation(
        id=f"mc_samplers_{regime}",
        title=title,
        regime="overdetermined" if regime == "over" else "underdetermined",
        assumptions=assumptions,
        definitions=(),
        steps=steps,
        statement=Statement(Expect(risk(DeltaL), X, E), "=", Expect(rhs, *randoms), "exact",
                            (r"the law of the risk, not only its mean: the identity holds draw by "
                             r"draw and the statistics have the stated laws",),
                            checks=("sampler_two_sample",)),
        controls=controls,
        validate=validate,
        formula=_no_formula,
        simulate=lambda p, trials, gen, device: samplers.simulate(p, "lora", trials, gen, device,
                                                                  path="fast"),
        hp_params=lambda cfg: [],
        mc_params=lambda cfg: [],
        check_points=lambda cfg: [make_params(**kw, seed=cfg.seed + i)
                                  for i, kw in enumerate(_POINTS[regime])],
        summary=summary if regime == "over" else (
            r"Underdetermined with $\Sigma = I$, the risks depend on the data only through the "
            r"shift's row space $Z_1$ ($s\times n$), an independent $\mathcal W_n(I, d-s)$ block "
            r"and $E$: a data set costs $O(kn^2 + n^3)$, independent of $d$; where $s + k \le n "
            r"\le d - s$ a QR of $[Z_1; E/\sigma]^\top$ reduces it to $(s+k)\times(s+k)$ "
            r"statistics.  (A general "
            r"$\Sigma$ needs $X^\top\Sigma X$ and $X^\top X$ jointly: no fixed-size statistic, "
            r"so \texttt{fft\_under\_general} simulates raw data.)"),
        references=("Bartlett (1933)", "Muirhead (1982), Thm 3.2.14 (Bartlett decomposition)",
                    "Muirhead (1982), Thm 3.2.10 (Schur complement of a Wishart matrix)"),
        extra={"regime": regime,
               "no_closed_form": "the statement is an identity in distribution between the fast "
                                 "sampler and the raw estimator: its value is a Monte Carlo mean, "
                                 "compared with the raw path",
               # the typeset identity is the code's: ||P_r(B L + G~) L^{-1} - B||^2 at 50 digits
               # against samplers.risks on the same statistics (under: the risks are the code's
               # own symbol Rfast, checked draw by draw against the raw estimators)
               **({"truth": (Truth("LoRA's risk from the statistics (samplers.risks) vs the "
                                   "typeset identity", rhs, _fast_lora_risk, env=_stats_env),)}
                  if regime == "over" else {})},
    )


DERIVATIONS = [_make("over"), _make("under")]
