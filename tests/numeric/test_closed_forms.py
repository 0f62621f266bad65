"""One regime boundary and one FFT closed form, shared by sharp, lora_bounds, samplers and the
sensitivity sweep (THEORY 2: the overdetermined regime is n >= d)."""
import pytest

from numeric import lora_bounds, samplers, sharp
from numeric.errors import InputError
from numeric.params import make_params


@pytest.mark.parametrize("d, n, short", [(5, 5, "over"), (5, 6, "over"), (6, 5, "under")])
def test_one_regime_boundary(d, n, short):
    assert sharp._regime(d, n, None) == short
    assert lora_bounds._regime(d, n, None) == {"over": "overdetermined",
                                               "under": "underdetermined"}[short]
    assert samplers.regime_of(make_params(d=d, k=3, n=n, sigma=1.0, shift_sv=[1.0])) == short


def test_a_regime_that_is_not_one_is_refused():
    for bad in ("sideways", "", 3):
        with pytest.raises(InputError, match="regime"):
            lora_bounds._regime(5, 8, bad)


@pytest.mark.parametrize("d, n", [(10, 30), (30, 10)])
def test_lora_bounds_fft_risk_is_the_sharp_closed_form(d, n):
    sv = (2.0, 1.0, 0.5)
    expect = sharp.fft_risk(d, 3, n, 1.5, fnorm2=None if n >= d else sum(v * v for v in sv))
    regime = "overdetermined" if n >= d else "underdetermined"
    assert lora_bounds.fft_risk(d, 3, n, 1.5, sv, regime) == expect
    # and the numbers are THEORY 3's
    assert expect == pytest.approx(1.5 ** 2 * 3 * d / (n - d - 1) if n >= d else
                                   (1 - n / d) * 5.25 + 1.5 ** 2 * 3 * n / (d - n - 1))
