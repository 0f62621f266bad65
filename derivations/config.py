"""Audit settings: every default in this one commented table; unknown keys are refused.

``quick`` selects the CI-sized column.  Sizes were chosen so that every Monte Carlo check can
detect a relative error of ``max_detectable`` or less (the checkers verify that and fail as
"underpowered" otherwise), and the negative controls (off-by-one denominators of order
1/(n-d-1) ~ 5-15 %) are rejected.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from numeric.errors import InputError

# name: (full value, quick value, meaning)
_DEFAULTS = {
    "seed": (0, 0, "master seed; every instance and draw derives from it"),
    "dps": (50, 50, "significant digits for high-precision checks (>= 50)"),
    "hp_instances": (5, 3, "random instances per high-precision identity"),
    "mc_trials": (40000, 16000, "Monte Carlo draws per step check and per end-to-end point"),
    "mc_outer": (3, 2, "independent conditioning instances per conditional expectation"),
    "mc_target_detectable": (0.005, 0.02, "smallest-detectable relative error a generic Monte "
                             "Carlo step aims at: after mc_trials draws it draws as many more as "
                             "its spread needs (the pass rule stays max_detectable)"),
    "mc_max_trials": (800000, 100000, "most draws per conditioning instance of a generic Monte "
                      "Carlo step"),
    "max_detectable": (0.03, 0.05, "largest acceptable smallest-detectable relative error"),
    "fast_trials": (640000, 40000, "data sets per end-to-end point simulated by an exact fast "
                   "sampler (the first point always simulates raw data)"),
    "fast_max_detectable": (0.005, 0.02, "largest acceptable smallest-detectable relative error "
                            "of the end-to-end points simulated by the fast samplers"),
    "asym_trials": (400, 250, "simulated data sets per dimension in convergence checks"),
    "asym_scales": ((1, 2, 4, 8), (1, 2, 4), "dimension multipliers for convergence checks"),
    "asym_tol": (0.01, 0.01, "finite-size relative error allowed at the largest size (beyond 4 SE)"),
    "asym_detectable": (0.02, 0.03, "largest acceptable 4 SE (relative) at the largest size"),
    "ineq_instances": (200, 60, "random instances per inequality"),
    "ineq_restarts": (8, 3, "adversarial-search restarts per inequality"),
    "device": ("auto", "auto", "auto | cpu | cuda"),
    "quick": (False, True, "CI-sized run"),
}


@dataclass(frozen=True)
class AuditConfig:
    seed: int
    dps: int
    hp_instances: int
    mc_trials: int
    mc_outer: int
    mc_target_detectable: float
    mc_max_trials: int
    max_detectable: float
    fast_trials: int
    fast_max_detectable: float
    asym_trials: int
    asym_scales: tuple
    asym_tol: float
    asym_detectable: float
    ineq_instances: int
    ineq_restarts: int
    device: str
    quick: bool

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def describe_defaults() -> list[tuple[str, object, object, str]]:
    return [(k, v[0], v[1], v[2]) for k, v in _DEFAULTS.items()]


def make_config(quick: bool = False, **overrides) -> AuditConfig:
    unknown = set(overrides) - set(_DEFAULTS)
    if unknown:
        raise InputError(f"unknown audit setting(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(_DEFAULTS)}")
    col = 1 if quick else 0
    cfg = AuditConfig(**{k: v[col] for k, v in _DEFAULTS.items()})
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    if cfg.dps < 50:
        raise InputError(f"dps must be at least 50, got {cfg.dps}")
    for key in ("hp_instances", "mc_trials", "mc_outer", "asym_trials", "ineq_instances",
                "fast_trials"):
        if getattr(cfg, key) < 1:
            raise InputError(f"{key} must be positive, got {getattr(cfg, key)}")
    if cfg.mc_max_trials < cfg.mc_trials:
        raise InputError(f"mc_max_trials ({cfg.mc_max_trials}) must be at least mc_trials "
                         f"({cfg.mc_trials})")
    for key in ("max_detectable", "fast_max_detectable", "mc_target_detectable"):
        if not 0 < getattr(cfg, key) < 1:
            raise InputError(f"{key} must lie in (0, 1), got {getattr(cfg, key)}")
    return cfg
