"""Figures of the sensitivity sweep (issue 6), as PDF, from ``numeric.sensitivity``'s summary.

``make_figures(summary, out_dir, prefix="sensitivity")`` writes

* ``<prefix>-rank-curves.pdf``: simulated LoRA risk against the rank ``r`` (mean +- 2 SE) for
  several true ranks ``s``, in one over- and one underdetermined setting, with the sharp
  prediction (dashed), FFT (horizontal) and the keep-threshold rank (triangles);
* ``<prefix>-optimal-rank.pdf``: keep-threshold rank against the simulated argmin, every point;
* ``<prefix>-phase.pdf``: the phase diagrams, ``log2(LoRA/FFT)`` in the planes (s, n/d) and
  (tail strength alpha, n/d), with the simulated (solid) and predicted (dashed) boundaries
  ``LoRA = FFT``; one row per rank rule;
* ``<prefix>-axes.pdf``: LoRA/FFT against the stable rank (tails), the SNR and the
  misalignment ``eps``.

Error bars on ratios are the delta-method ``2 SE(LoRA - FFT)/FFT`` (paired), an approximation.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from .plotting import PRINT, TEXT_WIDTH, pyplot, save_pdf

plt = pyplot(PRINT)
WIDTH = TEXT_WIDTH

VERDICT_STYLE = {"agree": ("tab:green", "o"), "tie": ("tab:orange", "s"),
                 "disagree": ("tab:red", "x")}


def _save(fig, path: Path) -> Path:
    return save_pdf(fig, path)


def _closest(values, target):
    return min(values, key=lambda v: abs(math.log(v) - math.log(target))) if values else None


def rank_curves(summary, path: Path) -> Path | None:
    rows = [r for r in summary["rows"] if r["axis"] == "exact"]
    if not rows:
        return None
    pts = {(p["n_over_d"], p["s"]): p for p in summary["points"] if p["axis"] == "exact"}
    ratios = sorted({r["n_over_d"] for r in rows})
    chosen = [x for x in (_closest([v for v in ratios if v > 1], 2.0),
                          _closest([v for v in ratios if v < 1], 0.5)) if x is not None]
    fig, axes = plt.subplots(1, len(chosen), figsize=(WIDTH, 3.4), squeeze=False,
                             layout="constrained")
    for ax, ratio in zip(axes[0], chosen):
        s_all = sorted({r["s"] for r in rows if r["n_over_d"] == ratio})
        s_show = s_all if len(s_all) <= 5 else [s_all[i] for i in
                                                np.linspace(0, len(s_all) - 1, 5).round().astype(int)]
        cmap = plt.get_cmap("viridis")
        fft = None
        for j, s in enumerate(s_show):
            sel = sorted((r for r in rows if r["n_over_d"] == ratio and r["s"] == s),
                         key=lambda r: r["r"])
            c = cmap(j / max(1, len(s_show) - 1))
            rr = [r["r"] for r in sel]
            ax.errorbar(rr, [r["lora_mean"] for r in sel], yerr=[2 * r["lora_se"] for r in sel],
                        color=c, marker=".", ms=4, lw=1, label=f"$s = {s}$")
            if sel[0]["lora_pred"] is not None:
                ax.plot(rr, [r["lora_pred"] for r in sel], color=c, ls="--", lw=1)
            p = pts[(ratio, s)]
            if p["r_rule"] is not None:
                ax.plot([p["r_rule"]], [sel[p["r_rule"] - 1]["lora_mean"]], marker="v", color=c,
                        ms=8, mec="k")
            fft = (sel[0]["fft_mean"], sel[0]["fft_pred"])
        ax.axhline(fft[0], color="k", lw=1.2, label="FFT (simulated)")
        if fft[1] is not None:
            ax.axhline(fft[1], color="k", lw=0.8, ls=":", label="FFT (exact formula)")
        p0 = rows[0]
        n = int(round(ratio * p0["d"]))
        ax.set_title(f"$n/d = {ratio:g}$ ($d={p0['d']}$, $k={p0['k']}$, $n={n}$), "
                     f"SNR ${p0['snr']:g}$")
        ax.set_xlabel("LoRA rank $r$")
        ax.set_ylabel(r"excess risk $\mathcal{R}$")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # ranks: integer ticks
        ax.legend(ncol=2)
    return _save(fig, path)


def optimal_rank(summary, path: Path) -> Path | None:
    pts = [p for p in summary["points"] if p["r_rule"] is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(3.6, 3.3))
    rng = np.random.default_rng(0)
    for verdict, (color, marker) in VERDICT_STYLE.items():
        sel = [p for p in pts if p["rank_verdict"] == verdict]
        if not sel:
            continue
        jit = rng.uniform(-0.15, 0.15, size=(2, len(sel)))
        ax.scatter([p["r_sim"] for p in sel] + jit[0], [p["r_rule"] for p in sel] + jit[1],
                   c=color, marker=marker, s=18, label=f"{verdict} ({len(sel)})")
    top = max(max(p["r_sim"], p["r_rule"]) for p in pts) + 1
    ax.plot([0.5, top], [0.5, top], color="grey", lw=0.8)
    # ranks are small integers: linear axes, integer ticks
    for a in (ax.xaxis, ax.yaxis):
        a.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, top)
    ax.set_ylim(0.5, top)
    ax.set_xlabel(r"simulated $\arg\min_r$ of the risk")
    ax.set_ylabel("keep-threshold rank $r$ (sharp rule)")
    ax.legend()
    return _save(fig, path)


def phase(summary, path: Path, rules=None) -> Path | None:
    planes = summary["phase"]
    if not planes:
        return None
    primary = summary["rank_rule"]
    rules = rules or [primary] + [r for r in ("fixed", "matched", "predicted") if r != primary]
    names = list(dict.fromkeys(pl["name"] for pl in planes))
    by = {(pl["rank_rule"], pl["name"]): pl for pl in planes}
    fig, axes = plt.subplots(len(rules), len(names), figsize=(WIDTH, 2.7 * len(rules) + 0.3),
                             squeeze=False, layout="constrained")
    # one colour scale for the whole figure: the largest |log2 LoRA/FFT| over every panel
    lim = max([1e-3] + [float(np.nanmax(np.abs(np.array(pl["log_ratio_sim"], dtype=float))))
                        / math.log(2) for pl in planes if (pl["rank_rule"] in rules)])
    norm = TwoSlopeNorm(0.0, -lim, lim)
    mesh = None
    for i, rule in enumerate(rules):
        for j, name in enumerate(names):
            ax = axes[i][j]
            pl = by.get((rule, name))
            if pl is None:
                ax.axis("off")
                continue
            xv, yv = np.array(pl["x_values"]), np.array(pl["y_values"], dtype=float)
            # cells on an index grid (uniform, none cut off at the edges), labelled by value
            xs, ys = np.arange(len(xv), dtype=float), np.arange(len(yv), dtype=float)
            zs = np.array(pl["log_ratio_sim"], dtype=float) / math.log(2)
            zp = np.array([[np.nan if v is None else v / math.log(2) for v in row]
                           for row in pl["log_ratio_pred"]])
            mesh = ax.pcolormesh(xs, ys, zs, shading="nearest", cmap="RdBu_r", norm=norm)
            if len(xs) > 1 and len(ys) > 1:
                if np.nanmin(zs) < 0 < np.nanmax(zs):
                    ax.contour(xs, ys, zs, levels=[0], colors="k", linewidths=1.6)
                zpm = np.ma.masked_invalid(zp)
                if zpm.count() and zpm.min() < 0 < zpm.max():
                    ax.contour(xs, ys, zpm, levels=[0], colors="k", linewidths=1.2,
                               linestyles="--")
            for a, x in enumerate(xs):
                for b, y in enumerate(ys):
                    w = pl["wins_sim"][b][a]
                    ax.text(x, y, f"{2 ** zs[b, a]:.2f}" + ("" if w != "tie" else "~"),
                            ha="center", va="center", fontsize=7,
                            color="k" if abs(zs[b, a]) < 0.6 * lim else "w")
            if xv.min() < 1 < xv.max():      # n = d, placed between its neighbours (log scale)
                ax.axvline(float(np.interp(0.0, np.log(xv), xs)), color="grey", lw=0.8, ls=":")
            ax.set_xticks(xs)
            ax.set_xticklabels([f"{v:g}" for v in xv])
            ax.set_yticks(ys)
            ax.set_yticklabels([f"{v:g}" for v in yv])
            ax.set_xlabel("$n/d$")
            ax.set_ylabel("true rank $s$" if pl["y"] == "s"
                          else rf"tail exponent $\alpha$ ({pl['family']})")
            ax.set_title(f"{name}, LoRA rank: {rule}")
    if mesh is not None:                         # the one colour bar of the figure
        cb = fig.colorbar(mesh, ax=axes, fraction=0.04, pad=0.01)
        cb.set_label(r"$\log_2(\mathrm{LoRA}/\mathrm{FFT})$, simulated")
    return _save(fig, path)


def axes_figure(summary, path: Path) -> Path | None:
    rule = summary["rank_rule"]
    pts = summary["points"]
    panels = [("tail", "stable_rank", r"stable rank of $\Delta^*\Sigma^{1/2}$"),
              ("snr", "snr", r"SNR $= \Vert\Delta^*\Sigma^{1/2}\Vert_F^2/(k\sigma^2)$"),
              ("misalignment", "theta_deg", r"rotation angle $\theta$ (degrees)")]
    panels = [pn for pn in panels if any(p["axis"] == pn[0] for p in pts)]
    if not panels:
        return None
    ncol = min(2, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(WIDTH, 3.0 * nrow), squeeze=False,
                             layout="constrained")
    flat = [a for row in axes for a in row]
    for a in flat[len(panels):]:
        a.axis("off")
    for ax, (axis, key, label) in zip(flat, panels):
        sel = [p for p in pts if p["axis"] == axis]
        groups = sorted({(p["family"], p["n_over_d"]) for p in sel})
        if axis == "tail":      # a readable subset: n/d nearest 0.5, 2 and the largest
            nd = sorted({g[1] for g in groups})
            keep = {_closest([v for v in nd if v < 1], 0.5), _closest([v for v in nd if v > 1], 2.0),
                    max(nd)}
            groups = [g for g in groups if g[1] in keep]
        cmap = plt.get_cmap("tab10")
        for g, (fam, ratio) in enumerate(groups):
            gp = sorted((p for p in sel if (p["family"], p["n_over_d"]) == (fam, ratio)),
                        key=lambda p: p[key])
            br = [p["by_rule"][rule] for p in gp]
            xs = [p[key] for p in gp]
            c = cmap(g % 10)
            ax.errorbar(xs, [b["ratio_sim"] for b in br],
                        yerr=[2 * b["diff_se"] / p["fft_mean"] for b, p in zip(br, gp)],
                        color=c, marker="o" if fam != "exp" else "s", ms=3, lw=1,
                        label=f"{fam}, $n/d={ratio:g}$")
            if all(b["ratio_pred"] is not None for b in br):
                ax.plot(xs, [b["ratio_pred"] for b in br], color=c, ls="--", lw=1)
        ax.axhline(1.0, color="k", lw=0.8)
        if axis != "misalignment":
            ax.set_xscale("log")
        ax.set_yscale("log")
        # ticks at 1, 2, 5 x 10^k labelled plainly; unlabelled minor ticks (their default labels
        # collide on short log ranges)
        for axis_ in ([ax.xaxis] if axis != "misalignment" else []) + [ax.yaxis]:
            axis_.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis_.set_major_formatter(FormatStrFormatter("%g"))
            axis_.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel(f"LoRA/FFT (rank rule: {rule})")
        ax.legend()
    return _save(fig, path)


def make_figures(summary: dict, out_dir, prefix: str = "sensitivity") -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, fn in (("rank-curves", rank_curves), ("optimal-rank", optimal_rank),
                     ("phase", phase), ("axes", axes_figure)):
        p = fn(summary, out_dir / f"{prefix}-{name}.pdf")
        if p is not None:
            made[f"figure_{name}"] = p
    return made
