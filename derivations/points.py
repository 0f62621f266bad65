"""One derivation at one parameter point: its value (``evaluate``) and a simulation of the actual
estimator compared with it (``simulate``).  Library functions of the commands of the same names
(``derivations.commands``) and of the tests."""
from __future__ import annotations

from numeric.errors import InputError


def evaluate_point(der_id: str, params) -> dict:
    from . import get

    from numeric.memory import check_point

    der = get(der_id)
    der.validate(params)
    check_point(params.d, params.k, params.n, f"evaluate {der.id}")
    value = float(der.formula(params))
    out = {"id": der.id, "kind": der.kind, "params": params.as_dict(), "value": value}
    if der.extra.value_label:
        out["value_label"] = der.extra.value_label
    extra = der.extra.evaluate_details
    if extra:
        out["details"] = extra(params)
    return out


def simulate_point(der_id: str, params, trials: int | None, seed: int, device="auto",
                   progress=None) -> dict:
    if seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed}")
    from numeric.device import describe, generator, resolve
    from numeric.stats import simulate_and_compare

    from numeric.seeds import stable_seed

    from . import get

    der = get(der_id)
    der.validate(params)
    if der.simulate is None:
        raise InputError(f"derivation {der_id!r} has no simulator")
    if trials is None:   # a derivation whose simulation is costly says how many are sensible
        trials = int(der.extra.simulate_trials)
    if trials < 2:
        raise InputError(f"--trials must be at least 2, got {trials}")
    from numeric.memory import check_simulation

    # fixed-size chunks (a function of the sizes and `trials` only, never of the machine, so
    # the same seed gives the same numbers everywhere), with progress on stderr for long runs
    chunk = check_simulation(params.d, params.k, params.n, trials, f"simulate {der.id}")
    dev = resolve(device)
    gen = generator(stable_seed(seed, der.id, "simulate"))
    c = simulate_and_compare(lambda p_, b, g, d_: der.simulate(p_, b, g, d_).reshape(-1),
                             params, trials, gen, dev, der.formula(params), chunk=chunk,
                             progress=progress, label=f"simulate {der.id}")
    return {"id": der.id, "params": params.as_dict(), "mean": c["mean"], "se": c["se"],
            "trials": c["trials"], "seed": seed, "device": describe(dev),
            "formula": c["formula"], "z": c["z"], "relative_error": c["rel_error"]}
