"""Project-specific SymPy nodes for the objects the paper's derivations use.

SymPy's matrix expressions know products, sums, transposes, inverses, powers and traces.  What
they do not know (Frobenius and operator norms, the truncated SVD ``P_r``, the Moore-Penrose
pseudo-inverse, expectations over named random matrices) is declared here as inert nodes.  They
are never simplified symbolically -- SymPy cannot canonicalise traces under cyclic permutation
(sympy issues #20025, #21982) -- they exist so that a step can be *written down* exactly once and
then both typeset (``symbolic.printing``) and evaluated numerically (``numeric.evaluate``).
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr


class _ScalarOfMatrix(sp.Expr):
    """A real scalar functional of one matrix expression."""

    is_commutative = True
    is_real = True

    def __new__(cls, arg):
        arg = sp.sympify(arg)
        if not getattr(arg, "is_Matrix", False):
            raise TypeError(f"{cls.__name__} expects a matrix expression, got {arg!r}")
        return sp.Expr.__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]


class Frob2(_ScalarOfMatrix):
    """Squared Frobenius norm ``||M||_F^2``."""

    is_nonnegative = True


class OpNorm(_ScalarOfMatrix):
    """Operator (spectral) norm ``||M||_op`` -- the largest singular value."""

    is_nonnegative = True


class SigmaMin(_ScalarOfMatrix):
    """Smallest eigenvalue of a symmetric matrix."""


class SingVal(sp.Expr):
    """The ``i``-th largest singular value ``sigma_i(M)`` (1-based)."""

    is_commutative = True
    is_real = True
    is_nonnegative = True

    def __new__(cls, arg, i):
        return sp.Expr.__new__(cls, sp.sympify(arg), sp.sympify(i))


class TruncSVD(MatrixExpr):
    """``P_r(M)``: the best rank-``r`` approximation of ``M`` (Eckart-Young, truncated SVD)."""

    def __new__(cls, arg, r):
        return MatrixExpr.__new__(cls, sp.sympify(arg), sp.sympify(r))

    @property
    def shape(self):
        return self.args[0].shape


class PInv(MatrixExpr):
    """The Moore-Penrose pseudo-inverse ``M^+``."""

    def __new__(cls, arg):
        return MatrixExpr.__new__(cls, sp.sympify(arg))

    @property
    def shape(self):
        m, n = self.args[0].shape
        return (n, m)


class Expect(sp.Expr):
    """``E_{over}[expr]``: expectation of a scalar over the named random matrices.

    ``over`` lists the random symbols; everything else in ``expr`` is held fixed (conditioned
    on).  The Monte Carlo checker draws exactly those symbols and nothing else.
    """

    is_commutative = True
    is_real = True

    def __new__(cls, expr, *over):
        if not over:
            raise ValueError("Expect needs at least one random symbol to average over")
        return sp.Expr.__new__(cls, sp.sympify(expr), sp.Tuple(*over))

    @property
    def expr(self):
        return self.args[0]

    @property
    def over(self):
        return tuple(self.args[1])


def random_symbols(expr) -> set[str]:
    """Names of all symbols an expression takes an expectation over."""
    names: set[str] = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, Expect):
            names.update(s.name for s in node.over)
    return names


def contains_expectation(expr) -> bool:
    return any(isinstance(node, Expect) for node in sp.preorder_traversal(expr))
