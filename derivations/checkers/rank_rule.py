"""The checker ``"rank_rule"``: does a keep threshold predict when keeping a spike pays?

A step claiming "keep a detected spike iff ``x > x_thr(d, k, n)``" is judged against simulation of
the actual LoRA estimator: at each point ``(d, k, n, x)`` of ``step.options["points"]`` the shift
has one strong spike (``x0``, kept at any threshold) and the test spike ``x``; LoRA is fitted at
rank 2 (keep) and rank 1 (drop) on the *same* data, and the paired difference
``R(rank 2) - R(rank 1)`` is simulated.  The rule predicts its sign: negative (keeping pays) iff
``x > x_thr``.  ``step.options["threshold"]`` is the rule ``(d, k, n, regime) -> x_thr``
(default: ``numeric.sharp.effective_threshold``, the finite-aspect threshold; a negative control
substitutes the asymptotic ``x*``).

Verdict per point: *confirmed* when the simulated difference has the predicted sign beyond
``Z_PASS`` standard errors, *contradicted* when it has the other sign beyond ``Z_PASS`` SE,
*undecided* otherwise.  Pass iff every point is confirmed (an undecided point fails: it could not
tell the rule from its opposite).
"""
from __future__ import annotations

import math

from numeric import estimators, sharp
from numeric.device import generator, resolve
from numeric.instances import torch_instance
from numeric.params import make_params
from numeric.seeds import stable_seed
from numeric.stats import Z_PASS, summarize

from ..core import Certificate
from . import checker

X0 = 4.0          # the strong spike, kept by every rule


def point_params(d, k, n, x, regime, sigma=1.0, seed=0):
    """Parameters with normalised spikes ``(X0, x)`` in the regression's spiked model."""
    g = sharp.geometry(d, k, n, regime)
    scale = sigma * math.sqrt(g["N"] / n)
    return make_params(d=d, k=k, n=n, r=2, sigma=sigma, shift_sv=(X0 * scale, x * scale),
                       seed=seed)


def keep_minus_drop(p, regime, trials, gen, device, chunk=200):
    """Paired samples of ``R(LoRA rank 2) - R(LoRA rank 1)`` on the same data sets."""
    import torch

    from numeric.device import single_thread

    fit = estimators.lora_over if regime == "over" else estimators.lora_under
    inst = torch_instance(p, device)
    out = []
    with single_thread(device), torch.no_grad():
        for start in range(0, trials, chunk):
            b = min(chunk, trials - start)
            X, R = estimators.sample_data(inst, b, gen, device)
            r2 = estimators.excess_risk(fit(X, R, 2), inst["Delta"], inst["SigmaHalf"])
            r1 = estimators.excess_risk(fit(X, R, 1), inst["Delta"], inst["SigmaHalf"])
            out.append(r2 - r1)
    return torch.cat(out)


def simulated_crossings(rows):
    """Per ``(d, k, n)``: where the simulated ``R(keep) - R(drop)`` changes sign, linearly
    interpolated between adjacent test spikes (a measurement of the keep threshold)."""
    out = []
    for key in sorted({(r["d"], r["k"], r["n"]) for r in rows}):
        sel = sorted((r for r in rows if (r["d"], r["k"], r["n"]) == key), key=lambda r: r["x"])
        for a, b in zip(sel, sel[1:]):
            if a["keep_minus_drop"] > 0 >= b["keep_minus_drop"]:
                w = a["keep_minus_drop"] / (a["keep_minus_drop"] - b["keep_minus_drop"])
                out.append({"d": key[0], "k": key[1], "n": key[2],
                            "simulated": a["x"] + w * (b["x"] - a["x"]),
                            "rule": a["threshold"], "asymptotic_x*": a["asymptotic_x*"]})
    return out


@checker("rank_rule")
def check_rank_rule(step, derivation, cfg, formula=None) -> Certificate:
    regime = step.options["regime"]
    rule = step.options.get("threshold", sharp.effective_threshold)
    trials = step.options.get("trials", 300 if cfg.quick else 600)
    device = resolve(cfg.device)
    rows = []
    for i, (d, k, n, x) in enumerate(step.options["points"]):
        thr = float(rule(d, k, n, regime))
        p = point_params(d, k, n, x, regime, seed=cfg.seed + i)
        gen = generator(stable_seed(cfg.seed, derivation.id, step.id, "rank_rule", i))
        s = summarize(keep_minus_drop(p, regime, trials, gen, device))
        z = s.mean / s.se if s.se > 0 else math.copysign(math.inf, s.mean)
        predicted_keep = x > thr
        if (z < -Z_PASS and predicted_keep) or (z > Z_PASS and not predicted_keep):
            outcome = "confirmed"
        elif abs(z) > Z_PASS:
            outcome = "contradicted"
        else:
            outcome = "undecided"
        rows.append({"d": d, "k": k, "n": n, "x": x, "threshold": thr,
                     "asymptotic_x*": sharp.keep_threshold(sharp.geometry(d, k, n, regime)["beta"]),
                     "predicted": "keep" if predicted_keep else "drop",
                     "keep_minus_drop": s.mean, "se": s.se, "z": z, "trials": s.trials,
                     "outcome": outcome})
    ok = all(r["outcome"] == "confirmed" for r in rows)
    crossings = simulated_crossings(rows)
    bad = [r for r in rows if r["outcome"] != "confirmed"]
    if ok:
        summary = (f"{len(rows)} points: the sign of R(keep) - R(drop) matches the rule at every "
                   f"point (min |z| = {min(abs(r['z']) for r in rows):.1f})")
    else:
        b = bad[0]
        summary = (f"{b['outcome'].upper()}: at n/d = {b['n'] / b['d']:.3g}, x = {b['x']:g} the rule "
                   f"(threshold {b['threshold']:.4g}) says {b['predicted']}, simulation "
                   f"R(keep) - R(drop) = {b['keep_minus_drop']:.4g} +- {b['se']:.2g}")
    return Certificate("rank_rule", "pass" if ok else "fail",
                       {"points": rows, "simulated_thresholds": crossings, "z_threshold": Z_PASS,
                        "device": str(device)}, 0.0, summary)
