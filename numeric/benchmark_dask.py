"""Benchmark of the distributed sweep: 2 local Dask workers against one process.

    python3 -m numeric.benchmark_dask [--workers 2] [--quick] [--large-point]

Runs the default sensitivity sweep (``--quick``: the CI-sized one) from scratch in-process and
then on a ``LocalCluster`` of ``--workers`` single-threaded workers, prints both wall times,
the speed-up, and checks that the two give the same numbers (bitwise, timings excepted).
``--large-point`` instead times one point of ``numeric/sensitivity/large.toml`` (the largest
n/d, at 8 data sets, extrapolated linearly to the configured trials) and prints the expected
cost of that configuration.  Figures, not a test.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _strip(records):
    return {k: {f: v for f, v in r["result"].items() if f != "seconds"} for k, r in records.items()}


def large_point() -> int:
    import torch

    from numeric import sensitivity as sens
    from numeric.sensitivity import config as sconf

    path = sconf.LARGE_CONFIG
    cfg = sconf.load(path)
    entries = sens.build_grid(cfg)
    worst = max(entries, key=lambda e: e["point"]["n"])
    trials = cfg["run"]["trials"]
    run = {**sens.run_settings(cfg), "trials": 8, "batch": 8}
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sens.compute_point(worst["point"], 0, run, torch.device("cpu"), None)
    dt = time.perf_counter() - t0
    per_point = dt * trials / 8
    print(f"large configuration ({path.name}): {len(entries)} grid entries; its largest point "
          f"(d = {worst['point']['d']}, k = {worst['point']['k']}, n = {worst['point']['n']}) "
          f"took {dt:.1f} s for 8 data sets on one thread -> ~{per_point / 60:.1f} min at "
          f"{trials} data sets; the whole grid at most ~{per_point * len(entries) / 3600:.1f} "
          "core-hours (smaller n cost less)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--large-point", action="store_true")
    args = ap.parse_args(argv)
    if args.large_point:
        return large_point()
    from numeric import distributed as dist
    from numeric import sensitivity as sens
    from numeric.sensitivity import config as sconf

    cfg = sconf.load(None, quick=args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        serial = sens.run_sweep(cfg, Path(tmp) / "serial", "cpu")
        t_serial = time.perf_counter() - t0
        with dist.cluster(workers=args.workers) as client:
            t0 = time.perf_counter()
            par = sens.run_sweep(cfg, Path(tmp) / "dask", "cpu", client=client)
            t_par = time.perf_counter() - t0
    same = _strip(serial["records"]) == _strip(par["records"])
    print(f"{'default' if not args.quick else 'quick'} sweep, {serial['unique_points']} points: "
          f"in-process {t_serial:.1f} s, {args.workers} Dask workers {t_par:.1f} s (cluster "
          f"already started), speed-up x{t_serial / t_par:.2f}; same numbers: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
