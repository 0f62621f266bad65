"""numeric.sharp: the spiked-model algebra (symbolic), the MP quantiles, the risk assembly, bad
input, and agreement with a simulation of the actual LoRA estimator (both directions)."""
import math

import numpy as np
import pytest
import sympy as sp
import torch

from numeric import estimators as est
from numeric import sharp
from numeric.device import generator
from numeric.errors import InputError
from numeric.instances import torch_instance
from numeric.params import make_params
from numeric.stats import summarize

x, beta = sp.symbols("x beta", positive=True)
yhat = sp.sqrt((x + 1 / x) * (x + beta / x))
c2m = (x**4 - beta) / (x**4 + beta * x**2)
c2N = (x**4 - beta) / (x**4 + x**2)


def _keep_cost():
    # ||yhat u_hat v_hat^T - x u v^T||^2 = yhat^2 + x^2 - 2 x yhat c_m c_N   (x > beta^(1/4))
    return yhat**2 + x**2 - 2 * x * yhat * sp.sqrt(c2m) * sp.sqrt(c2N)


@pytest.mark.parametrize("coeff,ok", [(3, True), (2, False), (4, False)])
def test_keep_cost_from_spiked_formulas(coeff, ok):
    diff = sp.simplify(_keep_cost() - (1 + beta + coeff * beta / x**2))
    assert (diff == 0) is ok


@pytest.mark.parametrize("c14,ok", [(14, True), (10, False)])
def test_threshold_solves_quartic(c14, ok):
    xs2 = ((1 + beta) + sp.sqrt(beta**2 + c14 * beta + 1)) / 2
    assert (sp.simplify(sp.expand(xs2**2 - (1 + beta) * xs2 - 3 * beta)) == 0) is ok
    # and keep cost == drop cost exactly there
    if ok:
        assert sp.simplify((1 + beta + 3 * beta / xs2) - xs2) == 0


def test_keep_threshold_numbers_and_limits():
    for b in (1e-9, 0.1, 0.5, 1.0):
        xs = sharp.keep_threshold(b)
        assert abs(xs**4 - (1 + b) * xs**2 - 3 * b) < 1e-12
        assert xs > b**0.25                           # a spike worth keeping is detected
    assert sharp.keep_threshold(1e-12) == pytest.approx(1.0, abs=1e-6)
    assert sharp.keep_threshold(1.0) == pytest.approx(math.sqrt(3.0))   # x*^2 = (2 + 4)/2


@pytest.mark.parametrize("side", ["N", "m"])
def test_split_parts_sum_to_keep_cost(side):
    xv = sp.Symbol("x", positive=True)
    # the split, re-derived symbolically from the cosines of that side
    c2 = c2N if side == "N" else c2m
    along = yhat**2 * c2 - 2 * x * yhat * sp.sqrt(c2m) * sp.sqrt(c2N) + x**2
    orth = yhat**2 * (1 - c2)
    for xv_, bv in ((1.7, 0.3), (2.5, 1.0), (4.0, 0.6)):
        a_num, o_num = sharp._keep_split(xv_, bv, side)
        assert float(along.subs({x: xv_, beta: bv})) == pytest.approx(a_num, rel=1e-12)
        assert float(orth.subs({x: xv_, beta: bv})) == pytest.approx(o_num, rel=1e-12)
        assert a_num + o_num == pytest.approx(1 + bv + 3 * bv / xv_**2, rel=1e-12)
    del xv


def test_spike_components():
    c = sharp.spike_components(2.0, 0.5)
    assert c["detected"] and c["err_keep"] == pytest.approx(1.5 + 1.5 / 4)
    assert c["observed_sv"] == pytest.approx(math.sqrt((2 + 0.5) * (2 + 0.25)))
    assert c["cos2_m"] == pytest.approx((16 - 0.5) / (16 + 2)) and c["err_drop"] == 4
    u = sharp.spike_components(0.5, 0.5)              # below beta^(1/4) ~ 0.84
    assert not u["detected"] and u["cos2_N"] == 0
    assert u["err_keep"] == pytest.approx(0.25 + (1 + math.sqrt(0.5)) ** 2)
    xs = sharp.keep_threshold(0.5)
    assert not sharp.spike_components(xs * 0.999, 0.5)["keep_pays"]
    assert sharp.spike_components(xs * 1.001, 0.5)["keep_pays"]
    big = sharp.spike_components(1e4, 0.5)            # strong spike: cost -> 1 + beta, cos -> 1
    assert big["err_keep"] == pytest.approx(1.5, rel=1e-6) and big["cos2_m"] == pytest.approx(1, rel=1e-6)


@pytest.mark.parametrize("b", [0.25, 1.0])
def test_mp_quantiles_against_quadrature(b):
    from scipy.integrate import quad

    lo, hi = (1 - math.sqrt(b)) ** 2, (1 + math.sqrt(b)) ** 2
    dens = lambda t: math.sqrt(max((hi - t) * (t - lo), 0)) / (2 * math.pi * b * t)  # noqa: E731
    for mass in (0.01, 0.2, 0.5, 0.9):
        t = float(sharp.mp_upper_quantile(b, mass))
        assert quad(dens, t, hi, limit=200)[0] == pytest.approx(mass, abs=2e-6)
    assert float(sharp.mp_upper_quantile(b, 0.0)) == pytest.approx(hi)
    assert float(sharp.mp_upper_quantile(b, 1.0)) == pytest.approx(lo, abs=1e-9)


def test_mp_levels_match_random_noise():
    """Classical locations vs the mean top eigenvalues of a 150 x 300 noise matrix."""
    rng = np.random.default_rng(0)
    m, N = 150, 300
    ev = np.mean([np.linalg.eigvalsh(z @ z.T / N)[::-1][:10]
                  for z in (rng.standard_normal((m, N)) for _ in range(40))], axis=0)
    lev = sharp.mp_noise_levels(m / N, m, 10)
    assert np.max(np.abs(ev[2:] / lev[2:] - 1)) < 0.01      # bulk-side classical locations
    assert np.max(np.abs(ev / lev - 1)) < 0.03               # edge: Tracy-Widom scale
    edge = sharp.mp_noise_levels(m / N, m, 10, quantiles=False)
    assert np.all(edge == (1 + math.sqrt(0.5)) ** 2)


def test_fft_risk_and_errors():
    assert sharp.fft_risk(10, 3, 30, 2.0) == pytest.approx(4 * 3 * 10 / 19)
    assert sharp.fft_risk(30, 3, 10, 1.0, fnorm2=5.0) == pytest.approx(5 * (1 - 1 / 3) + 3 * 10 / 19)
    for bad in (dict(d=10, k=3, n=11), dict(d=10, k=3, n=10), dict(d=10, k=3, n=9)):
        with pytest.raises(InputError):
            sharp.fft_risk(**bad, sigma=1.0, fnorm2=1.0)
    with pytest.raises(InputError, match="fnorm2"):
        sharp.fft_risk(30, 3, 10, 1.0)


@pytest.mark.parametrize("bad,match", [
    (dict(d=20, k=10, n=21), "n > d \\+ 1"), (dict(d=20, k=10, n=19), "d > n \\+ 1"),
    (dict(d=20, k=10, n=60, r=11), "r must"), (dict(d=20, k=10, n=60, sv=(1, -1)), "non-negative"),
    (dict(d=20, k=10, n=60, sigma=0), "sigma"), (dict(d=20, k=10, n=60, regime="sideways"), "regime"),
    (dict(d=20, k=2, n=60, sv=(1, 1, 1)), "at most"),
])
def test_invalid_inputs(bad, match):
    args = dict(d=20, k=10, n=60, sigma=1.0, sv=(2.0,), r=1)
    args.update(bad)
    regime = args.pop("regime", None)
    with pytest.raises(InputError, match=match):
        sharp.lora_risk_sharp(args["d"], args["k"], args["n"], args["sigma"], args["sv"], args["r"],
                              regime=regime)
    with pytest.raises(InputError):
        sharp.keep_threshold(1.5)


def test_assembly_and_optimal_rank():
    d, k, n = 100, 50, 400
    res = sharp.lora_risk_sharp(d, k, n, 1.0, (5.0, 2.0, 0.1), 4)
    assert res["regime"] == "over" and res["N"] == 100 and res["beta"] == 0.5
    assert res["risk"] == pytest.approx(sum(c["risk"] for c in res["components"]))
    assert res["risk"] == pytest.approx(res["bias"] + res["variance"])
    xs = res["x"]
    assert xs[0] == pytest.approx(math.sqrt(400) * 5 / math.sqrt(100))
    assert res["kept_spikes"] + res["kept_noise"] == 4
    # the undetected spike 0.1 (x = 0.2 < beta^(1/4)) is never kept, its drop cost is sv^2
    assert res["components"][2]["risk"] == pytest.approx(0.01)
    # optimal rank counts spikes above the keep threshold; the sharp risk is minimal there
    sv = (5.0, 2.0, 0.8, 0.3, 0.7)                    # x = 10, 4, 1.6, 0.6, 1.4
    xstar = sharp.keep_threshold(0.5)                 # 1.479: x = 1.6 is above it
    assert sharp.optimal_rank(d, k, n, 1.0, sv, mapping="theory") == 3
    xeff = sharp.effective_threshold(d, k, n)         # noise weight 1/(n-d-1) > signal 1/n
    assert xeff > xstar
    ropt = sharp.optimal_rank(d, k, n, 1.0, sv)
    assert ropt == sum(v > xeff for v in sharp.normalised_spikes(d, k, n, 1.0, sv))
    for qs in (True, False):
        curve = sharp.lora_risk_curve(d, k, n, 1.0, sv, ranks=range(1, 8), noise_quantiles=qs)
        assert min(curve, key=lambda c: c["risk"])["r"] == ropt
    # the asymptotic threshold is recovered as n/d grows
    assert sharp.effective_threshold(100, 50, 10**7) == pytest.approx(xstar, rel=1e-4)
    assert sharp.optimal_rank(d, k, n, 1.0, (0.01,)) == 1
    # underdetermined: the FFT bias (1 - n/d)||Delta*||^2 is part of LoRA's bias
    u = sharp.lora_risk_sharp(400, 50, 100, 1.0, (3.0, 1.0), 2)
    assert u["regime"] == "under" and u["bias"] >= 0.75 * 10


# ----------------------------------------------------------------- against the LoRA estimator
def _simulate(d, k, n, sv, r, trials, seed):
    p = make_params(d=d, k=k, n=n, r=r, sigma=1.0, shift_sv=tuple(sv), seed=seed)
    inst = torch_instance(p)
    gen = generator(1000 + seed)
    X, R = est.sample_data(inst, trials, gen)
    return summarize(est.excess_risk(est.lora(X, R, r), inst["Delta"], inst["SigmaHalf"]))


CI_POINTS = [  # (d, k, n, sv, r): CI-sized; the slow test below runs d = k = 200
    (40, 40, 80, (3.0, 2.0, 1.5), 3),
    (40, 40, 80, (3.0, 2.0, 1.5), 1),
    (40, 40, 20, (6.0, 4.0, 3.0), 3),
    (40, 40, 20, (6.0, 4.0, 3.0), 5),
]


@pytest.mark.parametrize("d,k,n,sv,r", CI_POINTS)
def test_sharp_matches_lora_estimator_small(d, k, n, sv, r):
    sim = _simulate(d, k, n, sv, r, 400, seed=3)
    pred = sharp.lora_risk_sharp(d, k, n, 1.0, sv, r)["risk"]
    assert abs(sim.mean / pred - 1) < 0.06 + 4 * sim.se / pred, (sim, pred)


def test_theory_mapping_is_rejected_at_finite_aspect_ratio():
    """THEORY's first-order mapping (all kept error at the noise scale) is off by > 10 % at
    n = 2d, k = d; the split mapping is not: the simulation tells them apart."""
    d, k, n, sv, r = 40, 40, 80, (3.0, 2.0, 1.5), 3
    sim = _simulate(d, k, n, sv, r, 400, seed=4)
    split = sharp.lora_risk_sharp(d, k, n, 1.0, sv, r)["risk"]
    theory = sharp.lora_risk_sharp(d, k, n, 1.0, sv, r, mapping="theory")["risk"]
    assert abs(sim.mean / split - 1) < 0.05
    assert abs(sim.mean / theory - 1) > 0.10 + 4 * sim.se / theory


@pytest.mark.slow
@pytest.mark.parametrize("d,k,n,sv,r", [
    (200, 200, 400, (3.0, 2.0, 1.5), 3), (200, 200, 400, (3.0, 2.0, 1.5), 1),
    (200, 200, 400, (4.0, 2.5, 2.0, 1.2, 0.8), 4), (200, 200, 100, (6.0, 4.0, 3.0), 3),
    (200, 200, 100, (6.0, 4.0, 3.0), 6), (200, 200, 100, (8.0, 5.0, 4.0, 2.5, 1.5), 4),
])
def test_sharp_matches_lora_estimator_d200(d, k, n, sv, r):
    sim = _simulate(d, k, n, sv, r, 200, seed=5)
    pred = sharp.lora_risk_sharp(d, k, n, 1.0, sv, r)["risk"]
    assert abs(sim.mean / pred - 1) < 0.03 + 4 * sim.se / pred, (sim, pred)
