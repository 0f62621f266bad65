"""Memory estimates that refuse, before any work, sizes that cannot fit (exit 2, not a crash).

One estimate of what a parameter point allocates, in float64 words, and one budget:
``LORA_AUDIT_MEMORY_BYTES`` when set, else half of this machine's available memory.  The
estimates are deliberately generous (a few working copies of every matrix): a refusal names the
size, the estimate and the limit, so a user with a larger machine can raise the limit.

Chunk sizes never depend on the budget (same seed, same numbers on every machine): a
simulation's chunk is a function of the parameters only (``simulation_chunk``); the budget only
decides whether a single chunk is refused.
"""
from __future__ import annotations

import os

from .errors import InputError

WORD = 8                    # bytes per float64
COPIES = 4                  # working copies of each matrix an evaluation may hold at once
CHUNK_BYTES = 1 << 30       # target memory of one simulated chunk (fixed: numbers never depend
                            # on the machine)
MAX_CHUNK = 2000            # data sets per chunk at most (the historical fixed chunk)
MAX_TRIALS = 10 ** 8        # simulated data sets per command (their samples alone: 0.8 GB)


def budget() -> int:
    env = os.environ.get("LORA_AUDIT_MEMORY_BYTES")
    if env:
        try:
            value = int(float(env))
        except ValueError:
            raise InputError(f"LORA_AUDIT_MEMORY_BYTES must be a number of bytes, got {env!r}") from None
        if value <= 0:
            raise InputError(f"LORA_AUDIT_MEMORY_BYTES must be positive, got {env!r}")
        return value
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2 ** 30:.3g} GiB"


def instance_bytes(d: int, k: int, n: int) -> int:
    """An instance (Sigma's eigenbasis, the shift, their products) and one data set."""
    return WORD * COPIES * (d * d + k * d + k * k + d * n + k * n + min(d, n) ** 2)


def trial_bytes(d: int, k: int, n: int) -> int:
    """One simulated data set with everything the estimators form from it."""
    return WORD * COPIES * (d * n + k * n + d * d + k * d + min(d, n) ** 2 + k * k)


def simulation_chunk(d: int, k: int, n: int) -> int:
    """Data sets per chunk: a function of the sizes only (never of the machine)."""
    return max(1, min(MAX_CHUNK, CHUNK_BYTES // trial_bytes(d, k, n)))


def require(nbytes: int, what: str) -> None:
    limit = budget()
    if nbytes > limit:
        raise InputError(f"{what} needs about {_gib(nbytes)} of memory, more than the limit of "
                         f"{_gib(limit)} (half the available memory; set LORA_AUDIT_MEMORY_BYTES "
                         "to change it)")


def check_point(d: int, k: int, n: int, what: str = "this point") -> None:
    require(instance_bytes(d, k, n), f"{what} (d = {d}, k = {k}, n = {n})")


def check_simulation(d: int, k: int, n: int, trials: int, what: str = "the simulation") -> int:
    """Refuse an impossible simulation up front; returns its (deterministic) chunk size."""
    if trials > MAX_TRIALS:
        raise InputError(f"--trials {trials} exceeds the limit of {MAX_TRIALS:.0e} data sets "
                         "per command (split the run over seeds instead)")
    chunk = min(simulation_chunk(d, k, n), trials)
    require(instance_bytes(d, k, n) + chunk * trial_bytes(d, k, n) + WORD * trials,
            f"{what} (d = {d}, k = {k}, n = {n}, {chunk} data sets per chunk)")
    return chunk
