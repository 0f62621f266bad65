r"""The Jinja2 environment for LaTeX templates.

Delimiters that do not fight LaTeX::

    \VAR{expr}        an expression            \VAR{data.title|e}
    \BLOCK{stmt}      a statement              \BLOCK{for row in data.rows} ... \BLOCK{endfor}
    \#{comment}       a comment

Line statements and line comments are off; undefined names raise (``StrictUndefined``);
autoescaping is off, so *every* string must go through exactly one of the filters:

* ``e``   -- plain text -> LaTeX (escapes ``\ & % $ # _ { } ~ ^`` and common Unicode symbols);
* ``tex`` -- a string that is already LaTeX (printed by ``symbolic.printing``, or an assumption
  written in LaTeX), passed through unchanged;
* ``num`` -- a number -> LaTeX, usable in text and in math mode: ``\VAR{x|num}`` (4 significant
  digits), ``\VAR{x|num(2)}``; large/small magnitudes in scientific notation as
  ``\ensuremath{1.23\times 10^{-5}}``; integers exactly with thin-space grouping; ``None`` -> "--";
  ``nan``/``inf`` handled; ``num(3, sign=True)`` forces a sign.

Further filters: ``pct`` (a fraction as a percentage, ``0.031 -> 3.1\%``), ``verdict`` (a verdict
word as coloured LaTeX: needs ``xcolor``, loaded by the main template).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

_LATEX_SPECIAL = {
    ">=": r"\ensuremath{\ge}",
    "<=": r"\ensuremath{\le}",
    "+-": r"\ensuremath{\pm}",
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # Unicode that pdflatex (utf8 inputenc) does not know by default
    "≤": r"\ensuremath{\le}",
    "≥": r"\ensuremath{\ge}",
    "±": r"\ensuremath{\pm}",
    "×": r"\ensuremath{\times}",
    "−": r"\ensuremath{-}",
    "→": r"\ensuremath{\to}",
    "∞": r"\ensuremath{\infty}",
    "≈": r"\ensuremath{\approx}",
    "≠": r"\ensuremath{\neq}",
    "·": r"\ensuremath{\cdot}",
    "√": r"\ensuremath{\surd}",
    "Σ": r"\ensuremath{\Sigma}",
    "Δ": r"\ensuremath{\Delta}",
    "σ": r"\ensuremath{\sigma}",
    "ε": r"\ensuremath{\varepsilon}",
    "η": r"\ensuremath{\eta}",
    "β": r"\ensuremath{\beta}",
    "γ": r"\ensuremath{\gamma}",
    "κ": r"\ensuremath{\kappa}",
    "λ": r"\ensuremath{\lambda}",
    "μ": r"\ensuremath{\mu}",
    "ℛ": r"\ensuremath{\mathcal{R}}",
    "ᵀ": r"\ensuremath{^{\top}}",
    "…": r"\ldots{}",
    "–": "--",
    "—": "---",
}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def latex_escape(value) -> str:
    """Plain text -> LaTeX source that prints that text literally."""
    if value is None:
        return ""
    text = str(value)
    return _SPECIAL_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], text)


def tex(value) -> str:
    """Mark a string as LaTeX already (pass-through); refuses non-strings to catch mistakes."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"|tex expects a LaTeX string, got {type(value).__name__}: {value!r}; "
                        "print expressions with symbolic.printing.latex in compute()")
    return value


def _group_int(i: int) -> str:
    s = f"{abs(i):d}"
    if len(s) > 4:
        s = ",".join([s[max(0, j - 3):j] for j in range(len(s), 0, -3)][::-1]).replace(",", r"\,")
    return ("-" if i < 0 else "") + s


def format_number(x, digits: int = 4, sign: bool = False, sci_low: float = 1e-3,
                  sci_high: float = 1e5) -> str:
    """A number as LaTeX (text- and math-mode safe)."""
    if x is None:
        return "--"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, str):
        try:
            x = float(x) if not re.fullmatch(r"[+-]?\d+", x.strip()) else int(x)
        except ValueError:
            return latex_escape(x)          # e.g. "all" digits agreed
    if hasattr(x, "item") and callable(x.item):   # numpy / torch scalars
        x = x.item()
    if isinstance(x, int):
        s = _group_int(x)
        return ("+" + s) if sign and x >= 0 else s
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return r"\ensuremath{" + ("-" if x < 0 else ("+" if sign else "")) + r"\infty}"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax < sci_low or ax >= sci_high:
        mant, exp = f"{x:.{max(digits - 1, 0)}e}".split("e")
        exp = int(exp)
        if "." in mant:
            mant = mant.rstrip("0").rstrip(".")
        if sign and x > 0:
            mant = "+" + mant
        if mant in ("1", "+1"):
            return r"\ensuremath{" + ("+" if mant == "+1" else "") + rf"10^{{{exp}}}" + "}"
        if mant == "-1":
            return r"\ensuremath{-10^{" + str(exp) + "}}"
        return r"\ensuremath{" + mant + r"\times 10^{" + str(exp) + "}}"
    s = f"{x:.{digits}g}"
    if "e" in s:                       # %g chose exponent form for a mid-range value
        s = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    if sign and x > 0:
        s = "+" + s
    return s


def percent(x, digits: int = 2) -> str:
    if x is None:
        return "--"
    x = float(x)
    if not math.isfinite(x):
        return format_number(x)
    return format_number(100 * x, digits) + r"\%"


_VERDICT_COLOURS = {"pass": "passgreen", "fail": "failred", "error": "failred",
                    "rejected": "passgreen", "not rejected": "failred", "open": "openamber",
                    "answered": "passgreen", "answered in part": "openamber",
                    "skipped": "openamber", "not formalised": "openamber",
                    "waived": "openamber"}


def verdict(value) -> str:
    word = str(value)
    colour = _VERDICT_COLOURS.get(word.lower())
    text = latex_escape(word.upper() if word.lower() in ("pass", "fail", "error") else word)
    return rf"\textcolor{{{colour}}}{{\textbf{{{text}}}}}" if colour else text


def make_env(template_dir=None) -> jinja2.Environment:
    """The environment; ``template_dir`` is a folder or a list of folders searched in order
    (default: ``reports/templates``)."""
    dirs = template_dir if isinstance(template_dir, (list, tuple)) else [template_dir or TEMPLATE_DIR]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        line_statement_prefix=None,
        line_comment_prefix=None,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["e"] = latex_escape
    env.filters["escape"] = latex_escape
    env.filters["tex"] = tex
    env.filters["num"] = format_number
    env.filters["pct"] = percent
    env.filters["verdict"] = verdict
    return env


def render_string(source: str, **context) -> str:
    return make_env().from_string(source).render(**context)


__all__ = ["make_env", "render_string", "latex_escape", "tex", "format_number",
           "percent", "verdict", "TEMPLATE_DIR"]
