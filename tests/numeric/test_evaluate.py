"""The evaluator: the same SymPy expression in mpmath (several precisions) and torch."""
import mpmath as mp
import numpy as np
import pytest
import sympy as sp
import torch

from numeric import evaluate as ev
from numeric import instances
from numeric.params import make_params
from numeric.precision import relative_gap
from symbolic.ops import Frob2, OpNorm, PInv, TruncSVD
from symbolic.registry import sym

X, S, Sigma, E, Delta = (sym(x) for x in ("X", "S", "Sigma", "E", "Delta"))
P = make_params(d=4, k=3, n=9, cov_eigs=(3, 2, 1, 0.5), seed=3)


def _env_mp(dps):
    with mp.workdps(dps):
        inst = instances.mp_instance(P)
        env = dict(inst)
        env.update(instances.draw_mp(["X", "E"], inst, np.random.default_rng(1)))
        env["S"] = env["X"] * env["X"].T
        return env


@pytest.mark.parametrize("dps", [50, 80, 120])
def test_trace_identity_holds_to_working_precision(dps):
    lhs = Frob2(X.T * S.I * Sigma ** sp.Rational(1, 2))
    rhs = sp.Trace(Sigma * S.I)
    with mp.workdps(dps):
        env = _env_mp(dps)
        b = ev.MpBackend()
        gap = relative_gap(ev.evaluate(lhs, env, b), ev.evaluate(rhs, env, b))
        assert gap < mp.mpf(10) ** (-(dps - 8))


@pytest.mark.parametrize("dps", [50, 80])
def test_wrong_identity_is_far_off_at_any_precision(dps):
    with mp.workdps(dps):
        env = _env_mp(dps)
        b = ev.MpBackend()
        gap = relative_gap(ev.evaluate(Frob2(X.T * S.I), env, b),
                           ev.evaluate(sp.Trace(Sigma * S.I), env, b))
        assert gap > 1e-3


def test_mp_and_torch_backends_agree():
    expr = Frob2(TruncSVD(Delta * X + E, 2) * PInv(X)) + OpNorm(E)
    with mp.workdps(50):
        env = _env_mp(50)
        v_mp = ev.evaluate(expr, env, ev.MpBackend())
        tenv = {k: (torch.tensor(np.array(v.tolist(), dtype=float)) if isinstance(v, mp.matrix)
                    else (float(v) if isinstance(v, mp.mpf) else v)) for k, v in env.items()}
    v_t = ev.evaluate(expr, tenv, ev.TorchBackend("cpu"))
    assert abs(float(v_t) - float(v_mp)) < 1e-9 * abs(float(v_mp))


def test_torch_batched_scalar_times_matrix():
    Xb = torch.randn(5, 4, 9, dtype=torch.float64)
    env = {"X": Xb, "sigma": 2.0}
    out = ev.evaluate(sym("sigma") ** 2 * Frob2(X), env, ev.TorchBackend("cpu"))
    assert out.shape == (5,)
    assert torch.allclose(out, 4 * (Xb ** 2).sum(dim=(1, 2)))


def test_unknown_node_is_refused():
    with pytest.raises(ev.UnsupportedNode):
        ev.evaluate(sp.sin(sym("sigma")), {"sigma": 1.0}, ev.TorchBackend("cpu"))


def test_missing_value_is_named():
    with pytest.raises(ev.MissingValue, match="'X'"):
        ev.evaluate(Frob2(X), {}, ev.TorchBackend("cpu"))


def test_mp_instance_is_exactly_orthogonal_and_matches_torch():
    with mp.workdps(60):
        inst = instances.mp_instance(P)
        tinst = instances.torch_instance(P)
        sig = inst["Sigma"]
        half = inst["SigmaHalf"]
        assert mp.mnorm(half * half - sig, 1) < mp.mpf(10) ** -55
        np.testing.assert_allclose(np.array(sig.tolist(), dtype=float), tinst["Sigma"].numpy(), atol=1e-12)
        np.testing.assert_allclose(np.array(inst["Delta"].tolist(), dtype=float), tinst["Delta"].numpy(), atol=1e-12)


def test_scalar_primitives_agree_between_backends_and_are_right():
    """exp, pi, the indicator, Max/Min, Piecewise and a finite Sum: the backends' methods."""
    s, i = sym("sigma"), sp.Symbol("i", integer=True)
    cases = [(sp.exp(s) * sp.pi, 1.5, lambda: mp.exp(mp.mpf(1.5)) * mp.pi),
             (sp.Heaviside(s - 1) + sp.Heaviside(1 - s), 1.5, 1),
             (sp.Max(s, 2, evaluate=False) - sp.Min(s, 2, evaluate=False), 1.5, 0.5),
             (sp.Piecewise((s, s > 2), (-s, True)), 1.5, -1.5),
             (sp.Sum(i * s, (i, 1, 4)), 1.5, 15)]
    for expr, val, expect in cases:
        with mp.workdps(40):
            v_mp = ev.evaluate(expr, {"sigma": mp.mpf(val)}, ev.MpBackend())
            expect = expect() if callable(expect) else expect
            assert relative_gap(v_mp, expect) < mp.mpf(10) ** -30, expr
        v_t = ev.evaluate(expr, {"sigma": torch.tensor([val, val], dtype=torch.float64)}
                          if not isinstance(expr, (sp.Piecewise, sp.Sum)) else {"sigma": val},
                          ev.TorchBackend("cpu"))
        assert np.allclose(np.asarray(v_t, dtype=float), float(expect), rtol=1e-14), expr


def test_an_unknown_matrix_node_is_named_as_one():
    with pytest.raises(ev.UnsupportedNode, match="matrix node HadamardProduct"):
        ev.evaluate(sp.HadamardProduct(X, X), {"X": torch.ones(4, 9)}, ev.TorchBackend("cpu"))


@pytest.mark.parametrize("backend", ["mp", "torch"])
def test_a_matrix_symbol_whose_value_has_another_shape_is_refused(backend):
    """A symbol declared k x n whose value is k x d (a definition or a declaration gone wrong)
    is an error, not silently evaluated; batched torch values are checked on the last axes."""
    from symbolic.registry import msym
    from symbolic.ops import Frob2

    k_, d_, n_ = sp.symbols("k d n", positive=True, integer=True)
    M = msym("M", k_, n_)
    dims = {"k": 3, "d": 4, "n": 6}
    if backend == "mp":
        good, bad, be = mp.ones(3, 6), mp.ones(3, 4), ev.MpBackend()
    else:
        good, bad, be = torch.ones(5, 3, 6, dtype=torch.float64), \
            torch.ones(5, 3, 4, dtype=torch.float64), ev.TorchBackend("cpu")
    ev.evaluate(Frob2(M), {**dims, "M": good}, be)
    with pytest.raises(ev.ShapeMismatch, match="declared k x n = 3 x 6, but its value is 3 x 4"):
        ev.evaluate(Frob2(M), {**dims, "M": bad}, be)


def test_indexed_sums_are_one_based_and_refuse_out_of_range_indices():
    lam, bq = sp.IndexedBase("lam"), sp.IndexedBase("bq")
    i, j = sp.symbols("i j", integer=True)
    env = {"lam": [mp.mpf(1), mp.mpf(2)], "bq": mp.matrix([[1, 2], [3, 4], [5, 6]])}
    be = ev.MpBackend()
    assert ev.evaluate(sp.Sum(lam[i], (i, 1, 2)), env, be) == 3
    assert ev.evaluate(sp.Sum(bq[j, i] ** 2, (i, 1, 2), (j, 1, 3)), env, be) == 91
    # a sum from 0 would read lam[-1] (the last entry) if Python's wrapping were allowed
    with pytest.raises(IndexError, match="outside 1..2"):
        ev.evaluate(sp.Sum(lam[i], (i, 0, 2)), env, be)
    with pytest.raises(IndexError, match="position 1"):
        ev.evaluate(sp.Sum(bq[j, 1], (j, 1, 4)), env, be)


def test_absolute_value_in_both_backends():
    x = sp.Symbol("x")
    assert ev.evaluate(sp.Abs(x - 3), {"x": mp.mpf(1)}, ev.MpBackend()) == 2
    tb = ev.TorchBackend("cpu", torch.float64)
    got = ev.evaluate(sp.Abs(x - 3), {"x": torch.tensor([1.0, 5.0], dtype=torch.float64)}, tb)
    assert torch.equal(got, torch.tensor([2.0, 2.0], dtype=torch.float64))
