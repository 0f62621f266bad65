"""Scalar claims the report leans on, stated as named Coq lemmas (beyond the derivation steps).

Each ``FormalLemma`` is a SymPy relation (or an equivalence of relations) with hypotheses; the
formal checker (``derivations.formal``) states it in Coq with the registry's symbol assumptions
added, proves it with the fixed tactic scripts (plus the lemma's own ``scripts``, which the
kernel checks like any other), and lists it in the report with its statement typeset.  Every
lemma also carries negative controls -- wrong variants that Coq must *refute* at a
counterexample.  A lemma is attached to the derivations whose reasoning uses it.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symbolic.coq import coq
from symbolic.registry import sym

d, k, n, r, sigma = (sym(s) for s in ("d", "k", "n", "r", "sigma"))
x, beta, eta, b_r = sym("x"), sym("beta"), sym("eta"), sym("b_r")
beta_mis, F2 = sym("beta_mis"), sym("Fnorm2")
a, b, c1, c2 = (sym(s) for s in ("sa", "sb", "c11", "c22"))

XSTAR2 = ((1 + beta) + sp.sqrt(beta ** 2 + 14 * beta + 1)) / 2
QUARTIC = x ** 4 - (1 + beta) * x ** 2 - 3 * beta
KEEP = 1 + beta + 3 * beta / x ** 2
COEF = a ** 2 * b ** 2 * (a ** 2 - b ** 2) / (a ** 2 * c1 - b ** 2 * c2) ** 2
# the coefficient at c_1 = c_2 = 1, unevaluated (SymPy would cancel one power of a^2 - b^2)
COEF_ISO = sp.Mul(a ** 2 * b ** 2 * (a ** 2 - b ** 2),
                  sp.Pow((a ** 2 - b ** 2) ** 2, -1, evaluate=False), evaluate=False)


@dataclass(frozen=True)
class FormalLemma:
    name: str                      # Coq identifier
    title: str                     # one line (LaTeX allowed)
    statement: object              # SymPy relation, or sp.Equivalent of two relations
    hypotheses: tuple = ()         # SymPy relations beyond the registry's assumptions
    derivations: tuple = ()        # ids of the derivations that use it
    scripts: tuple = ()            # extra (name, Coq script) tried before the fixed ones
    controls: tuple = ()           # (name, wrong statement) pairs Coq must refute

    def goal(self):
        from .formal import make_goal

        return make_goal(self.name, self.statement, self.hypotheses, scripts=self.scripts)

    def control_goals(self):
        from .formal import lemma_ident, make_goal

        return [(cname, make_goal(lemma_ident(self.name, "control", cname), wrong,
                                  self.hypotheses, sibling=self.name))
                for cname, wrong in self.controls]


def _keep_pays_script():
    diff = x ** 2 - KEEP
    return ("quotient sign", f"replace ({coq(diff)}) with (({coq(QUARTIC)}) / x ^ 2) by fp_field; "
            "unfold Rgt; rewrite (fp_div_pos_iff _ (x ^ 2)) by fp_pos; tauto")


def _threshold_script():
    s = "sqrt (beta ^ 2 + 14 * beta + 1)"
    return ("factor the quartic",
            f"pose proof (sqrt_pos (beta ^ 2 + 14 * beta + 1)) as Fp; "
            f"assert (Fs : {s} * {s} = beta ^ 2 + 14 * beta + 1) by (apply sqrt_sqrt; fp_pos); "
            f"assert (Fq : {coq(QUARTIC)} = (x ^ 2 - ((1 + beta) + {s}) / 2) * "
            f"(x ^ 2 - ((1 + beta) - {s}) / 2)) by nra; "
            f"assert (Fm : 0 < x ^ 2 - ((1 + beta) - {s}) / 2) by nra; "
            "rewrite Fq; split; intro Hq; nra")


def _const_script(m):
    """``k < 8 r [(sqrt k + sqrt m)^2 + 1]``: (sqrt k + sqrt m)^2 >= k, then r >= 1."""
    q = coq((sp.sqrt(k) + sp.sqrt(sym(m))) ** 2)
    return (f"pose proof (sqrt_pos k); pose proof (sqrt_pos {m}); "
            f"assert (sqrt k * sqrt k = k) by (apply sqrt_sqrt; lra); "
            f"assert (k <= {q}) by nra; set (Q := {q}) in *; nra")


def _bound_script(small, big, m):
    """``small < big`` via ``big - small = sigma^2 m (8 r [..] - k)/(N - m - 1) > 0``."""
    ms = sym(m)
    other = n if m == "d" else d
    factored = sigma ** 2 * ms * (8 * r * ((sp.sqrt(k) + sp.sqrt(ms)) ** 2 + 1) - k) / (other - ms - 1)
    return ("difference factored",
            f"apply Rminus_gt_0_lt; replace (({coq(big)}) - ({coq(small)})) with ({coq(factored)}) "
            f"by fp_field; apply Rdiv_lt_0_compat; [ | lra]; "
            f"repeat apply Rmult_lt_0_compat; first [solve [fp_pos] | solve [{_const_script(m)}]]")


_FFT_OVER = sigma ** 2 * k * d / (n - d - 1)
_BOUND_OVER = 8 * r * sigma ** 2 * ((sp.sqrt(k) + sp.sqrt(d)) ** 2 + 1) * d / (n - d - 1)
_FFT_UNDER = (1 - n / d) * F2 + sigma ** 2 * k * n / (d - n - 1)
_BOUND_UNDER = (1 - n / d) * F2 + 8 * r * sigma ** 2 * ((sp.sqrt(k) + sp.sqrt(n)) ** 2 + 1) * n / (d - n - 1)

LEMMAS = (
    FormalLemma(
        "keep_pays_iff_quartic",
        r"keeping a detected spike pays (keep cost below the drop cost $x^2$) iff "
        r"$x^4 - (1+\beta)x^2 - 3\beta > 0$",
        sp.Equivalent(sp.Gt(x ** 2 - KEEP, 0), sp.Gt(QUARTIC, 0)),
        (sp.Le(beta, 1),), ("lora_sharp_over", "lora_sharp_under"),
        scripts=(_keep_pays_script(),),
        controls=(("keep cost 2beta", sp.Equivalent(sp.Gt(x ** 2 - (1 + beta + 2 * beta / x ** 2), 0),
                                                    sp.Gt(QUARTIC, 0))),)),
    FormalLemma(
        "keep_threshold_iff",
        r"the quartic is positive iff $x^2 > x^{*2} = [(1+\beta) + \sqrt{\beta^2 + 14\beta + 1}]/2$",
        sp.Equivalent(sp.Gt(QUARTIC, 0), sp.Gt(x ** 2, XSTAR2)),
        (sp.Le(beta, 1),), ("lora_sharp_over", "lora_sharp_under"),
        scripts=(_threshold_script(),),
        controls=(("threshold 10beta", sp.Equivalent(
            sp.Gt(QUARTIC, 0), sp.Gt(x ** 2, ((1 + beta) + sp.sqrt(beta ** 2 + 10 * beta + 1)) / 2))),)),
    FormalLemma(
        "paper_bound_constant_exceeds_k",
        r"$8r[(\sqrt k + \sqrt d)^2 + 1] > k$ for all $r, k, d \ge 1$: the paper-style "
        r"constant exceeds FFT's",
        sp.Gt(8 * r * ((sp.sqrt(k) + sp.sqrt(d)) ** 2 + 1), k),
        (), ("lora_bound_over", "lora_bound_under"),
        scripts=(("sqrt facts, r >= 1", "unfold Rgt; " + _const_script("d")),),
        controls=(("constant r/2 against 4k", sp.Gt(r * ((sp.sqrt(k) + sp.sqrt(d)) ** 2 + 1), 4 * k)),)),
    FormalLemma(
        "paper_bound_never_beats_fft_over",
        r"overdetermined: the paper-style bound $8r\sigma^2[(\sqrt k+\sqrt d)^2+1]\,d/(n-d-1)$ "
        r"exceeds FFT's exact risk $\sigma^2 kd/(n-d-1)$",
        sp.Lt(_FFT_OVER, _BOUND_OVER),
        (sp.Gt(n, d + 1),), ("lora_bound_over",),
        scripts=(_bound_script(_FFT_OVER, _BOUND_OVER, "d"),),
        controls=(("bound with r/4", sp.Lt(_FFT_OVER, _BOUND_OVER / 32)),)),
    FormalLemma(
        "paper_bound_never_beats_fft_under",
        r"underdetermined: $(1-n/d)F + 8r\sigma^2[(\sqrt k+\sqrt n)^2+1]\,n/(d-n-1)$ exceeds "
        r"FFT's $(1-n/d)F + \sigma^2 kn/(d-n-1)$",
        sp.Lt(_FFT_UNDER, _BOUND_UNDER),
        (sp.Gt(d, n + 1),), ("lora_bound_under",),
        scripts=(_bound_script(_FFT_UNDER, _BOUND_UNDER, "n"),)),
    FormalLemma(
        "misalignment_first_order_algebra",
        r"first-order misalignment algebra: $\frac{1+\eta}{1-\eta} - 1 = \frac{2\eta}{1-\eta}$",
        sp.Eq((1 + eta) / (1 - eta) - 1, 2 * eta / (1 - eta), evaluate=False),
        (sp.Lt(eta, 1),), ("misalign_first_order",),
        controls=(("constant 1", sp.Eq((1 + eta) / (1 - eta) - 1, eta / (1 - eta))),)),
    FormalLemma(
        "leading_coefficient_positive",
        r"$2\times2$: the leading coefficient $a^2b^2(a^2-b^2)/(a^2c_1-b^2c_2)^2$ is positive "
        r"when $a > b$ and the weighted order is kept",
        sp.Gt(COEF, 0),
        (sp.Gt(a, b), sp.Gt(a ** 2 * c1, b ** 2 * c2)), ("misalign_exact",),
        controls=(("negative", sp.Lt(COEF, 0)),)),
    FormalLemma(
        "leading_coefficient_sign_iff",
        r"$2\times2$: for $a, b > 0$ and $a^2c_1 \ne b^2c_2$ the leading coefficient is positive "
        r"iff $a > b$",
        sp.Equivalent(sp.Gt(COEF, 0), sp.Gt(a, b)),
        (sp.Gt(a ** 2 * c1, b ** 2 * c2),), ("misalign_exact",),
        scripts=(("quotient sign",
                  f"unfold Rgt; rewrite (fp_div_pos_iff _ ({coq((a ** 2 * c1 - b ** 2 * c2) ** 2)})) "
                  f"by fp_pos; rewrite (fp_mul_pos_iff ({coq(a ** 2 * b ** 2)})) by fp_pos; "
                  "split; intro Hq; nra"),)),
    FormalLemma(
        "leading_coefficient_isotropic",
        r"$2\times2$: at $c_1 = c_2 = 1$ the leading coefficient is $a^2b^2/(a^2-b^2)$",
        sp.Eq(COEF_ISO, a ** 2 * b ** 2 / (a ** 2 - b ** 2), evaluate=False),
        (sp.Gt(a, b),), ("misalign_exact",),
        controls=(("gap not squared", sp.Eq(COEF_ISO, a ** 2 * b ** 2, evaluate=False)),)),
    FormalLemma(
        "drop_cost_vs_keep_cost_at_threshold",
        r"at $x^2 = x^{*2}$ keeping and dropping cost the same: $1 + \beta + 3\beta/x^{*2} = x^{*2}$",
        sp.Eq(1 + beta + 3 * beta / XSTAR2, XSTAR2, evaluate=False),
        (sp.Le(beta, 1),), ("lora_sharp_over", "lora_sharp_under")),
)


def lemmas_for(der_id: str) -> tuple:
    return tuple(lem for lem in LEMMAS if der_id in lem.derivations)


__all__ = ["FormalLemma", "LEMMAS", "lemmas_for"]
