"""Device selection: CUDA when present, CPU otherwise -- one code path for both.

Random numbers are always drawn from a CPU ``torch.Generator`` and then moved to the device, so
the same seed gives the same draws on every device (results then agree to float64 rounding).
"""
from __future__ import annotations

from contextlib import contextmanager

from .errors import InputError


def resolve(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda was requested but torch sees no CUDA device")
        return torch.device("cuda")
    raise InputError(f"unknown device {device!r}: use auto, cpu or cuda")


def generator(seed: int):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def randn(shape, gen, device, dtype=None):
    import torch

    return torch.randn(shape, generator=gen, dtype=dtype or torch.float64).to(device)


def describe(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


@contextmanager
def single_thread(device):
    """Tiny batched matrices on a CPU: intra-op threading only adds synchronisation (measured
    ~50x slower per step with 2 threads on a busy 2-core machine), so run on one thread and
    restore the setting afterwards."""
    import torch

    dev = torch.device(device)
    old = torch.get_num_threads()
    if dev.type == "cpu" and old != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)
