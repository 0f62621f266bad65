"""Formula-vs-simulation sweeps across one parameter, for the report's figures.

A derivation opts in with ``extra["report_sweep"]``::

    extra={"report_sweep": {"param": "n",                    # a numeric.params.Params field
                            "values": [9, 10, 12, 16, 20],   # where to simulate
                            "base": _BASE,                   # dict of make_params kwargs, or Params
                            # optional:
                            "trials": 8000,                  # draws per point (default cfg.mc_trials)
                            "curve": "int",                  # "int": formula at every integer in
                                                             # range (default for int params);
                                                             # "linear": 100 points
                            }}

The instance seed is the audit's master seed (``--seed``); draws use
``stable_seed(seed, id, "sweep", i)``.  Every point is validated with ``derivation.validate``;
a point outside the formula's domain is an error of the hook, reported as such.
"""
from __future__ import annotations

import math
from dataclasses import fields, replace

from numeric.seeds import stable_seed
from numeric.device import generator
from numeric.errors import InputError
from numeric.params import Params, make_params
from numeric.stats import simulate_and_compare


def sweep_spec(der) -> dict | None:
    spec = der.extra.report_sweep
    if spec is None:
        return None
    if not isinstance(spec, dict) or not {"param", "values", "base"} <= set(spec):
        raise InputError(f"{der.id}: extra['report_sweep'] must be a dict with keys "
                         f"param, values, base (got {spec!r})")
    names = {f.name for f in fields(Params)}
    if spec["param"] not in names:
        raise InputError(f"{der.id}: report_sweep param {spec['param']!r} is not a Params field")
    if len(spec["values"]) < 2:
        raise InputError(f"{der.id}: report_sweep needs at least two values")
    return spec


def _base(spec, seed: int) -> Params:
    base = spec["base"]
    if isinstance(base, Params):
        return replace(base, seed=seed)
    return make_params(**{**dict(base), "seed": seed})


def run_sweep(der, cfg, device, progress=None) -> dict | None:
    """Simulated mean +- SE and the formula at each value; the formula on a dense grid."""
    spec = sweep_spec(der)
    if spec is None or der.simulate is None:
        return None
    param = spec["param"]
    base = _base(spec, cfg.seed)
    trials = int(spec.get("trials", cfg.mc_trials))
    points = []
    for i, v in enumerate(spec["values"]):
        p = make_params(base, **{param: v})
        der.validate(p)
        if progress:
            progress(f"{der.id}: sweep {param} = {v}")
        c = simulate_and_compare(der.simulate, p, trials,
                                 generator(stable_seed(cfg.seed, der.id, "sweep", i)), device,
                                 der.formula(p))
        points.append({param: v, "formula": c["formula"], "mean": c["mean"], "se": c["se"],
                       "trials": c["trials"], "z": c["z"],
                       "rel_error": math.nan if c["rel_error"] is None else c["rel_error"],
                       "detectable_rel": c["detectable_rel"]})
    lo, hi = min(spec["values"]), max(spec["values"])
    is_int = isinstance(getattr(base, param), int)
    mode = spec.get("curve", "int" if is_int else "linear")
    grid = list(range(int(lo), int(hi) + 1)) if mode == "int" else \
        [lo + (hi - lo) * j / 99 for j in range(100)]
    curve = []
    for v in grid:
        try:
            p = make_params(base, **{param: v})
            der.validate(p)
            curve.append({param: v, "formula": float(der.formula(p))})
        except InputError:
            continue                                      # outside the domain: no curve point
    return {"param": param, "base": base.as_dict(), "trials": trials, "points": points,
            "curve": curve, "max_abs_z": max(abs(p["z"]) for p in points)}
