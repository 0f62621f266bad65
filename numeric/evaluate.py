"""Evaluate a derivation's SymPy expressions numerically, in mpmath or (batched) torch.

One tree walk, two backends.  The high-precision checker evaluates the very expression that is
typeset in the report with ``MpBackend`` at >= 50 digits; the Monte Carlo checker evaluates it
with ``TorchBackend`` on a batch of random draws (leading batch dimension), on CPU or CUDA.

``_Evaluator`` dispatches on the node's class (``_eval_<Class>``, like SymPy's printers); the
backends differ only in their methods.  Only the node types with a method are understood;
anything else raises ``UnsupportedNode`` rather than being guessed at.
"""
from __future__ import annotations

import math

import mpmath as mp
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from symbolic import ops


class UnsupportedNode(TypeError):
    pass


class MissingValue(KeyError):
    pass


class ShapeMismatch(ValueError):
    pass


def _value_shape(value):
    """(rows, cols) of a matrix value (the trailing two axes of a batched tensor), else None."""
    if isinstance(value, mp.matrix):
        return (value.rows, value.cols)
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) >= 2:
        return tuple(int(x) for x in shape[-2:])
    return None


# --------------------------------------------------------------------------------------------
class MpBackend:
    """mpmath matrices; call inside ``mp.workdps``."""

    name = "mpmath"

    def const(self, x):
        if isinstance(x, sp.Rational):
            return mp.mpf(x.p) / x.q
        return mp.mpf(sp.Float(x, mp.mp.dps)) if isinstance(x, sp.Float) else mp.mpf(x)

    def is_matrix(self, v):
        return isinstance(v, mp.matrix)

    def identity(self, n):
        return mp.eye(int(n))

    def zeros(self, m, n):
        return mp.zeros(int(m), int(n))

    def add(self, a, b):
        return a + b

    def scale(self, c, m):
        return m * c if self.is_matrix(m) else c * m

    def mul(self, a, b):
        return a * b

    def matmul(self, a, b):
        return a * b

    def transpose(self, a):
        return a.T

    def inverse(self, a):
        return mp.inverse(a)

    def sym_eig(self, a):
        a = (a + a.T) / 2
        w, v = mp.eigsy(a)
        return [w[i] for i in range(w.rows)], v

    def sym_pow(self, a, p):
        w, v = self.sym_eig(a)
        if min(w) <= 0 and not (isinstance(p, int) and p > 0):
            raise ValueError("fractional or negative power of a matrix that is not positive definite")
        dpow = mp.diag([wi ** p for wi in w])
        return v * dpow * v.T

    def matpow(self, a, p):
        if p == int(p) and p >= 0:
            out = self.identity(a.rows)
            for _ in range(int(p)):
                out = out * a
            return out
        if p == -1:
            return mp.inverse(a)
        return self.sym_pow(a, p)

    def svd(self, a):
        u, s, v = mp.svd_r(a)
        sv = [s[i] for i in range(len(s))]
        order = sorted(range(len(sv)), key=lambda i: -sv[i])
        u = mp.matrix([[u[r, i] for i in order] for r in range(u.rows)])
        v = mp.matrix([[v[i, c] for c in range(v.cols)] for i in order])
        return u, [sv[i] for i in order], v

    def trunc_svd(self, a, r):
        r = int(r)
        u, s, v = self.svd(a)
        out = mp.zeros(a.rows, a.cols)
        for i in range(min(r, len(s))):
            out += s[i] * (u[:, i] * v[i, :])
        return out

    def pinv(self, a):
        u, s, v = self.svd(a)
        tol = max(a.rows, a.cols) * s[0] * mp.eps * 10 if s else 0
        out = mp.zeros(a.cols, a.rows)
        for i, si in enumerate(s):
            if si > tol:
                out += (v[i, :].T * u[:, i].T) / si
        return out

    def trace(self, a):
        return mp.fsum(a[i, i] for i in range(min(a.rows, a.cols)))

    def frob2(self, a):
        return mp.fsum(a[i, j] ** 2 for i in range(a.rows) for j in range(a.cols))

    def opnorm(self, a):
        return self.svd(a)[1][0]

    def singval(self, a, i):
        s = self.svd(a)[1]
        i = int(i)
        return s[i - 1] if i <= len(s) else mp.mpf(0)

    def sigma_min(self, a):
        return min(self.sym_eig(a)[0])

    def power(self, a, p):
        return a ** p

    def sqrt(self, a):
        return mp.sqrt(a)

    def pi(self):
        return self.const(mp.pi)

    def exp(self, a):
        return mp.exp(a)

    def indicator(self, a):
        return mp.mpf(1) if a > 0 else mp.mpf(0)

    def maximum(self, a, b):
        return max(a, b)

    def absolute(self, a):
        return abs(a)

    def minimum(self, a, b):
        return min(a, b)


class TorchBackend:
    """torch tensors with an optional leading batch dimension; float64 by default."""

    name = "torch"

    def __init__(self, device="cpu", dtype=None):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = dtype or torch.float64

    def const(self, x):
        return float(x)

    def is_matrix(self, v):
        return hasattr(v, "ndim") and v.ndim >= 2

    def _as_scalar_for_matrix(self, c):
        if hasattr(c, "ndim") and c.ndim >= 1:
            return c[..., None, None]
        return c

    def identity(self, n):
        return self.torch.eye(int(n), dtype=self.dtype, device=self.device)

    def zeros(self, m, n):
        return self.torch.zeros(int(m), int(n), dtype=self.dtype, device=self.device)

    def add(self, a, b):
        return a + b

    def scale(self, c, m):
        return self._as_scalar_for_matrix(c) * m

    def mul(self, a, b):
        return a * b

    def matmul(self, a, b):
        return a @ b

    def transpose(self, a):
        return a.transpose(-1, -2)

    def inverse(self, a):
        return self.torch.linalg.inv(a)

    def sym_pow(self, a, p):
        w, v = self.torch.linalg.eigh((a + a.transpose(-1, -2)) / 2)
        return (v * w.pow(p).unsqueeze(-2)) @ v.transpose(-1, -2)

    def matpow(self, a, p):
        if p == int(p) and p >= 0:
            return self.torch.linalg.matrix_power(a, int(p))
        if p == -1:
            return self.torch.linalg.inv(a)
        return self.sym_pow(a, float(p))

    def trunc_svd(self, a, r):
        r = int(r)
        u, s, vh = self.torch.linalg.svd(a, full_matrices=False)
        return (u[..., :, :r] * s[..., None, :r]) @ vh[..., :r, :]

    def pinv(self, a):
        return self.torch.linalg.pinv(a)

    def trace(self, a):
        return self.torch.diagonal(a, dim1=-2, dim2=-1).sum(-1)

    def frob2(self, a):
        return (a * a).sum(dim=(-2, -1))

    def opnorm(self, a):
        return self.torch.linalg.matrix_norm(a, ord=2)

    def singval(self, a, i):
        s = self.torch.linalg.svdvals(a)
        return s[..., int(i) - 1]

    def sigma_min(self, a):
        return self.torch.linalg.eigvalsh((a + a.transpose(-1, -2)) / 2)[..., 0]

    def power(self, a, p):
        return a ** p

    def sqrt(self, a):
        return a ** 0.5

    def pi(self):
        return 3.141592653589793

    def exp(self, a):
        return self.torch.exp(a) if hasattr(a, "ndim") else math.exp(a)

    def indicator(self, a):
        return (a > 0).to(self.dtype) if hasattr(a, "ndim") else float(a > 0)

    def _tensors(self, a, b):
        return (x if self.torch.is_tensor(x) else self.torch.tensor(float(x), dtype=self.dtype,
                                                                    device=self.device)
                for x in (a, b))

    def maximum(self, a, b):
        return self.torch.maximum(*self._tensors(a, b))

    def absolute(self, a):
        return a.abs() if hasattr(a, "ndim") else abs(a)

    def minimum(self, a, b):
        return self.torch.minimum(*self._tensors(a, b))


# --------------------------------------------------------------------------------------------
def evaluate(expr, env: dict, backend):
    """Numeric value of ``expr`` given ``env`` (symbol name -> value) in ``backend``.

    ``Expect`` nodes evaluate to their integrand: the caller supplies one draw (or a batch of
    draws) of the random symbols in ``env`` and averages; that is the Monte Carlo checker's job.
    """
    return _Evaluator(env, backend)(expr)


_DISPATCH: dict = {}     # node type -> the ``_eval_<Class>`` method of its nearest class


class _Evaluator:
    """One tree walk by dispatch on the node's class, like SymPy's printers: the method
    ``_eval_<Class>`` of the nearest class in the node's MRO evaluates it; the backend supplies
    the arithmetic (mpmath or torch), so a new node is one method here (and one per backend when
    it needs a new primitive)."""

    def __init__(self, env: dict, backend):
        self.env = env
        self.backend = backend

    def __call__(self, expr):
        if isinstance(expr, (int, float)):
            return self.backend.const(expr)
        kind = type(expr)
        method = _DISPATCH.get(kind)
        if method is None:
            method = next((m for c in kind.__mro__
                           if (m := getattr(_Evaluator, f"_eval_{c.__name__}", None))), None)
            if method is None:
                raise UnsupportedNode(f"node {kind.__name__} ({expr}) is not supported by the "
                                      "evaluator")
            _DISPATCH[kind] = method
        return method(self, expr)

    def _shape(self, dim):
        return int(self(dim)) if not isinstance(dim, int) else dim

    def _fold(self, args, op):
        out = None
        for a in args:
            v = self(a)
            out = v if out is None else op(out, v)
        return out

    # ---------------------------------------------------------------- leaves
    def _eval_Symbol(self, expr):
        try:
            return self.env[expr.name]
        except KeyError:
            raise MissingValue(f"no value for symbol {expr.name!r}") from None

    def _eval_MatrixSymbol(self, expr):
        """A matrix symbol's value, refused when its shape is not the declared one (a symbol
        declared ``k x n`` but defined ``k x d`` is an error of the derivation, not a value)."""
        value = self._eval_Symbol(expr)
        got = _value_shape(value)
        if got is not None:
            try:
                want = tuple(self._shape(dim) for dim in expr.shape)
            except (MissingValue, TypeError, ValueError):
                return value             # a dimension the environment does not carry
            if want != got:
                raise ShapeMismatch(f"symbol {expr.name!r} is declared {expr.shape[0]} x "
                                    f"{expr.shape[1]} = {want[0]} x {want[1]}, but its value is "
                                    f"{got[0]} x {got[1]}")
        return value

    def _eval_Number(self, expr):
        return self.backend.const(expr)

    def _eval_Pi(self, expr):
        return self.backend.pi()

    def _eval_Identity(self, expr):
        return self.backend.identity(self._shape(expr.shape[0]))

    def _eval_ZeroMatrix(self, expr):
        return self.backend.zeros(*(self._shape(s) for s in expr.shape))

    def _eval_Indexed(self, expr):       # lam[i] (a list) or bq[j, i] (a matrix), 1-based
        base = self.env.get(expr.base.label.name)
        if base is None:
            raise MissingValue(f"no value for indexed symbol {expr.base.label.name!r}")
        idx = [int(self(i)) - 1 for i in expr.indices]
        # 1-based and in range: Python's negative indices would silently wrap (a sum from 0
        # would read the last entry), and mpmath matrices extend themselves on a write
        sizes = ([len(base)] if len(idx) == 1 else
                 list(base.shape if hasattr(base, "shape") else (base.rows, base.cols)))
        for pos, (i0, size) in enumerate(zip(idx, sizes)):
            if not 0 <= i0 < size:
                raise IndexError(f"index {i0 + 1} of {expr.base.label.name!r} (position "
                                 f"{pos + 1}) is outside 1..{size}")
        return base[idx[0]] if len(idx) == 1 else base[idx[0], idx[1]]

    # ------------------------------------------------------------ project nodes
    def _eval_Expect(self, expr):
        return self(expr.expr)

    def _eval_Frob2(self, expr):
        return self.backend.frob2(self(expr.arg))

    def _eval_OpNorm(self, expr):
        return self.backend.opnorm(self(expr.arg))

    def _eval_SigmaMin(self, expr):
        return self.backend.sigma_min(self(expr.arg))

    def _eval_SingVal(self, expr):
        return self.backend.singval(self(expr.args[0]), int(self(expr.args[1])))

    def _eval_TruncSVD(self, expr):
        return self.backend.trunc_svd(self(expr.args[0]), int(self(expr.args[1])))

    def _eval_PInv(self, expr):
        return self.backend.pinv(self(expr.args[0]))

    # ------------------------------------------------------------ matrix algebra
    def _eval_Trace(self, expr):
        return self.backend.trace(self(expr.arg))

    def _eval_Transpose(self, expr):
        return self.backend.transpose(self(expr.arg))

    def _eval_Inverse(self, expr):       # before MatPow: Inverse is a MatPow
        return self.backend.inverse(self(expr.arg))

    def _eval_MatPow(self, expr):
        base, p = expr.args
        return self.backend.matpow(self(base), _exponent(p, self.backend))

    def _eval_MatMul(self, expr):
        scalar = mat = None
        for a in expr.args:
            v = self(a)
            if getattr(a, "is_Matrix", False):
                mat = v if mat is None else self.backend.matmul(mat, v)
            else:
                scalar = v if scalar is None else self.backend.mul(scalar, v)
        return mat if scalar is None else self.backend.scale(scalar, mat)

    def _eval_MatAdd(self, expr):
        return self._fold(expr.args, self.backend.add)

    def _eval_MatrixExpr(self, expr):
        raise UnsupportedNode(f"matrix node {type(expr).__name__} is not supported by the "
                              "evaluator")

    # ------------------------------------------------------------ scalar algebra
    _eval_Add = _eval_MatAdd

    def _eval_Mul(self, expr):
        return self._fold(expr.args, self.backend.mul)

    def _eval_Pow(self, expr):           # sqrt(x) is Pow(x, 1/2)
        base, p = expr.args
        return self.backend.power(self(base), _exponent(p, self.backend) if p.is_Number
                                  else self(p))

    def _eval_exp(self, expr):
        return self.backend.exp(self(expr.args[0]))

    def _eval_Heaviside(self, expr):     # indicator 1[x > 0] (the value at 0 is immaterial)
        return self.backend.indicator(self(expr.args[0]))

    def _eval_Abs(self, expr):           # scalar |x| (two-sided lemmas)
        return self.backend.absolute(self(expr.args[0]))

    def _eval_Max(self, expr):           # scalar max/min (conditions of bounds)
        return self._fold(expr.args, self.backend.maximum)

    def _eval_Min(self, expr):
        return self._fold(expr.args, self.backend.minimum)

    def _eval_Piecewise(self, expr):     # scalar cases (e.g. detected / undetected spike)
        for val, cond in expr.args:
            if cond is sp.true or bool(_relation(cond, self.env, self.backend)):
                return self(val)
        raise ValueError(f"no case of {expr} applies")

    def _eval_Sum(self, expr):           # finite sums with integer limits
        body = expr.function
        for var, lo, hi in reversed(expr.limits[1:]):
            body = sp.Sum(body, (var, lo, hi))
        var, lo, hi = expr.limits[0]
        out = None
        for v in range(int(self(lo)), int(self(hi)) + 1):
            term = evaluate(body, {**self.env, var.name: v}, self.backend)
            out = term if out is None else self.backend.add(out, term)
        return out if out is not None else self.backend.const(0)


_RELATIONS = {sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
              sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b}


def _relation(cond, env, backend):
    """Truth value of a scalar condition of a ``Piecewise`` (mpmath or plain numbers)."""
    if isinstance(cond, sp.And):
        return all(_relation(c, env, backend) for c in cond.args)
    if isinstance(cond, sp.Or):
        return any(_relation(c, env, backend) for c in cond.args)
    op = _RELATIONS.get(type(cond))
    if op is None:
        raise UnsupportedNode(f"condition {cond} is not supported by the evaluator")
    return op(evaluate(cond.lhs, env, backend), evaluate(cond.rhs, env, backend))


def _exponent(p, backend):
    if p.is_Integer:
        return int(p)
    return backend.const(p)


def evaluate_definitions(definitions, env: dict, backend) -> dict:
    """Extend ``env`` with derived symbols, in order (``definitions`` is [(name, expr), ...])."""
    env = dict(env)
    for name, expr in definitions:
        env[name] = evaluate(expr, env, backend)
    return env
