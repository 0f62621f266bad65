import math

import pytest
import torch

from numeric.errors import InputError
from numeric.params import make_params, parse_assignments
from numeric.precision import almosteq, digits_agreed
from numeric.stats import combine, summarize


def test_repeat_syntax():
    p = parse_assignments(["d=6", "cov_eigs=4*2,1*3,0.5"])
    assert p.cov_eigs == (4.0, 4.0, 1.0, 1.0, 1.0, 0.5)


@pytest.mark.parametrize("items,msg", [
    (["k=2", "shift_sv=1,2,3"], "at most min"),
    (["sigma=0"], "sigma must be a positive"),
    (["shift_sv=-1"], "non-negative"),
    (["d=0"], "positive integer"),
    (["d=6", "cov_eigs=1*5,nan"], "positive definite"),
    (["cov_eigs=1*x"], r"value\*count"),
    (["d"], "NAME=VALUE"),
])
def test_bad_params(items, msg):
    with pytest.raises(InputError, match=msg):
        parse_assignments(items)


def test_summary_and_power():
    torch.manual_seed(0)
    x = 5 + torch.randn(10000, dtype=torch.float64)
    s = summarize(x)
    assert abs(s.mean - 5) < 4 * s.se
    assert abs(s.se - 0.01) < 0.001
    assert math.isclose(s.detectable(5.0), 4 * s.se / 5)
    c = combine([summarize(x[:5000]), summarize(x[5000:])])
    assert abs(c.mean - s.mean) < 1e-12 and abs(c.se - s.se) / s.se < 0.05


def test_tolerance_helper():
    assert almosteq(1.0, 1.0 + 1e-12, 1e-10)
    assert not almosteq(1.0, 1.001, 1e-10)
    assert almosteq(0.0, 1e-30, 1e-10, abs_eps=1e-20)
    assert digits_agreed(1e-50) == pytest.approx(50)


def test_isotropic_flag():
    assert make_params(d=3, cov_eigs=(1, 1, 1)).isotropic
    assert not make_params(d=3, cov_eigs=(1, 2, 1)).isotropic


def test_compare_is_the_simulate_and_compare_record():
    import math

    import torch

    from numeric.stats import Z_PASS, compare

    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    c = compare(x, 2.5)
    se = math.sqrt(5 / 3 / 4)
    assert c == {"formula": 2.5, "mean": 2.5, "se": se, "trials": 4, "z": 0.0, "rel_error": 0.0,
                 "detectable_rel": Z_PASS * se / 2.5}
    assert compare(x, 0)["rel_error"] is None
    assert compare(x, 10.0)["z"] < -Z_PASS            # a wrong formula is far off


def test_fit_eigs_default_to_the_identity_of_size_d():
    assert make_params(d=3, k=2, n=9, shift_sv=(1.0, 0.5)).fit == (1.0, 1.0, 1.0)
    assert make_params(d=2, k=2, n=9, shift_sv=(1.0, 0.5), fit_eigs=(1.5, 0.5)).fit == (1.5, 0.5)


def test_simulate_and_compare_is_the_same_in_blocks_and_reports_progress():
    from numeric.device import generator
    from numeric.stats import simulate_and_compare

    def sim(p, count, gen, device):
        return torch.randn(count, generator=gen, dtype=torch.float64) + p

    whole = simulate_and_compare(sim, 2.0, 10, generator(7), "cpu", 2.0)
    seen = []
    parts = simulate_and_compare(sim, 2.0, 10, generator(7), "cpu", 2.0, chunk=4,
                                 progress=seen.append, label="x")
    assert whole == parts                      # the same draws, in the same order
    assert seen == ["x: 4/10 data sets", "x: 8/10 data sets", "x: 10/10 data sets"]
    assert whole["trials"] == 10 and whole["formula"] == 2.0
    off = simulate_and_compare(sim, 2.0, 4000, generator(7), "cpu", 2.5)
    assert off["z"] < -4 and off["rel_error"] == pytest.approx(-0.2, abs=0.01)
