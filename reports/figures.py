"""Figures of the derivation pages, drawn from stored data (sweeps, convergence rows).

Each figure is a PDF in the report folder with the CSV of exactly the numbers it shows beside
it.  Plotting only draws; every number comes from the audit or the sweep.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .plotting import PAGE, pyplot




def write_csv(path: Path, rows: list[dict]) -> None:
    cols = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c) for c in cols})


def _mathlabel(latex_name: str) -> str:
    return f"${latex_name}$"


def sweep_figure(out_dir: Path, der_id: str, sweep: dict, param_latex: str) -> dict:
    plt = pyplot(PAGE)
    param = sweep["param"]
    stem = f"{der_id}-sweep"
    xs = [p[param] for p in sweep["points"]]
    fig, ax = plt.subplots()
    cx = [c[param] for c in sweep["curve"]]
    cy = [c["formula"] for c in sweep["curve"]]
    ax.plot(cx, cy, "-", color="C0", lw=1.4, label="formula")
    ax.errorbar(xs, [p["mean"] for p in sweep["points"]], yerr=[2 * p["se"] for p in sweep["points"]],
                fmt="o", ms=3.5, color="C3", capsize=2.5, label=r"simulation $\pm 2$ SE")
    ys = [y for y in cy + [p["mean"] for p in sweep["points"]] if y > 0]
    if ys and max(ys) / min(ys) > 20:
        ax.set_yscale("log")
    ax.set_xlabel(_mathlabel(param_latex))
    ax.set_ylabel(r"expected excess risk $\mathbb{E}\,\mathcal{R}$")
    ax.legend(frameon=False)
    fig.savefig(out_dir / f"{stem}.pdf")
    plt.close(fig)
    write_csv(out_dir / f"{stem}.csv", sweep["points"])
    write_csv(out_dir / f"{stem}-curve.csv", sweep["curve"])
    return {"file": f"{stem}.pdf", "csv": f"{stem}.csv", "curve_csv": f"{stem}-curve.csv"}


def convergence_figure(out_dir: Path, der_id: str, rows: list[dict]) -> dict:
    plt = pyplot(PAGE)
    stem = f"{der_id}-convergence"
    xs = sorted({r["scale"] for r in rows})
    fig, ax = plt.subplots()
    ax.axhline(0, color="k", lw=0.8)
    families = {}
    for r in rows:                       # several convergence sequences: one line each
        families.setdefault(r.get("family", ""), []).append(r)
    for i, (name, fam) in enumerate(families.items()):
        ax.errorbar([r["scale"] for r in fam], [100 * r["rel_error"] for r in fam],
                    yerr=[200 * r["rel_se"] for r in fam], fmt="o-", ms=4, color=f"C{i}",
                    capsize=3, label=(f"{name}: " if name else "")
                    + r"(simulation $-$ formula)/simulation, $\pm 2$ SE")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_xlabel("dimension multiplier (all dimensions scaled together)")
    ax.set_ylabel("relative error (%)")
    ax.legend(frameon=False)
    fig.savefig(out_dir / f"{stem}.pdf")
    plt.close(fig)
    flat = [{k: (v if not isinstance(v, dict) else ";".join(f"{a}={b}" for a, b in v.items()))
             for k, v in r.items()} for r in rows]
    write_csv(out_dir / f"{stem}.csv", flat)
    return {"file": f"{stem}.pdf", "csv": f"{stem}.csv"}
