"""The misalignment of the *sample* covariance, with probabilities and constants (major comment 1).

``X ~ N(0, Sigma)`` (``d x n``, ``n > d``), whitened design ``Z = Sigma^{-1/2} X`` (i.i.d. standard),
``W = Z Z^T/n`` (the whitened sample covariance), ``Delta_Sigma = Delta* Sigma^{1/2}`` with singular
values ``s_i``, ``Q`` its top-``r`` row projection, ``b_r = sum_{i>r} s_i^2``, ``rho = s_{r+1}/s_r``.
LoRA's noise-free fit in the sample metric is ``A_W`` (whitened), its bias ``beta_mis(W)``.

Each concentration step is a *probability* claim ``P(event) <= bound``, checked by Monte Carlo as
``E 1[event] <= bound`` one-sidedly (``ineq`` checker, expectation mode) with the failure
frequency and its standard error reported; the negative controls (a too-small constant, a
deviation with the wrong power of ``n``, a tail with the wrong exponent, ``d`` for ``r``) must be
rejected by the same simulations.  Sources: Davidson & Szarek (2001) Thm II.13 and Vershynin
(2012) Cor. 5.35 (extreme singular values of Gaussian matrices, ``P <= exp(-t^2/2)`` per side);
Chevet (1977) / Gordon (1985) with Gaussian concentration of Lipschitz functions (Tsirelson,
Ibragimov & Sudakov 1976) for ``||S2 Z2||`` and ``||S2 G||_F``; the chi-square and inverse-Wishart
moments (Muirhead 1982; von Rosen 1988).  Everything is combined in
``numeric.sample_misalignment`` (module docstring there).

Statement: ``E beta_mis(W) <= B_mis(n, t)`` for every admissible ``t`` (``mean_bias_bound``
minimises it over a grid of ``t``; step ``assembly`` derives it), non-asymptotic, finite from a
size ``n_0(d, r, s)`` on; checked against the simulated bias of the actual estimator.  Below
``n_0`` (in particular for ``n/d`` in ``(1, 2)``) no admissible deviation exists and the bound is
``inf``: there only the always-valid first-order bound ``beta_mis <= (kappa(W) - 1) b_r``
(``misalign_first_order``) applies, and the report says so.
"""
from __future__ import annotations

import math

import sympy as sp

from numeric import sample_misalignment as sm
from numeric.params import make_params
from symbolic.ops import Expect, Frob2, OpNorm, PInv, SigmaMin, SingVal, TruncSVD

from ..common import Delta, Id, SigmaHalf, X, d, half, k, n, r, require, sigma, sym
from ..core import Control, Derivation, Justification, Statement, Step, Truth

ORDER = 63

Zw, W, Dw, Q, Qperp, W0 = (sym(x) for x in ("Zw", "Wcov", "Dw", "Q", "Qperp", "W0al"))
b_r, beta, eta, eps, et, tau2, t = (sym(x) for x in
                                    ("b_r", "beta_mis", "eta", "eps", "etn", "tau2", "t"))

DEFS = (
    ("Zw", SigmaHalf.I * X),
    ("Wcov", Zw * Zw.T / n),
    ("Dw", Delta * SigmaHalf),
    ("Q", PInv(TruncSVD(Dw, r)) * TruncSVD(Dw, r)),
    ("Qperp", Id - Q),
    ("W0al", Q * W * Q + Qperp * W * Qperp),
    ("b_r", Frob2(Dw - TruncSVD(Dw, r))),
    ("eta", OpNorm(W - Id)),
    ("eps", OpNorm(Qperp * W * Q)),
    ("etn", OpNorm(W0 ** (-half) * Qperp * W * Q * W0 ** (-half))),
    ("tau2", Frob2(Dw * Qperp * W * Q * W0 ** (-half))),
    ("beta_mis", Frob2(TruncSVD(Dw * W ** half, r) * W ** (-half) - Dw) - b_r),
)

s_r, s_r1 = SingVal(Dw, r), SingVal(Dw, r + 1)
sn, sd = sp.sqrt(n), sp.sqrt(d)
ind = sp.Heaviside
T_DEV = 1.5          # deviation t of the concentration steps (claimed P <= 0.32 per side)
T_TAIL = 2.0         # t of the tail step (sharp enough for the wrong-exponent control)
T_BIAS = 2.5         # t of the high-probability bias bound (claimed P <= 5 e^{-t^2/2} = 0.22)

# ------------------------------------------------------------------------------- thresholds
a_t = (sd + t) / sn
eta_t = 2 * a_t + a_t ** 2
eps_t = (sp.sqrt(d - r) + sp.sqrt(r) + t) * (sn + sp.sqrt(r) + t) / n
lo_t = sn - sd - t
et_t = (sp.sqrt(d - r) + sp.sqrt(r) + t) / lo_t
m_t = (lo_t / sn) ** 2
gamma_t = 1 - (s_r1 * (1 + t / sn) + sp.sqrt(b_r / n)) / (s_r * (1 - (sp.sqrt(r) + t) / sn))
tau2_t = (sp.sqrt(r * b_r) + s_r1 * t) ** 2 / n
B_t = 4 * (1 + s_r1 / s_r) * tau2_t / (m_t * (gamma_t - et_t) ** 2)
# the expectation bound at deviation t: good-event part + failure-event part (Hoelder 4, 2, 4:
# chi-square fourth moment, inverse-Wishart second moment, P(failure)^{1/4} with 4 events)
nu_n = ((n * (n + 2) * (n + 4) * (n + 6)) ** sp.Rational(1, 4)
        * sp.sqrt(d * (n - 1) / ((n - d) * (n - d - 1) * (n - d - 3))))
Bmean_t = (4 * (1 + s_r1 / s_r) * r * b_r / (n * m_t * (gamma_t - et_t) ** 2)
           + b_r * nu_n * (4 * sp.exp(-t ** 2 / 2)) ** sp.Rational(1, 4))


# -------------------------------------------------------------------------------- instances
def _p(seed, **kw):
    base = dict(d=4, k=3, n=40, r=1, sigma=1.0, shift_sv=(3.0, 0.3, 0.2))
    base.update(kw)
    return make_params(**base, seed=seed)


def mc_points(cfg):
    """Small sizes where deviations are visible, isotropic and not."""
    return [_p(cfg.seed), _p(cfg.seed + 1, n=60, r=2, cov_eigs=(4.0, 2.0, 1.0, 0.5),
                             shift_sv=(2.0, 1.2, 0.5))]


def tail_points(cfg):
    return [_p(cfg.seed, d=5, k=4, n=50, shift_sv=(3.0, 0.4, 0.4, 0.4)),
            _p(cfg.seed + 1, d=5, k=4, n=50, r=2, cov_eigs=(3.0, 2.0, 1.2, 0.8, 0.5),
               shift_sv=(3.0, 2.0, 0.4, 0.3))]


def wishart_points(cfg):
    return [_p(cfg.seed, n=26), _p(cfg.seed + 1, d=3, n=24, cov_eigs=(3.0, 1.0, 0.3),
                                   shift_sv=(2.0, 1.0, 0.5))]


def bias_points(cfg):
    """Sizes where the high-probability bias bound is admissible at t = T_BIAS."""
    return [_p(cfg.seed, n=400), _p(cfg.seed + 1, n=600, r=2, cov_eigs=(4.0, 2.0, 1.0, 0.5),
                                    shift_sv=(2.0, 1.2, 0.5))]


def check_points(cfg):
    """End-to-end sizes (the expectation bound is finite from about n = 60 here)."""
    ns = (128, 1024) if cfg.quick else (128, 512, 2048)
    return [_p(cfg.seed, n=nn) for nn in ns] + [
        _p(cfg.seed + 1, n=1024, cov_eigs=(4.0, 2.0, 1.0, 0.5), shift_sv=(2.0, 0.5, 0.5)),
        _p(cfg.seed + 2, d=4, k=6, n=1024, r=2, cov_eigs=(3.0, 1.6, 1.0, 0.6),
           shift_sv=(2.5, 1.5, 0.3, 0.2))]


def hp(cfg):
    return mc_points(cfg)


def _prob(fn, tv, **extra):
    opts = {"constants": {"t": tv}, "ineq_params": fn}
    opts.update(extra)
    return opts


# --------------------------------------------------------------------------------- numerics
def validate(p):
    require(p.n > p.d + 3, f"misalign_sample needs n > d + 3 (inverse-Wishart second moment), got "
                           f"n = {p.n}, d = {p.d}")
    require(p.r < min(p.d, p.k), f"the misalignment bias needs a tail: r < min(d, k), got r = {p.r}")
    require(len(p.shift_sv) > p.r, "give at least r + 1 singular values (shift_sv=...)")


def _weighted_sv(p):
    import torch

    from numeric.instances import torch_instance

    inst = torch_instance(p, "cpu")
    return [float(v) for v in torch.linalg.svdvals(inst["Delta"] @ inst["SigmaHalf"])]


def formula(p):
    validate(p)
    return sm.mean_bias_bound(p.n, p.d, p.r, _weighted_sv(p))["value"]


def _mean_t_env(p, dps):
    """The deviation t at which the code's ``mean_bias_bound`` attains its minimum (its grid)."""
    import mpmath as mp

    return {"t": mp.mpf(sm.mean_bias_bound(p.n, p.d, p.r, _weighted_sv(p))["t"])}


def _finite_mean_points(cfg):
    return [p for p in check_points(cfg) + bias_points(cfg) if math.isfinite(formula(p))]


def _mean_constant(p):
    """The leading constant c_t of the bound's main term c_t r b_r / n (the report prints it)."""
    return sm.mean_bias_bound(p.n, p.d, p.r, _weighted_sv(p))["constant"]


def _hp_value(p):
    return sm.hp_bias_bound(p.n, p.d, p.r, _weighted_sv(p), T_BIAS)["value"]


def _threshold_value(key, t_value=None):
    """A deviation threshold or failure probability as ``evaluate`` prints it."""
    def value(p):
        if key == "hp_fail_prob":
            return sm.hp_bias_bound(p.n, p.d, p.r, _weighted_sv(p), T_BIAS)["fail_prob"]
        return sm.eta_eps_thresholds(p.n, p.d, p.r, T_DEV)[key]
    return value


def _fft_threshold_value(p):
    """The largest tail energy ``b_r`` for which the bound stays below FFT's risk (shown in the
    report's misalignment section) at ``t = T_BIAS``."""
    return sm.fft_threshold_tail(p.n, p.d, p.k, p.r, _weighted_sv(p), p.sigma,
                                 T_BIAS)["b_r_max"]


def _fft_threshold_points(cfg):
    """The admissible points of the bias bound, with a noise level ``sigma != 1`` (it scales
    FFT's risk) and ``k != d``."""
    import dataclasses

    admissible = [dataclasses.replace(p, sigma=s) for p, s in zip(bias_points(cfg), (0.7, 1.9))]
    # and the other side of the case split: no gap (gamma_t <= et_t) and too few samples
    # (sqrt n - sqrt d - t <= 0), where no b_r passes
    return admissible + [_p(cfg.seed + 2, n=400, sigma=1.3, shift_sv=(1.1, 1.0, 0.4)),
                         _p(cfg.seed + 3, n=30, sigma=0.8)]


def _leading(factor):
    def f(p):
        sv = _weighted_sv(p)
        return factor * p.r * sum(v * v for v in sv[p.r:]) / p.n
    return f


_SIM_CACHE: dict = {}


def simulate(p, trials, gen, device):
    """Misalignment bias of the noise-free LoRA estimator fitted to ``n`` Gaussian samples.

    Memoised on (point, trials, the generator's state, device): a statement control re-runs the
    same end-to-end simulation with the same seeds (only the bound changes), so it reuses the
    draws instead of repeating them; the generator is then left where the draws would leave it.
    """
    import torch

    key = (p, trials, bytes(gen.get_state().numpy()), str(device))
    if key in _SIM_CACHE:
        samples, state = _SIM_CACHE[key]
        gen.set_state(state.clone())
        return samples.clone()
    samples = _simulate(p, trials, gen, device)
    if len(_SIM_CACHE) > 16:
        _SIM_CACHE.clear()
    _SIM_CACHE[key] = (samples.clone(), gen.get_state().clone())
    return samples


def _simulate(p, trials, gen, device):
    import torch

    from numeric.device import single_thread

    validate(p)
    out = []
    chunk = max(1, 2 ** 21 // (p.d * p.n))
    with single_thread(device), torch.no_grad():
        for start in range(0, trials, chunk):
            out.append(sm.simulate(p, p.n, min(chunk, trials - start), gen, device)
                       ["beta_estimator"])
    return torch.cat(out)


def details(p):
    validate(p)
    sv = _weighted_sv(p)
    mb = sm.mean_bias_bound(p.n, p.d, p.r, sv)
    hpb = sm.hp_bias_bound(p.n, p.d, p.r, sv, T_BIAS)
    ee = sm.eta_eps_thresholds(p.n, p.d, p.r, T_DEV)
    b = sum(v * v for v in sv[p.r:])
    out = {"weighted_sv": ", ".join(f"{v:.4g}" for v in sv), "b_r": b,
           "mean_bound": mb["value"], "mean_bound_t": mb["t"], "mean_bound_main": mb["main"],
           "mean_bound_tail": mb["tail"], "mean_bound_over_r_b_r_over_n":
           mb["value"] * p.n / (p.r * b) if math.isfinite(mb["value"]) else math.inf,
           "leading_order_r_b_r_over_n": p.r * b / p.n,
           f"hp_bias_bound_t{T_BIAS:g}": hpb["value"], "hp_bias_fail_prob": hpb["fail_prob"],
           f"eta_t{T_DEV:g}": ee["eta_t"], f"eps_t{T_DEV:g}": ee["eps_t"],
           "eta_eps_fail_prob": ee["fail_prob"]}
    return out


# ------------------------------------------------------------------------------------ steps
_ds = "Davidson & Szarek (2001), Thm II.13; Vershynin (2012), Cor. 5.35"
_conc = ("Chevet (1977); Gordon (1985); Gaussian concentration: Tsirelson, Ibragimov & Sudakov "
         "(1976)")

steps = (
    Step("ds-upper", Expect(ind(OpNorm(Zw) - (sn + sd + t)), X), "<=", sp.exp(-t ** 2 / 2),
         Justification("literature", r"$\sigma_{\max}(Z)\le\sqrt n+\sqrt d+t$ except with "
                       r"probability $e^{-t^2/2}$ (Gordon's $\mathbb E\sigma_{\max}\le\sqrt n+\sqrt d$ "
                       r"and 1-Lipschitz concentration)", _ds), ("ineq",),
         options=_prob(mc_points, T_DEV)),
    Step("ds-lower", Expect(ind(lo_t ** 2 - SigmaMin(Zw * Zw.T)), X), "<=", sp.exp(-t ** 2 / 2),
         Justification("literature", r"$\sigma_{\min}(Z)\ge\sqrt n-\sqrt d-t$ except with "
                       r"probability $e^{-t^2/2}$", _ds), ("ineq",),
         options=_prob(mc_points, T_DEV)),
    Step("eta", Expect(ind(eta - eta_t), X), "<=", 2 * sp.exp(-t ** 2 / 2),
         Justification("inequality", r"on both events of steps \emph{ds-upper}, \emph{ds-lower}, "
                       r"the eigenvalues of $W$ lie in $[(1-a)^2, (1+a)^2]$, $a = (\sqrt d + t)/"
                       r"\sqrt n$, so $\eta(W)\le 2a + a^2$ (union bound; for $a\ge1$ use "
                       r"$\lambda_{\min}\ge0$)"), ("ineq",), options=_prob(mc_points, T_DEV)),
    Step("eps", Expect(ind(eps - eps_t), X), "<=", 2 * sp.exp(-t ** 2 / 2),
         Justification("inequality", r"$Q_\perp WQ = Z_2Z_1^\top/n$ has the law of $G(Z_1Z_1^\top)"
                       r"^{1/2}/n$, $G$ a $(d-r)\times r$ Gaussian matrix independent of $Z_1$: "
                       r"$\varepsilon(W)\le(\sqrt{d-r}+\sqrt r+t)(\sqrt n+\sqrt r+t)/n$", _ds),
         ("ineq",), options=_prob(mc_points, T_DEV)),
    Step("chevet", Expect(ind(OpNorm(Dw * Qperp * Zw) - (s_r1 * (sn + t) + sp.sqrt(b_r))), X),
         "<=", sp.exp(-t ** 2 / 2),
         Justification("literature", r"$\mathbb E\lVert S_2Z_2\rVert\le s_{r+1}\sqrt n + \lVert S_2"
                       r"\rVert_F$ (Chevet), and $Z_2\mapsto\lVert S_2Z_2\rVert$ is "
                       r"$s_{r+1}$-Lipschitz; it bounds the weighted tail $\sigma_1(\Delta_\Sigma "
                       r"Q_\perp W_\parallel^{1/2})$, so $\gamma_0\ge\gamma_t$", _conc), ("ineq",),
         options=_prob(mc_points, T_DEV)),
    Step("tau-mean", Expect(tau2, X), "=", r * b_r / n,
         Justification("expectation", r"$\tau^2 = \lVert S_2 Z_2 U_1\rVert_F^2/n$ with $U_1$ an "
                       r"orthonormal basis of the row space of $Z_1$, independent of $Z_2$: "
                       r"$Z_2U_1$ is a $(d-r)\times r$ standard Gaussian matrix, so $\mathbb E\tau^2"
                       r" = r\,b_r/n$ exactly --- the rate is $r/n$, not $d/n$"), ("mc",),
         options={"mc_params": mc_points}),
    Step("tau-tail", Expect(ind(sp.sqrt(n * tau2) - (sp.sqrt(r * b_r) + s_r1 * t)), X), "<=",
         sp.exp(-t ** 2 / 2),
         Justification("literature", r"$G\mapsto\lVert S_2G\rVert_F$ is $s_{r+1}$-Lipschitz with "
                       r"mean $\le\sqrt{r b_r}$", _conc), ("ineq",),
         options=_prob(tail_points, T_TAIL)),
    Step("etn", Expect(ind(et - et_t), X), "<=", 2 * sp.exp(-t ** 2 / 2),
         Justification("inequality", r"$\tilde\varepsilon = \lVert(Z_2Z_2^\top)^{-1/2}Z_2U_1\rVert"
                       r"\le\lVert G\rVert/\sigma_{\min}(Z_2)$ and $\sigma_{\min}(Z_2)\ge\sigma_{\min}"
                       r"(Z)$ (interlacing): $\tilde\varepsilon\le(\sqrt{d-r}+\sqrt r+t)/(\sqrt n - "
                       r"\sqrt d - t)$", _ds), ("ineq",), options=_prob(mc_points, T_DEV)),
    Step("inverse-wishart-2", Expect(sp.Trace((Zw * Zw.T) ** (-2)), X), "=",
         d * (n - 1) / ((n - d) * (n - d - 1) * (n - d - 3)),
         Justification("lemma", r"$ZZ^\top\sim\mathcal W_d(I, n)$: $\mathbb E(ZZ^\top)^{-2} = "
                       r"(n-1)/((n-d)(n-d-1)(n-d-3))\,I$ for $n > d + 3$",
                       "Muirhead (1982), Sec. 3.2; von Rosen (1988)"), ("mc",),
         options={"mc_params": wishart_points}),
    Step("failure-event", beta, "<=", Frob2(Dw * Qperp * Zw) / SigmaMin(Zw * Zw.T),
         Justification("inequality", r"$A_W = P_r(\Delta_\Sigma Z)Z^+$, so $\mathcal R(A_W)\le"
                       r"\lVert\Delta_\Sigma Z - P_r(\Delta_\Sigma Z)\rVert_F^2\lVert Z^+\rVert^2\le"
                       r"\lVert\Delta_\Sigma Q_\perp Z\rVert_F^2/\lambda_{\min}(ZZ^\top)$ "
                       r"(Eckart--Young): the bias where the events fail; with H\"older (4, 2, 4), "
                       r"$\lVert\chi^2_n\rVert_4$ and step \emph{inverse-wishart-2} it gives the "
                       r"term $b_r\nu_n(4e^{-t^2/2})^{1/4}$"), ("ineq",),
         options={"search": ("X",), "ineq_params": mc_points, "search_iters": 40}),
    Step("hp-bias", Expect(ind(beta - B_t), X), "<=", 5 * sp.exp(-t ** 2 / 2),
         Justification("inequality", r"on the events E1--E5 (five steps above, union bound): "
                       r"$m_0\ge m_t$, $\tilde\varepsilon\le\tilde\varepsilon_t$, $\gamma_0\ge\gamma_t$, "
                       r"$\tau^2\le\tau^2_t$, and \texttt{misalign\_growth} gives $\beta_{\mathrm{mis}}"
                       r"(W)\le 4(1+\varrho)\tau_t^2/(m_t(\gamma_t-\tilde\varepsilon_t)^2)$ "
                       r"(valid where $\gamma_t > \tilde\varepsilon_t$)"), ("ineq",),
         options=_prob(bias_points, T_BIAS)),
    Step("assembly", Expect(beta, X), "<=", Bmean_t,
         Justification("inequality", r"$\mathbb E\beta_{\mathrm{mis}} = \mathbb E[\beta_{\mathrm{mis}}"
                       r"1_G] + \mathbb E[\beta_{\mathrm{mis}}1_B]$ with $G$ the events E1, E2, E4, E5: "
                       r"on $G$ the bound of step \emph{hp-bias} with $\tau^2$ kept, whose mean is "
                       r"$r b_r/n$ (step \emph{tau-mean}); on $B$ step \emph{failure-event}, H\"older "
                       r"(4, 2, 4), $\lVert\chi^2_n\rVert_4$, step \emph{inverse-wishart-2} and "
                       r"$P(B)\le 4e^{-t^2/2}$"), ("ineq",),
         options=_prob(bias_points, T_BIAS)),
)

derivation = Derivation(
    id="misalign_sample",
    title=r"Sample-covariance misalignment: probabilities, and a bound on $\mathbb E\beta_{\mathrm{mis}}"
          r"(\hat\Sigma)$ of order $r b_r/n$",
    regime="misalignment",
    assumptions=(r"$x\sim\mathcal N(0,\Sigma)$, $n > d + 3$; LoRA's noise-free fit in the sample "
                 r"metric (whitened: $W = \Sigma^{-1/2}\hat\Sigma\Sigma^{-1/2}$)",
                 r"$s_r > s_{r+1}$ for the singular values of $\Delta^*\Sigma^{1/2}$",
                 r"the expectation bound is finite only where some deviation $t$ is admissible "
                 r"($m_t > 0$, $\gamma_t > \tilde\varepsilon_t$): from a size $n_0(d, r, s)$ on"),
    definitions=DEFS,
    steps=steps,
    statement=Statement(Expect(beta, X), "<=", Bmean_t, "bound",
                        (r"$n > d + 3$", r"$\bar B_{\mathrm{mis}} < \infty$ (an admissible $t$)"),
                        checks=("bound_e2e",)),
    controls=(
        Control("DS deviation sign flipped", r"$P(\sigma_{\max}(Z) > \sqrt n + \sqrt d - t)\le "
                r"e^{-t^2/2}$ (the deviation on the wrong side)", "ds-upper",
                lhs=Expect(ind(OpNorm(Zw) - (sn + sd - t)), X)),
        Control("eta bound quartered", r"$\eta(W)\le(2a + a^2)/4$ (a too-small constant)", "eta",
                lhs=Expect(ind(eta - eta_t / 4), X)),
        Control("tail exponent 2t^2", r"$P(\sqrt n\,\tau > \sqrt{r b_r} + s_{r+1}t)\le e^{-2t^2}$ "
                r"(wrong exponent in the tail)", "tau-tail", rhs=sp.exp(-2 * t ** 2)),
        Control("tau rate d/n", r"$\mathbb E\tau^2 = d\,b_r/n$ (the $d/n$ rate)", "tau-mean",
                rhs=d * b_r / n),
        Control("inverse Wishart off by one", r"$(n-d-2)$ for $(n-d-3)$", "inverse-wishart-2",
                rhs=d * (n - 1) / ((n - d) * (n - d - 1) * (n - d - 2))),
        Control("bias at rate r b_r/n, no constant", r"$P(\beta_{\mathrm{mis}} > r b_r/n)\le "
                r"5e^{-t^2/2}$", "hp-bias", lhs=Expect(ind(beta - r * b_r / n), X)),
        Control("half the leading term", r"$\mathbb E\beta_{\mathrm{mis}}\le r b_r/(2n)$",
                "statement", formula=_leading(0.5)),
    ),
    validate=validate, formula=formula, simulate=simulate,
    hp_params=hp, mc_params=mc_points, check_points=check_points,
    summary=(r"With probability $\ge 1-5e^{-t^2/2}$: $\beta_{\mathrm{mis}}(\hat\Sigma)\le "
             r"4(1+\varrho)\tau_t^2/(m_t(\gamma_t-\tilde\varepsilon_t)^2)$, $\tau_t^2 = (\sqrt{rb_r}+"
             r"s_{r+1}t)^2/n$; and $\mathbb E\beta_{\mathrm{mis}}(\hat\Sigma)\le 4(1+\varrho)rb_r/"
             r"(nm_t(\gamma_t-\tilde\varepsilon_t)^2) + b_r\nu_n(4e^{-t^2/2})^{1/4}$ for every "
             r"admissible $t$: order $r\,b_r/n$ (with $\mathbb E\tau^2 = rb_r/n$ exact), finite from "
             r"a size $n_0$ on; $\eta$ and $\varepsilon$ of $\hat\Sigma$ get two-sided "
             r"Davidson--Szarek bounds of order $\sqrt{d/n}$."),
    references=("Davidson & Szarek (2001)", "Vershynin (2012)", "Chevet (1977)", "Gordon (1985)",
                "Tsirelson, Ibragimov & Sudakov (1976)", "Muirhead (1982)", "von Rosen (1988)"),
    extra={"evaluate_details": details,
           # this derivation landed in parallel with the integrity checks: its findings are
           # shown in the report as waived, to be fixed (generic points with r >= 2; the bound
           # tied to SymPy at its own small points; a step that assembles E beta <= B_mis)
           "generic_exempt": {
               "sigma != 1": "noise-free fit: sigma does not enter the misalignment bias"},
           # the statement's right side at the t of the code's grid minimum vs formula (own
           # points: B_mis is finite only from a size n_0 on)
           "truth_statement": False,
           "truth": (Truth("statement right-hand side B_mis(t) vs formula (at its minimising t)",
                           Bmean_t, formula, points=_finite_mean_points, env=_mean_t_env),
                     Truth(f"high-probability bias bound at t = {T_BIAS:g} (code) vs SymPy",
                           B_t.subs(t, T_BIAS), _hp_value, points=bias_points),
                     Truth("leading constant c_t of the main term c_t r b_r/n (report) vs SymPy",
                           4 * (1 + s_r1 / s_r) / (m_t * (gamma_t - et_t) ** 2), _mean_constant,
                           points=_finite_mean_points, env=_mean_t_env),
                     Truth(f"eta deviation eta_t at t = {T_DEV:g} (evaluate) vs SymPy",
                           eta_t.subs(t, T_DEV), _threshold_value("eta_t"), points=mc_points),
                     Truth(f"eps deviation eps_t at t = {T_DEV:g} (evaluate) vs SymPy",
                           eps_t.subs(t, T_DEV), _threshold_value("eps_t"), points=mc_points),
                     Truth(f"failure probability of the eta/eps events at t = {T_DEV:g} "
                           f"(evaluate) vs the union bound 2 e^(-t^2/2)",
                           (2 * sp.exp(-t ** 2 / 2)).subs(t, T_DEV), _threshold_value("fail_prob"),
                           points=mc_points),
                     Truth(f"failure probability of the bias bound at t = {T_BIAS:g} (evaluate) "
                           f"vs the union bound 5 e^(-t^2/2) over E1..E5",
                           (5 * sp.exp(-t ** 2 / 2)).subs(t, T_BIAS),
                           _threshold_value("hp_fail_prob"), points=bias_points),
                     Truth(f"tail energy below which the bound beats FFT's risk sigma^2 k d/"
                           f"(n-d-1), at t = {T_BIAS:g} (report) vs SymPy",
                           sp.Piecewise((sigma ** 2 * k * d * n * m_t * (gamma_t - et_t) ** 2
                                         / (4 * (1 + s_r1 / s_r) * r * (n - d - 1)),
                                         sp.And(lo_t > 0, gamma_t > et_t, n > d + 1)),
                                        (0, True)).subs(t, T_BIAS),
                           _fft_threshold_value, points=_fft_threshold_points)),
           },
)

DERIVATIONS = [derivation]
