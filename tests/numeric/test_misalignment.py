"""numeric.misalignment: measures, exact bias, bounds, constructors, parameters."""
import math

import mpmath as mp
import pytest
import torch

from numeric import instances
from numeric import misalignment as mis
from numeric.device import generator
from numeric.errors import InputError
from numeric.params import Params, make_params, parse_assignments
from numeric.stats import summarize


def _p(**kw):
    base = dict(d=2, k=2, n=8, r=1, sigma=0.5, shift_sv=(2.0, 1.0), fit_eigs=(1.2, 0.8))
    base.update(kw)
    return make_params(**base, seed=kw.pop("seed", 3))


def test_defaults_unchanged():
    p = Params()
    assert not p.has_fit_cov
    assert "C" not in instances.torch_instance(p)
    assert "fit_eigs" in p.as_dict()


def test_coupling_sets_eps_exactly_and_backends_agree():
    p = _p(coupling=0.3)
    t = instances.torch_instance(p)
    m = mis.measures(t["Delta"], t["C"], 1)
    assert float(m["eps"]) == pytest.approx(0.3, abs=1e-12)
    with mp.workdps(50):
        c_mp = instances.mp_instance(p)["C"]
        assert max(abs(float(c_mp[i, j]) - float(t["C"][i, j])) for i in range(2)
                   for j in range(2)) < 1e-14


def test_rotation_angle_misalignment():
    p = make_params(d=3, k=3, r=1, shift_sv=(2, 1, 0.5), fit_eigs=(1.4, 0.7, 1.0), cov_angle=0.6,
                    seed=1)
    t = instances.torch_instance(p)
    eps = float(mis.measures(t["Delta"], t["C"], 1)["eps"])
    assert eps == pytest.approx((1.4 - 0.7) * math.sin(1.2) / 2, rel=1e-10)


def _bias(Delta, C, r):
    """beta_mis(C) = R(A_C) - b_r from the module's pieces."""
    return mis.risk(mis.lora_target(Delta, C, r), Delta) - mis.best_rank_risk(Delta, r)


def test_aligned_order_kept_has_no_bias_and_flip_has_first_order_bias():
    t = instances.torch_instance(_p())
    assert abs(float(_bias(t["Delta"], t["C"], 1))) < 1e-12
    flip = instances.torch_instance(_p(shift_sv=(1.0, 0.97), fit_eigs=(0.9, 1.1)))
    beta = float(_bias(flip["Delta"], flip["C"], 1))
    assert beta == pytest.approx(1.0 - 0.97 ** 2, rel=1e-10)   # the order swapped: a^2 - b^2


def test_exact_2x2_closed_form_and_leading_coefficient():
    p = _p(coupling=0.375, fit_eigs=(1.25, 0.75))      # binary-exact inputs
    with mp.workdps(60):
        inst = instances.mp_instance(p)
        beta = mis.mp_bias(inst["Delta"], inst["C"], 1)
        closed = mis.exact_bias_2x2(*(mp.mpf(x) for x in (2, 1, 1.25, 0.75, 0.375)))
        assert abs(beta - closed) < mp.mpf(10) ** -50
        e = mp.mpf("1e-8")
        q = _p(coupling=float(e))
        inst = instances.mp_instance(q)
        ratio = mis.mp_bias(inst["Delta"], inst["C"], 1) / mp.mpf(q.coupling) ** 2
    c = mis.leading_coefficient_2x2(2, 1, 1.2, 0.8)
    assert c == pytest.approx(4 * 3 / (4.8 - 0.8) ** 2)
    assert float(ratio) == pytest.approx(c, rel=1e-10)
    wrong = 4 * 3 / (4.8 - 0.8)             # the gap not squared
    assert abs(float(ratio) - wrong) / wrong > 0.5


def test_bounds_hold_and_second_is_inf_outside_validity():
    s = mis.point_summary(_p(coupling=0.02))
    assert 0 < s["beta_mis"] <= s["second_order_bound"] <= s["first_order_bound"]
    s = mis.point_summary(_p(coupling=0.4))
    assert s["beta_mis"] <= s["first_order_bound"] and math.isinf(s["second_order_bound"])


def test_sample_covariance_rate():
    p = make_params(d=6, k=3, r=1, shift_sv=(3, 1, 0.5), seed=2)
    means = []
    for n in (60, 240, 960):
        out = mis.sample_cov_measures(p, n, 300, generator(n), "cpu")
        means.append((float(out["eps"].mean()), float(out["eta"].mean()), float(out["beta"].mean())))
    for (e1, h1, b1), (e2, h2, b2) in zip(means, means[1:]):
        assert e1 / e2 == pytest.approx(2.0, rel=0.15)      # ~ sqrt(d/n): x4 samples, /2
        assert h1 / h2 == pytest.approx(2.0, rel=0.2)
        assert b1 / b2 == pytest.approx(4.0, rel=0.25)      # bias ~ eps^2 ~ d/n


def test_test_loss_simulation_agrees():
    p = _p(coupling=0.4)
    x = mis.test_loss_samples(p, 4000, generator(1), "cpu", test_size=64)
    s = summarize(x)
    target = mis.point_summary(p)["beta_mis"]
    assert abs(s.z(target)) < 4 and s.detectable(target) < 0.1


@pytest.mark.parametrize("items, msg", [
    (["fit_eigs=1,2,3"], "fit_eigs must list d = 2"),
    (["coupling=2"], "indefinite"),
    (["cov_eigs=2,1", "coupling=0.1"], "isotropic population"),
    (["fit_eigs=1,-1"], "positive"),
    (["cov_angle=nan"], "finite"),
])
def test_bad_misalignment_params(items, msg):
    with pytest.raises(InputError, match=msg):
        parse_assignments(["d=2", "k=2", "shift_sv=2,1"] + items)


def test_under_cross_vanishes_for_identity():
    p = make_params(d=6, k=3, n=4, r=1, shift_sv=(3, 1, 0.5), seed=4)
    inst = instances.torch_instance(p)
    X = instances.draw_torch(("X", "E"), inst, 50, generator(0))
    pc = mis.under_pieces(X["X"], X["E"], inst["Delta"], inst["SigmaHalf"], 1)
    assert float(pc["cross"].abs().max()) < 1e-10
    assert torch.all(pc["data_misalignment"] < 1e-10)
