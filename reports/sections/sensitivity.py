"""Report section: sensitivity to the rank of the shift -- where LoRA wins (referee, major 2).

Runs (or resumes) the sweep of ``numeric.sensitivity`` -- the quick configuration when
``ctx.quick``, the default otherwise -- in ``sensitivity[-quick]/`` inside the report's cache
folder (``ctx.work_dir``; inside the output folder when there is none), never relative to the
working directory, so an interrupted sweep resumes where the report keeps its results.
Writes ``sensitivity-*.pdf`` figures and ``sensitivity-*.csv/json`` data into ``ctx.out_dir``.
The text says which sweep it shows (the quick one is a CI-sized toy, not where the asymptotic
theory is meant to hold) and reconciles its statements with the falsification experiment of the
LoRA section (read from ``lora-falsification.json`` in the same build): where FFT wins there, this
section says so too.

Its own checks (the section fails when they fail): two deliberately wrong theories evaluated
against the same simulations must be flagged -- a sharp risk whose variance is 1.5x too large
(must agree at far fewer (point, rank) pairs) and a rank rule that keeps every direction (must
be distinguishably worse than the simulated optimum at most points).
"""
from __future__ import annotations

import statistics
from pathlib import Path

from reports.section import Section

SID = "sensitivity"


def _category_errors(rows, tol):
    """|relative error| of the sharp prediction by regime and by whether noise directions are kept."""
    out = []
    for regime in ("over", "under"):
        for noise in (False, True):
            sel = [abs(r["pred_rel_err"]) for r in rows if r["pred_rel_err"] is not None
                   and r["regime"] == regime and bool(r["kept_noise"]) == noise]
            if sel:
                out.append({"regime": regime, "kept_noise": noise, "pairs": len(sel),
                            "median": statistics.median(sel), "max": max(sel),
                            "within_tol": sum(v <= tol for v in sel) / len(sel)})
    return out


def _controls(summary, tol):
    """Wrong theories against the same simulated numbers (no new simulation)."""
    from numeric.stats import Z_PASS

    rows = [r for r in summary["rows"] if r["lora_pred"] is not None]
    right = sum(bool(r["pred_agree"]) for r in rows)
    wrong = 0
    for r in rows:
        pred = r["pred_bias"] + 1.5 * r["pred_variance"]
        rel = (r["lora_mean"] - pred) / pred
        z = (r["lora_mean"] - pred) / r["lora_se"] if r["lora_se"] > 0 else float("inf")
        wrong += abs(rel) <= tol or abs(z) <= Z_PASS
    keep_all, flagged = 0, 0
    top = {}
    for r in rows:
        key = r["key"]
        if key not in top or r["r"] > top[key]["r"]:
            top[key] = r
    for r in top.values():
        keep_all += 1
        flagged += r["gap_best_mean"] > Z_PASS * r["gap_best_se"]
    return [
        {"name": "variance x1.5", "right_agree": right, "wrong_agree": wrong, "pairs": len(rows),
         "rejected": bool(rows) and wrong < 0.5 * right},
        {"name": "rank rule keeps every direction", "points": keep_all, "flagged": flagged,
         "rejected": keep_all > 0 and flagged >= 0.5 * keep_all},
    ]


def _exact_trend(pts):
    """Matched rank, exact shifts: LoRA/FFT at the smallest and the largest s, per n/d."""
    out = []
    for nd in sorted({p["n_over_d"] for p in pts if p["axis"] == "exact"}):
        sel = sorted((p for p in pts if p["axis"] == "exact" and p["n_over_d"] == nd),
                     key=lambda p: p["s"])
        if len(sel) > 1:
            out.append({"n_over_d": nd, "s_lo": sel[0]["s"], "s_hi": sel[-1]["s"],
                        "lo": sel[0]["by_rule"]["matched"]["ratio_sim"],
                        "hi": sel[-1]["by_rule"]["matched"]["ratio_sim"]})
    return out


def _phase_text(plane):
    cols = []
    for c in plane["boundary"]:
        cols.append({"n_over_d": c["n_over_d"],
                     "sim": ", ".join(f"{v:.3g}" for v in c["sim"]) or "none",
                     "pred": ", ".join(f"{v:.3g}" for v in c["pred"]) or "none"})
    return cols


def compute(ctx) -> dict:
    from numeric import sensitivity as sens
    from numeric.sensitivity import config as sconf
    from numeric.io import write_json_atomic, write_text_atomic
    from reports.sensitivity_figures import make_figures

    cfg = sconf.load(quick=ctx.quick, sets=[f"run.seed={ctx.seed}"])
    sweep_dir = Path(ctx.work_dir or Path(ctx.out_dir) / ".work") / (
        "sensitivity-quick" if ctx.quick else "sensitivity")
    state = {"last": -1}

    def progress(done, total, label, reused):
        decile = done * 10 // total
        if decile != state["last"]:
            state["last"] = decile
            ctx.progress(f"sensitivity sweep {done}/{total} ({'reused' if reused else label})")

    res = sens.run(cfg, sweep_dir, ctx.device, progress=progress)
    summary = res.summary
    out = Path(ctx.out_dir)
    figs = make_figures(summary, out, prefix=SID)
    write_text_atomic(out / f"{SID}-results.csv", sens.to_csv(summary["rows"]))
    write_json_atomic(out / f"{SID}-results.json",
                      {"config": cfg, "points": summary["points"], "phase": summary["phase"],
                       "optimal_rank": summary["optimal_rank"], "headline": summary["headline"]})
    tol = cfg["run"]["pred_rel_tol"]
    controls = _controls(summary, tol)
    rule = summary["rank_rule"]
    head = summary["headline"]
    planes = {(pl["rank_rule"], pl["name"]): pl for pl in summary["phase"]}
    pts = summary["points"]

    def extreme(rr, sign):
        sel = [p for p in pts if p["by_rule"][rr]["wins_sim"] == ("lose" if sign > 0 else "win")]
        if not sel:
            return None
        p = max(sel, key=lambda p: sign * p["by_rule"][rr]["ratio_sim"])
        return {"label": f"{p['axis']}: {p['label']}", "ratio": p["by_rule"][rr]["ratio_sim"],
                "r": p["by_rule"][rr]["r"]}

    losses, n_losses = {}, {}
    for rr in ("fixed", "matched", "predicted", "best"):
        lp = sorted((p for p in pts if p["by_rule"][rr]["wins_sim"] == "lose"),
                    key=lambda p: -p["by_rule"][rr]["ratio_sim"])
        n_losses[rr] = len(lp)
        losses[rr] = [{"label": f"{p['axis']}: {p['label']}", "ratio": p["by_rule"][rr]["ratio_sim"],
                       "r": p["by_rule"][rr]["r"], "stable_rank": p["stable_rank"]}
                      for p in lp[:6]]
    opt = summary["optimal_rank"]
    dis = opt["disagreements"]
    b = cfg["base"]
    data = {
        "quick": ctx.quick, "d": b["d"], "k": b["k"], "sigma": b["sigma"], "snr": b["snr"],
        "trials": cfg["run"]["trials"], "seed": cfg["run"]["seed"], "tol": tol,
        "fixed_rank": cfg["phase"]["fixed_rank"], "rank_rule": rule,
        "points": res.unique_points, "computed": res.computed, "reused": res.reused,
        "sweep_seconds": res.sweep_seconds, "sweep_dir": str(sweep_dir),
        "headline": {rr: [dict(key=k, **v) for k, v in head[rr].items() if k != "prediction"]
                     for rr in head},
        "prediction": head[rule]["prediction"],
        "pred_categories": _category_errors(summary["rows"], tol),
        "best_win": {rr: extreme(rr, -1) for rr in ("fixed", "matched", "predicted")},
        "worst_loss": {rr: extreme(rr, +1) for rr in ("fixed", "matched", "predicted", "best")},
        "losses": losses, "n_losses": n_losses,
        "under_losses": sum(1 for p in pts for rr in ("fixed", "matched", "predicted")
                            if p["regime"] == "under" and p["by_rule"][rr]["wins_sim"] == "lose"),
        "exact_trend": _exact_trend(pts),
        "phase": {f"{rr}/{name}": _phase_text(planes[(rr, name)])
                  for (rr, name) in planes if rr in ("fixed", "matched", "predicted")},
        "phase_sign_agreement": [{"rule": pl["rank_rule"], "plane": pl["name"],
                                  "agree": pl["sign_agreement"], "cells": pl["cells"]}
                                 for pl in summary["phase"] if pl["rank_rule"] != "best"],
        "optimal_rank": {"points": opt["points"], **opt["counts"],
                         "worst_gap_rel": opt["worst_gap_rel"], "worst_label": opt["worst_label"],
                         "disagreements": dis[:8], "n_disagreements": len(dis),
                         "rule_above_sim": sum(1 for x in dis if x["r_rule"] > x["r_sim"]),
                         "curve_matches_sim": sum(1 for x in dis if x["r_curve"] == x["r_sim"])},
        "controls": controls,
        "figures": {k.replace("figure_", "").replace("-", "_"): Path(v).name
                    for k, v in figs.items()},
        "csv": f"{SID}-results.csv", "json": f"{SID}-results.json",
    }
    default = sconf.load(quick=False)["base"]
    data["default_d"], data["default_k"] = default["d"], default["k"]
    data["sweep_name"] = "quick (CI-sized)" if ctx.quick else "default"
    data["falsification"] = _falsification_view(Path(ctx.out_dir))
    data["verdict"] = "pass" if all(c["rejected"] for c in controls) else "fail"
    data["answers"], data["answers_open"] = _answers(data)
    return data


def _answers(data):
    """The referee response for major 2, from this sweep's numbers, and what it leaves open."""
    def tally(rule):
        h = data["headline"][rule]
        return (sum(x["win"] for x in h), sum(x["lose"] for x in h), sum(x["tie"] for x in h))

    parts = []
    for rule, words in (("fixed", f"a rank fixed a priori ($r = {data['fixed_rank']}$)"),
                        ("matched", "the matched rank ($r = s$)")):
        w, lo, t = tally(rule)
        bw, wl = data["best_win"][rule], data["worst_loss"][rule]
        txt = f"with {words} LoRA wins at {w}, loses at {lo} and ties at {t} points"
        if bw:
            txt += f"; its largest win is a risk {bw['ratio']:.2f} times FFT's ({bw['label']})"
        if wl:
            txt += f", its worst loss {wl['ratio']:.2f} times FFT's ({wl['label']})"
        parts.append(txt)
    trend = "; ".join(f"${t['lo']:.2f}\\to{t['hi']:.2f}$ at $n/d = {t['n_over_d']:g}$"
                      for t in data["exact_trend"])
    pred = data["prediction"]
    ans = (r"Section~\ref{sec:sensitivity} (Table~\ref{tab:sensitivity-headline}, "
           r"Figures~\ref{fig:sensitivity-phase} and~\ref{fig:sensitivity-rank-curves}) varies the "
           f"premise over {data['points']} points of the {data['sweep_name']} sweep: "
           + "; ".join(parts) + ". With the matched rank on exact-rank shifts LoRA/FFT rises "
           f"from $s = 1$ to $s = \\min(k,d)$ as {trend}: the advantage is a low-rank "
           "phenomenon and vanishes as the rank grows, and LoRA with too small a rank loses once "
           "$n/d$ is large. The sharp prediction agrees with the simulation at "
           f"{pred['agree']} of {pred['ranks_compared']} (point, rank) pairs.")
    open_ = None
    if data.get("quick"):
        open_ = (f"this quick sweep is CI-sized ($d = {data['d']}$, $k = {data['k']}$, few draws); "
                 "the conclusions rest on the default sweep "
                 f"($d = {data['default_d']}$, $k = {data['default_k']}$) of the full report")
    return {"major2": ans}, ({"major2": open_} if open_ else {})


def _falsification_view(out_dir: Path):
    """The cells where FFT wins in the falsification experiment of the LoRA section (same build),
    or None when that experiment is not part of this report."""
    import json

    path = out_dir / "lora-falsification.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    rows = res.get("rows", [])
    wins = [{k: r.get(k) for k in ("regime", "n", "s", "x", "r", "mean_diff")}
            for r in rows if r.get("verdict") == "FFT better"]
    return {"cells": len(rows), "fft_better": wins,
            "fft_better_under": [w for w in wins if w["regime"] == "under"],
            "fft_better_over": [w for w in wins if w["regime"] == "over"],
            "r_below_s": sum(1 for w in wins if w["r"] is not None and w["s"] is not None
                             and w["r"] < w["s"]),
            "d": res.get("grid", {}).get("d")}


SECTION = Section(
    id=SID, title="Sensitivity to the rank of the shift: where LoRA wins", order=60,
    compute=compute, template="sections/sensitivity.tex.j2",
    after=("lora",),                     # reads lora-falsification.json (_falsification_view)
    sources=("numeric.sensitivity", "numeric.sensitivity.config", "numeric.sharp",
             "numeric.estimators", "reports.sensitivity_figures",
             "numeric.falsification", "reports.sections.lora"),
    answers={"major2": r"Section~\ref{sec:sensitivity} sweeps the shift's exact rank $s$, its "
                       r"spectral tail, $n/d$, the SNR and the misalignment, simulating LoRA at "
                       r"every rank against FFT: LoRA's advantage is large for low (effective) "
                       r"rank and shrinks as the rank grows; with a rank fixed a priori it loses "
                       r"to FFT once the shift has more strong directions than the rank and "
                       r"$n/d$ is large, by the factors tabulated there."})
