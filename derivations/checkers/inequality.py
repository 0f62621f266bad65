"""The inequality checker ``"ineq"``: random instances plus an adversarial search.

A step ``lhs <= rhs`` (or ``lhs >= rhs``, read as ``rhs <= lhs``) is a claim about *every*
admissible instance, so sampling alone is weak evidence: typical instances sit far from the
worst case.  The checker therefore

1. evaluates both sides (``numeric.evaluate.TorchBackend``, float64) on ``cfg.ineq_instances``
   random instances (the parameter sets of ``step.options["ineq_params"]`` or the derivation's
   ``hp_params``; the step's random matrices drawn as in the other checkers) and records the
   ratio ``small/big`` (``lhs/rhs`` for ``<=``);
2. restarts an adversarial search from the ``cfg.ineq_restarts`` worst instances: the matrices
   named in ``step.options["search"]`` (default: the step's random matrices) become torch
   parameters and Adam maximises ``log(lhs/rhs)`` through the whole expression (SVDs and
   eigendecompositions included).  ``step.options["parametrize"]`` keeps a search variable
   admissible: ``"spd"`` (``L L^T + eps I``), ``"sym"``, ``"rank_r"`` (``U V`` with inner
   dimension the instance's ``r``) or ``"free"`` (default);
3. re-evaluates the worst instance found at ``cfg.dps`` digits (mpmath) so that a reported
   violation is not a float64 artefact.

Verdict: pass iff the worst ratio is ``<= 1 + 1e-9``.  The certificate reports the worst ratio
found by the random instances and by the search separately (the tightness of the bound and how
much the search adds), the number of evaluations and the instance where the worst ratio
occurred (its small matrices included): a violated bound comes with its counterexample.

Steps whose sides contain expectations (``Expect``) are inequalities between *numbers*; there
the checker runs a one-sided Monte Carlo test instead: ``mean(lhs - rhs)`` must not exceed
``Z_PASS`` standard errors, the estimated ratio ``E lhs / E rhs`` and its standard error are
reported, and the smallest relative violation the sample could detect must be below
``cfg.max_detectable`` (else the check fails as underpowered).  ``step.options["constants"]``
supplies values of scalar symbols that are not model parameters (e.g. a deviation ``t``).
"""
from __future__ import annotations

import math

import mpmath as mp

from numeric import evaluate as ev
from numeric import instances
from numeric.device import generator, resolve
from numeric.seeds import stable_seed
from numeric.stats import Z_PASS, summarize
from symbolic import ops

from ..core import Certificate
from . import checker
from .dependencies import _needed_randoms, needed_definitions

RATIO_TOL = 1e-9          # relative round-off allowed on top of lhs/rhs = 1
TINY = 1e-300
PARAMETRIZATIONS = ("free", "spd", "sym", "rank_r")
SMALL_MATRIX = 64         # matrices with at most this many entries are shown in the evidence
# A float64 ratio this far above 1 is a violation beyond any round-off: the search stops there
# (a violated bound needs one counterexample, not the worst one) and the high-precision
# re-evaluation confirms it; if it does not, the full search runs after all.
EARLY_STOP = 1e-3


def _sides(step):
    """(small, big) with the claim ``small <= big``."""
    if step.rel == "<=":
        return step.lhs, step.rhs
    if step.rel == ">=":
        return step.rhs, step.lhs
    raise ValueError(f"the inequality checker needs '<=' or '>=', step {step.id} has {step.rel!r}")


def _vec(v, b, device):
    import torch

    t = torch.as_tensor(v, dtype=torch.float64, device=device)
    return t.reshape(-1).expand(b) if t.numel() in (1, b) else t.reshape(-1)


def _ratio(small, big):
    """lhs/rhs where rhs > 0; a non-positive rhs is a violation (inf) iff lhs > rhs."""
    import torch

    pos = big > 0
    safe = torch.where(pos, big, torch.ones_like(big))
    r = torch.where(pos, small / safe, torch.zeros_like(small))
    return torch.where(~pos & (small > big), torch.full_like(small, math.inf), r)


def _env_with_constants(step, inst):
    env = dict(inst)
    env.update(step.options.get("constants", {}))
    return env


# --------------------------------------------------------------------------- parametrizations
class _Param:
    """A search variable: an unconstrained tensor and the map to an admissible matrix."""

    def __init__(self, name, kind, value, r, jitter, gen):
        import torch

        if kind not in PARAMETRIZATIONS:
            raise ValueError(f"unknown parametrization {kind!r} for {name}; "
                             f"known: {', '.join(PARAMETRIZATIONS)}")
        self.name, self.kind = name, kind
        v = value.detach().clone()
        scale = float(v.pow(2).mean().sqrt()) or 1.0
        noise = lambda shape: jitter * scale * torch.randn(  # noqa: E731
            shape, generator=gen, dtype=torch.float64).to(v.device)
        if kind == "spd":
            v = (v + v.transpose(-1, -2)) / 2
            self.eps = 1e-6 * float(torch.linalg.eigvalsh(v).abs().max())
            L = torch.linalg.cholesky(v)          # value L L^T + eps I: v up to 1e-6 relative
            raws = [L + torch.tril(noise(L.shape))]
        elif kind == "rank_r":
            u, s, vh = torch.linalg.svd(v, full_matrices=False)
            sq = s[..., :r].sqrt()
            raws = [u[..., :, :r] * sq[..., None, :] + noise(u[..., :, :r].shape),
                    sq[..., :, None] * vh[..., :r, :] + noise(vh[..., :r, :].shape)]
        else:
            raws = [v + noise(v.shape)]
        self.raws = [torch.nn.Parameter(x) for x in raws]
        self.lr = 0.05 * scale

    def value(self):
        if self.kind == "spd":
            L = self.raws[0]
            import torch

            eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device)
            return L @ L.transpose(-1, -2) + self.eps * eye
        if self.kind == "sym":
            a = self.raws[0]
            return (a + a.transpose(-1, -2)) / 2
        if self.kind == "rank_r":
            return self.raws[0] @ self.raws[1]
        return self.raws[0]


# ----------------------------------------------------------------------------- pointwise mode
def _random_phase(step, derivation, cfg, params_list, backend, device):
    """Evaluate the ratio on random instances; keep everything needed to restart from them."""
    small_e, big_e = _sides(step)
    randoms = _needed_randoms(step, derivation)
    defs = needed_definitions(step, derivation)
    per = max(1, math.ceil(cfg.ineq_instances / len(params_list))) if randoms else 1
    groups = []
    for idx, p in enumerate(params_list):
        inst = _env_with_constants(step, instances.torch_instance(p, device))
        gen = generator(stable_seed(cfg.seed, derivation.id, step.id, "ineq", idx))
        draws = instances.draw_torch(randoms, inst, per, gen, device)
        env = dict(inst)
        env.update(draws)
        full = ev.evaluate_definitions(defs, env, backend)
        small = _vec(ev.evaluate(small_e, full, backend), per, device)
        big = _vec(ev.evaluate(big_e, full, backend), per, device)
        groups.append({"params": p, "inst": inst, "draws": draws, "ratio": _ratio(small, big),
                       "small": small, "big": big})
    return groups, randoms, defs


def _base_env(group, batch_idx, device):
    """The instance of ``group`` restricted to the batch entries ``batch_idx``."""
    env = dict(group["inst"])
    for name, val in group["draws"].items():
        env[name] = val[batch_idx]
    return env


def _search(step, derivation, cfg, group, batch_idx, search_vars, defs, backend, device, seed,
            stop_above=math.inf):
    """Adam on log(lhs/rhs) from the chosen instances (one batch per parameter set)."""
    import torch

    small_e, big_e = _sides(step)
    m = len(batch_idx)
    base = _base_env(group, batch_idx, device)
    gen = generator(seed)
    r = int(group["params"].r)
    parametrize = step.options.get("parametrize", {})
    pvars = []
    for name in search_vars:
        val = base.get(name)
        if not torch.is_tensor(val) or val.ndim < 2:
            raise ValueError(f"search variable {name!r} is not a matrix of the instance")
        val = val.expand(m, *val.shape[-2:]) if val.ndim == 2 else val
        pvars.append(_Param(name, parametrize.get(name, "free"), val, r,
                            step.options.get("jitter", 1e-3), gen))
    opt = torch.optim.Adam([{"params": pv.raws, "lr": pv.lr} for pv in pvars])
    iters = step.options.get("search_iters", 150 if cfg.quick else 400)
    best = torch.full((m,), -math.inf, dtype=torch.float64, device=device)
    best_vals = {pv.name: None for pv in pvars}
    evals = 0
    for _ in range(iters + 1):
        opt.zero_grad()
        env = dict(base)
        vals = {pv.name: pv.value() for pv in pvars}
        env.update(vals)
        env = ev.evaluate_definitions(defs, env, backend)
        small = _vec(ev.evaluate(small_e, env, backend), m, device)
        big = _vec(ev.evaluate(big_e, env, backend), m, device)
        evals += m
        with torch.no_grad():
            ratio = _ratio(small, big)
            ratio = torch.where(torch.isnan(ratio), torch.full_like(ratio, -math.inf), ratio)
            better = ratio > best
            if bool(better.any()):
                best = torch.where(better, ratio, best)
                for name, v in vals.items():
                    v = v.detach()
                    if best_vals[name] is None:
                        best_vals[name] = v.clone()
                    else:
                        best_vals[name][better] = v[better]
            if float(best.max()) > stop_above:     # a clear violation: enough
                break
        obj = torch.log(small.clamp_min(TINY)) - torch.log(big.clamp_min(TINY))
        ok = torch.isfinite(obj)
        if not bool(ok.any()):
            break
        (-obj[ok].sum()).backward()
        for pv in pvars:
            for raw in pv.raws:
                if raw.grad is not None:
                    torch.nan_to_num_(raw.grad, nan=0.0, posinf=0.0, neginf=0.0)
        opt.step()
    return best, best_vals, base, evals, iters


def _to_mp(v):
    import torch

    if torch.is_tensor(v):
        if v.ndim == 0:
            return mp.mpf(float(v))
        return mp.matrix(v.detach().cpu().tolist())
    if isinstance(v, float):
        return mp.mpf(v)
    return v


def _hp_ratio(step, defs, env, dps):
    """lhs/rhs of one float64 instance re-evaluated at ``dps`` digits."""
    small_e, big_e = _sides(step)
    backend = ev.MpBackend()
    with mp.workdps(dps):
        e = {k: _to_mp(v) for k, v in env.items()}
        e = ev.evaluate_definitions(defs, e, backend)
        small = ev.evaluate(small_e, e, backend)
        big = ev.evaluate(big_e, e, backend)
        if big > 0:
            return float(small / big)
        return math.inf if small > big else 0.0


def _describe_instance(env, names):
    import torch

    out = {}
    for name in names:
        v = env.get(name)
        if torch.is_tensor(v) and v.ndim == 2 and v.numel() <= SMALL_MATRIX:
            out[name] = [[float(x) for x in row] for row in v.detach().cpu().tolist()]
        elif torch.is_tensor(v) and v.ndim == 2:
            out[name] = {"shape": list(v.shape), "fro_norm": float(v.norm()),
                         "singular_values": [float(x) for x in torch.linalg.svdvals(v)[:8]]}
    return out


def _check_pointwise(step, derivation, cfg, early_stop=True) -> Certificate:
    import torch

    device = resolve(cfg.device)
    backend = ev.TorchBackend(device)
    params_list = step.options.get("ineq_params", derivation.hp_params)(cfg)
    groups, randoms, defs = _random_phase(step, derivation, cfg, params_list, backend, device)
    ratios = torch.cat([g["ratio"] for g in groups])
    n_random = int(ratios.numel())
    finite = ratios[torch.isfinite(ratios)]
    worst_random = float(ratios.max())
    loc = []  # (ratio, group index, batch index)
    for gi, g in enumerate(groups):
        for bi, v in enumerate(g["ratio"].tolist()):
            loc.append((v, gi, bi))
    loc.sort(key=lambda t: -t[0] if not math.isnan(t[0]) else math.inf)
    _, wg, wb = loc[0]
    worst = {"ratio": worst_random, "source": "random", "group": wg,
             "env": _base_env(groups[wg], [wb], device)}
    search_vars = tuple(step.options.get("search", randoms))
    evals, iters, worst_search, restarts = n_random, 0, None, 0
    stop_above = 1 + EARLY_STOP if early_stop else math.inf
    stopped_early = early_stop and worst_random > stop_above
    if search_vars and cfg.ineq_restarts > 0 and not stopped_early:
        chosen = {}
        for _, gi, bi in loc[: cfg.ineq_restarts]:
            chosen.setdefault(gi, []).append(bi)
        restarts = sum(len(v) for v in chosen.values())
        worst_search = -math.inf
        for gi, bidx in chosen.items():
            best, best_vals, base, n_ev, iters = _search(
                step, derivation, cfg, groups[gi], bidx, search_vars, defs, backend, device,
                stable_seed(cfg.seed, derivation.id, step.id, "search", gi), stop_above)
            evals += n_ev
            j = int(torch.argmax(best))
            val = float(best[j])
            worst_search = max(worst_search, val)
            if val > worst["ratio"] and best_vals[search_vars[0]] is not None:
                env = {k: (v[j:j + 1] if torch.is_tensor(v) and v.ndim == 3 else v)
                       for k, v in base.items()}
                for name, v in best_vals.items():
                    env[name] = v[j:j + 1]
                worst = {"ratio": val, "source": "adversarial search", "group": gi, "env": env}
            if early_stop and worst_search > stop_above:
                stopped_early = True
                break
    # the worst instance, at high precision, and in a readable form
    wenv = {k: (v[0] if hasattr(v, "ndim") and v.ndim == 3 else v) for k, v in worst["env"].items()}
    try:
        hp = _hp_ratio(step, defs, wenv, cfg.dps)
    except Exception as exc:  # noqa: BLE001 -- reported; the float64 value then decides
        hp = None
        hp_error = repr(exc)
    else:
        hp_error = None
    decisive = hp if hp is not None and math.isfinite(worst["ratio"]) else worst["ratio"]
    ok = decisive <= 1 + RATIO_TOL
    if stopped_early and ok:      # the float64 violation did not survive: search in full
        return _check_pointwise(step, derivation, cfg, early_stop=False)
    shown = list(dict.fromkeys(list(search_vars) + list(randoms)))
    evidence = {
        "mode": "pointwise",
        "relation": f"{'lhs <= rhs' if step.rel == '<=' else 'lhs >= rhs (checked as rhs/lhs <= 1)'}",
        "worst_ratio": decisive,
        "worst_ratio_float64": worst["ratio"],
        "worst_ratio_random": worst_random,
        "median_ratio_random": float(finite.median()) if finite.numel() else None,
        "worst_ratio_search": worst_search,
        "found_by": worst["source"],
        "random_instances": n_random,
        "parameter_sets": len(params_list),
        "search_vars": list(search_vars),
        "parametrize": dict(step.options.get("parametrize", {})),
        "restarts": restarts,
        "search_iters": iters,
        "stopped_early": bool(stopped_early),
        "evaluations": evals,
        "tolerance": RATIO_TOL,
        "hp_dps": cfg.dps,
        "worst_ratio_hp": hp,
        "worst_instance": {"params": params_list[worst["group"]].as_dict(),
                           "matrices": _describe_instance(wenv, shown)},
    }
    if hp_error:
        evidence["hp_error"] = hp_error
    gain = ("" if worst_search is None else f", search {worst_search:.4g}")
    if ok:
        summary = (f"worst lhs/rhs = {decisive:.4g} (random {worst_random:.4g}{gain}); "
                   f"{evals} evaluations")
    else:
        summary = (f"VIOLATED: lhs/rhs = {decisive:.6g} > 1 found by {worst['source']} "
                   f"(random worst {worst_random:.4g}); counterexample in evidence"
                   + ("; search stopped at the first clear violation" if stopped_early else ""))
    return Certificate("ineq", "pass" if ok else "fail", evidence, 0.0, summary)


# --------------------------------------------------------------------------- expectation mode
def _check_expectation(step, derivation, cfg) -> Certificate:
    import torch

    device = resolve(cfg.device)
    backend = ev.TorchBackend(device)
    small_e, big_e = _sides(step)
    over = sorted(ops.random_symbols(step.lhs) | ops.random_symbols(step.rhs))
    params_list = step.options.get("ineq_params", derivation.mc_params)(cfg)
    needed = _needed_randoms(step, derivation)
    defs = needed_definitions(step, derivation)
    fixed = [x for x in needed if x not in over]
    rows = []
    for idx, p in enumerate(params_list):
        inst = _env_with_constants(step, instances.torch_instance(p, device))
        gen = generator(stable_seed(cfg.seed, derivation.id, step.id, "ineq-mc", idx))
        env = dict(inst)
        env.update(instances.draw_torch(fixed, inst, 1, gen, device))
        smalls, bigs = [], []
        remaining = cfg.mc_trials
        while remaining > 0:
            b = min(4000, remaining)
            e = dict(env)
            e.update(instances.draw_torch(over, inst, b, gen, device))
            e = ev.evaluate_definitions(defs, e, backend)
            smalls.append(_vec(ev.evaluate(small_e, e, backend), b, device))
            bigs.append(_vec(ev.evaluate(big_e, e, backend), b, device))
            remaining -= b
        s, g = torch.cat(smalls), torch.cat(bigs)
        diff = summarize(s - g)
        ms, mg = float(s.mean()), float(g.mean())
        se_s = summarize(s).se
        z = diff.z(0.0) if diff.se > 0 else (0.0 if diff.mean == 0 else math.copysign(
            math.inf, diff.mean))  # e.g. an indicator that never fired: lhs - rhs constant
        rows.append({"params": p.as_dict(), "mean_lhs": ms, "mean_rhs": mg,
                     "ratio": ms / mg if mg > 0 else (math.inf if ms > mg else 0.0),
                     "ratio_se": se_s / mg if mg > 0 else None,
                     "z": z, "se": diff.se, "trials": diff.trials,
                     "detectable_rel": diff.detectable(mg)})
    worst = max(rows, key=lambda r: r["ratio"])
    max_z = max(r["z"] for r in rows)
    worst_det = max(r["detectable_rel"] for r in rows)
    if max_z > Z_PASS:
        verdict = "fail"
        summary = (f"VIOLATED: E lhs / E rhs = {worst['ratio']:.4g} (z = {max_z:.1f} > "
                   f"{Z_PASS:g}) at {worst['params']}")
    elif worst_det > cfg.max_detectable:
        verdict = "fail"
        summary = (f"underpowered: could only detect violations above "
                   f"{100 * worst_det:.2g}% > {100 * cfg.max_detectable:.2g}%")
    elif worst["ratio_se"] == 0 and any(
            r["ratio_se"] == 0 and 3 / r["trials"] > r["mean_rhs"] for r in rows):
        # a left side that never varied certifies only its rule-of-three 95% upper bound 3/N:
        # a claimed bound below that cannot be supported by this sample
        verdict = "fail"
        summary = (f"underpowered: lhs constant in {worst['trials']} draws certifies only "
                   f"E lhs <= {3 / worst['trials']:.2g} (95%), above E rhs = {worst['mean_rhs']:.3g}")
    elif worst["ratio_se"] == 0:
        # the left side never varied (e.g. an indicator of a rare event that never fired): the
        # honest statement is the count, with the rule-of-three 95% upper bound 3/N on its rate
        verdict = "pass"
        summary = (f"lhs constant = {worst['mean_lhs']:.4g} in all {worst['trials']} draws "
                   f"(95% upper bound on its rate {3 / worst['trials']:.2g}) vs E rhs = "
                   f"{worst['mean_rhs']:.4g}: holds, but is not tight at these sizes")
    else:
        verdict = "pass"
        summary = (f"worst E lhs / E rhs = {worst['ratio']:.4g} +- {worst['ratio_se']:.2g} over "
                   f"{len(rows)} parameter sets x {cfg.mc_trials} draws; max z = {max_z:.2f}")
    return Certificate("ineq", verdict,
                       {"mode": "expectation", "points": rows, "worst_ratio": worst["ratio"],
                        "worst_ratio_se": worst["ratio_se"], "max_z": max_z,
                        "z_threshold": Z_PASS, "max_detectable_rel": worst_det,
                        "evaluations": sum(r["trials"] for r in rows), "device": str(device)},
                       0.0, summary)


@checker("ineq")
def check_inequality(step, derivation, cfg, formula=None) -> Certificate:
    """Also usable as a statement checker: a ``Statement`` is checked as a step with id
    ``"statement"`` and options ``derivation.extra.statement_options``."""
    from numeric.device import single_thread

    from ..core import Justification, Statement, Step

    if isinstance(step, Statement):
        if formula is not None:
            raise ValueError("the inequality checker has no formula to replace; target a step")
        step = Step("statement", step.lhs, step.rel, step.rhs,
                    Justification("inequality", "the derivation's statement"), ("ineq",),
                    options=derivation.extra.statement_options)
    _sides(step)  # refuses '=' and '~'
    with single_thread(resolve(cfg.device)):   # tiny matrices: threads only add overhead
        if ops.contains_expectation(step.lhs) or ops.contains_expectation(step.rhs):
            return _check_expectation(step, derivation, cfg)
        return _check_pointwise(step, derivation, cfg)


# ------------------------------------------------------------------ bound against simulation
BOUND_PILOT_FRACTION = 1 / 16


@checker("bound_e2e")
def check_bound_end_to_end(statement, derivation, cfg, formula=None) -> Certificate:
    """A statement ``E quantity <= bound``: simulate the estimator at the check points; pass iff
    the simulated mean does not exceed the bound by more than ``Z_PASS`` standard errors
    (one-sided).  Reports how conservative the bound is: bound / simulated mean.  A pilot of
    ``cfg.mc_trials * BOUND_PILOT_FRACTION`` data sets per point decides when every point's
    ``|z|`` exceeds ``Z_DECISIVE``; otherwise each point draws on to ``cfg.mc_trials``."""
    from .montecarlo import _trials_text, end_to_end_points

    if statement.rel != "<=":
        raise ValueError("bound_e2e checks statements 'E ... <= bound'")
    # one-sided: a bound's margin, not a relative error, is what it measures, so no extension
    # beyond mc_trials; a pilot of BOUND_PILOT_FRACTION of it settles a bound that every point
    # clears (or breaks) by more than Z_DECISIVE standard errors -- measured margins are
    # thousands of SE (misalign_sample: z = -4663 to -79779 at 40 000 draws)
    rows, device = end_to_end_points(derivation, cfg, formula, extend=False,
                                     pilot=max(1000, int(cfg.mc_trials * BOUND_PILOT_FRACTION)))
    for row in rows:
        row["bound"] = row.pop("formula")
        row["bound_over_simulated"] = row["bound"] / row["mean"] if row["mean"] > 0 else math.inf
    max_z = max(r["z"] for r in rows)
    loosest = max(r["bound_over_simulated"] for r in rows)
    tightest = min(r["bound_over_simulated"] for r in rows)
    if max_z > Z_PASS:
        bad = max(rows, key=lambda r: r["z"])
        verdict, summary = "fail", (f"VIOLATED: simulated mean {bad['mean']:.4g} > bound "
                                    f"{bad['bound']:.4g} (z = {max_z:.1f}) at {bad['params']}")
    else:
        verdict, summary = "pass", (f"bound holds at {len(rows)} points; bound/simulated in "
                                    f"[{tightest:.3g}, {loosest:.3g}] (max z = {max_z:.2f}; "
                                    f"{_trials_text(rows)} data sets per point)")
    return Certificate("bound_e2e", verdict,
                       {"points": rows, "max_z": max_z, "z_threshold": Z_PASS,
                        "bound_over_simulated_min": tightest,
                        "bound_over_simulated_max": loosest, "device": str(device)},
                       0.0, summary)
