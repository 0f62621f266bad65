"""Configuration of ``lora-audit sensitivity``: ONE schema, every default in this one table.

A configuration is a TOML file (``tomllib``, standard library) with the sections and keys below;
every key is optional and falls back to its default.  ``--quick`` starts from the CI column
instead of the full one; ``--set section.key=value`` overrides single keys last (the value is
read as TOML: ``--set base.d=48``, ``--set exact.s_values=[1,2,4]``; a bare comma list
``1,2,4`` is accepted too).  Unknown sections or keys, values of the wrong type and values
outside their range are refused with an ``InputError`` naming the key (exit status 2).

The example file ``numeric/sensitivity/default.toml`` spells out the full defaults.

Definitions used by the keys (see ``numeric/sensitivity/__init__.py``):

* ``snr`` -- signal-to-noise ratio of the downstream labels relative to the pretrained model,
  ``||Delta* Sigma^{1/2}||_F^2 / (k sigma^2)`` (= E||Delta* x||^2 / E||eps||^2).  The shift is
  scaled to this value at every point, so changing the rank or the tail redistributes a fixed
  signal energy; it does not add signal.
* ``n_over_d`` -- n = round(n_over_d * d).  Values below 1 are the underdetermined regime
  (minimum-norm FFT, needs d > n + 1), values above 1 the overdetermined one (needs n > d + 1).
* tail families: ``power``: sigma_i ~ i^(-alpha); ``exp``: sigma_i ~ exp(-alpha (i - 1)), over
  all min(k, d) directions (effectively low rank: no singular value is zero).
"""
from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

from ..errors import InputError

EXAMPLE_CONFIG = Path(__file__).with_name("default.toml")
LARGE_CONFIG = Path(__file__).with_name("large.toml")


def _pos_int(v):
    return v >= 1


def _nonneg_int(v):
    return v >= 0


def _pos(v):
    return v > 0 and math.isfinite(v)


def _unit_open(v):
    return 0 < v < 1


def _angle(v):
    return 0 <= v <= 90


def _ratio(v):
    return v > 0 and math.isfinite(v) and v != 1


_FAMILIES = ("power", "exp")
_RANK_RULES = ("fixed", "matched", "predicted", "best")

# section -> key -> (full default, quick default, type, range check, range text, meaning)
#   type: "int", "float", "bool", "str", "int[]", "float[]", "str[]"
SCHEMA: dict[str, dict[str, tuple]] = {
    "run": {
        "seed": (0, 0, "int", _nonneg_int, ">= 0",
                 "master seed; every point's instance and data derive from it and the point"),
        "trials": (400, 48, "int", lambda v: 2 <= v <= 10 ** 7, "in [2, 1e7]",
                   "simulated data sets per point (all ranks, LoRA and FFT share them: paired)"),
        "batch": (200, 48, "int", _pos_int, ">= 1",
                  "data sets collected per step (whole chunks of 25; every kernel call works "
                  "on one chunk, so the numbers are bitwise the same for every batch)"),
        "threads": (1, 1, "int", _pos_int, ">= 1",
                    "torch CPU threads during the sweep (small batched matrices: 1 is fastest, "
                    "and much faster than 2 on a busy 2-core machine); numbers do not change"),
        "pred_rel_tol": (0.15, 0.25, "float", _unit_open, "in (0, 1)",
                         "sharp prediction agrees when |sim - pred| <= tol * pred or within "
                         "4 SE (finite-size error of an asymptotic formula; THEORY 4.3: 1-15 %)"),
    },
    "base": {
        "d": (60, 16, "int", lambda v: v >= 4, ">= 4", "input dimension"),
        "k": (30, 8, "int", lambda v: v >= 2, ">= 2", "output dimension"),
        "sigma": (1.0, 1.0, "float", _pos, "> 0", "label-noise standard deviation"),
        "snr": (1.0, 1.0, "float", _pos, "> 0",
                "||Delta* Sigma^{1/2}||_F^2 / (k sigma^2) unless an axis varies it"),
        "s": (3, 2, "int", _pos_int, ">= 1",
              "true rank of the exactly low-rank shift used by the snr axis"),
        "r_max": (0, 0, "int", _nonneg_int, ">= 0",
                  "largest LoRA rank simulated (every r = 1..r_max); 0 = min(k, d, n)"),
    },
    "exact": {
        "enabled": (True, True, "bool", None, "", "exactly low-rank shifts: r against s"),
        "s_values": ([1, 2, 3, 4, 6, 8, 12, 16, 24], [1, 2, 4, 8], "int[]", _pos_int, ">= 1",
                     "true ranks s (equal singular values; each <= min(k, d))"),
        "n_over_d": ([0.25, 0.5, 0.75, 1.5, 2.0, 4.0, 8.0], [0.5, 2.0, 4.0], "float[]", _ratio,
                     "> 0 and != 1", "sample sizes n/d (both regimes)"),
    },
    "tail": {
        "enabled": (True, True, "bool", None, "", "effectively low-rank shifts (spectral tails)"),
        "families": (["power", "exp"], ["power"], "str[]", lambda v: v in _FAMILIES,
                     "power | exp", "tail shapes"),
        "alphas": ([0.25, 0.5, 1.0, 1.5, 2.0, 3.0], [0.5, 2.0], "float[]", _pos, "> 0",
                   "tail strengths alpha (larger = faster decay = lower effective rank)"),
        "n_over_d": ([0.25, 0.5, 0.75, 1.5, 2.0, 4.0, 8.0], [0.5, 2.0, 4.0], "float[]", _ratio,
                     "> 0 and != 1", "sample sizes n/d"),
    },
    "snr": {
        "enabled": (True, True, "bool", None, "", "signal-to-noise axis (exact rank base.s)"),
        "values": ([0.1, 0.3, 1.0, 3.0, 10.0], [0.3, 3.0], "float[]", _pos, "> 0", "SNR values"),
        "n_over_d": ([0.5, 2.0], [2.0], "float[]", _ratio, "> 0 and != 1", "sample sizes n/d"),
    },
    "misalignment": {
        "enabled": (True, True, "bool", None, "",
                    "covariance rotated away from the shift's row space (see numeric/sensitivity)"),
        "angles_deg": ([0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0], [0.0, 45.0, 90.0], "float[]",
                       _angle, "in [0, 90]", "rotation angle theta between the covariance's "
                       "high-variance block and the shift's top row space"),
        "head": (3, 2, "int", _pos_int, ">= 1",
                 "size h of the rotated block (the top-h row space of Delta*; 2h <= d)"),
        "cov_high": (4.0, 4.0, "float", _pos, "> 0", "covariance eigenvalue on the rotated block"),
        "cov_low": (1.0, 1.0, "float", _pos, "> 0", "covariance eigenvalue elsewhere"),
        "family": ("power", "power", "str", lambda v: v in _FAMILIES, "power | exp",
                   "tail family of the shift on this axis"),
        "alpha": (1.0, 1.0, "float", _pos, "> 0", "tail strength of the shift on this axis"),
        "n_over_d": ([2.0], [2.0], "float[]", _ratio, "> 0 and != 1",
                     "sample sizes n/d (the sharp prediction with Sigma != I exists only for "
                     "n/d > 1; underdetermined points are simulated without a prediction)"),
    },
    "phase": {
        "rank_rule": ("fixed", "fixed", "str", lambda v: v in _RANK_RULES,
                      "fixed | matched | predicted | best",
                      "LoRA rank in the headline and the first row of the phase figure: a rank "
                      "fixed a priori (phase.fixed_rank, the practitioner's choice without "
                      "knowing s), the true rank s (exact shifts; round(stable rank) for tails), "
                      "the keep-threshold rank of the sharp theory, or the simulated argmin (an "
                      "oracle).  All four are computed and saved whatever this says"),
        "fixed_rank": (4, 2, "int", _pos_int, ">= 1",
                       "LoRA rank of the 'fixed' rule (<= min(k, d); capped at n below n = d)"),
    },
}


def describe() -> list[tuple[str, object, object, str, str]]:
    """(dotted key, full default, quick default, range, meaning) for docs and ``--help``."""
    return [(f"{sec}.{key}", spec[0], spec[1], spec[4], spec[5])
            for sec, keys in SCHEMA.items() for key, spec in keys.items()]


def defaults(quick: bool = False) -> dict:
    col = 1 if quick else 0
    return {sec: {key: copy.deepcopy(spec[col]) for key, spec in keys.items()}
            for sec, keys in SCHEMA.items()}


def _typename(v) -> str:
    return type(v).__name__


def _coerce(dotted: str, kind: str, value):
    """Check ``value`` against ``kind``; ints are accepted where floats are expected."""
    def scalar(k, v):
        if k == "int":
            if isinstance(v, bool) or not isinstance(v, int):
                raise InputError(f"{dotted} must be an integer, got {v!r} ({_typename(v)})")
            return v
        if k == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise InputError(f"{dotted} must be a number, got {v!r} ({_typename(v)})")
            return float(v)
        if k == "bool":
            if not isinstance(v, bool):
                raise InputError(f"{dotted} must be true or false, got {v!r} ({_typename(v)})")
            return v
        if k == "str":
            if not isinstance(v, str):
                raise InputError(f"{dotted} must be a string, got {v!r} ({_typename(v)})")
            return v
        raise AssertionError(k)

    if kind.endswith("[]"):
        if not isinstance(value, list):
            raise InputError(f"{dotted} must be a list of {kind[:-2]} values, got {value!r}")
        if not value:
            raise InputError(f"{dotted} must not be empty")
        return [scalar(kind[:-2], v) for v in value]
    return scalar(kind, value)


def _check_range(dotted: str, spec, value) -> None:
    check, text = spec[3], spec[4]
    if check is None:
        return
    for v in (value if isinstance(value, list) else [value]):
        if not check(v):
            raise InputError(f"{dotted} = {v!r} is out of range: must be {text}")


def merge(cfg: dict, updates: dict, origin: str) -> dict:
    """Apply nested ``updates`` (as read from TOML) to ``cfg``, refusing unknown/ill-typed keys."""
    out = copy.deepcopy(cfg)
    if not isinstance(updates, dict):
        raise InputError(f"{origin}: expected tables of settings")
    for sec, keys in updates.items():
        if sec not in SCHEMA:
            raise InputError(f"{origin}: unknown section [{sec}]; known: {', '.join(SCHEMA)}")
        if not isinstance(keys, dict):
            raise InputError(f"{origin}: [{sec}] must be a table of settings, got {keys!r}")
        for key, value in keys.items():
            dotted = f"{sec}.{key}"
            if key not in SCHEMA[sec]:
                raise InputError(f"{origin}: unknown key {dotted}; known in [{sec}]: "
                                 f"{', '.join(SCHEMA[sec])}")
            spec = SCHEMA[sec][key]
            value = _coerce(dotted, spec[2], value)
            _check_range(dotted, spec, value)
            out[sec][key] = value
    return out


def parse_set(item: str) -> dict:
    """``"base.d=48"`` -> ``{"base": {"d": 48}}`` (value read as TOML)."""
    if "=" not in item:
        raise InputError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
    name, text = (t.strip() for t in item.split("=", 1))
    if name.count(".") != 1:
        raise InputError(f"--set {name!r}: name a key as SECTION.KEY (e.g. base.d); sections: "
                         f"{', '.join(SCHEMA)}")
    sec, key = name.split(".")
    value = None
    for candidate in (text, f"[{text}]", f'"{text}"'):
        try:
            value = tomllib.loads(f"v = {candidate}")["v"]
            break
        except tomllib.TOMLDecodeError:
            continue
    if value is None:
        raise InputError(f"--set {name}: cannot read {text!r} as a value")
    spec = SCHEMA.get(sec, {}).get(key)
    # a bare "1,2" was read as a list; a lone "3" for a list key becomes [3]
    if spec is not None and spec[2].endswith("[]") and not isinstance(value, list):
        value = [value]
    return {sec: {key: value}}


def load(path=None, sets=(), quick: bool = False) -> dict:
    """Defaults (full or quick column) <- TOML file <- ``--set`` items; validated."""
    cfg = defaults(quick)
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from None
        cfg = merge(cfg, data, str(path))
    for item in sets or ():
        cfg = merge(cfg, parse_set(item), f"--set {item}")
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    """Cross-key constraints (each message names the keys involved)."""
    b = cfg["base"]
    d, k = b["d"], b["k"]
    m = min(d, k)
    if b["r_max"] > m:
        raise InputError(f"base.r_max = {b['r_max']} exceeds min(base.k, base.d) = {m}")
    if b["s"] > m:
        raise InputError(f"base.s = {b['s']} exceeds min(base.k, base.d) = {m}")
    if cfg["phase"]["fixed_rank"] > m:
        raise InputError(f"phase.fixed_rank = {cfg['phase']['fixed_rank']} exceeds "
                         f"min(base.k, base.d) = {m}")
    for v in cfg["exact"]["s_values"]:
        if v > m:
            raise InputError(f"exact.s_values contains {v} > min(base.k, base.d) = {m}")
    mis = cfg["misalignment"]
    if 2 * mis["head"] > d or mis["head"] > m:
        raise InputError(f"misalignment.head = {mis['head']} needs 2*head <= base.d = {d} and "
                         f"head <= min(base.k, base.d) = {m}")
    for sec in ("exact", "tail", "snr", "misalignment"):
        for ratio in cfg[sec]["n_over_d"]:
            n = n_of(d, ratio)
            if n < 2 or (n >= d and n <= d + 1) or (n < d and n >= d - 1):
                raise InputError(
                    f"{sec}.n_over_d = {ratio} gives n = {n} with d = {d}: FFT's risk is finite "
                    f"only for n > d + 1 (overdetermined) or 2 <= n < d - 1 (underdetermined)")
    if cfg["run"]["batch"] > cfg["run"]["trials"]:
        cfg["run"]["batch"] = cfg["run"]["trials"]
    from ..memory import instance_bytes, require, trial_bytes

    n_max = max(n_of(d, ratio) for sec in ("exact", "tail", "snr", "misalignment")
                for ratio in cfg[sec]["n_over_d"])
    require(instance_bytes(d, k, n_max) + cfg["run"]["batch"] * trial_bytes(d, k, n_max),
            f"a sweep point (base.d = {d}, base.k = {k}, n up to {n_max}, run.batch = "
            f"{cfg['run']['batch']})")
    if not any(cfg[s]["enabled"] for s in ("exact", "tail", "snr", "misalignment")):
        raise InputError("every axis is disabled: enable at least one of exact.enabled, "
                         "tail.enabled, snr.enabled, misalignment.enabled")


def n_of(d: int, ratio: float) -> int:
    return int(round(ratio * d))


def to_toml(cfg: dict, comments: bool = False) -> str:
    """The configuration as TOML (written next to the results, for reruns); ``comments`` adds
    each key's range and meaning from the schema (the shipped example file is made this way)."""
    import textwrap

    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return repr(v)

    lines = []
    if comments:
        lines += ["# lora-audit sensitivity: the default configuration (full column of the schema in",
                  "# numeric/sensitivity/config.py).  Every key is optional; unknown keys are refused.",
                  "# Regenerate: python -c \"from numeric.sensitivity import config as c; "
                  "print(c.to_toml(c.defaults(), True), end='')\"", ""]
    for sec, keys in cfg.items():
        lines.append(f"[{sec}]")
        for key, v in keys.items():
            if comments:
                spec = SCHEMA[sec][key]
                text = spec[5] + (f" [{spec[4]}]" if spec[4] else "")
                lines += ["# " + t for t in textwrap.wrap(text, 96)]
            lines.append(f"{key} = {fmt(v)}")
        lines.append("")
    return "\n".join(lines)
