"""LaTeX printing of derivation expressions through SymPy's printer classes.

``AuditLatexPrinter`` subclasses ``LatexPrinter``: project symbols take their LaTeX names from
the registry and the project's nodes (norms, ``P_r``, pseudo-inverse, expectations) print as the
paper writes them.  Templates receive the finished strings; they never format mathematics.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter

from . import ops
from .registry import REGISTRY


class UndefinedSymbolError(ValueError):
    def __init__(self, name: str):
        super().__init__(f"symbol {name!r} is printed in the report but not declared in "
                         "symbolic/registry.py (the notation table would not define it)")


class AuditLatexPrinter(LatexPrinter):
    printmethod = "_audit_latex"

    def __init__(self, settings=None):
        base = {"mul_symbol": None, "mat_symbol_style": "plain"}
        base.update(settings or {})
        super().__init__(base)

    # term order: added terms first, then subtracted ones (bare numbers last in each group), so
    # that n - d - 1 and 1 - n/d print as written rather than SymPy's "- d + n - 1"
    def _as_ordered_terms(self, expr, order=None):
        terms = list(super()._as_ordered_terms(expr, order=order))
        return sorted(terms, key=lambda t: (t.could_extract_minus_sign(), bool(t.is_number)))

    def _print_MatAdd(self, expr):
        return self._print_Add(expr)

    # symbols -------------------------------------------------------------
    # Every printed symbol must be declared in the registry (so the notation table defines it);
    # an undeclared one fails the build rather than appearing undefined in the report.
    def _print_Symbol(self, expr, style="plain"):
        info = REGISTRY.get(expr.name)
        if info is not None:
            return info.latex
        raise UndefinedSymbolError(expr.name)

    def _print_MatrixSymbol(self, expr):
        info = REGISTRY.get(expr.name)
        if info is not None:
            return info.latex
        raise UndefinedSymbolError(expr.name)

    # structure ------------------------------------------------------------
    def _print_Transpose(self, expr):
        inner = self._print(expr.arg)
        if not isinstance(expr.arg, sp.MatrixSymbol):
            inner = rf"\left({inner}\right)"
        elif "^" in inner:                  # e.g. \Delta^*: a second superscript needs braces
            inner = f"{{{inner}}}"
        return rf"{inner}^{{\top}}"

    def _print_Frob2(self, expr):
        return rf"\left\lVert {self._print(expr.arg)} \right\rVert_F^2"

    def _print_OpNorm(self, expr):
        return rf"\left\lVert {self._print(expr.arg)} \right\rVert_{{\mathrm{{op}}}}"

    def _print_SigmaMin(self, expr):
        return rf"\lambda_{{\min}}\!\left({self._print(expr.arg)}\right)"

    def _print_SingVal(self, expr):
        m, i = expr.args
        return rf"\sigma_{{{self._print(i)}}}\!\left({self._print(m)}\right)"

    def _print_TruncSVD(self, expr):
        m, r = expr.args
        return rf"P_{{{self._print(r)}}}\!\left({self._print(m)}\right)"

    def _print_PInv(self, expr):
        inner = self._print(expr.args[0])
        if not isinstance(expr.args[0], sp.MatrixSymbol):
            inner = rf"\left({inner}\right)"
        elif "^" in inner:
            inner = f"{{{inner}}}"
        return rf"{inner}^{{+}}"

    def _print_Expect(self, expr):
        over = ",".join(self._print(s) for s in expr.over)
        return rf"\mathbb{{E}}_{{{over}}}\!\left[{self._print(expr.expr)}\right]"

    def _print_Identity(self, expr):
        return "I"


_PRINTER = AuditLatexPrinter()


def latex(expr) -> str:
    """LaTeX for an expression (a SymPy object, or a plain string passed through unchanged)."""
    if isinstance(expr, str):
        return expr
    return _PRINTER.doprint(expr)


def relation_latex(lhs, rel: str, rhs) -> str:
    op = {"=": "=", "<=": r"\le", ">=": r"\ge", "~": r"\simeq", ":=": ":="}[rel]
    return f"{latex(lhs)} {op} {latex(rhs)}"


# ------------------------------------------------------------------ display: broken, not shrunk
DISPLAY_WIDTH = 84      # visible characters of one display line at 11 pt (calibrated on the report)


def visible_width(tex: str) -> int:
    """A rough count of the characters a LaTeX math string shows (for line breaking only):
    command names, braces and script markers are free; a fraction shows its wider part."""
    import re

    t = tex
    for _ in range(6):                    # innermost fractions first
        t2 = re.sub(r"\frac\{([^{}]*)\}\{([^{}]*)\}",
                    lambda m: max(m.group(1), m.group(2), key=len), t)
        if t2 == t:
            break
        t = t2
    t = re.sub(r"\\(left|right|big|Big|bigl|bigr|Bigl|Bigr|displaystyle|mathrm|operatorname|"
               r"mathcal|mathbb|text)\b", "", t)
    t = re.sub(r"\\[A-Za-z]+", "x", t)         # any other command: one glyph
    t = re.sub(r"\\.", "", t)                  # \, \! \; ...
    t = re.sub(r"[{}^_&]", "", t)
    return len(t.replace(" ", ""))


def _terms(expr):
    """Top-level summands in the printer's reading order (added first, then subtracted)."""
    if isinstance(expr, (sp.Add, sp.MatAdd)):
        return list(_PRINTER._as_ordered_terms(expr))
    return [expr]


def _wrap(lines, left, right):
    if len(lines) == 1:
        return [f"{left}{lines[0]}{right}"]
    return [f"{left}{lines[0]}", *lines[1:-1], f"{lines[-1]}{right}"]


def _break(expr, room: int) -> list:
    r"""Lines (LaTeX) of ``expr`` each about ``room`` characters wide, broken between terms,
    inside brackets (with manual \Bigl/\Bigr, legal across lines) and between factors."""
    t = latex(expr)
    if visible_width(t) <= room or room < 12:
        return [t]
    if isinstance(expr, (sp.Add, sp.MatAdd)):
        lines, cur = [], ""
        for i, term in enumerate(_terms(expr)):
            neg = i > 0 and term.could_extract_minus_sign()
            body = -term if neg else term
            sign = "" if i == 0 else ("- " if neg else "+ ")
            tt = latex(body)
            if i and isinstance(body, (sp.Add, sp.MatAdd)):
                tt = rf"\left({tt}\right)"
            if visible_width(tt) > room:                      # a term too wide on its own
                if cur:
                    lines.append(cur)
                sub = _break(body, room - 2)
                lines.extend([sign + sub[0], *sub[1:]])
                cur = ""
                continue
            piece = (sign + tt).strip()
            if cur and visible_width(cur + piece) > room:
                lines.append(cur)
                cur = piece
            else:
                cur = (cur + " " + piece).strip()
        if cur:
            lines.append(cur)
        return lines
    if isinstance(expr, sp.Mul) and not expr.is_commutative is False:
        num, den = sp.fraction(expr)
        if den != 1:
            dt = latex(den)
            if visible_width(dt) <= room // 3:
                return _wrap(_break(num, room - 8), rf"\frac{{1}}{{{dt}}}\Bigl[", r"\Bigr]")
            return (_wrap(_break(num, room - 4), r"\Bigl[", r"\Bigr]")
                    + _wrap(_break(den, room - 6), r"\Bigm/\Bigl[", r"\Bigr]"))
        coeff, factors = expr.as_coeff_mul()
        lines, cur = [], latex(coeff) if coeff not in (1, -1) else ("-" if coeff == -1 else "")
        for f in factors:
            ft = latex(f)
            if isinstance(f, sp.Add):
                ft = rf"\left({ft}\right)"
            if visible_width(ft) > room:
                if isinstance(f, sp.Add):
                    block = _wrap(_break(f, room - 6), r"\Bigl(", r"\Bigr)")
                else:                                  # a power, a max, ...: it brackets itself
                    block = _break(f, room - 2)
                if cur:
                    block[0] = cur + " " + block[0]
                lines.extend(block)
                cur = ""
                continue
            if cur and visible_width(cur + ft) > room:
                lines.append(cur)
                cur = r"\cdot " + ft
            else:
                cur = (cur + " " + ft).strip()
        if cur:
            lines.append(cur)
        return lines
    if isinstance(expr, sp.Pow) and isinstance(expr.base, sp.Add):
        return _wrap(_break(expr.base, room - 6), r"\Bigl(", rf"\Bigr)^{{{latex(expr.exp)}}}")
    if isinstance(expr, (sp.Max, sp.Min)):
        name = r"\max" if isinstance(expr, sp.Max) else r"\min"
        lines, cur = [], ""
        for i, a in enumerate(expr.args):
            sep = "" if i == 0 else ", "
            at = latex(a)
            if visible_width(cur + at) > room:
                if cur:
                    lines.append(cur + sep.strip())
                sub = _break(a, room - 4)
                lines.extend(sub[:-1])
                cur = sub[-1]
            else:
                cur = cur + sep + at
        lines.append(cur)
        return _wrap(lines, name + r"\Bigl(", r"\Bigr)")
    return [t]


class NamedPart(sp.Symbol):
    """A long sub-expression given a short name in a display (``where h := ...``): it prints
    the LaTeX it was given (the name is defined beside the display, not in the registry)."""

    def __new__(cls, key: str, tex: str):
        obj = super().__new__(cls, f"_named_{key}")
        obj._tex = tex
        return obj

    def _audit_latex(self, printer, **kwargs):
        return self._tex


def name_parts(exprs, names) -> tuple:
    """``exprs`` with the named sub-expressions replaced by their names, and the definitions
    (``[(tex name, expr)]``) of the names they use, smallest first.

    ``names``: ``[(key, tex, sub-expression)]``, smallest first; a later sub-expression is
    itself written with the earlier names (``h`` inside ``K``).  The replacement is SymPy's
    exact ``subs``, so the named display states the same relation."""
    out = [e for e in exprs]
    rewritten = []                              # (symbol, pattern written with earlier names)
    for key, tex, pattern in names:
        sym = NamedPart(key, tex)
        short = pattern
        for psym, ppat, porig in rewritten:
            short = short.subs(porig, psym).subs(ppat, psym)
        out = [e.subs(pattern, sym).subs(short, sym) for e in out]
        rewritten.append((sym, short, pattern))
    free = set().union(*(e.free_symbols for e in out))
    shown = set()
    for sym, short, _ in reversed(rewritten):   # used by the display or by a shown definition
        if sym in free or any(sym in p.free_symbols for s2, p, _ in rewritten if s2 in shown):
            shown.add(sym)
    return out, [(sym._tex, short) for sym, short, _ in rewritten if sym in shown]


def relation_display(lhs, rel: str, rhs, width: int = DISPLAY_WIDTH) -> str:
    """The relation for a display: one line when it fits, else an ``aligned`` block that breaks
    the sides between terms, inside brackets and between factors -- never shrunk to fit."""
    one = relation_latex(lhs, rel, rhs)
    if visible_width(one) <= width:
        return one
    op = {"=": "=", "<=": r"\le", ">=": r"\ge", "~": r"\simeq", ":=": ":="}[rel]
    left = latex(lhs)
    if visible_width(left) > width // 2:
        head = _break(lhs, width)
        rhs_lines = _break(rhs, width - 4)
        out = [f"&{head[0]}", *[rf"&\quad {x}" for x in head[1:]], f"&{op} {rhs_lines[0]}",
               *[rf"&\quad {x}" for x in rhs_lines[1:]]]
    else:
        first, *rest = _break(rhs, max(20, width - visible_width(left) - 3))
        out = [f"{left} &{op} {first}", *[rf"&\quad {x}" for x in rest]]
    return r"\begin{aligned}" + " \\\\\n".join(out) + r"\end{aligned}"


__all__ = ["AuditLatexPrinter", "UndefinedSymbolError", "latex", "relation_latex",
           "relation_display", "visible_width", "ops", "NamedPart", "name_parts"]
