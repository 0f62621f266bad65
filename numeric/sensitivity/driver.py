"""The sweep driver: build the grid, key every entry, reuse the journal, compute the rest (in this
process or on Dask workers), append each finished point at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .engine import code_version, compute_point, point_predictor, predictor_name  # noqa: F401
from .grid import build_grid
from .journal import JOURNAL, _repair, append_record, load_journal, point_key, point_seed


def run_settings(cfg: dict) -> dict:
    """The settings that change a point's numbers (part of its key)."""
    r = cfg["run"]
    return {"seed": r["seed"], "trials": r["trials"], "pred_rel_tol": r["pred_rel_tol"]}


@dataclass
class _Sweep:
    """What the loops share: the points to visit, the journal, how to compute one point."""
    unique: list                      # keys, in grid order, each once
    by_key: dict                      # key -> its first grid entry
    done: dict                        # key -> record read back from the journal
    journal: Path
    compute: Callable
    run: dict                         # the run settings plus ``batch``
    device: object
    predictor: object
    version: str
    pname: str
    progress: Callable | None
    records: dict = field(default_factory=dict)
    computed: int = 0
    reused: int = 0

    def reuse(self, key) -> None:
        self.records[key] = self.done[key]
        self.reused += 1

    def store(self, key, body) -> None:
        e = self.by_key[key]
        rec = {"key": key, "point": e["point"], "seed": e["seed"], "code_version": self.version,
               "predictor": self.pname, "result": body}
        append_record(self.journal, rec)
        self.records[key] = rec
        self.computed += 1

    def tick(self, n, key, reused) -> None:
        if self.progress:
            self.progress(n, len(self.unique), self.by_key[key]["label"], reused)


def run_sweep(cfg: dict, out_dir, device="cpu", *, fresh=False, progress=None, predictor=None,
              compute=None, client=None) -> dict:
    """Run (or resume) the sweep; returns ``{"entries", "records", "computed", "reused", ...}``.

    ``progress(done, total, label, reused)`` is called after each point; an exception raised in
    it or in a point (``KeyboardInterrupt`` included) stops the sweep with every finished point
    already on disk.  ``batch`` and ``threads`` are not in the key: ``batch`` never changes
    the numbers (see the reproducibility contract in the package docstring), ``threads`` only
    to float64 rounding.
    ``compute`` replaces ``compute_point`` (tests use it to crash a point).

    ``client`` (a ``distributed.Client``, see ``numeric.distributed``) computes the points that
    are not in the journal on Dask workers instead of in this process; the journal stays here
    (a point is appended when it arrives), so an interrupted distributed sweep resumes like a
    serial one, and the numbers are the serial run's: each point has its own seed and each
    worker runs with ``run.threads`` torch threads.
    """
    import torch

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
    entries = build_grid(cfg)
    for e in entries:
        e["key"] = point_key(e["point"], settings, pname, version)
        e["seed"] = point_seed(settings["seed"], e["point"])
    unique = list(dict.fromkeys(e["key"] for e in entries))
    sw = _Sweep(unique=unique, by_key={e["key"]: e for e in reversed(entries)}, done=done,
                journal=journal, compute=compute or compute_point,
                run={**settings, "batch": cfg["run"]["batch"]}, device=device,
                predictor=predictor, version=version, pname=pname, progress=progress)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["run"]["threads"])
    try:
        if client is None:
            _loop(sw)
        else:
            _loop_distributed(client, sw, cfg["run"]["threads"])
    finally:
        torch.set_num_threads(threads)
    return {"entries": entries, "records": sw.records, "computed": sw.computed,
            "reused": sw.reused, "torn_bytes": torn, "bad_lines": bad, "code_version": version,
            "predictor": pname, "unique_points": len(unique)}


def _loop(sw: _Sweep) -> None:
    for i, key in enumerate(sw.unique):
        if key in sw.done:
            sw.reuse(key)
        else:
            e = sw.by_key[key]
            sw.store(key, sw.compute(e["point"], e["seed"], sw.run, sw.device, sw.predictor))
        sw.tick(i + 1, key, key in sw.done)


def _on_worker(compute, point, seed, run, device, predictor, threads):
    """A point on a Dask worker, with the serial run's torch thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return compute(point, seed, run, torch.device(device), predictor)
    finally:
        torch.set_num_threads(before)


def _loop_distributed(client, sw: _Sweep, threads: int) -> None:
    from ..distributed import as_completed

    n = 0
    for key in sw.unique:                        # journal first: nothing to send
        if key in sw.done:
            sw.reuse(key)
            n += 1
            sw.tick(n, key, True)
    futures = {}
    for key in sw.unique:
        if key in sw.done:
            continue
        e = sw.by_key[key]
        fut = client.submit(_on_worker, sw.compute, e["point"], e["seed"], sw.run,
                            str(sw.device), sw.predictor, threads,
                            key=f"sensitivity-point-{key}", pure=False)
        futures[fut] = key
    try:
        for fut in as_completed(client, list(futures)):
            key = futures[fut]
            sw.store(key, fut.result())
            n += 1
            sw.tick(n, key, False)
    finally:
        client.cancel([f for f in futures if not f.done()])
