"""The sweep's grid: one entry per (axis, point); see the package docstring for the axes."""
from __future__ import annotations

from .config import n_of

AXES = ("exact", "tail", "snr", "misalignment")


def _shape_exact(s):
    return {"family": "exact", "s": int(s)}


def _shape_tail(family, alpha):
    return {"family": family, "alpha": float(alpha)}


def _point(cfg, shape, ratio, snr=None, cov=None) -> dict:
    b = cfg["base"]
    d = b["d"]
    n = n_of(d, ratio)
    return {"d": d, "k": b["k"], "n": n, "n_over_d": float(ratio), "sigma": b["sigma"],
            "snr": float(b["snr"] if snr is None else snr), "shape": shape,
            "cov": cov or {"kind": "identity"}, "r_max": b["r_max"]}


def build_grid(cfg: dict) -> list[dict]:
    """The sweep's entries, in order: ``{"axis", "label", "point"}``.  Entries of different axes
    with identical points share one computation (the key does not include the axis)."""
    out = []
    if cfg["exact"]["enabled"]:
        for ratio in cfg["exact"]["n_over_d"]:
            for s in cfg["exact"]["s_values"]:
                out.append({"axis": "exact", "label": f"s={s} n/d={ratio:g}",
                            "point": _point(cfg, _shape_exact(s), ratio)})
    if cfg["tail"]["enabled"]:
        for fam in cfg["tail"]["families"]:
            for ratio in cfg["tail"]["n_over_d"]:
                for a in cfg["tail"]["alphas"]:
                    out.append({"axis": "tail", "label": f"{fam} alpha={a:g} n/d={ratio:g}",
                                "point": _point(cfg, _shape_tail(fam, a), ratio)})
    if cfg["snr"]["enabled"]:
        for ratio in cfg["snr"]["n_over_d"]:
            for v in cfg["snr"]["values"]:
                out.append({"axis": "snr", "label": f"snr={v:g} s={cfg['base']['s']} n/d={ratio:g}",
                            "point": _point(cfg, _shape_exact(cfg["base"]["s"]), ratio, snr=v)})
    if cfg["misalignment"]["enabled"]:
        m = cfg["misalignment"]
        for ratio in m["n_over_d"]:
            for ang in m["angles_deg"]:
                cov = {"kind": "rotated", "theta_deg": float(ang), "head": m["head"],
                       "high": m["cov_high"], "low": m["cov_low"]}
                out.append({"axis": "misalignment", "label": f"theta={ang:g} n/d={ratio:g}",
                            "point": _point(cfg, _shape_tail(m["family"], m["alpha"]), ratio,
                                            cov=cov)})
    return out
