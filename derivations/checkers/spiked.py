"""``spiked``: a spiked-model limit ``lhs ~ rhs(x, beta)`` (Benaych-Georges & Nadakuditi) by
simulating the normalised spiked matrix ``Y = x e1 e1^T + Z/sqrt(N)`` at growing sizes and
judging the convergence with the rule of ``convergence.judge``."""
from __future__ import annotations

import math
from functools import lru_cache

import sympy as sp

from numeric.device import generator, randn
from numeric.seeds import stable_seed
from symbolic.registry import sym

from ..core import Certificate
from . import checker
from .convergence import judge

x, beta = sym("x"), sym("beta")

# the spiked-model simulation: points (x, beta) and the size of the smaller side at scale 1
_SPIKE_POINTS = ((2.0, 0.5), (1.5, 0.25))
_SPIKE_M0 = 25


@lru_cache(maxsize=256)
def _spiked_sim(xv, bv, m, trials, seed):
    """Top singular triple of ``Y = x e1 e1^T + Z/sqrt(N)`` (``m x N``), ``trials`` draws.

    The signal's singular vectors can be taken as ``e1`` because ``Z`` is orthogonally invariant.
    Returns per-draw ``(yhat, cos^2 on the m side, cos^2 on the N side)`` as numpy arrays.
    """
    from numeric.device import single_thread

    N = int(round(m / bv))
    gen = generator(seed)
    out = []
    with single_thread("cpu"):
        return _spiked_draws(xv, m, N, trials, gen, out)


def _spiked_draws(xv, m, N, trials, gen, out):
    import torch

    for start in range(0, trials, 200):
        b = min(200, trials - start)
        Y = randn((b, m, N), gen, "cpu") / math.sqrt(N)
        Y[:, 0, 0] += xv
        w, u = torch.linalg.eigh(Y @ Y.transpose(-1, -2))      # m x m Gram: cheaper than an SVD
        s1 = w[:, -1].clamp_min(0).sqrt()
        u1 = u[:, :, -1]
        v1 = (Y.transpose(-1, -2) @ u1.unsqueeze(-1)).squeeze(-1) / s1.unsqueeze(-1)
        out.append(torch.stack([s1, u1[:, 0] ** 2, v1[:, 0] ** 2], dim=1))
    return torch.cat(out).numpy()


_SPIKE_QUANTITY = {"yhat": 0, "cos2m": 1, "cos2N": 2}


@checker("spiked")
def check_spiked(step, derivation, cfg, formula=None) -> Certificate:
    """A spiked-model limit ``lhs ~ rhs(x, beta)``: simulate the normalised spiked matrix at
    ``m = m0 * scale`` for each of ``cfg.asym_scales`` and judge with the convergence rule
    (``derivations.checkers.convergence.judge``) at every ``(x, beta)`` point."""
    col = _SPIKE_QUANTITY[step.options["quantity"]]
    f = sp.lambdify((x, beta), step.rhs, "math")
    verdicts, per_point = [], []
    for i, (xv, bv) in enumerate(step.options.get("points", _SPIKE_POINTS)):
        rows = []
        for scale in cfg.asym_scales:
            m = _SPIKE_M0 * int(scale)
            vals = _spiked_sim(xv, bv, m, cfg.asym_trials,
                               stable_seed(cfg.seed, "spiked", xv, bv, m))[:, col]
            rows.append({"scale": scale, "dims": {"m": m, "N": int(round(m / bv))},
                         "formula": float(f(xv, bv)), "mean": float(vals.mean()),
                         "se": float(vals.std(ddof=1) / math.sqrt(len(vals))),
                         "trials": len(vals)})
        v, summary, ev = judge(rows, cfg)
        verdicts.append(v)
        per_point.append({"x": xv, "beta": bv, "verdict": v, "summary": summary, **ev})
    ok = all(v == "pass" for v in verdicts)
    text = "; ".join(f"x={p['x']:g}, beta={p['beta']:g}: {p['summary']}" for p in per_point)
    return Certificate("spiked", "pass" if ok else "fail", {"points": per_point}, 0.0, text)
