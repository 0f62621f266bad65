"""Sensitivity sweep: LoRA against full fine-tuning as the shift's rank, tail, the sample size,
the SNR and the covariance's misalignment vary (referee's second major comment; issue 6).

Every *point* fixes a shift spectrum, ``n``, the SNR and the covariance; it draws its instance
(Haar singular vectors / eigenbasis) and ``trials`` data sets from a seed derived from the master
seed and the point's parameters (never from its position in the sweep, so the same seed gives the
same numbers in any order, after any interruption).  On the same data sets it fits FFT and LoRA
at *every* rank ``r = 1..r_max`` (paired: the differences between ranks and against FFT have
small standard errors) and records, per rank,

* simulated excess risk of LoRA and FFT (mean, SE), the paired difference LoRA - FFT (mean, SE),
  the paired gap to the simulated best rank (mean, SE);
* the sharp prediction (``numeric.sharp``: an *asymptotic approximation*; FFT's is exact) and the
  ratios LoRA/FFT, simulated and predicted;

and, per point, the keep-threshold rank (``sharp.optimal_rank``) against the simulated argmin,
with the SE-aware verdict: ``agree`` (same rank), ``tie`` (different, but the simulated risks at
the two ranks differ by less than 4 paired SE: the simulation cannot tell them apart) or
``disagree``.

Definitions (stated once; used in files, figures and report):

* ``snr = ||Delta* Sigma^{1/2}||_F^2 / (k sigma^2)``: the shift is rescaled to it at each point.
* shift families: ``exact`` (``s`` equal singular values, the rest 0), ``power``
  (``sigma_i ~ i^-alpha``) and ``exp`` (``sigma_i ~ exp(-alpha (i - 1))``), ``i = 1..min(k, d)``.
* effective ranks of the *weighted* shift ``B = Delta* Sigma^{1/2}`` (what the risk sees):
  the **stable rank** ``||B||_F^2 / ||B||_op^2`` (used on the axes) and the **entropy effective
  rank** ``exp(-sum p_i log p_i)``, ``p_i = sigma_i(B) / sum_j sigma_j(B)`` (Roy & Vetterli 2007).
* misalignment axis: with ``v_1..v_d`` the right singular vectors of ``Delta*`` and a block size
  ``h``, the covariance has eigenvalue ``cov_high`` on ``q_i = cos(theta) v_i + sin(theta) v_{h+i}``
  (``i <= h``) and ``cov_low`` elsewhere.  ``theta = 0``: the high-variance block *is* the shift's
  top-``h`` row space (aligned); ``theta = 90``: it is orthogonal to it (aligned again, in the
  commuting sense, but the shift lives in low-variance directions).  The misalignment
  ``eps = ||Q_perp Sigma Q||_op`` (THEORY 5, ``Q`` = projector on the top-``h`` row space) equals
  ``|cov_high - cov_low| sin(theta) cos(theta)``; it is computed numerically and reported.

Reproducibility contract: a point's numbers are a function of the master seed, the point, the
run settings in its key (``run_settings``), the code version and the device type; for a fixed
device and thread count (``run.threads``, default 1) they are **bitwise** the same on every run
and for **every** ``run.batch``.  The data are drawn in chunks of ``CHUNK`` data sets, each from
its own generator, and every kernel call of a point works on one chunk, with shapes that depend
on the point only -- so no batched BLAS/LAPACK kernel ever sees the batch size (kernels may
block a batch of 50 differently from two of 25, which changed the last bits before).  Across
thread counts or devices the numbers agree to float64 rounding (different reduction orders),
not bitwise.

Results are appended, one JSON line per finished point, to ``points.jsonl`` in the output folder
(written with a single ``write`` and ``fsync``; a torn last line from a crash is cut off on the
next run); each line is keyed by a hash of the point's parameters, the run settings and the code
version (the source of the functions that compute a point and of ``numeric.estimators``,
``numeric.sharp``, ``numeric.instances``, ``numeric.device``, ``numeric.stats``,
``numeric.samplers``), and a rerun skips keys already present.

The risks of a chunk are drawn by the exact fast samplers (``numeric.samplers``: Bartlett factor
and whitened noise over, the shift's row space and a Wishart block under ``Sigma = I``); the
underdetermined points with ``Sigma != I`` (misalignment axis) simulate raw data
(``rank_risks``).
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import sensitivity_config as sconf
from .errors import InputError
from .stats import Z_PASS, summarize

JOURNAL = "points.jsonl"
CHUNK = 25          # trials per independently seeded draw (batches are whole chunks)
# what a point's numbers depend on: these modules whole, and this module's point functions
# (editing the summary or the figures does not invalidate finished points)
CODE_MODULES = ("numeric.estimators", "numeric.sharp", "numeric.instances", "numeric.device",
                "numeric.stats", "numeric.samplers")
POINT_FUNCTIONS = ("CHUNK", "point_seed", "profile", "effective_ranks", "_haar",
                   "misalignment_eps", "make_instance", "rank_risks", "_chunk_seed", "_chunk_risks",
                   "_paired", "_predict", "compute_point",
                   "_agreement")
AXES = ("exact", "tail", "snr", "misalignment")
RANK_RULES = ("fixed", "matched", "predicted", "best")


# ------------------------------------------------------------------------------------ keys
def code_version() -> str:
    h = hashlib.sha256()
    for name in CODE_MODULES:
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    for name in POINT_FUNCTIONS:
        obj = globals()[name]
        h.update((inspect.getsource(obj) if callable(obj) else f"{name}={obj!r}").encode())
    return h.hexdigest()[:16]


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def point_seed(master: int, point: dict) -> int:
    digest = hashlib.sha256(_canon({"seed": master, "point": point}).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def point_key(point: dict, run: dict, predictor_name: str, version: str) -> str:
    blob = _canon({"point": point, "run": run, "predictor": predictor_name, "code": version})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ------------------------------------------------------------------------------------ grid
def _shape_exact(s):
    return {"family": "exact", "s": int(s)}


def _shape_tail(family, alpha):
    return {"family": family, "alpha": float(alpha)}


def _point(cfg, shape, ratio, snr=None, cov=None) -> dict:
    b = cfg["base"]
    d = b["d"]
    n = sconf.n_of(d, ratio)
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


# ------------------------------------------------------------------------------- instances
def profile(shape: dict, m: int) -> np.ndarray:
    """Unnormalised singular-value profile of length ``m = min(k, d)`` (descending)."""
    i = np.arange(1, m + 1, dtype=float)
    if shape["family"] == "exact":
        return (i <= shape["s"]).astype(float)
    if shape["family"] == "power":
        return i ** (-shape["alpha"])
    if shape["family"] == "exp":
        return np.exp(-shape["alpha"] * (i - 1))
    raise InputError(f"unknown shift family {shape['family']!r}")


def effective_ranks(sv) -> dict:
    """Stable rank ``sum s^2 / max s^2`` and entropy effective rank (see module docstring)."""
    sv = np.asarray([v for v in sv if v > 0], dtype=float)
    if sv.size == 0:
        return {"stable_rank": 0.0, "entropy_rank": 0.0}
    p = sv / sv.sum()
    return {"stable_rank": float((sv ** 2).sum() / sv.max() ** 2),
            "entropy_rank": float(np.exp(-(p * np.log(p)).sum()))}


def _haar(rng, m):
    q, r = np.linalg.qr(rng.standard_normal((m, m)))
    return q * np.sign(np.diag(r))


def misalignment_eps(delta: np.ndarray, sigma_m: np.ndarray, h: int) -> float:
    """``||Q_perp Sigma Q||_op`` with ``Q`` the projector on the top-``h`` row space of Delta*."""
    _, _, vt = np.linalg.svd(delta)
    v = vt[:h].T
    q = v @ v.T
    return float(np.linalg.norm((np.eye(len(q)) - q) @ sigma_m @ q, 2))


def make_instance(point: dict, seed: int) -> dict:
    """The fixed part of a point: ``Delta*`` (``k x d``), ``Sigma``, ``Sigma^{1/2}`` (numpy)."""
    d, k = point["d"], point["k"]
    m = min(d, k)
    rng = np.random.default_rng([seed, 6])
    u, v = _haar(rng, k), _haar(rng, d)
    prof = profile(point["shape"], m)
    cov = point["cov"]
    if cov["kind"] == "identity":
        sig, half = np.eye(d), np.eye(d)
    else:
        h, th = cov["head"], math.radians(cov["theta_deg"])
        c, s = math.cos(th), math.sin(th)
        q = v.copy()
        q[:, :h] = c * v[:, :h] + s * v[:, h:2 * h]
        q[:, h:2 * h] = -s * v[:, :h] + c * v[:, h:2 * h]
        lam = np.full(d, float(cov["low"]))
        lam[:h] = cov["high"]
        sig = (q * lam) @ q.T
        half = (q * np.sqrt(lam)) @ q.T
    delta0 = (u[:, :m] * prof) @ v[:, :m].T
    energy = float(np.sum((delta0 @ half) ** 2))
    scale = math.sqrt(point["snr"] * k * point["sigma"] ** 2 / energy)
    delta = delta0 * scale
    weighted = np.linalg.svd(delta @ half, compute_uv=False)
    out = {"Delta": delta, "Sigma": sig, "SigmaHalf": half, "sv_weighted": weighted,
           "sv_shift": prof * scale, "isotropic": cov["kind"] == "identity"}
    out["eps"] = (misalignment_eps(delta, sig, cov["head"]) if cov["kind"] != "identity" else 0.0)
    return out


# ------------------------------------------------------------------------------ simulation
def rank_risks(X, R, Delta, SigmaHalf):
    """Excess risk of FFT ``(B,)`` and of LoRA at every rank ``r = 1..q`` ``(B, q)``.

    One ``k x k`` eigendecomposition per data set instead of one SVD per rank.  With ``F`` the
    FFT estimate (``numeric.estimators.fft``), LoRA's fit at rank ``r`` is ``U_r U_r^T F`` where
    ``U_r`` holds the top-``r`` eigenvectors of ``(F X)(F X)^T``:

    * over: ``F X = R X^T S^{-1} X`` and ``F S F^T = M M^T`` with ``M = R X^T S^{-1/2}``, so
      ``P_r(M) S^{-1/2} = U_r U_r^T M S^{-1/2} = U_r U_r^T F`` (``estimators.lora_over``);
    * under: ``F X = R X^+ X = R``, so ``P_r(R) X^+ = U_r U_r^T R X^+ = U_r U_r^T F``
      (``estimators.lora_under``).

    With ``A = F Sigma^{1/2}`` and ``B = Delta* Sigma^{1/2}``, ``||U_r U_r^T A - B||_F^2 = ||B||^2 +
    sum_{i<=r} (||u_i^T A||^2 - 2 u_i^T B A^T u_i)``: a cumulative sum over ranks.
    ``tests/numeric/test_sensitivity.py`` checks it against ``estimators.lora`` at every rank.
    (Batched CPU SVDs are an order of magnitude slower than this ``k x k`` ``eigh``.)
    """
    import torch

    from . import estimators as est

    tr = lambda a: a.transpose(-1, -2)  # noqa: E731
    F = est.fft(X, R)
    fft = est.excess_risk(F, Delta, SigmaHalf)
    FX = F @ X
    _, u = torch.linalg.eigh(FX @ tr(FX))
    u = u.flip(-1)                                      # descending eigenvalues
    A = F @ SigmaHalf
    B = Delta @ SigmaHalf
    Y = tr(u) @ A                                       # rows u_i^T A, (B, k, d)
    cross = ((tr(u) @ B) * Y).sum(-1)                   # u_i^T B A^T u_i, (B, k)
    terms = (Y * Y).sum(-1) - 2 * cross
    lora = (B * B).sum() + torch.cumsum(terms, dim=-1)
    return fft, lora


def _chunk_seed(seed: int, i: int) -> int:
    """Seed of chunk ``i`` of a point (independent of the batch and of the other chunks)."""
    return (seed * 1000003 + i) & 0x7FFFFFFF


def _chunk_risks(tinst, size, gen, device):
    """FFT and all-rank LoRA risks of one chunk of ``size`` data sets drawn from ``gen``: from
    the exact fast sampler's statistics (``numeric.samplers``: overdetermined, or
    underdetermined with ``Sigma = I``), else from raw data (``rank_risks``)."""
    from . import samplers
    from .estimators import sample_data

    if tinst["fast"]:
        if "setup" not in tinst:                       # once per point
            tinst["setup"] = samplers.fast_setup(tinst, tinst["regime"])
        setup = tinst["setup"]
        return samplers.risks(setup, samplers.draw_stats(setup, size, gen, device))
    X, R = sample_data(tinst, size, gen, device)
    return rank_risks(X, R, tinst["Delta"], tinst["SigmaHalf"])


def _paired(a, b=None):
    x = a if b is None else a - b
    sm = summarize(x)
    return sm.mean, sm.se


def _predict(predictor, point, inst, q):
    """Sharp predictions per rank (None where the theory does not apply: Sigma != I under)."""
    d, k, n, sig = point["d"], point["k"], point["n"], point["sigma"]
    over = n >= d
    if not over and not inst["isotropic"]:
        return None
    sv = [float(v) for v in inst["sv_weighted"]]
    fnorm2 = float(np.sum(inst["sv_weighted"] ** 2))
    fft = float(predictor.fft_risk(d, k, n, sig, fnorm2=None if over else fnorm2))
    rows = []
    for r in range(1, q + 1):
        res = predictor.lora_risk_sharp(d, k, n, sig, sv, r)
        rows.append({"risk": float(res["risk"]), "bias": float(res["bias"]),
                     "variance": float(res["variance"]), "kept_spikes": int(res["kept_spikes"]),
                     "kept_noise": int(res["kept_noise"])})
    r_rule = int(predictor.optimal_rank(d, k, n, sig, sv))
    return {"fft": fft, "lora": rows, "r_rule_raw": r_rule}


def compute_point(point: dict, seed: int, run: dict, device, predictor) -> dict:
    """Simulate one point and compare with the prediction (the JSON-able record's body)."""
    import torch

    from .device import generator

    t0 = time.perf_counter()
    d, k, n = point["d"], point["k"], point["n"]
    inst = make_instance(point, seed)
    q_cap = min(d, k, n)
    q = min(point["r_max"] or q_cap, q_cap)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    tinst = {"d": d, "k": k, "n": n, "sigma": point["sigma"], "Delta": t(inst["Delta"]),
             "SigmaHalf": t(inst["SigmaHalf"]), "regime": "over" if n >= d else "under",
             "fast": n >= d or inst["isotropic"]}
    # Reproducibility contract (module docstring): every chunk of CHUNK data sets is drawn from
    # its own generator AND computed by its own kernel calls, whose shapes depend on the point
    # only.  ``run.batch`` groups chunks between transfers off the device; it never changes the
    # arithmetic, so the numbers are bitwise the same for every batch (batched BLAS/LAPACK
    # kernels may block differently for different batch shapes: computing a batch of 50 at once
    # agreed with two batches of 25 only to the last bits).
    trials = run["trials"]
    chunks = [(i, min(CHUNK, trials - i * CHUNK)) for i in range(-(-trials // CHUNK))]
    per = max(1, run["batch"] // CHUNK)
    ffts, loras = [], []
    for g0 in range(0, len(chunks), per):
        fs, ls = [], []
        for i, size in chunks[g0:g0 + per]:
            f, lo = _chunk_risks(tinst, size, generator(_chunk_seed(seed, i)), device)
            fs.append(f)
            ls.append(lo[:, :q])
        ffts.append(torch.cat(fs).cpu())
        loras.append(torch.cat(ls).cpu())
    fft = torch.cat(ffts)
    lora = torch.cat(loras)
    means = lora.mean(0)
    r_sim = int(torch.argmin(means)) + 1
    pred = _predict(point_predictor(predictor), point, inst, q)
    f_mean, f_se = _paired(fft)
    tol = run["pred_rel_tol"]
    ranks = []
    for j in range(q):
        m, se = _paired(lora[:, j])
        dm, dse = _paired(lora[:, j], fft)
        gm, gse = _paired(lora[:, j], lora[:, r_sim - 1])
        row = {"r": j + 1, "lora_mean": m, "lora_se": se, "diff_mean": dm, "diff_se": dse,
               "gap_best_mean": gm, "gap_best_se": gse, "ratio_sim": m / f_mean}
        if pred is not None:
            p = pred["lora"][j]
            row.update(pred=p["risk"], pred_bias=p["bias"], pred_variance=p["variance"],
                       kept_spikes=p["kept_spikes"], kept_noise=p["kept_noise"],
                       ratio_pred=p["risk"] / pred["fft"])
            row.update(_agreement(m, se, p["risk"], tol))
        ranks.append(row)
    rec = {"n": n, "regime": "over" if n >= d else "under", "q": q,
           "sv_weighted": [float(v) for v in inst["sv_weighted"]],
           "eps": inst["eps"], **effective_ranks(inst["sv_weighted"]),
           "risk_rank0": float(np.sum(inst["sv_weighted"] ** 2)),
           "fft_mean": f_mean, "fft_se": f_se, "ranks": ranks, "r_sim": r_sim}
    if pred is not None:
        rec["fft_pred"] = pred["fft"]
        rec.update(_agreement(f_mean, f_se, pred["fft"], tol, prefix="fft_"))
        r_rule = min(max(1, pred["r_rule_raw"]), q)
        r_curve = int(np.argmin([p["risk"] for p in pred["lora"]])) + 1
        g = ranks[r_rule - 1]
        verdict = ("agree" if r_rule == r_sim else
                   "tie" if g["gap_best_mean"] <= Z_PASS * g["gap_best_se"] else "disagree")
        rec.update(r_rule_raw=pred["r_rule_raw"], r_rule=r_rule, r_curve=r_curve,
                   rank_verdict=verdict, rank_gap_mean=g["gap_best_mean"],
                   rank_gap_se=g["gap_best_se"],
                   rank_gap_rel=g["gap_best_mean"] / ranks[r_sim - 1]["lora_mean"])
    else:
        rec.update(fft_pred=None, r_rule=None, r_rule_raw=None, r_curve=None,
                   rank_verdict="no prediction")
    rec["seconds"] = time.perf_counter() - t0
    return rec


def _agreement(sim, se, pred, tol, prefix=""):
    rel = (sim - pred) / pred if pred else math.inf
    z = (sim - pred) / se if se > 0 else (0.0 if sim == pred else math.inf)
    return {prefix + "rel_err": rel, prefix + "z": z,
            prefix + "agree": bool(abs(rel) <= tol or abs(z) <= Z_PASS)}


# ----------------------------------------------------------------------------- predictors
def point_predictor(predictor):
    if predictor is None:
        from . import sharp

        return sharp
    return predictor


def predictor_name(predictor) -> str:
    p = point_predictor(predictor)
    return getattr(p, "NAME", None) or getattr(p, "__name__", type(p).__name__)


# -------------------------------------------------------------------------------- journal
def _repair(path: Path) -> int:
    """Cut a torn last line (a crash mid-write); returns the bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data) - keep


def load_journal(path) -> tuple[dict, int]:
    """``{key: record}`` of the complete lines, and the number of unreadable lines skipped.

    A line that is not UTF-8 JSON with a ``key`` (a corrupt or foreign file) is skipped and
    counted, never a crash; a journal with no readable line at all is set aside as
    ``points.jsonl.corrupt-N`` (kept for inspection) and the sweep starts over.
    """
    path = Path(path)
    out, bad = {}, 0
    if not path.exists():
        return out, 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
            out[rec["key"]] = rec
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            bad += 1
    if bad and not out:
        i = 1
        while path.with_name(f"{path.name}.corrupt-{i}").exists():
            i += 1
        aside = path.with_name(f"{path.name}.corrupt-{i}")
        os.rename(path, aside)
        print(f"lora-audit: {path} is not a journal of this tool ({bad} unreadable lines); set "
              f"aside as {aside.name}, starting over", file=sys.stderr)
    return out, bad


def append_record(path, record: dict) -> None:
    """One line, one ``write``, then ``fsync``: a finished point is either fully there or absent."""
    line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- sweep
def run_settings(cfg: dict) -> dict:
    """The settings that change a point's numbers (part of its key)."""
    r = cfg["run"]
    return {"seed": r["seed"], "trials": r["trials"], "pred_rel_tol": r["pred_rel_tol"]}


def run_sweep(cfg: dict, out_dir, device="cpu", *, fresh=False, progress=None, predictor=None,
              compute=None, client=None) -> dict:
    """Run (or resume) the sweep; returns ``{"entries", "records", "computed", "reused", ...}``.

    ``progress(done, total, label, reused)`` is called after each point; an exception raised in
    it or in a point (``KeyboardInterrupt`` included) stops the sweep with every finished point
    already on disk.  ``batch`` and ``threads`` are not in the key: ``batch`` never changes
    the numbers (see the reproducibility contract in the module docstring), ``threads`` only
    to float64 rounding.
    ``compute`` replaces ``compute_point`` (tests use it to crash a point).

    ``client`` (a ``distributed.Client``, see ``numeric.distributed``) computes the points that
    are not in the journal on Dask workers instead of in this process; the journal stays here
    (a point is appended when it arrives), so an interrupted distributed sweep resumes like a
    serial one, and the numbers are the serial run's: each point has its own seed and each
    worker runs with ``run.threads`` torch threads.
    """
    import torch

    compute = compute or compute_point
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = out_dir / JOURNAL
    if fresh and journal.exists():
        journal.unlink()
    torn = _repair(journal)
    done, bad = load_journal(journal)
    device = torch.device(device)
    version = code_version()
    pname = predictor_name(predictor)
    settings = run_settings(cfg)
    run = {**settings, "batch": cfg["run"]["batch"]}
    entries = build_grid(cfg)
    for e in entries:
        e["key"] = point_key(e["point"], settings, pname, version)
        e["seed"] = point_seed(settings["seed"], e["point"])
    unique = list(dict.fromkeys(e["key"] for e in entries))
    by_key = {e["key"]: e for e in reversed(entries)}
    records, computed, reused = {}, 0, 0
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["run"]["threads"])
    counts = {"computed": 0, "reused": 0}
    try:
        if client is None:
            _loop(unique, by_key, done, records, journal, compute, run, device, predictor,
                  version, pname, progress, counts)
        else:
            _loop_distributed(client, unique, by_key, done, records, journal, compute, run,
                              str(device), predictor, version, pname, progress, counts,
                              cfg["run"]["threads"])
    finally:
        torch.set_num_threads(threads)
    computed, reused = counts["computed"], counts["reused"]
    return {"entries": entries, "records": records, "computed": computed, "reused": reused,
            "torn_bytes": torn, "bad_lines": bad, "code_version": version, "predictor": pname,
            "unique_points": len(unique)}


def _loop(unique, by_key, done, records, journal, compute, run, device, predictor, version,
          pname, progress, counts):
    for i, key in enumerate(unique):
        e = by_key[key]
        if key in done:
            records[key] = done[key]
            counts["reused"] += 1
        else:
            body = compute(e["point"], e["seed"], run, device, predictor)
            rec = {"key": key, "point": e["point"], "seed": e["seed"], "code_version": version,
                   "predictor": pname, "result": body}
            append_record(journal, rec)
            records[key] = rec
            counts["computed"] += 1
        if progress:
            progress(i + 1, len(unique), e["label"], key in done)


def _on_worker(compute, point, seed, run, device, predictor, threads):
    """A point on a Dask worker, with the serial run's torch thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return compute(point, seed, run, torch.device(device), predictor)
    finally:
        torch.set_num_threads(before)


def _loop_distributed(client, unique, by_key, done, records, journal, compute, run, device,
                      predictor, version, pname, progress, counts, threads):
    from .distributed import as_completed

    n = 0
    for key in unique:                           # journal first: nothing to send
        if key in done:
            records[key] = done[key]
            counts["reused"] += 1
            n += 1
            if progress:
                progress(n, len(unique), by_key[key]["label"], True)
    futures = {}
    for key in unique:
        if key in done:
            continue
        e = by_key[key]
        fut = client.submit(_on_worker, compute, e["point"], e["seed"], run, device, predictor,
                            threads, key=f"sensitivity-point-{key}", pure=False)
        futures[fut] = key
    try:
        for fut in as_completed(client, list(futures)):
            key = futures[fut]
            e = by_key[key]
            body = fut.result()
            rec = {"key": key, "point": e["point"], "seed": e["seed"], "code_version": version,
                   "predictor": pname, "result": body}
            append_record(journal, rec)
            records[key] = rec
            counts["computed"] += 1
            n += 1
            if progress:
                progress(n, len(unique), e["label"], False)
    finally:
        client.cancel([f for f in futures if not f.done()])


# -------------------------------------------------------------------------------- summary
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


# -------------------------------------------------------------------------------- outputs
CSV_COLUMNS = ("axis", "label", "family", "s", "alpha", "stable_rank", "entropy_rank", "d", "k",
               "n", "n_over_d", "regime", "sigma", "snr", "theta_deg", "eps", "r", "lora_mean",
               "lora_se", "fft_mean", "fft_se", "diff_mean", "diff_se", "gap_best_mean",
               "gap_best_se", "ratio_sim", "lora_pred", "fft_pred", "ratio_pred",
               "pred_rel_err", "pred_z", "pred_agree", "kept_spikes", "kept_noise", "seed", "key")


def to_csv(rows, columns=CSV_COLUMNS) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({c: ("" if row.get(c) is None else
                        repr(row[c]) if isinstance(row[c], float) else row[c]) for c in columns})
    return buf.getvalue()


def write_outputs(summary: dict, sweep: dict, cfg: dict, out_dir, device) -> dict:
    """``results.json`` (provenance + everything), ``results.csv`` (one row per point and rank),
    ``points.csv`` (one row per point), ``config.toml``; all written atomically."""
    from .io import write_json_atomic, write_text_atomic
    from .provenance import provenance

    out_dir = Path(out_dir)
    prov = provenance(device, seed=cfg["run"]["seed"], trials=cfg["run"]["trials"],
                      code_version=sweep["code_version"], predictor=sweep["predictor"],
                      point_seeds="sha256(master seed, point parameters)",
                      points_computed=sweep["computed"], points_reused=sweep["reused"])
    data = {"provenance": prov, "config": cfg, **summary}
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv",
             "points_csv": out_dir / "points.csv", "config": out_dir / "config.toml"}
    write_json_atomic(files["json"], data)
    write_text_atomic(files["csv"], to_csv(summary["rows"]))
    pcols = ([c for c in summary["points"][0] if c not in ("key", "by_rule")] + ["key"]
             if summary["points"] else [])
    write_text_atomic(files["points_csv"], to_csv(summary["points"], pcols))
    write_text_atomic(files["config"], sconf.to_toml(cfg))
    return files
