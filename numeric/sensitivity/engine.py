"""One point: simulate its ``trials`` data sets in seeded chunks (the reproducibility contract
of the package docstring), fit FFT and LoRA at every rank, compare with the prediction.

``code_version`` hashes what a point's numbers depend on (``CODE_MODULES`` whole and the point
functions ``POINT_FUNCTIONS``, wherever in this package they live): editing the summary, the
outputs or the figures does not invalidate finished points."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import math
import time

import numpy as np

from ..seeds import chunk_seed as _chunk_seed
from ..sharp import _regime
from ..stats import Z_PASS, summarize
from . import instances, journal
from .instances import effective_ranks, make_instance

CHUNK = 25          # trials per independently seeded draw (batches are whole chunks)
CODE_MODULES = ("numeric.estimators", "numeric.sharp", "numeric.instances", "numeric.device",
                "numeric.stats", "numeric.samplers")
POINT_FUNCTIONS = ("CHUNK", "point_seed", "profile", "effective_ranks",
                   "misalignment_eps", "make_instance", "rank_risks", "_chunk_seed", "_chunk_risks",
                   "_paired", "_predict", "compute_point",
                   "_agreement")


def code_version() -> str:
    h = hashlib.sha256()
    for name in CODE_MODULES:
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    where = {**vars(journal), **vars(instances), **globals()}
    for name in POINT_FUNCTIONS:
        obj = where[name]
        h.update((inspect.getsource(obj) if callable(obj) else f"{name}={obj!r}").encode())
    return h.hexdigest()[:16]


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

    from .. import estimators as est

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


def _chunk_risks(tinst, size, gen, device):
    """FFT and all-rank LoRA risks of one chunk of ``size`` data sets drawn from ``gen``: from
    the exact fast sampler's statistics (``numeric.samplers``: overdetermined, or
    underdetermined with ``Sigma = I``), else from raw data (``rank_risks``)."""
    from .. import samplers
    from ..estimators import sample_data

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
    over = _regime(d, n, None) == "over"
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

    from ..device import generator

    t0 = time.perf_counter()
    d, k, n = point["d"], point["k"], point["n"]
    inst = make_instance(point, seed)
    q_cap = min(d, k, n)
    q = min(point["r_max"] or q_cap, q_cap)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    regime = _regime(d, n, None)
    tinst = {"d": d, "k": k, "n": n, "sigma": point["sigma"], "Delta": t(inst["Delta"]),
             "SigmaHalf": t(inst["SigmaHalf"]), "regime": regime,
             "fast": regime == "over" or inst["isotropic"]}
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
    rec = {"n": n, "regime": regime, "q": q,
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
        from .. import sharp

        return sharp
    return predictor


def predictor_name(predictor) -> str:
    p = point_predictor(predictor)
    return getattr(p, "NAME", None) or getattr(p, "__name__", type(p).__name__)
