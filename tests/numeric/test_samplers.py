"""The exact fast samplers (numeric.samplers) against the raw path: the same risks draw by draw
when the statistics are computed from raw data, the same law by a two-sample test, and a sampler
with wrong degrees of freedom rejected (negative control)."""
import math

import pytest
import torch

from numeric import estimators as est
from numeric import samplers as sm
from numeric.device import generator
from numeric.instances import torch_instance
from numeric.params import make_params
from numeric.stats import Z_PASS, summarize

CASES = {   # (params, regime): both truncation forms (k <= m and k > m) in both regimes
    "over, Sigma != I, k < d": (dict(d=5, k=3, n=12, r=2, shift_sv=(3.0, 1.5),
                                     cov_eigs=(4.0, 2.0, 1.0, 0.5, 0.3)), "over"),
    "over, k > d": (dict(d=6, k=9, n=14, r=2, shift_sv=(3.0, 1.5)), "over"),
    # k <= d - s: the reduced k x k form (auto), with s = 2 and a non-identity covariance
    "over reduced, Sigma != I": (dict(d=7, k=3, n=15, r=2, sigma=1.3, shift_sv=(3.0, 1.5),
                                      cov_eigs=(4.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.4)), "over"),
    "under, k < n": (dict(d=14, k=3, n=5, r=2, shift_sv=(3.0, 1.5)), "under"),
    "under, k > n": (dict(d=14, k=8, n=5, r=2, shift_sv=(3.0, 1.5, 1.0, 0.5)), "under"),
    "under, d - s < n": (dict(d=9, k=3, n=7, r=2, shift_sv=(3.0, 1.5, 1.0)), "under"),
    # s + k <= n <= d - s: the reduced (s + k) x (s + k) form (auto)
    "under reduced": (dict(d=15, k=3, n=8, r=2, sigma=1.3, shift_sv=(3.0, 1.5)), "under"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_statistics_of_raw_data_give_the_raw_estimators_risks(name):
    """The deterministic half of exactness: computed from raw (X, E), the statistics give the
    raw estimators' risks at every rank to float64 rounding."""
    kw, regime = CASES[name]
    p = make_params(**kw, seed=1)
    inst = torch_instance(p)
    X, R = est.sample_data(inst, 6, generator(0))
    E = R - inst["Delta"] @ X
    q = min(p.d, p.k, p.n)
    rfft, rlora = sm.raw_risks(inst, X, R, list(range(1, q + 1)))
    # both forms where the reduced one applies (auto picks it), the full one everywhere
    for form in ("full",) + (("reduced",) if sm.reduced_applies(p) else ()):
        setup = sm.fast_setup(inst, regime, form)
        assert setup["form"] == form
        fft, lora = sm.risks(setup, sm.stats_from_data(setup, inst, X, E))
        assert torch.allclose(fft, rfft, rtol=1e-9, atol=0), form
        assert lora.shape == rlora.shape == (6, q)
        assert torch.allclose(lora, rlora, rtol=1e-9, atol=1e-12), form
        # not vacuous: the rank-(r+1) column differs from the rank-r one
        assert not torch.allclose(lora[:, 0], rlora[:, 1], rtol=1e-3)
    assert sm.fast_setup(inst, regime)["form"] == ("reduced" if sm.reduced_applies(p) else "full")


def test_the_reduced_form_is_chosen_where_it_applies_and_agrees_with_the_full_one():
    kw, _ = CASES["over reduced, Sigma != I"]
    p = make_params(**kw, seed=1)
    inst = torch_instance(p)
    assert sm.reduced_applies(p) and sm.fast_setup(inst, "over")["form"] == "reduced"
    assert sm.fast_setup(inst, "over", "full")["form"] == "full"
    X, R = est.sample_data(inst, 5, generator(3))
    E = R - inst["Delta"] @ X
    full, red = (sm.fast_setup(inst, "over", f) for f in ("full", "reduced"))
    f1, l1 = sm.risks(full, sm.stats_from_data(full, inst, X, E))
    f2, l2 = sm.risks(red, sm.stats_from_data(red, inst, X, E))
    assert torch.allclose(f1, f2, rtol=1e-10, atol=0) and torch.allclose(l1, l2, rtol=1e-10)
    # where it does not apply (k > d - s) it is refused, and auto keeps the full form
    q = make_params(d=4, k=3, n=12, r=1, shift_sv=(3.0, 2.0), seed=0)
    assert not sm.reduced_applies(q)
    assert sm.fast_setup(torch_instance(q), "over")["form"] == "full"
    with pytest.raises(ValueError, match="k <= d - s"):
        sm.fast_setup(torch_instance(q), "over", "reduced")
    with pytest.raises(ValueError, match="schur_dof"):
        sm.simulate(q, "fft", 10, generator(0), path="fast", schur_dof=3)
    # underdetermined: s + k <= n <= d - s
    u = make_params(d=15, k=3, n=8, r=1, shift_sv=(3.0, 1.5), seed=0)
    assert sm.reduced_applies(u) and sm.fast_setup(torch_instance(u), "under")["form"] == "reduced"
    w = make_params(d=15, k=7, n=8, r=1, shift_sv=(3.0, 1.5), seed=0)       # s + k > n
    assert not sm.reduced_applies(w)
    with pytest.raises(ValueError, match="s \\+ k <= n <= d - s"):
        sm.fast_setup(torch_instance(w), "under", "reduced")


def test_bartlett_factor_is_lower_triangular_with_the_wishart_mean():
    import numpy as np

    L = sm.bartlett(20000, 4, 9, np.random.default_rng(0), "cpu")
    assert torch.equal(L, torch.tril(L)) and bool((torch.diagonal(L, dim1=-2, dim2=-1) > 0).all())
    W = L @ L.transpose(-1, -2)
    mean = W.mean(0)
    se = W.std(0) / math.sqrt(W.shape[0])
    assert bool(((mean - 9 * torch.eye(4)).abs() <= Z_PASS * se + 1e-12).all())
    with pytest.raises(ValueError, match="dof > p - 1"):
        sm.bartlett(2, 4, 3, np.random.default_rng(0), "cpu")


def _z(p, estimator, trials, raw, dof_shift=0, schur_dof=None):
    fast = summarize(sm.simulate(p, estimator, trials, generator(11), path="fast",
                                 dof_shift=dof_shift, schur_dof=schur_dof))
    se = math.hypot(fast.se, raw.se)
    return (fast.mean - raw.mean) / se, Z_PASS * se / raw.mean


TWO_SAMPLE = [(dict(d=4, k=3, n=12, r=1, shift_sv=(3.0, 2.0, 1.0), cov_eigs=(4.0, 2.0, 1.0, 0.5)),
               "fft"),
              (dict(d=4, k=3, n=12, r=1, shift_sv=(3.0, 2.0, 1.0), cov_eigs=(4.0, 2.0, 1.0, 0.5)),
               "lora"),
              # the reduced k x k form (k <= d - s)
              (dict(d=6, k=2, n=14, r=1, sigma=1.3, shift_sv=(2.0, 1.0),
                    cov_eigs=(3.0, 2.0, 1.5, 1.0, 0.7, 0.4)), "fft"),
              (dict(d=6, k=2, n=14, r=1, sigma=1.3, shift_sv=(2.0, 1.0),
                    cov_eigs=(3.0, 2.0, 1.5, 1.0, 0.7, 0.4)), "lora"),
              # underdetermined: the noise must dominate, else a wrong d - s moves the bias and
              # the variance in opposite directions and the error nearly cancels in the mean
              (dict(d=12, k=3, n=5, r=1, shift_sv=(1.0, 0.5, 0.25)), "fft"),
              (dict(d=12, k=3, n=5, r=2, shift_sv=(1.0, 0.5, 0.25)), "lora"),
              # the reduced underdetermined form (s + k <= n <= d - s)
              (dict(d=14, k=3, n=7, r=2, sigma=1.3, shift_sv=(1.0, 0.5)), "fft"),
              (dict(d=14, k=3, n=7, r=2, sigma=1.3, shift_sv=(1.0, 0.5)), "lora")]


@pytest.mark.parametrize("kw, estimator", TWO_SAMPLE)
def test_two_sample_fast_equals_raw_and_a_wrong_dof_is_rejected(kw, estimator):
    p = make_params(**kw, seed=3)
    raw = summarize(sm.simulate(p, estimator, 20000, generator(12), path="raw"))
    z, det = _z(p, estimator, 20000, raw)
    assert abs(z) <= Z_PASS and det <= 0.03, (z, det)
    # negative controls: one degree of freedom too few / too many in the Wishart factor
    for shift in (-1, 1):
        zw, _ = _z(p, estimator, 20000, raw, dof_shift=shift)
        assert abs(zw) > Z_PASS, (shift, zw)
    if sm.reduced_applies(p):     # and the Schur block's |n - d| + k mistaken for |n - d|
        zw, _ = _z(p, estimator, 20000, raw, schur_dof=abs(p.n - p.d))
        assert abs(zw) > Z_PASS, ("schur", zw)


def test_same_seed_same_numbers_and_paths_refused_where_inexact():
    p = make_params(d=6, k=3, n=20, r=2, shift_sv=(2.0, 1.0), seed=0)
    a = sm.simulate(p, "lora", 500, generator(5))
    b = sm.simulate(p, "lora", 500, generator(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, sm.simulate(p, "lora", 500, generator(6)))
    general = make_params(d=12, k=3, n=5, r=1, shift_sv=(1.0,), cov_eigs=tuple(range(1, 13)), seed=0)
    assert not sm.has_fast_path(general)
    with pytest.raises(ValueError, match="Sigma != I"):
        sm.simulate(general, "fft", 10, generator(0), path="fast")
    assert sm.simulate(general, "fft", 10, generator(0)).shape == (10,)   # auto: raw


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runs_the_same_samplers():
    for kw, regime in CASES.values():
        p = make_params(**kw, seed=2)
        cpu = sm.simulate_ranks(p, 300, generator(4), "cpu")
        gpu = sm.simulate_ranks(p, 300, generator(4), torch.device("cuda"))
        assert torch.allclose(cpu[0], gpu[0].cpu(), rtol=1e-8)
        assert torch.allclose(cpu[1], gpu[1].cpu(), rtol=1e-8, atol=1e-10)
