"""Printing of scalar SymPy expressions in Coq's real-number syntax (``Reals``, ``R_scope``).

``CoqPrinter`` subclasses SymPy's ``Printer``: one ``_print_<Class>`` per construct it knows, and
every other construct -- matrix expressions, the project's norms and expectations, sums,
undefined functions, floating-point numbers, symbolic exponents -- is refused with
``CoqPrintError`` naming the construct.  There is deliberately no ``_print_Basic`` /
``_print_Expr`` fallback: a construct the printer does not know never becomes a string that
merely looks like Coq.

Semantics: Coq's ``/`` and ``sqrt`` are total (``x / 0 = 0``, ``sqrt`` of a negative is ``0``),
so a printed expression equals the SymPy one only where the denominators are non-zero and the
radicands non-negative.  ``domain_conditions`` lists exactly those conditions; the formal checker
proves them as a separate lemma.

Products with square-root factors print their square roots as one parenthesised group
``(sqrt a * sqrt b / (sqrt c))`` so that a proof script can ``replace`` the group by a rational
expression (``sqrt_groups`` returns them).  Depends on SymPy only.
"""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.printer import Printer

# identifiers Coq (or the loaded libraries) already use in the real-number scope
RESERVED = frozenset("""
R S O Set Prop Type nat bool True False fun forall exists match with end let in if then else
as return fix cofix for struct where at sqrt exp ln sin cos tan PI Rabs Rmin Rmax pow Rpower
IZR INR Rdiv Rmult Rplus Rminus Ropp Rinv Rsqr Rlt Rle Rgt Rge Lemma Theorem Proof Qed Defined
Admitted admit Axiom Parameter Hypothesis Variable Definition Require Import Open Scope is_true
x_ H
""".split())

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class CoqPrintError(ValueError):
    """A construct that has no faithful rendering in Coq's real-number syntax."""


def coq_name(name: str) -> str:
    """A Coq identifier for a SymPy symbol name (``v_`` prefixed when reserved or unusual)."""
    if _IDENT.match(name) and name not in RESERVED and not name.startswith("v_"):
        return name
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return f"v_{clean}"


class CoqPrinter(Printer):
    printmethod = "_coq"
    _default_settings = {"order": None}

    def emptyPrinter(self, expr):  # noqa: N802 -- SymPy's name
        raise CoqPrintError(
            f"cannot print {type(expr).__name__} ({sp.sstr(expr)[:80]}) in Coq's real-number "
            "syntax: only rational arithmetic, integer powers, square roots, |.|, min/max, "
            "exp/ln and relations are supported")

    # ----------------------------------------------------------------------------- atoms
    def _print_Symbol(self, expr):
        return coq_name(expr.name)

    def _print_Integer(self, expr):
        p = int(expr)
        return str(p) if p >= 0 else f"(- {-p})"

    def _print_Rational(self, expr):
        p, q = int(expr.p), int(expr.q)
        return f"({p} / {q})" if p >= 0 else f"(- ({-p} / {q}))"

    def _print_Float(self, expr):
        raise CoqPrintError(f"refusing the floating-point number {expr}: a formal goal must be "
                            "exact (write it as a Rational)")

    def _print_Pi(self, expr):
        return "PI"

    def _print_Exp1(self, expr):
        return "(exp 1)"

    # -------------------------------------------------------------------------- helpers
    def _atom(self, expr) -> str:
        """``expr`` printed so that it can stand as an operand of ``*``, ``/`` or ``^``."""
        s = self._print(expr)
        if isinstance(expr, sp.Symbol) or (isinstance(expr, sp.Integer) and expr >= 0):
            return s
        if s.startswith("(") and _balanced_outer(s):
            return s
        return f"({s})"

    @staticmethod
    def _is_sqrt_power(f) -> bool:
        return (isinstance(f, sp.Pow) and isinstance(f.exp, sp.Rational)
                and not isinstance(f.exp, sp.Integer) and f.exp.q == 2)

    def _factor(self, f) -> str:
        """A factor of a product: a power with a natural exponent needs no parentheses."""
        if isinstance(f, sp.Pow) and ((f.exp.is_Integer and f.exp > 0) or f.exp == sp.S.Half):
            return self._print(f)
        return self._atom(f)

    def _product(self, factors) -> str:
        return " * ".join(self._factor(f) for f in factors)

    # ------------------------------------------------------------------------ arithmetic
    def _print_Add(self, expr):
        terms = list(expr.as_ordered_terms())
        out = []
        for i, t in enumerate(terms):
            if t.could_extract_minus_sign():
                s = self._print(-t)
                if isinstance(-t, sp.Add):
                    s = f"({s})"
                out.append(f"- {s}" if i == 0 else f" - {s}")
            else:
                s = self._print(t)
                out.append(s if i == 0 else f" + {s}")
        text = "".join(out)
        return f"({text})" if text.startswith("- ") else text

    def _print_Mul(self, expr):
        coeff, rest = expr.as_coeff_Mul()
        if coeff.is_negative:
            return f"(- {self._print(-expr)})"
        num, den, roots_num, roots_den = [], [], [], []
        if isinstance(coeff, sp.Rational) and coeff != 1:
            if coeff.p != 1:
                num.append(sp.Integer(coeff.p))
            if coeff.q != 1:
                den.append(sp.Integer(coeff.q))
        elif coeff != 1:
            num.append(coeff)        # a Float coefficient: refused when printed
        for f in sp.Mul.make_args(rest):
            if self._is_sqrt_power(f):
                (roots_num if f.exp > 0 else roots_den).append(f if f.exp > 0 else 1 / f)
            elif isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp < 0:
                den.append(f.base ** (-f.exp))
            else:
                num.append(f)
        if roots_num or roots_den:
            group = self._product(roots_num) if roots_num else "1"
            if roots_den:
                d = self._product(roots_den)
                group = f"{group} / {d if len(roots_den) == 1 else f'({d})'}"
            num.append(_Raw(f"({group})"))
        text = self._product(num) if num else "1"
        if den:
            d = self._product(den)
            text = f"{text} / {d if len(den) == 1 else f'({d})'}"
        return text

    def _print__Raw(self, expr):
        return expr.text

    def _print_Pow(self, expr):
        base, e = expr.base, expr.exp
        if e.is_Integer:
            k = int(e)
            if k >= 0:
                return f"{self._atom(base)} ^ {k}"
            return f"1 / {self._atom(base)}" if k == -1 else f"1 / {self._atom(base)} ^ {-k}"
        if isinstance(e, sp.Rational) and e.q == 2:
            root = f"sqrt {self._atom(base)}"
            k = int(e.p)
            if k == 1:
                return root
            if k > 0:
                return f"({root}) ^ {k}"
            return f"1 / ({root}) ^ {-k}" if k != -1 else f"1 / {root}"
        raise CoqPrintError(f"refusing the power {sp.sstr(expr)}: Coq's pow takes a natural "
                            "exponent; only integer and half-integer exponents are printed")

    # ------------------------------------------------------------------------- functions
    def _print_Abs(self, expr):
        return f"Rabs {self._atom(expr.args[0])}"

    def _binary_fold(self, name, args):
        args = list(args)
        text = self._atom(args[0])
        for a in args[1:]:
            text = f"({name} {text} {self._atom(a)})"
        return text

    def _print_Min(self, expr):
        return self._binary_fold("Rmin", expr.args)

    def _print_Max(self, expr):
        return self._binary_fold("Rmax", expr.args)

    def _print_exp(self, expr):
        return f"exp {self._atom(expr.args[0])}"

    def _print_log(self, expr):
        if len(expr.args) != 1:
            raise CoqPrintError("refusing a logarithm with a base: write log(x)/log(b)")
        return f"ln {self._atom(expr.args[0])}"

    # ------------------------------------------------------------------------- relations
    def _rel(self, expr, op):
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_Equality(self, expr):
        return self._rel(expr, "=")

    def _print_Unequality(self, expr):
        return self._rel(expr, "<>")

    def _print_StrictLessThan(self, expr):
        return self._rel(expr, "<")

    def _print_LessThan(self, expr):
        return self._rel(expr, "<=")

    def _print_StrictGreaterThan(self, expr):
        return self._rel(expr, ">")

    def _print_GreaterThan(self, expr):
        return self._rel(expr, ">=")

    def _print_And(self, expr):
        return " /\\ ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Or(self, expr):
        return " \\/ ".join(f"({self._print(a)})" for a in expr.args)

    def _print_Not(self, expr):
        return f"~ ({self._print(expr.args[0])})"

    def _print_Equivalent(self, expr):
        a, b = expr.args
        return f"({self._print(a)}) <-> ({self._print(b)})"

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"


class _Raw(sp.Expr):
    """Pre-printed text inside a product (the square-root group); never leaves this module."""

    is_commutative = True

    def __new__(cls, text):
        obj = sp.Expr.__new__(cls)
        obj.text = text
        return obj


def _balanced_outer(s: str) -> bool:
    """Whether the outermost parentheses of ``s`` enclose all of it."""
    if not (s.startswith("(") and s.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(s) - 1:
            return False
    return True


_PRINTER = CoqPrinter()


def coq(expr) -> str:
    """Coq text for a scalar SymPy expression or relation; ``CoqPrintError`` if unsupported."""
    return _PRINTER.doprint(sp.sympify(expr))


def domain_conditions(*exprs) -> list:
    """Where the expressions are defined as real functions: ``(kind, expr)`` pairs, kind
    ``"nonzero"`` for every denominator and ``"nonneg"`` for every radicand (deduplicated, in
    order of appearance)."""
    out, seen = [], set()
    for expr in exprs:
        for node in sp.preorder_traversal(sp.sympify(expr)):
            if not isinstance(node, sp.Pow):
                continue
            e = node.exp
            if isinstance(e, sp.Rational) and e.q == 2:
                key = ("nonneg", node.base)
                if key not in seen:
                    seen.add(key)
                    out.append(key)
                if e < 0:
                    key = ("nonzero", sp.sqrt(node.base))
                    if key not in seen:
                        seen.add(key)
                        out.append(key)
            elif e.is_Integer and e < 0:
                key = ("nonzero", node.base)
                if key not in seen:
                    seen.add(key)
                    out.append(key)
    return out


def sqrt_groups(expr) -> list:
    """The square-root groups of ``expr``'s products as SymPy expressions (each the product of
    a ``Mul``'s half-integer-power factors), in order of appearance, deduplicated."""
    out = []
    for node in sp.preorder_traversal(sp.sympify(expr)):
        if isinstance(node, sp.Mul):
            roots = [f for f in node.args if CoqPrinter._is_sqrt_power(f)]
            if roots:
                g = sp.Mul(*roots)
                if g not in out:
                    out.append(g)
    return out


def sqrt_atoms(expr) -> list:
    """The radicands ``a`` of every ``sqrt(a)`` in ``expr`` (deduplicated)."""
    out = []
    for node in sp.preorder_traversal(sp.sympify(expr)):
        if CoqPrinter._is_sqrt_power(node) and node.base not in out:
            out.append(node.base)
    return out


__all__ = ["CoqPrinter", "CoqPrintError", "coq", "coq_name", "domain_conditions",
           "sqrt_groups", "sqrt_atoms", "RESERVED"]
