"""Singular-value spectra of weight differences ``dW = W_tuned - W_base`` (referee, minor 2).

Per layer: ``||dW||_F``, the top singular value, the **stable rank** ``||dW||_F^2 / ||dW||_2^2``,
the **entropy effective rank** ``exp(-sum p_i log p_i)`` with ``p_i = s_i / sum s_j`` (Roy &
Vetterli 2007), the smallest ranks capturing 90 % and 99 % of the energy ``||dW||_F^2``, the
fraction of the energy captured at chosen LoRA ranks, and two rank estimates from the theory:

* **unknown noise level** -- the optimal hard threshold of Gavish & Donoho (2014):
  ``tau = omega(beta) * median(s_i)`` with ``beta = min(m, N) / max(m, N)``,
  ``omega(beta) = lambda*(beta) / sqrt(mu_beta)`` and ``mu_beta`` the median of the
  Marchenko-Pastur law of ratio ``beta`` (computed here at 30 digits, not the cubic fit);
* **a given noise level** ``s`` per entry -- the keep threshold of THEORY 4.3: keeping a spike
  pays iff its signal ``x`` exceeds ``x*``, ``x*^2 = [(1 + beta) + sqrt(beta^2 + 14 beta + 1)]/2``,
  i.e. iff its observed singular value exceeds ``y* sqrt(N) s`` with
  ``y*^2 = x*^2 + 1 + beta + beta / x*^2``.  This ``y*`` *is* Gavish-Donoho's known-noise
  threshold ``lambda*(beta)`` (``y*^2 = 2(beta + 1) + 8 beta / ((beta + 1) + sqrt(beta^2 + 14 beta + 1))``,
  an identity the tests prove in SymPy), so the two estimates differ exactly when the median
  estimate of the noise, ``median(s_i) / sqrt(N mu_beta)``, differs from the given level -- they
  are "named as disagreeing" then.

Both are asymptotic rules for "low rank plus i.i.d. noise", not facts about a checkpoint; the
report says so.

**Exact or randomized.**  A layer with ``min(m, N) <= exact_max`` gets every singular value
(LAPACK, float64).  A larger one gets the top ``q`` by ``torch.svd_lowrank`` (``niter`` power
iterations, a fixed seed): the computed values ``t_i`` are those of ``Q^T dW`` for an orthonormal
``Q``, so they are *lower* bounds, and with the uncaptured energy
``e = sqrt(||dW||_F^2 - sum t_i^2)`` (exact, as ``||dW||_F`` is) Weyl's inequality gives the
rigorous bracket ``t_i <= s_i <= t_i + e``.  The energy ranks found from the ``t_i`` are then
upper bounds (Ky Fan), and the quantities that need the whole spectrum (entropy rank, median,
Gavish-Donoho) are reported as unavailable, never guessed.  A LoRA adapter ``dW = c B A`` is
exact at any size: the non-zero singular values are those of ``c R_B R_A^T`` (QR of ``B`` and
``A^T``), an ``r x r`` problem; ``dW`` is never formed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath as mp

from .errors import InputError

DEFAULT_RANKS = (1, 2, 4, 8, 16, 32, 64)
SAVED_SV = 512              # singular values per layer kept for figures and CSV


@dataclass(frozen=True)
class SpectraOptions:
    noise: float | None = None        # noise level per entry (the keep threshold), or None
    ranks: tuple = DEFAULT_RANKS      # LoRA ranks at which the captured energy is reported
    exact_max: int = 4096             # exact SVD when min(shape) <= this
    q: int = 256                      # randomized top-q otherwise
    niter: int = 4                    # power iterations of the randomized SVD
    seed: int = 0                     # the randomized SVD's sketch
    device: str = "cpu"

    def __post_init__(self):
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise > 0):
            raise InputError(f"--noise must be a positive number, got {self.noise}")
        if not self.ranks or any(int(r) != r or r < 1 for r in self.ranks):
            raise InputError(f"--ranks must be positive integers, got {list(self.ranks)}")
        if self.exact_max < 1 or self.q < 1 or self.niter < 0:
            raise InputError("--exact-max and --q must be >= 1, --niter >= 0")


# ------------------------------------------------------------------------ thresholds
def lambda_star(beta: float) -> float:
    """Gavish-Donoho's known-noise optimal threshold (in units of sqrt(N) * noise)."""
    return math.sqrt(2 * (beta + 1) + 8 * beta / ((beta + 1) + math.sqrt(beta * beta + 14 * beta + 1)))


def xstar2(beta: float) -> float:
    """THEORY 4.3: keeping a detected spike pays iff x^2 > x*^2."""
    return ((1 + beta) + math.sqrt(beta * beta + 14 * beta + 1)) / 2


def keep_observed(beta: float) -> float:
    """The observed singular value of a spike at x = x* (units of sqrt(N) * noise)."""
    t = xstar2(beta)
    return math.sqrt(t + 1 + beta + beta / t)


@lru_cache(maxsize=256)
def mp_median(beta: float) -> float:
    """Median of the Marchenko-Pastur law with ratio ``beta`` in (0, 1] (unit variance)."""
    if not 0 < beta <= 1:
        raise ValueError(f"beta must lie in (0, 1], got {beta}")
    with mp.workdps(30):
        b = mp.mpf(beta)
        lo, hi = (1 - mp.sqrt(b)) ** 2, (1 + mp.sqrt(b)) ** 2

        def density(x):
            return mp.sqrt(max(mp.mpf(0), (hi - x) * (x - lo))) / (2 * mp.pi * b * x)

        def cdf(t):
            return mp.quad(density, [lo, t])

        # bisection on the CDF (monotone), then a few secant steps
        a, c = lo, hi
        for _ in range(60):
            m = (a + c) / 2
            if cdf(m) < mp.mpf(1) / 2:
                a = m
            else:
                c = m
        return float((a + c) / 2)


def omega(beta: float) -> float:
    return lambda_star(beta) / math.sqrt(mp_median(beta))


# ------------------------------------------------------------------------- spectra
def _svd_exact(dw, device):
    import torch

    return torch.linalg.svdvals(dw.to(device)).cpu()


def _svd_adapter(b, a, scale, device):
    """Non-zero singular values of ``scale * B @ A`` from an r x r core."""
    import torch

    qb, rb = torch.linalg.qr(b.to(device))
    qa, ra = torch.linalg.qr(a.to(device).T)
    return torch.linalg.svdvals(scale * rb @ ra.T).cpu()


def _svd_randomized(dw, q, niter, seed, device):
    import torch

    q = min(q, min(dw.shape))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, s, _ = torch.svd_lowrank(dw.to(device), q=q, niter=niter)
    return s.cpu()


def _energy_rank(sv2_cum, fro2, frac):
    for i, c in enumerate(sv2_cum, start=1):
        if c >= frac * fro2 * (1 - 1e-12):
            return i
    return None


@dataclass
class LayerSpectrum:
    name: str
    shape: tuple
    kind: str                 # "difference" | "adapter"
    method: str               # "exact" | "randomized" | "adapter-exact"
    fro: float
    sigma_max: float
    stable_rank: float
    effective_rank: float | None
    rank90: int | None
    rank99: int | None
    captured: dict
    beta: float
    gd_rank: int | None
    gd_threshold: float | None
    noise_estimate: float | None
    keep_rank: int | None
    keep_threshold: float | None
    disagree: bool | None
    error_bound: float        # 0 for exact; the Weyl bracket width for randomized
    computed: int             # number of singular values computed
    sv: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def row(self) -> dict:
        out = {k: getattr(self, k) for k in (
            "name", "kind", "method", "fro", "sigma_max", "stable_rank", "effective_rank",
            "rank90", "rank99", "beta", "gd_rank", "gd_threshold", "noise_estimate", "keep_rank",
            "keep_threshold", "disagree", "error_bound", "computed")}
        out["rows"], out["cols"] = self.shape
        for r, v in self.captured.items():
            out[f"captured_r{r}"] = v
        return out

    def as_dict(self) -> dict:
        return {**self.row(), "shape": list(self.shape), "captured": self.captured,
                "sv": self.sv, "notes": self.notes}


def analyse(name, shape, kind, data, opts: SpectraOptions) -> LayerSpectrum:
    """One layer.  ``data`` is a 2-D float64 tensor, or ``(B, A, scaling)`` for an adapter."""
    import torch

    m, n = int(shape[0]), int(shape[1])
    full = min(m, n)
    big = max(m, n)
    beta = full / big
    notes = []
    if kind == "adapter":
        b, a, scale = data
        sv = _svd_adapter(b, a, scale, opts.device)
        method, err = "adapter-exact", 0.0
        fro2 = float((sv ** 2).sum())
        # the remaining full - r singular values are exactly zero
        sv_all = torch.cat([sv, torch.zeros(max(0, full - sv.numel()), dtype=sv.dtype)])
    else:
        fro2 = float((data ** 2).sum())
        if full <= opts.exact_max:
            sv_all = _svd_exact(data, opts.device)
            method, err = "exact", 0.0
        else:
            sv_all = _svd_randomized(data, opts.q, opts.niter, opts.seed, opts.device)
            method = "randomized"
            err = math.sqrt(max(0.0, fro2 - float((sv_all ** 2).sum())))
            notes.append(f"top {sv_all.numel()} of {full} singular values by randomized SVD; each "
                         f"true value lies in [t_i, t_i + {err:.3g}] (Weyl); energy ranks are upper "
                         "bounds; entropy rank and Gavish-Donoho need the whole spectrum")
    sv_all = torch.sort(sv_all, descending=True).values.to(torch.float64)
    fro = math.sqrt(fro2)
    smax = float(sv_all[0]) if sv_all.numel() else 0.0
    complete = method != "randomized"
    if fro2 == 0.0:
        notes.append("dW = 0: nothing changed in this layer")
        return LayerSpectrum(name, (m, n), kind, method, 0.0, 0.0, 0.0, None, 0, 0,
                             {r: None for r in opts.ranks}, beta, 0 if complete else None, None,
                             None, 0 if opts.noise else None, None, None, err, int(sv_all.numel()),
                             [], notes)
    sv2 = sv_all ** 2
    cum = torch.cumsum(sv2, 0).tolist()
    rank90, rank99 = _energy_rank(cum, fro2, 0.90), _energy_rank(cum, fro2, 0.99)
    captured = {int(r): (min(1.0, cum[min(r, len(cum)) - 1] / fro2) if r <= len(cum) or complete
                         else None) for r in opts.ranks}
    stable = fro2 / smax ** 2
    eff = gd_rank = gd_thr = noise_est = None
    if complete:
        p = sv_all[sv_all > 0] / sv_all.sum()
        eff = float(torch.exp(-(p * torch.log(p)).sum()))
        med = float(torch.median(sv_all)) if sv_all.numel() % 2 else float(
            torch.sort(sv_all).values[sv_all.numel() // 2 - 1:sv_all.numel() // 2 + 1].mean())
        gd_thr = omega(beta) * med
        gd_rank = int((sv_all > gd_thr).sum())
        noise_est = med / math.sqrt(big * mp_median(beta))
        if med == 0:
            notes.append("median singular value is 0 (dW has rank below min(m, N)/2): the "
                         "Gavish-Donoho noise estimate is 0 and every non-zero value is kept")
    keep_rank = keep_thr = None
    if opts.noise is not None:
        keep_thr = keep_observed(beta) * math.sqrt(big) * opts.noise
        keep_rank = int((sv_all > keep_thr).sum())
        if not complete and int((sv_all + err > keep_thr).sum()) != keep_rank:
            notes.append(f"keep-threshold rank is a lower bound: between {keep_rank} and "
                         f"{int((sv_all + err > keep_thr).sum())} within the randomized bracket")
    disagree = (gd_rank != keep_rank) if (gd_rank is not None and keep_rank is not None) else None
    return LayerSpectrum(name, (m, n), kind, method, fro, smax, stable, eff, rank90, rank99,
                         captured, beta, gd_rank, gd_thr, noise_est, keep_rank, keep_thr,
                         disagree, err, int(sv_all.numel()), sv_all[:SAVED_SV].tolist(), notes)


def analyse_pairs(pairs, opts: SpectraOptions, progress=None) -> list[LayerSpectrum]:
    """Every pair, loaded and analysed one at a time (memory: the largest layer)."""
    out = []
    for i, p in enumerate(pairs, start=1):
        data = p.load()
        out.append(analyse(p.name, p.shape, p.kind, data, opts))
        del data
        if progress:
            progress(i, len(pairs), p.name, False)
    return out


def summarize(layers: list[LayerSpectrum], skipped: dict, opts: SpectraOptions) -> dict:
    import statistics

    def med(key):
        vals = [getattr(x, key) for x in layers if getattr(x, key) is not None]
        return statistics.median(vals) if vals else None

    nz = [x for x in layers if x.fro > 0]
    total = sum(x.fro ** 2 for x in nz)
    captured = {}
    for r in opts.ranks:
        vals = [(x.captured.get(int(r)), x.fro ** 2) for x in nz]
        captured[int(r)] = (sum(c * w for c, w in vals) / total
                            if total and all(c is not None for c, _ in vals) else None)
    return {
        "layers": len(layers), "zero_layers": len(layers) - len(nz), "skipped": skipped,
        "methods": {m: sum(x.method == m for x in layers) for m in sorted({x.method for x in layers})},
        "median_stable_rank": med("stable_rank"), "median_effective_rank": med("effective_rank"),
        "median_rank90": med("rank90"), "median_rank99": med("rank99"),
        "median_gd_rank": med("gd_rank"), "max_gd_rank": max(
            (x.gd_rank for x in layers if x.gd_rank is not None), default=None),
        "median_keep_rank": med("keep_rank"),
        "disagreements": [x.name for x in layers if x.disagree],
        "captured_energy": captured, "noise": opts.noise,
    }
