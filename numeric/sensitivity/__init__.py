"""Sensitivity sweep: LoRA against full fine-tuning as the shift's rank, tail, the sample size,
the SNR and the covariance's misalignment vary (referee's second major comment).

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

Layout of the package (one entry: ``run``; figures are drawn by the callers, from
``reports.sensitivity_figures``, after ``run``: nothing here imports ``reports``):

* ``config``    -- the one schema and its defaults (``default.toml``, ``large.toml`` beside it);
* ``grid``      -- the sweep's entries per axis;
* ``instances`` -- a point's shift and covariance, effective ranks, misalignment;
* ``engine``    -- one point: seeded chunks, all-rank risks, prediction, ``code_version``;
* ``journal``   -- seeds, keys and the fsync'd ``points.jsonl``;
* ``driver``    -- ``run_sweep``: the grid through the journal, serially or on Dask workers;
* ``summary``   -- rows, point table, optimal ranks, phase planes, headline;
* ``outputs``   -- the CSV/JSON/TOML files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import EXAMPLE_CONFIG, LARGE_CONFIG  # noqa: F401
from .driver import run_settings, run_sweep
from .engine import (CHUNK, CODE_MODULES, POINT_FUNCTIONS, code_version,  # noqa: F401
                     compute_point, point_predictor, predictor_name, rank_risks)
from .grid import AXES, build_grid  # noqa: F401
from .instances import effective_ranks, make_instance, misalignment_eps, profile  # noqa: F401
from .journal import JOURNAL, append_record, load_journal, point_key, point_seed  # noqa: F401
from .outputs import CSV_COLUMNS, to_csv, write_outputs  # noqa: F401
from .summary import RANK_RULES, _crossings, summarize_sweep  # noqa: F401


@dataclass
class SweepResult:
    """What ``run`` did: the summary (``summarize_sweep``), the files written (name -> path;
    callers add their figures), and the bookkeeping of the journal."""
    summary: dict
    files: dict
    computed: int            # points computed in this run
    reused: int              # points read back from the journal
    unique_points: int
    torn_bytes: int          # bytes of a torn last journal line cut off
    bad_lines: int           # unreadable journal lines skipped
    code_version: str
    predictor: str
    seconds: float           # the whole run (sweep, summary, files)
    sweep_seconds: float     # the sweep alone


def run(cfg: dict, out_dir, device="cpu", *, fresh=False, progress=None, predictor=None,
        client=None, compute=None) -> SweepResult:
    """Run (or resume) the sweep of ``cfg`` in ``out_dir``, summarise it and write its files
    (``write_outputs``); the keyword arguments are ``run_sweep``'s."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    sweep = run_sweep(cfg, out_dir, device, fresh=fresh, progress=progress, predictor=predictor,
                      client=client, compute=compute)
    t_sweep = time.perf_counter() - t0
    summary = summarize_sweep(sweep, cfg)
    files = write_outputs(summary, sweep, cfg, out_dir, device)
    return SweepResult(summary=summary, files={k: str(v) for k, v in files.items()},
                       computed=sweep["computed"], reused=sweep["reused"],
                       unique_points=sweep["unique_points"], torn_bytes=sweep["torn_bytes"],
                       bad_lines=sweep["bad_lines"], code_version=sweep["code_version"],
                       predictor=sweep["predictor"], seconds=time.perf_counter() - t0,
                       sweep_seconds=t_sweep)
