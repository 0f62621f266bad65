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
    op = {"=": "=", "<=": r"\le", ">=": r"\ge", "~": r"\simeq"}[rel]
    return f"{latex(lhs)} {op} {latex(rhs)}"


__all__ = ["AuditLatexPrinter", "UndefinedSymbolError", "latex", "relation_latex", "ops"]
