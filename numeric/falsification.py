"""The falsification test the seed names: with a known low-rank shift, does FFT beat LoRA?

A controlled experiment.  For every cell of a grid over the sample ratio ``n/d`` (both regimes),
the signal strength, the true rank ``s`` and the LoRA rank ``r``, and for each of many seeds:

* a fresh shift ``Delta* = U diag(sv) V^T`` with Haar-random ``U`` (``k x s``), ``V`` (``d x s``)
  and all ``s`` singular values equal to ``sv``, and ``Sigma = I``;
* one data set ``X``, ``E``; both estimators are fitted to **the same data** (a paired design):
  FFT (OLS / minimum-norm) and LoRA's global minimiser at rank ``r``
  (``numeric.estimators``);
* the excess risks ``R_L``, ``R_F`` and their difference ``R_L - R_F``.

Per cell: the fraction of seeds where FFT beats LoRA (``R_F < R_L``) with a Wilson 95 % interval,
the paired mean difference with its standard error and a 95 % interval (normal approximation
over seeds), the mean risks, and -- as a cross-check, labelled as an asymptotic approximation --
the sharp LoRA prediction (``numeric.sharp``) and FFT's exact risk.  The verdict per cell is
``FFT better`` / ``LoRA better`` when the interval of the mean difference excludes 0, else
``no significant difference`` (``identical`` when ``r`` reaches the rank of the fit, where
LoRA *is* FFT: every seed ties to rounding).

Signal strength is the normalised spike ``x = sqrt(n) sv/(sigma sqrt(N))`` of THEORY 4.3
(``x <= beta^(1/4)``: the spike cannot even be detected; ``x > x*``: keeping it pays), so the
same ``x`` means the same difficulty across ``n/d``.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

from . import estimators, sharp
from .device import generator, randn, resolve
from .errors import InputError

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Grid:
    d: int
    k: int
    sigma: float
    ratios: tuple          # n/d
    xs: tuple              # normalised spike strength
    ranks_s: tuple         # true ranks s
    ranks_r: tuple         # LoRA ranks r
    seeds: int             # independent replicates per cell

    def cells(self):
        for ratio in self.ratios:
            n = int(round(ratio * self.d))
            for s in self.ranks_s:
                for xv in self.xs:
                    for r in self.ranks_r:
                        yield dict(d=self.d, k=self.k, n=n, s=s, x=xv, r=r, sigma=self.sigma)


GRIDS = {
    # CI-sized: 2 ratios x 2 s x 2 x x 3 r = 24 cells of 120 seeds, d = k = 32
    "quick": Grid(d=32, k=32, sigma=1.0, ratios=(0.5, 2.0), xs=(1.0, 3.0), ranks_s=(2, 16),
                  ranks_r=(1, 4, 16), seeds=120),
    # report-sized: 4 ratios x 2 s x 3 x x 4 r = 96 cells of 400 seeds, d = k = 64
    "full": Grid(d=64, k=64, sigma=1.0, ratios=(0.25, 0.5, 2.0, 4.0), xs=(1.0, 2.0, 4.0),
                 ranks_s=(2, 16), ranks_r=(1, 2, 8, 32), seeds=400),
}


def _check_cell(c):
    d, k, n, s, r = c["d"], c["k"], c["n"], c["s"], c["r"]
    if n >= d and not n > d + 1:
        raise InputError(f"falsification cell needs n > d + 1 or n < d - 1, got n = {n}, d = {d}")
    if n < d and not d > n + 1:
        raise InputError(f"falsification cell needs d > n + 1 (underdetermined), got d = {d}, n = {n}")
    if not 1 <= s <= min(d, k):
        raise InputError(f"true rank s = {s} must lie in [1, min(d, k) = {min(d, k)}]")
    if not 1 <= r <= min(d, k):
        raise InputError(f"LoRA rank r = {r} must lie in [1, min(d, k) = {min(d, k)}]")
    if not (c["x"] >= 0 and c["sigma"] > 0):
        raise InputError(f"need x >= 0 and sigma > 0, got x = {c['x']}, sigma = {c['sigma']}")


def shift_sv(c) -> float:
    """The common singular value that gives normalised spike strength ``x`` in this cell."""
    N = max(c["k"], c["d"]) if c["n"] >= c["d"] else max(c["k"], c["n"])
    return c["x"] * c["sigma"] * math.sqrt(N / c["n"])


def _haar(b, rows, cols, gen, device):
    import torch

    q, rr = torch.linalg.qr(randn((b, rows, cols), gen, device))
    sign = torch.sign(torch.diagonal(rr, dim1=-2, dim2=-1))
    sign[sign == 0] = 1
    return q * sign.unsqueeze(-2)


def paired_risks(c, seeds: int, gen, device="cpu", chunk: int = 200):
    """Per-seed ``(R_L, R_F)`` for one cell: fresh shift and data per seed, same data for both."""
    import torch

    _check_cell(c)
    d, k, n, s, r, sig = c["d"], c["k"], c["n"], c["s"], c["r"], c["sigma"]
    sv = shift_sv(c)
    lo, ff = [], []
    for start in range(0, seeds, chunk):
        b = min(chunk, seeds - start)
        U, V = _haar(b, k, s, gen, device), _haar(b, d, s, gen, device)
        Delta = sv * U @ V.transpose(-1, -2)
        X = randn((b, d, n), gen, device)
        R = Delta @ X + sig * randn((b, k, n), gen, device)
        for est, out in ((estimators.lora(X, R, r), lo), (estimators.fft(X, R), ff)):
            diff = est - Delta
            out.append((diff * diff).sum(dim=(-2, -1)))
    return torch.cat(lo), torch.cat(ff)


def _wilson(successes: int, total: int, z: float = Z95):
    if total == 0:
        return (math.nan, math.nan)
    p = successes / total
    den = 1 + z * z / total
    mid = (p + z * z / (2 * total)) / den
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def summarize_cell(c, risk_lora, risk_fft) -> dict:
    import torch

    diff = (risk_lora - risk_fft).double()
    m = diff.numel()
    mean = float(diff.mean())
    se = float(diff.std(unbiased=True)) / math.sqrt(m)
    # r >= min(k, n) (under) or r >= min(k, d) (over): LoRA and FFT coincide up to rounding
    tie = diff.abs() <= 1e-9 * torch.maximum(risk_lora, risk_fft).double()
    wins = int(((risk_fft < risk_lora) & ~tie).sum())
    ties = int(tie.sum())
    lo, hi = mean - Z95 * se, mean + Z95 * se
    if ties == m:
        verdict = "identical (r >= rank of the fit)"
    else:
        verdict = "FFT better" if lo > 0 else ("LoRA better" if hi < 0 else "no significant difference")
    sv = shift_sv(c)
    try:
        pred_l = sharp.lora_risk_sharp(c["d"], c["k"], c["n"], c["sigma"], [sv] * c["s"], c["r"])["risk"]
        pred_f = sharp.fft_risk(c["d"], c["k"], c["n"], c["sigma"], fnorm2=c["s"] * sv * sv)
    except InputError:
        pred_l = pred_f = math.nan
    frac_lo, frac_hi = _wilson(wins, m)
    return {**c, "regime": "over" if c["n"] >= c["d"] else "under", "sv": sv, "seeds": m,
            "mean_lora": float(risk_lora.double().mean()), "mean_fft": float(risk_fft.double().mean()),
            "mean_diff": mean, "se_diff": se, "ci_low": lo, "ci_high": hi,
            "frac_fft_better": wins / m, "frac_ties": ties / m, "frac_ci_low": frac_lo, "frac_ci_high": frac_hi,
            "verdict": verdict, "sharp_lora": pred_l, "fft_exact": pred_f,
            "predicted_winner": ("FFT" if pred_f < pred_l else "LoRA") if math.isfinite(pred_l) else "",
            "observed_winner": "FFT" if mean > 0 else "LoRA"}


def run(grid: Grid | str = "quick", seed: int = 0, device="cpu", progress=None) -> dict:
    """Run every cell; returns ``{"grid", "seed", "rows", "summary"}`` (JSON-able)."""
    import torch

    if isinstance(grid, str):
        if grid not in GRIDS:
            raise InputError(f"unknown falsification grid {grid!r}; known: {', '.join(GRIDS)}")
        grid = GRIDS[grid]
    if grid.seeds < 10:
        raise InputError(f"at least 10 seeds per cell are needed for an interval, got {grid.seeds}")
    dev = resolve(device) if isinstance(device, str) else device
    rows = []
    for i, c in enumerate(grid.cells()):
        if progress:
            progress(f"falsification cell {i + 1}: n={c['n']} s={c['s']} x={c['x']} r={c['r']}")
        from zlib import crc32

        gen = generator((crc32(repr(sorted(c.items())).encode()) + 7919 * seed) & 0x7FFFFFFF)
        from .device import single_thread

        with torch.no_grad(), single_thread(dev):     # small batched SVDs: 1 thread is faster
            rl, rf = paired_risks(c, grid.seeds, gen, dev)
        rows.append(summarize_cell(c, rl.cpu(), rf.cpu()))
    return {"grid": {k: v for k, v in grid.__dict__.items()}, "seed": seed, "rows": rows,
            "summary": summarize(rows)}


def summarize(rows) -> dict:
    """Counts of cells by verdict, where FFT wins, and how often the sharp theory called it."""
    by = {v: sum(1 for r in rows if r["verdict"] == v)
          for v in ("FFT better", "LoRA better", "no significant difference",
                    "identical (r >= rank of the fit)")}
    fft_cells = [r for r in rows if r["verdict"] == "FFT better"]
    called = [r for r in rows if r["predicted_winner"] and r["verdict"] in ("FFT better", "LoRA better")]
    agree = sum(1 for r in called if r["predicted_winner"] == r["observed_winner"])
    return {"cells": len(rows), "by_verdict": by,
            "fft_better_cells": [{key: r[key] for key in ("regime", "n", "s", "x", "r", "mean_diff",
                                                          "frac_fft_better")} for r in fft_cells],
            "fft_better_with_r_ge_s": sum(1 for r in fft_cells if r["r"] >= r["s"]),
            "sharp_prediction_agrees": agree, "sharp_prediction_cells": len(called)}


CSV_FIELDS = ("regime", "d", "k", "n", "s", "x", "sv", "r", "sigma", "seeds", "mean_lora", "mean_fft",
              "mean_diff", "se_diff", "ci_low", "ci_high", "frac_fft_better", "frac_ties", "frac_ci_low",
              "frac_ci_high", "verdict", "sharp_lora", "fft_exact", "predicted_winner")


def to_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def write(result: dict, out_dir, stem: str = "falsification") -> tuple:
    """Write ``<stem>.json`` and ``<stem>.csv`` into ``out_dir``; returns the two paths."""
    from pathlib import Path

    from .io import write_json_atomic, write_text_atomic

    out = Path(out_dir)
    pj, pc = out / f"{stem}.json", out / f"{stem}.csv"
    write_json_atomic(pj, result)
    write_text_atomic(pc, to_csv(result["rows"]))
    return pj, pc
