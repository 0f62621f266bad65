"""Figures of ``lora-audit spectra`` (PDF): spectra by layer, effective ranks by layer.

``make_figures(layers, out_dir, prefix)`` takes the JSON-able layer records of
``numeric.spectra.LayerSpectrum.as_dict`` and writes

* ``<prefix>-sv.pdf``: normalised singular values ``s_i / s_1`` against ``i`` (log scale), one
  line per layer (at most 24 shown, chosen evenly), the Gavish-Donoho threshold of each layer as
  a marker on its line;
* ``<prefix>-ranks.pdf``: per layer (in checkpoint order) the stable rank, the entropy effective
  rank, the 90 %/99 % energy ranks and the theory's rank estimates, on one linear axis.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .plotting import pyplot, save_pdf

plt = pyplot()

MAX_LINES = 24


def _save(fig, path: Path) -> Path:
    return save_pdf(fig, path)


def spectra_figure(layers: list[dict], path: Path) -> Path | None:
    shown = [x for x in layers if x["sv"] and x["sigma_max"] > 0]
    if not shown:
        return None
    if len(shown) > MAX_LINES:
        idx = np.linspace(0, len(shown) - 1, MAX_LINES).round().astype(int)
        shown = [shown[i] for i in sorted(set(idx))]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    cmap = plt.get_cmap("viridis")
    for j, x in enumerate(shown):
        sv = np.asarray(x["sv"], dtype=float) / x["sigma_max"]
        sv = sv[sv > 0]
        colour = cmap(j / max(1, len(shown) - 1))
        ax.semilogy(np.arange(1, sv.size + 1), sv, color=colour, lw=1.2,
                    label=x["name"] if len(shown) <= 8 else None)
        if x.get("gd_rank"):
            g = min(x["gd_rank"], sv.size)
            ax.plot([g], [sv[g - 1]], marker="o", color=colour, ms=4)
    ax.set_xlabel("index $i$")
    ax.set_ylabel(r"$\sigma_i(\Delta W) / \sigma_1(\Delta W)$")
    ax.set_title("Singular values of the weight differences (dots: Gavish–Donoho rank)", fontsize=9)
    if len(shown) <= 8:
        ax.legend(fontsize=7.5, frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def ranks_figure(layers: list[dict], path: Path) -> Path | None:
    if not layers:
        return None
    x = np.arange(1, len(layers) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    series = [("stable_rank", "stable rank", "o"), ("effective_rank", "entropy effective rank", "s"),
              ("rank90", "90 % energy rank", "^"), ("rank99", "99 % energy rank", "v"),
              ("gd_rank", "Gavish–Donoho rank", "D"), ("keep_rank", "keep-threshold rank", "x")]
    for key, label, marker in series:
        vals = [l.get(key) for l in layers]
        if all(v is None for v in vals):
            continue
        y = np.array([np.nan if v is None else v for v in vals], dtype=float)
        ax.plot(x, y, marker=marker, lw=1, ms=4, label=label)
    ax.set_xlabel("layer (checkpoint order)")
    ax.set_ylabel("rank")
    ax.set_xticks(x if len(layers) <= 20 else np.unique(np.linspace(1, len(layers), 20).round()))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7.5, frameon=False, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title("Effective ranks of the weight differences by layer", fontsize=10)
    return _save(fig, path)


def make_figures(layers: list[dict], out_dir, prefix: str = "spectra") -> dict:
    out_dir = Path(out_dir)
    files = {}
    for key, fn in (("sv", spectra_figure), ("ranks", ranks_figure)):
        p = fn(layers, out_dir / f"{prefix}-{key}.pdf")
        if p is not None:
            files[f"figure_{key}"] = p
    return files


def practical_figure(table: list[dict], path: Path) -> Path | None:
    """Test error of LoRA against its rank (mean +- 2 SE over seeds), FFT and the pretrained
    network as horizontal bands; linear axes (ranks are small integers)."""
    lora = sorted((t for t in table if t["rank"] is not None), key=lambda t: t["rank"])
    if not lora:
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.6), constrained_layout=True)
    ranks = np.array([t["rank"] for t in lora])
    err = np.array([t["test_error"] for t in lora])
    se = np.array([t["se"] for t in lora])
    pos = np.arange(len(ranks))
    ax.errorbar(pos, err, yerr=2 * se, marker="o", capsize=3, label="LoRA (±2 SE)")
    for name, style, label in (("fft", "--", "FFT"), ("pretrained", ":", "pretrained, not tuned")):
        row = next((t for t in table if t["method"] == name), None)
        if row is None:
            continue
        ax.axhline(row["test_error"], ls=style, color="k" if name == "fft" else "grey", label=label)
        ax.axhspan(row["test_error"] - 2 * row["se"], row["test_error"] + 2 * row["se"],
                   color="k" if name == "fft" else "grey", alpha=0.12)
    ax.set_xticks(pos, [str(r) for r in ranks])
    ax.set_xlabel("LoRA rank $r$")
    ax.set_ylabel("test error (downstream task)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)
