"""Checkers that run the actual estimators against a second route to the same law.

* ``two_sample`` -- a statement ``E route_A = E route_B`` by two independent Monte Carlo samples
  (the estimator against a decomposition, or a control's wrong variant);
* ``lora_train`` -- a step ``DeltaGD = closed form``: LoRA trained by gradient descent on
  random data sets reaches the closed form (over: exactly; under: up to a gap proportional to
  the initial scale, checked by halving it); with ``options["adam"]`` Adam's finding is
  reported beside it.
"""
from __future__ import annotations

import math
from functools import lru_cache

from numeric import evaluate as ev
from numeric import instances
from numeric.device import generator, resolve
from numeric.lora_train import adam_vs_min_norm, train_gd
from numeric.params import make_params
from numeric.seeds import stable_seed
from numeric.stats import Z_PASS, summarize
from symbolic.registry import sym

from ..core import Certificate
from . import checker
from .dependencies import needed_definitions
from .montecarlo import Z_DECISIVE, _trials_text, mc_certificate, pilot_extension

DeltaGD = sym("DeltaGD")
INIT_SCALES = (1e-3, 5e-4)

# the underdetermined instance of Adam's finding (its implicit bias is not the minimum norm)
_UNDER_ADAM = dict(d=16, k=6, n=8, r=2, sigma=0.5, shift_sv=(3.0, 2.0))


@checker("two_sample")
def check_two_sample(statement, derivation, cfg, formula=None) -> Certificate:
    """``E route_A = E route_B`` by two independent Monte Carlo samples.

    Route A is ``derivation.simulate`` (the estimator, ``numeric.estimators``); route B is
    ``derivation.extra.route_samples`` (the decomposition), or ``formula`` -- a control's
    wrong variant with the same signature ``(params, trials, gen, device) -> samples``.
    A pilot of ``2 * cfg.mc_trials`` draws per route decides how many more each route draws
    from its own generator (same seed, same numbers) to detect ``cfg.mc_target_detectable``,
    at most ``cfg.mc_max_trials`` per route (``montecarlo.pilot_extension``; a decisive pilot
    at any point, a wrong route, is judged at once).  Pass iff ``|z| <= Z_PASS`` everywhere
    and the smallest detectable relative difference is at most ``cfg.max_detectable``."""
    import torch

    device = resolve(cfg.device)
    route = formula or derivation.extra.need("route_samples", derivation.id)
    # two independent samples: twice the draws of a paired check keep the same power
    trials = 2 * cfg.mc_trials
    cells = []
    for i, p in enumerate(derivation.check_points(cfg)):
        gen_a, pilot_a = _estimator_pilot(derivation, p, trials, cfg.seed, device, i)
        gen_b = generator(stable_seed(cfg.seed, derivation.id, "route", i))
        cells.append((p, gen_a, gen_b, [pilot_a], [route(p, trials, gen_b, device).reshape(-1)]))

    def compare(xa, xb):
        a, b = summarize(torch.cat(xa)), summarize(torch.cat(xb))
        se = math.hypot(a.se, b.se)
        return a, b, se, (a.mean - b.mean) / se, Z_PASS * se / abs(b.mean)

    # a decisive pilot anywhere (a wrong route) fails the check whatever the other points show:
    # it is judged at once; otherwise each point draws on to the target power
    decisive = any(abs(compare(xa, xb)[3]) > Z_DECISIVE for _, _, _, xa, xb in cells)
    rows = []
    for p, gen_a, gen_b, xa, xb in cells:
        a, b, se, z, det = compare(xa, xb)
        extra = 0 if decisive else pilot_extension(z, det, trials, cfg)
        if extra:
            xa.append(derivation.simulate(p, extra, gen_a, device).reshape(-1))
            xb.append(route(p, extra, gen_b, device).reshape(-1))
            a, b, se, z, det = compare(xa, xb)
        rows.append({"params": p.as_dict(), "estimator_mean": a.mean, "route_mean": b.mean,
                     "se": se, "z": z, "trials": a.trials, "pilot_trials": trials,
                     "detectable_rel": det})
    return mc_certificate("two_sample", rows, cfg, device, lambda why, det: (
        f"{why}: estimator vs decomposition at {len(rows)} points, "
        f"{_trials_text(rows)} draws per route, detects >= {100 * det:.2g}%"))


_ESTIMATOR_PILOTS: dict = {}


def _estimator_pilot(derivation, p, trials, seed, device, i):
    """Route A's pilot at point ``i`` and its generator, positioned after the pilot: the same for
    the statement and every control (which change route B only), so it is drawn once
    (memoised: samples and generator state)."""
    gen = generator(stable_seed(seed, derivation.id, "estimator", i))
    key = (derivation.id, derivation.simulate, p, trials, seed, str(device), i)
    if key not in _ESTIMATOR_PILOTS:
        x = derivation.simulate(p, trials, gen, device).reshape(-1)
        _ESTIMATOR_PILOTS[key] = (x, gen.get_state())
    x, state = _ESTIMATOR_PILOTS[key]
    gen.set_state(state)
    return gen, x


@checker("lora_train")
def check_lora_train(step, derivation, cfg, formula=None) -> Certificate:
    """``DeltaGD = rhs``: train LoRA by gradient descent on random data sets and compare with the
    step's right-hand side evaluated on the same data.  ``options["up_to_init_scale"]``: the gap
    must be small and proportional to the initial scale (halving it halves the gap)."""
    import torch

    if step.lhs != DeltaGD or step.rel != "=":
        raise ValueError("lora_train checks steps 'DeltaGD = <closed form>'")
    device = resolve(cfg.device)
    backend = ev.TorchBackend(device)
    batch = 4
    rows = []
    scaled = step.options.get("up_to_init_scale", False)
    for idx, p in enumerate(step.options.get("train_params", derivation.hp_params)(cfg)):
        inst = instances.torch_instance(p, device)
        gen = generator(stable_seed(cfg.seed, derivation.id, step.id, "train", idx))
        env = dict(inst)
        env.update(instances.draw_torch(("X", "E"), inst, batch, gen, device))
        env = ev.evaluate_definitions(needed_definitions(step, derivation), env, backend)
        target = ev.evaluate(step.rhs, env, backend)
        Xb, Rb = env["X"], env["R"]
        gaps = []
        for s in (INIT_SCALES if scaled else INIT_SCALES[:1]):
            init_gen = generator(stable_seed(cfg.seed, derivation.id, idx, "init"))
            res = train_gd(Xb, Rb, p.r, init_scale=s, gen=init_gen)
            gap = torch.linalg.matrix_norm(res.Delta - target) / torch.linalg.matrix_norm(target)
            gaps.append(float(gap.max()))
            lossgap = float(((estimators_loss(Xb, Rb, res.Delta) - estimators_loss(Xb, Rb, target))
                             .abs() / estimators_loss(Xb, Rb, target)).max())
        row = {"params": p.as_dict(), "max_rel_gap": gaps[0], "rel_loss_gap": lossgap,
               "steps": res.steps, "init_scale": INIT_SCALES[0]}
        if scaled:
            row["gap_ratio_when_scale_halves"] = gaps[0] / gaps[1] if gaps[1] > 0 else math.inf
        rows.append(row)
    worst = max(x["max_rel_gap"] for x in rows)
    if scaled:
        ratios = [x["gap_ratio_when_scale_halves"] for x in rows]
        ok = worst <= 20 * INIT_SCALES[0] and all(1.8 <= q <= 2.2 for q in ratios)
        summary = (f"GD within {worst:.2g} (relative) of the closed form at init scale "
                   f"{INIT_SCALES[0]:g}; halving the scale divides the gap by "
                   f"{min(ratios):.3f}-{max(ratios):.3f} (proportional to the init)")
    else:
        ok = worst <= 1e-7
        summary = f"GD converges to the closed form: max relative gap {worst:.2g}"
    evidence = {"points": rows, "worst_rel_gap": worst, "batch": batch}
    if ok and step.options.get("adam"):
        evidence["adam_vs_min_norm"] = _adam_finding(rows[0]["params"]["seed"], cfg.seed)
        a = evidence["adam_vs_min_norm"]
        summary += (f"; Adam: same loss (rel {a['adam_rel_loss_gap']:.1g}), excess risk "
                    f"{a['adam_minus_min_norm_excess_risk']:+.3g} +- {a['se']:.2g} vs min-norm")
    return Certificate("lora_train", "pass" if ok else "fail", evidence, 0.0,
                       summary if ok else "GD does NOT reach it: " + summary)


def estimators_loss(X_, R_, D_):
    res = R_ - D_ @ X_
    return (res * res).sum(dim=(-2, -1))


@lru_cache(maxsize=8)
def _adam_finding(inst_seed, seed):
    p = make_params(**_UNDER_ADAM, seed=inst_seed)
    return adam_vs_min_norm(p, trials=8, seed=seed, adam_steps=4000)
