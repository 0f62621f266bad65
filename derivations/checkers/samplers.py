"""Checkers of the exact fast samplers (``numeric.samplers``) against the raw-data path.

* ``sampler_identity`` -- from raw data, the statistics give the raw estimators' risks draw by
  draw, at every rank and for FFT, to float64 rounding (a step's ``options["variant"]`` plants
  a wrong identity: a negative control);
* ``sampler_two_sample`` -- the fast sampler's and the raw simulation's mean risks agree by a
  two-sample test (FFT and LoRA), the raw side drawn until it detects
  ``cfg.mc_target_detectable`` (at most ``cfg.mc_max_trials``; the pass rule is
  ``cfg.max_detectable``).
"""
from __future__ import annotations

import math

import torch

from numeric import samplers
from numeric.device import generator, resolve
from numeric.estimators import sample_data
from numeric.instances import torch_instance
from numeric.seeds import stable_seed
from numeric.stats import Z_PASS, summarize

from ..core import Certificate
from . import checker
from .montecarlo import Z_DECISIVE, _trials_text, extra_trials, mc_certificate

# an extended comparison draws this many fast data sets per raw one: the fast sampler is 1.5-4x
# cheaper per data set at the check points, so the raw side (the cost) can stop 25 % earlier
FAST_PER_RAW = 2
IDENTITY_TOL = 1e-9      # relative, float64 (the paths differ by rounding, ~1e-14 measured)


def _wrong_over(setup, stats):
    """Planted error: the transposed inverse factor, ||P_r(A) L^{-T} - B||^2 (reduced form: the
    same slip in N1 = (G1 - J) L11^{-T})."""
    if setup["form"] == "reduced":
        L11 = stats["L11"]
        N1 = torch.linalg.solve_triangular(L11.transpose(-1, -2), stats["G1"] - stats["J"],
                                           upper=True, left=False)
        return samplers.reduced_risks(setup, L11, stats["G1"], stats["P"], stats["H"], N1)
    L, G, Bm = stats["L"], stats["G"], setup["B"]
    A = Bm @ L + G
    F = torch.linalg.solve_triangular(L.transpose(-1, -2), A, upper=True, left=False)
    lora = samplers.truncation_risks(A, F, Bm.expand_as(F),
                                     lambda v: torch.linalg.solve_triangular(L, v, upper=False))
    return ((F - Bm) ** 2).sum(dim=(-2, -1)), lora


def _wrong_under(setup, stats):
    """Planted error: the bias term ||Delta*||^2 - ||Dt||^2 dropped."""
    if setup["form"] == "reduced":
        fft, lora, bias = samplers.reduced_under_risks(setup, stats)
        return fft - bias, lora - bias.unsqueeze(-1)
    fft, lora = samplers.risks(setup, stats)
    C = torch.linalg.cholesky(stats["K"])
    Dt = torch.linalg.solve_triangular(C.transpose(-1, -2), setup["Ud"] @ stats["Z1"], upper=True,
                                       left=False)
    bias = setup["fnorm2"] - (Dt * Dt).sum(dim=(-2, -1))
    return fft - bias, lora - bias.unsqueeze(-1)


def _wrong_reduced(setup, stats):
    """Planted error (reduced form): the other block's contributions dropped -- J out of N1 and
    Q out of both risks, as if the whitened noise lived in the shift's s coordinates only."""
    L11, G1 = stats["L11"], stats["G1"]
    N1 = torch.linalg.solve_triangular(L11, G1, upper=False, left=False)
    return samplers.reduced_risks(setup, L11, G1, stats["P"], torch.zeros_like(stats["H"]), N1)


_WRONG = {"transposed factor": _wrong_over, "bias dropped": _wrong_under,
          "other block dropped": _wrong_reduced}


@checker("sampler_identity")
def check_sampler_identity(step, derivation, cfg, formula=None) -> Certificate:
    """Raw data -> statistics -> fast risks, against the raw estimators, draw by draw."""
    regime = derivation.extra.need("regime", derivation.id)
    variant = step.options.get("variant")
    form = step.options.get("form", "full")      # the full or the reduced sampler
    device = resolve(cfg.device)
    worst, draws = 0.0, 0
    points = derivation.check_points(cfg)
    if form == "reduced":
        points = [p for p in points if samplers.reduced_applies(p)]
        if not points:
            raise ValueError(f"{derivation.id}: no check point where the reduced sampler applies")
    for i, p in enumerate(points):
        inst = torch_instance(p, device)
        gen = generator(stable_seed(cfg.seed, derivation.id, "identity",
                                    *(("reduced",) if form == "reduced" else ()), i))
        Xd, Rd = sample_data(inst, 64, gen, device)
        Ed = Rd - inst["Delta"] @ Xd
        setup = samplers.fast_setup(inst, regime, form)
        stats = samplers.stats_from_data(setup, inst, Xd, Ed)
        fft, lora = (_WRONG[variant] if variant else samplers.risks)(setup, stats)
        q = min(p.d, p.k, p.n)
        rfft, rlora = samplers.raw_risks(inst, Xd, Rd, list(range(1, q + 1)))
        gap = max(float(((fft - rfft).abs() / rfft.abs()).max()),
                  float(((lora - rlora).abs() / rlora.abs().clamp_min(1e-300)).max()))
        worst = max(worst, gap)
        draws += Xd.shape[0]
    ok = worst <= IDENTITY_TOL
    return Certificate("sampler_identity", "pass" if ok else "fail",
                       {"instances": len(points), "draws": draws, "worst_relative_gap": worst,
                        "tolerance": IDENTITY_TOL, "device": str(device)}, 0.0,
                       f"{draws} raw data sets at {len(points)} instances"
                       f"{' (reduced statistics)' if form == 'reduced' else ''}: fast = raw risks to "
                       f"{worst:.1e} (relative; float64, tolerance {IDENTITY_TOL:g})")


@checker("sampler_two_sample")
def check_sampler_two_sample(statement, derivation, cfg, formula=None) -> Certificate:
    """Two-sample test of the mean risk (FFT and LoRA): fast sampler against raw simulation.

    Each side starts with ``2 * cfg.mc_trials`` data sets.  The raw side (the reference, shared
    by the controls) then draws on from its generator until the comparison could detect
    ``cfg.mc_target_detectable`` -- judged from its own spread, as if the fast side were as
    spread and ``FAST_PER_RAW`` times as large -- at most ``cfg.mc_max_trials``; the fast side
    then draws on to ``FAST_PER_RAW`` times the raw side's size where the comparison misses the
    target, unless a pilot is already decisive somewhere (``|z| > Z_DECISIVE``: a wrong
    sampler, judged at once).  Same seed, same numbers.  ``formula`` (a control) replaces the
    fast sampler by ``formula(params, estimator, trials, gen, device)``."""
    device = resolve(cfg.device)
    fast = formula or (lambda p, est, t, g, dev: samplers.simulate(p, est, t, g, dev,
                                                                   path="fast"))
    pilot = 2 * cfg.mc_trials
    cells = []
    for i, p in enumerate(derivation.check_points(cfg)):
        for est in ("fft", "lora"):
            raw = _raw_summary(derivation.id, p, est, pilot, cfg, str(device), i)
            gen = generator(stable_seed(cfg.seed, derivation.id, "fast", est, i))
            cells.append((p, est, raw, gen, [fast(p, est, pilot, gen, device).reshape(-1)]))
    # a decisive pilot anywhere (a wrong sampler) fails the check whatever the other cells
    # show: it is judged at once; otherwise every fast side draws on (FAST_PER_RAW x raw)
    decisive = any(abs(_z(summarize(x[0]), raw)) > Z_DECISIVE for _, _, raw, _, x in cells)
    rows = []
    target = cfg.mc_target_detectable
    for p, est, raw, gen, parts in cells:
        a = summarize(parts[0])
        if not decisive and Z_PASS * math.hypot(a.se, raw.se) / abs(raw.mean) > target:
            parts.append(fast(p, est, FAST_PER_RAW * raw.trials - pilot, gen,
                              device).reshape(-1))
        a = summarize(torch.cat(parts))
        se = math.hypot(a.se, raw.se)
        rows.append({"params": p.as_dict(), "estimator": est, "fast_mean": a.mean,
                     "raw_mean": raw.mean, "se": se, "z": _z(a, raw),
                     "fast_trials": a.trials, "raw_trials": raw.trials,
                     "detectable_rel": Z_PASS * se / abs(raw.mean)})
    return mc_certificate("sampler_two_sample", rows, cfg, device, lambda why, det: (
        f"{why}: fast sampler vs raw data, FFT and LoRA at {len(rows) // 2} points, "
        f"{_trials_text(rows, 'raw_trials')} raw data sets each, "
        f"detects >= {100 * det:.2g}%"))


def _z(a, raw) -> float:
    return (a.mean - raw.mean) / math.hypot(a.se, raw.se)


_RAW_CACHE: dict = {}


def _raw_summary(der_id, p, est, pilot, cfg, device, i):
    """The raw side (memoised: the controls compare against the same raw simulation): a pilot
    of ``pilot`` data sets, extended (same generator) to the size at which a two-sample
    comparison with an equally spread fast side ``FAST_PER_RAW`` times as large detects
    ``cfg.mc_target_detectable`` (``montecarlo.extra_trials``, at most ``cfg.mc_max_trials``)."""
    key = (der_id, p, est, pilot, cfg.seed, cfg.mc_target_detectable, cfg.mc_max_trials,
           device, i)
    if key not in _RAW_CACHE:
        gen = generator(stable_seed(cfg.seed, der_id, "raw", est, i))
        dev = torch.device(device)
        parts = [samplers.simulate(p, est, pilot, gen, dev, path="raw").reshape(-1)]
        s = summarize(parts[0])
        # the comparison's SE with a fast side FAST_PER_RAW times as large and as spread
        extra = extra_trials(Z_PASS * math.sqrt(1 + 1 / FAST_PER_RAW) * s.se / abs(s.mean),
                             pilot, cfg)
        if extra:
            parts.append(samplers.simulate(p, est, extra, gen, dev, path="raw").reshape(-1))
            s = summarize(torch.cat(parts))
        _RAW_CACHE[key] = s
    return _RAW_CACHE[key]
