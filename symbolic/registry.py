"""The one registry of the model's symbols: name, assumptions, shape, LaTeX and meaning.

Every derivation takes its symbols from here (``sym("Delta")``), the printer takes their LaTeX
names from here, and the report's notation table is generated from here -- so each symbol is
introduced once and used consistently (the referee's minor comment 1).

Adding a symbol is adding one ``_declare`` line; nothing else needs editing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp


@dataclass(frozen=True)
class SymbolInfo:
    name: str                      # identifier used in code and in --set NAME=VALUE
    latex: str                     # LaTeX, used by the printer and the notation table
    meaning: str                   # one line for the notation table
    shape: tuple[str, str] | None = None   # matrix shape in terms of scalar symbol names
    assumptions: dict = field(default_factory=dict)  # SymPy assumptions for scalars
    group: str = "model"           # section of the notation table
    kind: str = "scalar"           # "scalar" or "matrix"


REGISTRY: dict[str, SymbolInfo] = {}


def _norm_latex(latex: str) -> str:
    return "".join(latex.split())


def _declare(name, latex, meaning, shape=None, group="model", kind=None, **assumptions):
    if name in REGISTRY:
        raise ValueError(f"symbol {name!r} declared twice")
    for other in REGISTRY.values():     # one symbol, one meaning (the referee's minor comment 1)
        if _norm_latex(other.latex) == _norm_latex(latex):
            raise ValueError(f"symbol {name!r}: its LaTeX {latex!r} already means "
                             f"{other.meaning!r} ({other.name!r}); one symbol, one meaning")
    kind = kind or ("scalar" if shape is None else "matrix")
    REGISTRY[name] = SymbolInfo(name, latex, meaning, shape, assumptions, group, kind)


_INT = dict(integer=True, positive=True)
# --- dimensions and scalars (section 1 of THEORY.md) ---
_declare("d", "d", "input dimension", **_INT)
_declare("k", "k", "output dimension", **_INT)
_declare("n", "n", "number of downstream samples", **_INT)
_declare("r", "r", "LoRA rank", **_INT)
_declare("s", "s", r"true rank of the task shift, $s = \operatorname{rank}\Delta^*$", **_INT)
_declare("sigma", r"\sigma", "label-noise standard deviation", positive=True)
_declare("gamma", r"\gamma", r"aspect ratio $d/n$ in the proportional limit", positive=True)
_declare("beta", r"\beta", r"aspect ratio $m/N \le 1$ of the normalised spiked matrix", positive=True)
_declare("x", "x", "normalised signal singular value of a spike", positive=True)
_declare("yhat", r"\hat y", r"observed singular value of a spike in the normalised spiked matrix", positive=True)
_declare("cos2m", r"c_m^2", r"squared cosine between a spike's observed and true singular vectors, smaller ($m$) side", nonnegative=True)
_declare("cos2N", r"c_N^2", r"squared cosine between a spike's observed and true singular vectors, larger ($N$) side", nonnegative=True)
_declare("xstar", r"x^*", r"keep threshold: keeping a spike pays iff $x > x^*$", positive=True)
_declare("rho_keep", r"\rho", r"signal/noise weight ratio of a sample-side direction: $n/(n-d-1)$ over, $d/(d-n-1)$ under ($\to 1$ as the aspect ratio $\to\infty$)", positive=True)
_declare("Nsp", "N", r"larger dimension of the normalised spiked matrix ($\max(k, d)$ over, $\max(k, n)$ under)", **_INT)
_declare("Rsharp", r"\mathcal R_{\mathrm{sharp}}(r)", r"sharp asymptotic LoRA risk at rank $r$ (spiked truncated SVD; Benaych-Georges and Nadakuditi 2012)", nonnegative=True)
_declare("kappa", r"\kappa", r"fixed point of $\sum_i \lambda_i/(\lambda_i+\kappa) = n$ ($\lambda_i$: eigenvalues of $\Sigma$)", positive=True)
_declare("df2", r"\mathrm{df}_2", r"$\frac1n\sum_i \lambda_i^2/(\lambda_i+\kappa)^2$", positive=True)
_declare("eps", r"\varepsilon", r"misalignment $\lVert Q_\perp C Q\rVert_{\mathrm{op}}$", nonnegative=True)
_declare("eta", r"\eta", r"distance to isotropy $\lVert C - I\rVert_{\mathrm{op}}$", nonnegative=True)
_declare("b_r", r"b_r", r"best rank-$r$ risk $\sum_{i>r}\sigma_i^2(\Delta^*\Sigma^{1/2})$", nonnegative=True)
_declare("lam", r"\lambda", r"eigenvalues $\lambda_1,\dots,\lambda_d$ of $\Sigma$", positive=True)
_declare("bq", r"\tilde b", r"rows of $\Delta^*$ in $\Sigma$'s eigenbasis, $\tilde b_{ji} = (\Delta^* q_i)_j$", real=True)
_declare("i", "i", r"summation index (eigen- or singular-value number)", group="indices", integer=True, positive=True)
_declare("j", "j", r"summation index (output row)", group="indices", integer=True, positive=True)
_declare("t", "t", "deviation in a concentration inequality (probability $e^{-t^2/2}$)", positive=True)
_declare("Fnorm2", r"\lVert\Delta^*\rVert_F^2", r"squared Frobenius norm of the shift", nonnegative=True)
# --- matrices ---
_declare("Sigma", r"\Sigma", r"input covariance, $x\sim\mathcal N(0,\Sigma)$, symmetric positive definite", ("d", "d"))
_declare("W0", r"W_0", "pretrained weights", ("k", "d"))
_declare("Wstar", r"W^*", r"optimal downstream weights $W^* = W_0 + \Delta^*$", ("k", "d"))
_declare("Delta", r"\Delta^*", r"task shift $W^* - W_0$", ("k", "d"))
_declare("X", "X", r"design matrix, columns i.i.d. $\mathcal N(0,\Sigma)$", ("d", "n"), group="data")
_declare("E", "E", r"noise matrix, entries i.i.d. $\mathcal N(0,\sigma^2)$", ("k", "n"), group="data")
_declare("Y", "Y", r"labels $Y = W^* X + E$", ("k", "n"), group="data")
_declare("R", "R", r"residual labels $R = Y - W_0 X = \Delta^* X + E$", ("k", "n"), group="data")
_declare("S", "S", r"unnormalised sample covariance $S = X X^\top$", ("d", "d"), group="data")
_declare("SigmaHat", r"\hat\Sigma", r"sample covariance $\hat\Sigma = S/n$", ("d", "d"), group="data")
_declare("P", "P", r"projection onto the span of the data, $P = X X^+$", ("d", "d"), group="data")
_declare("DeltaF", r"\hat\Delta_F", "full fine-tuning estimate of the shift", ("k", "d"), group="estimators")
_declare("DeltaL", r"\hat\Delta_L", "LoRA estimate of the shift (global minimiser, rank at most $r$)", ("k", "d"), group="estimators")
_declare("B", "B", r"LoRA factor, $k\times r$, zero at initialisation", ("k", "r"), group="estimators")
_declare("A", "A", r"LoRA factor, $r\times d$, small random at initialisation", ("r", "d"), group="estimators")
_declare("M", "M", r"signal matrix ($\Delta^* S^{1/2}$ over, $\Delta^* X$ under)", group="lora", kind="matrix")
_declare("G", "G", r"whitened noise $E X^\top S^{-1/2}$; given $X$, i.i.d. $\mathcal N(0,\sigma^2)$", ("k", "d"), group="lora")
_declare("DeltaGD", r"\hat\Delta_{\mathrm{GD}}", r"LoRA $BA$ trained by gradient descent from $B = 0$, small random $A$", ("k", "d"), group="estimators")
_declare("D", "D", r"rank-$r$ error $P_r(M+G) - M$", ("k", "d"), group="lora")
_declare("Q", "Q", r"projection onto the top-$r$ row space of $\Delta^*$ (input side)", ("d", "d"), group="misalignment")
_declare("Qperp", r"Q_\perp", r"$I - Q$", ("d", "d"), group="misalignment")
_declare("C", "C", r"a covariance in which LoRA fits: $\Sigma$ or $\hat\Sigma$", ("d", "d"), group="misalignment")
_declare("A_C", "A_C", r"noise-free LoRA target in metric $C$: $P_r(\Delta^* C^{1/2}) C^{-1/2}$", ("k", "d"), group="misalignment")
_declare("C0", r"C_0", r"aligned part of $C$: $Q C Q + Q_\perp C Q_\perp$", ("d", "d"), group="misalignment")
_declare("Astar", r"A_*", r"best rank-$r$ shift in the population metric: $P_r(\Delta^*\Sigma^{1/2})\Sigma^{-1/2}$", ("k", "d"), group="misalignment")
_declare("Pi", r"\Pi", r"projection onto the top-$r$ right singular space of $\Delta^* C^{1/2}$", ("d", "d"), group="misalignment")
_declare("PU", r"Q_U", r"projection onto the top-$r$ left singular space of $\Delta^*$ (output side)", ("k", "k"), group="misalignment")
_declare("beta_mis", r"\beta_{\mathrm{mis}}", r"misalignment bias $\mathcal R(A_C) - b_r \ge 0$", real=True)
_declare("delta_gap", r"\delta", r"weighted head/tail gap $\sigma_r^2(\Delta^* Q C_0^{1/2}) - \sigma_1^2(\Delta^* Q_\perp C_0^{1/2})$ ($>0$: order kept)", real=True)
_declare("gap2", r"\delta_2", r"weighted gap $a^2c_1 - b^2c_2 > 0$ of the $2\times 2$ case", positive=True)
_declare("Kmis", r"K_\varepsilon", r"explicit first-order bound on $\lVert A_C - A_*\rVert_F$ (Davis--Kahan/Wedin chain)", nonnegative=True)
_declare("sa", "a", r"head singular value of $\Delta^* = \operatorname{diag}(a, b)$ ($2\times 2$ case)", positive=True)
_declare("sb", "b", r"tail singular value of $\Delta^* = \operatorname{diag}(a, b)$ ($2\times 2$ case)", positive=True)
_declare("c11", "c_1", r"head diagonal entry of $C$ ($2\times 2$ case)", positive=True)
_declare("c22", "c_2", r"tail diagonal entry of $C$ ($2\times 2$ case)", positive=True)
_declare("lam_top", r"\lambda_+", r"top eigenvalue of $\Delta^{*\top}\Delta^* C$ ($2\times 2$ case)", positive=True)
_declare("cross", r"\chi", r"cross term of the underdetermined LoRA risk between $D X^+$ and $\Delta^*(I - P)$", real=True)
# --- the exact fast Monte Carlo samplers (numeric/samplers.py, derivations mc_samplers_*) ---
_declare("Lb", "L", r"Bartlett factor: lower triangular, $L L^\top = \Sigma^{-1/2} S \Sigma^{-1/2}\sim\mathcal W_d(I, n)$", ("d", "d"), group="samplers")
_declare("Gt", r"\tilde G", r"whitened noise $E X^\top T^{-\top}$, $T = \Sigma^{1/2} L$; i.i.d.\ $\mathcal N(0,\sigma^2)$, independent of $L$", ("k", "d"), group="samplers")
_declare("Z1", "Z_1", r"$V^\top X$: the data in the shift's row space ($V$: right singular vectors of $\Delta^*$)", ("s", "n"), group="samplers")
_declare("Wb", r"W_\perp", r"$X^\top (I - V V^\top) X\sim\mathcal W_n(I, d - s)$, independent of $Z_1$", ("n", "n"), group="samplers")
_declare("Rred", r"\mathcal R_{\mathrm{red}}", r"excess risk from the reduced statistics: $(L_{11}, G_1, P, Q, J)$ over ($k \le d - s$), $(R_0, T)$ under ($s + k \le n \le d - s$)", nonnegative=True)
_declare("Rfast", r"\mathcal R_{\mathrm{fast}}", r"excess risk computed from the sufficient statistics ($L, \tilde G$ over; $Z_1, W, E$ under)", nonnegative=True)
# --- sample-covariance misalignment (derivations misalign_growth, misalign_sample) ---
_declare("etn", r"\tilde\varepsilon", r"normalised misalignment $\lVert C_0^{-1/2} Q_\perp C Q C_0^{-1/2}\rVert_{\mathrm{op}} < 1$", nonnegative=True, group="misalignment")
_declare("tau2", r"\tau^2", r"tail-weighted coupling $\lVert \Delta^* Q_\perp C Q C_0^{-1/2}\rVert_F^2$", nonnegative=True, group="misalignment")
_declare("m0", r"m_0", r"$\lambda_{\min}(C_0)$", positive=True, group="misalignment")
_declare("gamma0", r"\gamma_0", r"weighted relative gap $1 - \sigma_1(\Delta^* Q_\perp C_0^{1/2})/\sigma_r(\Delta^* Q C_0^{1/2})$", real=True, group="misalignment")
_declare("rho_g", r"\varrho", r"tail/head ratio $s_{r+1}/s_r$ of the singular values of $\Delta^*\Sigma^{1/2}$", nonnegative=True, group="misalignment")
_declare("Arank", r"\tilde A", r"an arbitrary matrix of rank at most $r$ (quadratic-growth lemma)", ("k", "d"), group="misalignment")
_declare("Zw", r"Z", r"whitened design $\Sigma^{-1/2}X$, i.i.d. $\mathcal N(0,1)$ entries", ("d", "n"), group="misalignment")
_declare("Wcov", r"W", r"whitened sample covariance $\Sigma^{-1/2}\hat\Sigma\Sigma^{-1/2} = ZZ^\top/n$", ("d", "d"), group="misalignment")
_declare("Dw", r"\Delta_\Sigma", r"whitened shift $\Delta^*\Sigma^{1/2}$", ("k", "d"), group="misalignment")
_declare("W0al", r"W_{\parallel}", r"aligned part $QWQ + Q_\perp W Q_\perp$ of $W$", ("d", "d"), group="misalignment")
_declare("Bmis", r"\bar B_{\mathrm{mis}}", r"explicit bound on $\mathbb E\,\beta_{\mathrm{mis}}(\hat\Sigma)$ (derivation \texttt{misalign\_sample})", nonnegative=True, group="misalignment")

# Notation that is an operator rather than a symbol (for the notation table only).
OPERATORS: list[tuple[str, str]] = [
    (r"P_r(M)", r"best rank-$r$ approximation of $M$ (truncated SVD; Eckart--Young)"),
    (r"M^+", "Moore--Penrose pseudo-inverse"),
    (r"\lVert M\rVert_F,\ \lVert M\rVert_{\mathrm{op}}", "Frobenius and operator norms"),
    (r"\sigma_i(M)", r"$i$-th largest singular value"),
    (r"\mathcal R(W) = \lVert (W - W^*)\Sigma^{1/2}\rVert_F^2",
     r"excess risk: population risk minus the noise floor $k\sigma^2$"),
    (r"\mathbb E_{Z}[\,\cdot\,]", r"expectation over the random matrices $Z$, all else fixed"),
]


def _shape(info: SymbolInfo):
    return tuple(sym(s) for s in info.shape)


@lru_cache(maxsize=None)
def sym(name: str):
    """The SymPy object for a registered symbol (``Symbol`` or ``MatrixSymbol``)."""
    try:
        info = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown symbol {name!r}; declare it in symbolic/registry.py") from None
    if info.kind == "scalar":
        return sp.Symbol(name, **info.assumptions)
    if info.shape is None:
        raise TypeError(f"matrix symbol {name!r} has a regime-dependent shape; use msym(name, rows, cols)")
    return sp.MatrixSymbol(name, *_shape(info))


def msym(name: str, rows, cols):
    """A registered matrix symbol with an explicit shape (for symbols whose shape varies by regime)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown symbol {name!r}; declare it in symbolic/registry.py")
    return sp.MatrixSymbol(name, rows, cols)


def latex_name(name: str) -> str:
    return REGISTRY[name].latex


def notation_table() -> list[dict]:
    """Rows for the notation table, grouped, in declaration order."""
    rows = []
    for info in REGISTRY.values():
        shape = "" if info.shape is None else r"{}\times {}".format(*(REGISTRY[s].latex for s in info.shape))
        rows.append({"name": info.name, "latex": info.latex, "shape": shape,
                     "meaning": info.meaning, "group": info.group})
    return rows
