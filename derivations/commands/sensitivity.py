"""``lora-audit sensitivity``: the sensitivity sweep from the command line.

    lora-audit sensitivity [--config FILE.toml] [--set SECTION.KEY=VALUE ...] [--out DIR]
                           [--quick] [--fresh] [--seed N] [--device auto|cpu|cuda]
                           [--print-config] [--no-figures]

The configuration schema, its defaults and their meanings are in
``numeric/sensitivity/config.py`` (one table); ``numeric/sensitivity/default.toml`` is the
documented example.  Results go to ``--out`` (default ``out/sensitivity``, or
``out/sensitivity-quick`` with ``--quick``): ``points.jsonl`` (the resumable journal),
``results.json`` (provenance, configuration, every number), ``results.csv`` (one row per point
and LoRA rank), ``points.csv`` (one row per point), ``config.toml`` and the figures
``sensitivity-*.pdf``.  Rerunning the same command resumes: finished points are read back, not
recomputed (``--fresh`` starts over).  Exit status: 0 done, 2 bad input (a message names the
key), 130 interrupted (finished points are kept).

This module imports ``reports.sensitivity_figures`` lazily (figures only), as the command-line
glue between the sweep (``numeric.sensitivity.run``) and the figures.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path



class ProgressBar:
    """Plain-text progress on stderr: a redrawn bar on a terminal, a line per ~10 % otherwise."""

    def __init__(self, total_hint: str = "points", stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_decile = -1
        self.unit = total_hint

    def __call__(self, done: int, total: int, label: str, reused: bool) -> None:
        el = time.perf_counter() - self.t0
        eta = el / done * (total - done) if done else 0.0
        frac = done / total if total else 1.0
        tag = "reused" if reused else "done"
        if self.tty:
            fill = int(round(frac * self.width))
            bar = "#" * fill + "." * (self.width - fill)
            msg = (f"\r[{bar}] {done}/{total} {self.unit}  {el:6.1f}s  ~{eta:5.0f}s left  "
                   f"{tag}: {label[:40]:<40}")
            self.stream.write(msg)
            if done == total:
                self.stream.write("\n")
        else:
            decile = int(frac * 10)
            if decile == self.last_decile and done != total:
                return
            self.last_decile = decile
            self.stream.write(f"  [{int(frac * 100):3d}%] {done}/{total} {self.unit}, "
                              f"{el:.1f}s elapsed, ~{eta:.0f}s left ({tag}: {label})\n")
        self.stream.flush()


SWEEP_MARKER = ".lora-audit-sensitivity"


def check_sweep_out(out_arg) -> Path:
    """Refuse, before any work, an --out that is a file, unwritable, or a non-empty folder that
    is not a sweep of this tool (its files would be overwritten)."""
    from numeric.errors import InputError
    from numeric.io import check_dir_writable
    from numeric.sensitivity.journal import JOURNAL

    out = check_dir_writable(out_arg, "--out")
    if (out.is_dir() and any(out.iterdir()) and not (out / SWEEP_MARKER).exists()
            and not (out / JOURNAL).exists()):
        raise InputError(f"--out {out_arg}: the folder exists, is not empty and is not a sweep of "
                         "this tool; name a new or empty folder (its files would be overwritten)")
    return out


def default_out(quick: bool) -> Path:
    return Path("out") / ("sensitivity-quick" if quick else "sensitivity")


def execute(cfg: dict, out_dir, device, *, fresh=False, progress=None, figures=True,
            predictor=None, client=None):
    """``numeric.sensitivity.run`` (sweep, CSV/JSON), then the figures into the same folder;
    returns the ``SweepResult`` with the figures among its files."""
    from numeric import sensitivity as sens

    res = sens.run(cfg, out_dir, device, fresh=fresh, progress=progress, predictor=predictor,
                   client=client)
    if figures:
        from reports.sensitivity_figures import make_figures

        res.files.update({k: str(v) for k, v in make_figures(res.summary, Path(out_dir)).items()})
    return res


def print_summary(res: dict, out=None) -> None:
    out = out or sys.stdout
    s = res.summary
    rule = s["rank_rule"]
    print(f"\nsensitivity: {res.unique_points} points ({res.computed} computed, "
          f"{res.reused} reused) in {res.seconds:.1f}s", file=out)
    print(f"LoRA (rank rule '{rule}') against FFT, simulated ratio LoRA/FFT; win/lose = paired "
          f"difference beyond 4 SE:", file=out)
    for key, h in s["headline"][rule].items():
        if key == "prediction":
            continue
        print(f"  {key:<20} win {h['win']:>3}  lose {h['lose']:>3}  tie {h['tie']:>3}   ratio "
              f"{h['min_ratio']:.3g} ({h['min_label']}) .. {h['max_ratio']:.3g} "
              f"({h['max_label']})", file=out)
    pr = s["headline"][rule]["prediction"]
    if pr["ranks_compared"]:
        print(f"sharp prediction (asymptotic): {pr['agree']}/{pr['ranks_compared']} (point, rank) "
              f"pairs within tolerance or 4 SE; largest |relative error| "
              f"{pr['max_abs_rel']:.3g}", file=out)
    o = s["optimal_rank"]
    c = o["counts"]
    print(f"optimal rank, keep-threshold rule vs simulated argmin over {o['points']} points: "
          f"{c['agree']} agree, {c['tie']} differ within 4 SE, {c['disagree']} disagree "
          f"(largest excess risk of the rule's rank: "
          f"{(o['worst_gap_rel'] or 0) * 100:.1f}% at {o['worst_label']})", file=out)
    for name, path in res.files.items():
        print(f"  wrote {path}", file=out)


def add_dask_flags(q) -> None:
    q.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run on a local Dask cluster of N worker processes (needs the dask extra)")
    q.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786")
    q.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for --scheduler before giving up (exit 2)")


def cmd_sensitivity(args) -> int:
    from numeric.sensitivity import config as sconf
    from numeric.device import resolve

    sets = list(args.set or [])
    if args.seed is not None:
        sets.append(f"run.seed={args.seed}")
    cfg = sconf.load(args.config, sets, quick=args.quick)
    if args.print_config:
        print(sconf.to_toml(cfg))
        return 0
    device = resolve(args.device)
    from numeric import distributed as dist

    dist.check_request(args.workers, args.scheduler)
    out = check_sweep_out(args.out if args.out is not None else default_out(args.quick))
    try:
        with dist.cluster(args.workers, args.scheduler, timeout=args.timeout) as client:
            if client is not None:             # connected: only now is anything written
                print(f"sensitivity: points on {dist.describe(client)}", file=sys.stderr)
            out.mkdir(parents=True, exist_ok=True)
            if not (out / SWEEP_MARKER).exists():
                from numeric.io import write_text_atomic

                write_text_atomic(out / SWEEP_MARKER, "lora-audit sensitivity output folder\n")
            res = execute(cfg, out, device, fresh=args.fresh, progress=ProgressBar(),
                          figures=not args.no_figures, client=client)
    except KeyboardInterrupt:
        print(f"\nlora-audit sensitivity: interrupted; finished points are kept in "
              f"{out / 'points.jsonl'} -- rerun the same command to resume", file=sys.stderr)
        return 130
    print_summary(res)
    return 0


def register(subparsers) -> None:
    q = subparsers.add_parser(
        "sensitivity", help="sweep rank, tail, n/d, SNR, misalignment: LoRA vs FFT (resumable)",
        description="Sensitivity sweep. Config schema and defaults: "
                    "numeric/sensitivity/config.py; example: numeric/sensitivity/default.toml.")
    q.add_argument("--config", metavar="FILE.toml", help="TOML configuration (see the schema)")
    q.add_argument("--set", nargs="+", action="extend", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a configuration key, e.g. base.d=48 exact.s_values=1,2,4")
    q.add_argument("--out", metavar="DIR", help="output folder (default out/sensitivity)")
    q.add_argument("--quick", action="store_true", help="CI-sized sweep (seconds)")
    q.add_argument("--fresh", action="store_true", help="discard finished points and start over")
    q.add_argument("--seed", type=int, default=None, help="master seed (= --set run.seed=N)")
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    q.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as TOML and exit")
    q.add_argument("--no-figures", action="store_true", help="skip the PDF figures")
    add_dask_flags(q)
    q.set_defaults(func=cmd_sensitivity)


__all__ = ["register", "execute", "ProgressBar"]
