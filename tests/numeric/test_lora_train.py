"""LoRA training against the closed forms; the paper-style bound formulas."""
import json
import math

import pytest
import torch

from numeric import estimators
from numeric.device import generator
from numeric.errors import InputError
from numeric.instances import torch_instance
from numeric.lora_bounds import bound_beats_fft, fft_risk, lora_bound
from numeric.lora_train import adam_vs_min_norm, loss, train_adam, train_gd
from numeric.params import make_params


def _data(p, b=3, seed=0):
    inst = torch_instance(p)
    return (*estimators.sample_data(inst, b, generator(seed)), inst)


def test_gd_reaches_reduced_rank_regression_over():
    p = make_params(d=4, k=3, n=12, r=1, sigma=0.5, shift_sv=(3.0, 1.0), cov_eigs=(2, 1, 1, 0.5))
    X, R, _ = _data(p)
    res = train_gd(X, R, p.r)
    closed = estimators.lora_over(X, R, p.r)
    assert torch.allclose(res.loss, loss(X, R, closed), rtol=1e-10)
    assert float((res.Delta - closed).norm() / closed.norm()) < 1e-8
    # and not the Euclidean truncation of the OLS fit (a different matrix)
    assert float((res.Delta - estimators.truncate(estimators.fft_over(X, R), 1)).norm()) > 1e-2


def test_gd_under_min_norm_up_to_init_scale_adam_elsewhere():
    p = make_params(d=12, k=4, n=6, r=2, sigma=0.5, shift_sv=(3.0, 2.0))
    X, R, _ = _data(p)
    closed = estimators.lora_under(X, R, p.r)
    gaps = []
    for s in (1e-3, 5e-4):
        res = train_gd(X, R, p.r, init_scale=s, gen=generator(1))
        assert torch.allclose(res.loss, loss(X, R, closed), rtol=1e-9)
        gaps.append(float((res.Delta - closed).norm()))
    assert gaps[0] / gaps[1] == pytest.approx(2.0, rel=0.02)   # proportional to the init scale
    ad = train_adam(X, R, p.r, init_scale=1e-3, gen=generator(1), steps=3000)
    assert torch.allclose(ad.loss, loss(X, R, closed), rtol=1e-6)   # same loss ...
    assert float((ad.Delta - closed).norm()) > 100 * gaps[0]       # ... different Delta


def test_adam_vs_min_norm_is_reported_as_json():
    out = adam_vs_min_norm(make_params(d=10, k=4, n=5, r=1, sigma=0.5, shift_sv=(3.0,)),
                           trials=4, seed=0, adam_steps=2000)
    json.dumps(out)
    assert out["se"] > 0 and out["adam_rel_loss_gap"] < 1e-6
    assert abs(out["gd_minus_min_norm_excess_risk"]) < abs(out["adam_minus_min_norm_excess_risk"])
    with pytest.raises(InputError, match="n < d"):
        adam_vs_min_norm(make_params(d=4, n=8), trials=2)


def test_lora_bound_constants():
    b = lora_bound(10, 5, 100, 2.0, 1, (3.0,))
    expected = 8 * 1 * 4.0 * ((math.sqrt(5) + math.sqrt(10)) ** 2 + 1) * 10 / 89
    assert b["value"] == pytest.approx(expected) and b["kind"] == "bound"
    u = lora_bound(50, 4, 10, 1.0, 2, (3.0, 1.0))
    assert u["terms"]["bias_exact"] == pytest.approx(0.8 * 10.0)
    assert u["value"] == pytest.approx(8.0 + 16 * ((2 + math.sqrt(10)) ** 2 + 1) * 10 / 39)
    assert math.isinf(lora_bound(10, 5, 100, 1.0, 1, (3.0, 1.0))["value"])   # s > r: no bound


def test_bound_vs_fft_condition():
    # expectation form: never below FFT, because 8 r [(sqrt k + sqrt m)^2 + 1] > k
    for args in ((10, 5, 100), (10, 400, 2000)):
        assert not bound_beats_fft(*args, 1.0, 1, (1.0,))["beats"]
    # high-probability form: below FFT once k and n are large
    c = bound_beats_fft(400, 400, 100000, 1.0, 1, (1.0,), t=1.0)
    assert c["beats"] and c["lora_bound"] < c["fft_risk"] == pytest.approx(
        fft_risk(400, 400, 100000, 1.0, (1.0,), "overdetermined"))
    with pytest.raises(InputError, match="regime must be"):
        fft_risk(400, 400, 100000, 1.0, (1.0,), None)
    assert 0 < c["holds_with_probability"] < 1
    with pytest.raises(InputError, match="t must lie"):
        lora_bound(10, 5, 20, 1.0, 1, (1.0,), t=5.0)
    with pytest.raises(InputError, match="r must satisfy"):
        lora_bound(10, 5, 100, 1.0, 6, (1.0,))
