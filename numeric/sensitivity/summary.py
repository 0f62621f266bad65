"""The sweep's summary: rows per (point, rank), the point table, the optimal-rank table, phase
planes and the headline, for each rank rule (``RANK_RULES``)."""
from __future__ import annotations

import math

from ..stats import Z_PASS
from .grid import AXES

RANK_RULES = ("fixed", "matched", "predicted", "best")


def _rank_for(rule: str, rec: dict, point: dict, fixed: int) -> int:
    res = rec["result"]
    q = res["q"]
    if rule == "best":
        return res["r_sim"]
    if rule == "fixed":
        return min(fixed, q)
    if rule == "matched":
        if point["shape"]["family"] == "exact":
            return min(point["shape"]["s"], q)
        return min(max(1, int(round(res["stable_rank"]))), q)
    return res["r_rule"] if res["r_rule"] is not None else res["r_sim"]


def _crossings(xs, ys):
    """Values of x where the piecewise-linear ``y(x)`` crosses 0 (``x`` on a log scale)."""
    out = []
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 is None or y1 is None or not (math.isfinite(y0) and math.isfinite(y1)):
            continue
        if y0 == 0:
            out.append(x0)
        elif y0 * y1 < 0:
            l0, l1 = math.log(x0), math.log(x1)
            out.append(math.exp(l0 + (l1 - l0) * y0 / (y0 - y1)))
    if ys and ys[-1] == 0:
        out.append(xs[-1])
    return out


def summarize_sweep(sweep: dict, cfg: dict) -> dict:
    """Rows (one per entry and rank), point table, optimal ranks, phase diagrams, headline."""
    rule = cfg["phase"]["rank_rule"]
    points, rows = [], []
    for e in sweep["entries"]:
        rec = sweep["records"][e["key"]]
        res, p = rec["result"], e["point"]
        by_rule = {}
        for rr in RANK_RULES:
            rk = _rank_for(rr, rec, p, cfg["phase"]["fixed_rank"])
            g = res["ranks"][rk - 1]
            by_rule[rr] = {"r": rk, "ratio_sim": g["ratio_sim"], "ratio_pred": g.get("ratio_pred"),
                           "diff_mean": g["diff_mean"], "diff_se": g["diff_se"],
                           "wins_sim": _win(g["diff_mean"], g["diff_se"], res["fft_mean"]),
                           "wins_pred": (None if g.get("ratio_pred") is None
                                         else bool(g["ratio_pred"] < 1))}
        r_phase = by_rule[rule]["r"]
        ph = res["ranks"][r_phase - 1]
        base = {"axis": e["axis"], "label": e["label"], "key": e["key"], "seed": e["seed"],
                "d": p["d"], "k": p["k"], "n": p["n"], "n_over_d": p["n_over_d"],
                "regime": res["regime"], "sigma": p["sigma"], "snr": p["snr"],
                "family": p["shape"]["family"], "s": p["shape"].get("s"),
                "alpha": p["shape"].get("alpha"),
                "theta_deg": p["cov"].get("theta_deg"), "eps": res["eps"],
                "stable_rank": res["stable_rank"], "entropy_rank": res["entropy_rank"]}
        pt = dict(base, fft_mean=res["fft_mean"], fft_se=res["fft_se"],
                  fft_pred=res["fft_pred"], r_sim=res["r_sim"], r_rule=res["r_rule"],
                  r_curve=res["r_curve"], rank_verdict=res["rank_verdict"],
                  rank_gap_rel=res.get("rank_gap_rel"), rank_gap_mean=res.get("rank_gap_mean"),
                  rank_gap_se=res.get("rank_gap_se"),
                  r_phase=r_phase, phase_lora_mean=ph["lora_mean"], phase_lora_se=ph["lora_se"],
                  phase_diff_mean=ph["diff_mean"], phase_diff_se=ph["diff_se"],
                  phase_ratio_sim=ph["ratio_sim"], phase_ratio_pred=ph.get("ratio_pred"),
                  phase_pred=ph.get("pred"),
                  lora_wins_sim=_win(ph["diff_mean"], ph["diff_se"], res["fft_mean"]),
                  lora_wins_pred=(None if ph.get("ratio_pred") is None
                                  else bool(ph["ratio_pred"] < 1)),
                  best_ratio_sim=res["ranks"][res["r_sim"] - 1]["ratio_sim"],
                  pred_agree_all=(None if res["fft_pred"] is None
                                  else all(r["agree"] for r in res["ranks"])),
                  pred_max_abs_rel=(None if res["fft_pred"] is None
                                    else max(abs(r["rel_err"]) for r in res["ranks"])),
                  pred_rel_at_phase=ph.get("rel_err"),
                  seconds=res["seconds"], by_rule=by_rule)
        points.append(pt)
        for r in res["ranks"]:
            rows.append(dict(base, r=r["r"], lora_mean=r["lora_mean"], lora_se=r["lora_se"],
                             fft_mean=res["fft_mean"], fft_se=res["fft_se"],
                             diff_mean=r["diff_mean"], diff_se=r["diff_se"],
                             gap_best_mean=r["gap_best_mean"], gap_best_se=r["gap_best_se"],
                             ratio_sim=r["ratio_sim"], lora_pred=r.get("pred"),
                             fft_pred=res["fft_pred"], ratio_pred=r.get("ratio_pred"),
                             pred_bias=r.get("pred_bias"), pred_variance=r.get("pred_variance"),
                             pred_rel_err=r.get("rel_err"), pred_z=r.get("z"),
                             pred_agree=r.get("agree"), kept_spikes=r.get("kept_spikes"),
                             kept_noise=r.get("kept_noise")))
    return {"points": points, "rows": rows, "optimal_rank": _rank_table(points),
            "phase": [pl for rr in RANK_RULES for pl in _phase(points, cfg, rr)],
            "headline": {rr: _headline(points, rows, rr) for rr in RANK_RULES},
            "rank_rule": rule}


def _win(diff, se, scale):
    """'win' / 'lose' when the paired difference is beyond 4 SE, else 'tie' (also when LoRA and
    FFT coincide to rounding: at ``r >= rank`` of the data LoRA *is* FFT)."""
    if abs(diff) <= 1e-9 * abs(scale):
        return "tie"
    if diff < -Z_PASS * se:
        return "win"
    if diff > Z_PASS * se:
        return "lose"
    return "tie"


def _rank_table(points):
    with_pred = [p for p in points if p["r_rule"] is not None]
    counts = {v: sum(1 for p in with_pred if p["rank_verdict"] == v)
              for v in ("agree", "tie", "disagree")}
    worst = max(with_pred, key=lambda p: p["rank_gap_rel"] or 0.0, default=None)
    return {"points": len(with_pred), "counts": counts,
            "disagreements": [{k: p[k] for k in ("axis", "label", "r_rule", "r_curve", "r_sim",
                                                 "rank_gap_rel", "rank_gap_mean", "rank_gap_se")}
                              for p in with_pred if p["rank_verdict"] == "disagree"],
            "worst_gap_rel": None if worst is None else worst["rank_gap_rel"],
            "worst_label": None if worst is None else f"{worst['axis']}: {worst['label']}"}


def _phase(points, cfg, rule):
    """Phase planes for one rank rule: exact (s, n/d) and per tail family (alpha, n/d); boundary
    crossings per n/d column along the vertical axis (log LoRA/FFT interpolated linearly in the
    log of the axis value)."""
    planes = []
    specs = [("exact", "exact", "s")] + [(f"tail-{f}", f, "alpha")
                                         for f in (cfg["tail"]["families"] if
                                                   cfg["tail"]["enabled"] else [])]
    for name, fam, yname in specs:
        axis = "exact" if fam == "exact" else "tail"
        pts = [p for p in points if p["axis"] == axis and p["family"] == fam]
        if not pts:
            continue
        xs = sorted({p["n_over_d"] for p in pts})
        ys = sorted({p[yname] for p in pts})
        cell = {(p["n_over_d"], p[yname]): p for p in pts}
        br = lambda x, y: cell[(x, y)]["by_rule"][rule]  # noqa: E731
        grid_sim = [[math.log(br(x, y)["ratio_sim"]) for x in xs] for y in ys]
        grid_pred = [[(math.log(br(x, y)["ratio_pred"]) if br(x, y)["ratio_pred"] else None)
                      for x in xs] for y in ys]
        cols = []
        for j, x in enumerate(xs):
            cols.append({"n_over_d": x,
                         "sim": _crossings(ys, [grid_sim[i][j] for i in range(len(ys))]),
                         "pred": _crossings(ys, [grid_pred[i][j] for i in range(len(ys))]),
                         "stable_rank": [cell[(x, y)]["stable_rank"] for y in ys]})
        wins = [[br(x, y)["wins_sim"] for x in xs] for y in ys]
        ranks = [[br(x, y)["r"] for x in xs] for y in ys]
        agree = sum(1 for p in pts if p["by_rule"][rule]["wins_pred"] is not None
                    and (p["by_rule"][rule]["ratio_sim"] < 1) == p["by_rule"][rule]["wins_pred"])
        planes.append({"name": name, "family": fam, "y": yname, "x_values": xs, "y_values": ys,
                       "log_ratio_sim": grid_sim, "log_ratio_pred": grid_pred, "wins_sim": wins,
                       "ranks": ranks,
                       "boundary": cols, "sign_agreement": agree, "cells": len(pts),
                       "rank_rule": rule})
    return planes


def _headline(points, rows, rule):
    """Where LoRA (at the rule's rank) wins and loses, and by how much, per axis and regime."""
    out = {}
    for axis in AXES:
        for regime in ("over", "under"):
            pts = [p for p in points if p["axis"] == axis and p["regime"] == regime]
            if not pts:
                continue
            ratio = lambda p: p["by_rule"][rule]["ratio_sim"]  # noqa: E731
            ratios = [ratio(p) for p in pts]
            best, worst = min(pts, key=ratio), max(pts, key=ratio)
            verdicts = [p["by_rule"][rule]["wins_sim"] for p in pts]
            out[f"{axis}/{regime}"] = {
                "points": len(pts),
                "win": verdicts.count("win"), "lose": verdicts.count("lose"),
                "tie": verdicts.count("tie"),
                "min_ratio": min(ratios), "min_label": best["label"],
                "max_ratio": max(ratios), "max_label": worst["label"]}
    pr = [r for r in rows if r["pred_agree"] is not None]
    out["prediction"] = {"ranks_compared": len(pr),
                         "agree": sum(bool(r["pred_agree"]) for r in pr),
                         "max_abs_rel": max((abs(r["pred_rel_err"]) for r in pr), default=None)}
    return out
