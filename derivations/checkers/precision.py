"""``hp``: both sides of an identity evaluated with mpmath at ``cfg.dps`` digits on random
instances that satisfy the assumptions (matrix identities SymPy cannot decide)."""
from __future__ import annotations

import math

import mpmath as mp
import numpy as np

from numeric import evaluate as ev
from numeric import instances
from numeric.precision import default_tolerance, digits_agreed, relative_gap
from numeric.seeds import stable_seed
from symbolic import ops

from ..core import Certificate
from . import checker
from .dependencies import _needed_randoms, needed_definitions


def _norm(v):
    return mp.sqrt(ev.MpBackend().frob2(v)) if isinstance(v, mp.matrix) else abs(v)

def _gap(a, b, scale=None):
    """Relative gap; ``scale`` (a step's ``options["scale"]``) replaces ``max(|a|, |b|)``
    when one side is exactly zero, so that "X = 0" is judged against the size of its factors."""
    if isinstance(a, mp.matrix) or isinstance(b, mp.matrix):
        nd = _norm(a - b)
        ref = max(_norm(a), _norm(b)) if scale is None else abs(scale)
        return nd / ref if ref else nd
    if scale is not None:
        return abs(a - b) / abs(scale)
    return relative_gap(a, b)

@checker("hp")
def check_hp(step, derivation, cfg, formula=None) -> Certificate:
    if ops.contains_expectation(step.lhs) or ops.contains_expectation(step.rhs):
        raise ValueError("an expectation cannot be checked at high precision; use 'mc'")
    params_list = step.options.get("hp_params", derivation.hp_params)(cfg)
    backend = ev.MpBackend()
    worst = mp.mpf(0)
    values = []
    with mp.workdps(cfg.dps):
        tol = default_tolerance(cfg.dps)
        for idx, p in enumerate(params_list):
            inst = instances.mp_instance(p)
            rng = np.random.default_rng(stable_seed(cfg.seed, derivation.id, step.id, idx))
            env = dict(inst)
            env.update(instances.draw_mp(_needed_randoms(step, derivation), inst, rng))
            env = ev.evaluate_definitions(needed_definitions(step, derivation), env, backend)
            lhs = ev.evaluate(step.lhs, env, backend)
            rhs = ev.evaluate(step.rhs, env, backend)
            scale = step.options.get("scale")
            scale = ev.evaluate(scale, env, backend) if scale is not None else None
            if step.rel == "=":
                g = _gap(lhs, rhs, scale)
            else:
                raise ValueError("hp checks identities; use an inequality checker for bounds")
            worst = max(worst, g)
            if not isinstance(lhs, mp.matrix):
                values.append(mp.nstr(lhs, 12))
        ok = worst <= tol
        digits = digits_agreed(worst)
        evidence = {"dps": cfg.dps, "instances": len(params_list), "worst_relative_gap":
                    mp.nstr(worst, 5), "digits_agreed": digits if math.isfinite(digits) else "all",
                    "tolerance": mp.nstr(tol, 3), "sample_values": values[:3]}
    dig = "all" if not math.isfinite(digits) else f"{digits:.1f}"
    return Certificate("hp", "pass" if ok else "fail", evidence, 0.0,
                       f"{len(params_list)} instances at {cfg.dps} digits: {dig} digits agree")
