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
