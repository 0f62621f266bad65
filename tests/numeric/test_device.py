import pytest
import torch

from numeric import estimators
from numeric.device import generator, resolve
from numeric.errors import InputError
from numeric.instances import torch_instance
from numeric.params import make_params


def test_auto_resolves_to_an_available_device():
    dev = resolve("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_device_names():
    with pytest.raises(InputError, match="unknown device"):
        resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            resolve("cuda")


def _risks(device):
    p = make_params(d=5, k=3, n=20, cov_eigs=(3, 2, 1, 1, 0.5), seed=1)
    inst = torch_instance(p, device)
    X, R = estimators.sample_data(inst, 64, generator(9), device)
    return estimators.excess_risk(estimators.fft(X, R), inst["Delta"], inst["SigmaHalf"]).cpu()


def test_same_seed_same_numbers_on_cpu():
    assert torch.equal(_risks("cpu"), _risks("cpu"))


@pytest.mark.gpu
def test_cuda_draws_match_cpu():
    """Draws come from a CPU generator, so CUDA sees the same data; results agree to rounding."""
    assert torch.allclose(_risks("cuda"), _risks("cpu"), rtol=1e-10, atol=1e-12)
