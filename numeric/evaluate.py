"""Evaluate a derivation's SymPy expressions numerically, in mpmath or (batched) torch.

One tree walk, two backends.  The high-precision checker evaluates the very expression that is
typeset in the report with ``MpBackend`` at >= 50 digits; the Monte Carlo checker evaluates it
with ``TorchBackend`` on a batch of random draws (leading batch dimension), on CPU or CUDA.

Only the node types below are understood; anything else raises ``UnsupportedNode`` rather than
being guessed at.
"""
from __future__ import annotations

import mpmath as mp
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from symbolic import ops


class UnsupportedNode(TypeError):
    pass


class MissingValue(KeyError):
    pass


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


# --------------------------------------------------------------------------------------------
def _shape_value(dim, env, backend):
    return int(evaluate(dim, env, backend)) if not isinstance(dim, int) else dim


def evaluate(expr, env: dict, backend):
    """Numeric value of ``expr`` given ``env`` (symbol name -> value) in ``backend``.

    ``Expect`` nodes evaluate to their integrand: the caller supplies one draw (or a batch of
    draws) of the random symbols in ``env`` and averages; that is the Monte Carlo checker's job.
    """
    ev = lambda e: evaluate(e, env, backend)  # noqa: E731
    if isinstance(expr, (sp.Symbol, sp.MatrixSymbol)):
        try:
            return env[expr.name]
        except KeyError:
            raise MissingValue(f"no value for symbol {expr.name!r}") from None
    if isinstance(expr, (int, float)):
        return backend.const(expr)
    if expr.is_Number:
        return backend.const(expr)
    if expr is sp.pi:
        return backend.const(mp.pi) if backend.name == "mpmath" else 3.141592653589793
    if isinstance(expr, sp.Identity):
        return backend.identity(_shape_value(expr.shape[0], env, backend))
    if isinstance(expr, sp.ZeroMatrix):
        return backend.zeros(*(_shape_value(s, env, backend) for s in expr.shape))
    if isinstance(expr, ops.Expect):
        return ev(expr.expr)
    if isinstance(expr, ops.Frob2):
        return backend.frob2(ev(expr.arg))
    if isinstance(expr, ops.OpNorm):
        return backend.opnorm(ev(expr.arg))
    if isinstance(expr, ops.SigmaMin):
        return backend.sigma_min(ev(expr.arg))
    if isinstance(expr, ops.SingVal):
        return backend.singval(ev(expr.args[0]), int(ev(expr.args[1])))
    if isinstance(expr, ops.TruncSVD):
        return backend.trunc_svd(ev(expr.args[0]), int(ev(expr.args[1])))
    if isinstance(expr, ops.PInv):
        return backend.pinv(ev(expr.args[0]))
    if isinstance(expr, sp.Trace):
        return backend.trace(ev(expr.arg))
    if isinstance(expr, sp.Transpose):
        return backend.transpose(ev(expr.arg))
    if isinstance(expr, sp.Inverse):
        return backend.inverse(ev(expr.arg))
    if isinstance(expr, sp.MatPow):
        base, p = expr.args
        return backend.matpow(ev(base), _exponent(p, backend))
    if isinstance(expr, sp.MatMul):
        scalar = None
        mat = None
        for a in expr.args:
            v = ev(a)
            if getattr(a, "is_Matrix", False):
                mat = v if mat is None else backend.matmul(mat, v)
            else:
                scalar = v if scalar is None else backend.mul(scalar, v)
        return mat if scalar is None else backend.scale(scalar, mat)
    if isinstance(expr, sp.MatAdd):
        vals = [ev(a) for a in expr.args]
        out = vals[0]
        for v in vals[1:]:
            out = backend.add(out, v)
        return out
    if isinstance(expr, sp.Add):
        vals = [ev(a) for a in expr.args]
        out = vals[0]
        for v in vals[1:]:
            out = backend.add(out, v)
        return out
    if isinstance(expr, sp.Mul):
        out = None
        for a in expr.args:
            v = ev(a)
            out = v if out is None else backend.mul(out, v)
        return out
    if isinstance(expr, sp.Pow):
        base, p = expr.args
        return backend.power(ev(base), _exponent(p, backend) if p.is_Number else ev(p))
    if isinstance(expr, sp.Function) and expr.func is sp.sqrt:
        return backend.sqrt(ev(expr.args[0]))
    if isinstance(expr, sp.exp):
        v = ev(expr.args[0])
        return mp.exp(v) if backend.name == "mpmath" else (
            backend.torch.exp(v) if hasattr(v, "ndim") else __import__("math").exp(v))
    if isinstance(expr, sp.Heaviside):   # indicator 1[x > 0] (the value at 0 is immaterial)
        v = ev(expr.args[0])
        if backend.name == "mpmath":
            return mp.mpf(1) if v > 0 else mp.mpf(0)
        return (v > 0).to(backend.dtype) if hasattr(v, "ndim") else float(v > 0)
    if isinstance(expr, (sp.Max, sp.Min)):   # scalar max/min (conditions of bounds)
        vals = [ev(a) for a in expr.args]
        out = vals[0]
        for v in vals[1:]:
            out = _maxmin(out, v, isinstance(expr, sp.Max), backend)
        return out
    if isinstance(expr, sp.Piecewise):   # scalar cases (e.g. detected / undetected spike)
        for val, cond in expr.args:
            if cond is sp.true or bool(_relation(cond, env, backend)):
                return ev(val)
        raise ValueError(f"no case of {expr} applies")
    if isinstance(expr, sp.Indexed):     # lam[i] (a list) or bq[j, i] (a matrix), 1-based
        base = env.get(expr.base.label.name)
        if base is None:
            raise MissingValue(f"no value for indexed symbol {expr.base.label.name!r}")
        idx = [int(ev(i)) - 1 for i in expr.indices]
        return base[idx[0]] if len(idx) == 1 else base[idx[0], idx[1]]
    if isinstance(expr, sp.Sum):         # finite sums with integer limits
        body = expr.function
        for var, lo, hi in reversed(expr.limits[1:]):
            body = sp.Sum(body, (var, lo, hi))
        var, lo, hi = expr.limits[0]
        out = None
        for v in range(int(ev(lo)), int(ev(hi)) + 1):
            e2 = dict(env)
            e2[var.name] = v
            term = evaluate(body, e2, backend)
            out = term if out is None else backend.add(out, term)
        return out if out is not None else backend.const(0)
    if isinstance(expr, MatrixExpr):
        raise UnsupportedNode(f"matrix node {type(expr).__name__} is not supported by the evaluator")
    raise UnsupportedNode(f"node {type(expr).__name__} ({expr}) is not supported by the evaluator")


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


def _maxmin(a, b, is_max: bool, backend):
    if backend.name == "mpmath":
        return max(a, b) if is_max else min(a, b)
    torch = backend.torch
    a, b = (x if torch.is_tensor(x) else torch.tensor(float(x), dtype=backend.dtype,
                                                       device=backend.device) for x in (a, b))
    return torch.maximum(a, b) if is_max else torch.minimum(a, b)


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
