"""Monte Carlo summaries: mean, standard error, z-score, and the smallest detectable error.

The pass rule of THEORY.md section 6: a Monte Carlo comparison passes when the estimate is within
``Z_PASS`` standard errors of the prediction.  The smallest relative error the sample could have
detected is ``Z_PASS * SE / |prediction|``: a wrong formula closer to the truth than that would
pass too, so every certificate reports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Z_PASS = 4.0


@dataclass(frozen=True)
class MCSummary:
    mean: float
    se: float
    trials: int

    def z(self, target: float) -> float:
        if self.se == 0:
            return 0.0 if self.mean == target else math.inf
        return (self.mean - target) / self.se

    def detectable(self, scale: float) -> float:
        """Smallest relative error (w.r.t. ``scale``) that would be flagged at ``Z_PASS``."""
        return Z_PASS * self.se / abs(scale) if scale else math.inf

    def as_dict(self) -> dict:
        return {"mean": self.mean, "se": self.se, "trials": self.trials}


def summarize(samples) -> MCSummary:
    """Mean and standard error of a 1-D torch tensor or sequence of samples."""
    try:
        import torch

        if isinstance(samples, torch.Tensor):
            x = samples.detach().to("cpu", dtype=torch.float64).reshape(-1)
            n = x.numel()
            mean = float(x.mean())
            se = float(x.std(unbiased=True) / math.sqrt(n)) if n > 1 else math.inf
            return MCSummary(mean, se, n)
    except ImportError:  # pragma: no cover
        pass
    xs = [float(v) for v in samples]
    n = len(xs)
    mean = sum(xs) / n
    var = sum((v - mean) ** 2 for v in xs) / (n - 1) if n > 1 else math.inf
    return MCSummary(mean, math.sqrt(var / n), n)


def compare(samples, target) -> dict:
    """Simulated mean +- SE against a formula's value: the one "simulate, then compare" record
    (``rel_error`` is None when the formula is 0; ``detectable_rel``: the smallest relative error
    the simulation could flag at ``Z_PASS``)."""
    s = summarize(samples)
    t = float(target)
    return {"formula": t, "mean": s.mean, "se": s.se, "trials": s.trials, "z": s.z(t),
            "rel_error": (s.mean - t) / t if t else None, "detectable_rel": s.detectable(t)}


def simulate_and_compare(simulate, params, trials: int, gen, device, target, chunk=None,
                         progress=None, label: str = "") -> dict:
    """Simulate ``trials`` data sets (``simulate(params, count, gen, device)`` -> per-trial
    values), then :func:`compare` their mean with ``target`` (the formula's value): the one
    "simulate, then compare" of the audit, ``simulate``, the sweeps and the report.

    ``chunk``: draw in blocks of at most this many data sets (a function of the sizes and
    ``trials`` only, never of the machine, so the same seed gives the same numbers everywhere);
    ``progress(message)`` after each block when there is more than one."""
    import torch

    if chunk is None or chunk >= trials:
        samples = simulate(params, trials, gen, device)
    else:
        parts, done = [], 0
        while done < trials:
            b = min(chunk, trials - done)
            parts.append(simulate(params, b, gen, device).reshape(-1))
            done += b
            if progress:
                progress(f"{label}: {done}/{trials} data sets")
        samples = torch.cat(parts)
    return compare(samples, target)


def combine(parts) -> MCSummary:
    """Pool independent summaries of the same quantity (weighted by trials)."""
    total = sum(p.trials for p in parts)
    mean = sum(p.mean * p.trials for p in parts) / total
    # pooled variance of the mean from the per-part SEs
    var_sum = sum((p.se ** 2) * p.trials ** 2 for p in parts) / total ** 2
    return MCSummary(mean, math.sqrt(var_sum), total)
