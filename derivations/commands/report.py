"""``lora-audit report``: regenerate the audited derivation report (LaTeX, PDF, data).

The command line's one door into ``reports`` (besides the report itself).
"""
from __future__ import annotations

import sys

from reports.build import DEFAULT_OUT, ReportOptions, build_report

from .audit import default_jobs

HELP = """Runs the audit of every derivation (reusing cached results whose sources, configuration and
library versions are unchanged), every report section, and writes report.tex, figures and data
(audit.json, report-data.json, CSV) into --out; compiles report.pdf with latexmk when present.
Exit status: 0 all certified; 1 the report shows failing checks, or LaTeX failed (then the
previous report is left intact); 2 bad input."""


def cmd_report(args) -> int:
    opts = ReportOptions(out=args.out, quick=args.quick, fresh=args.fresh, seed=args.seed,
                         device=args.device, only=tuple(args.only or ()),
                         cache_dir=args.cache_dir,
                         compile=not args.no_pdf, spectra=tuple(args.spectra or ()),
                         spectra_adapter=args.spectra_adapter,
                         jobs=args.jobs if args.jobs is not None else default_jobs(10 ** 6))
    import signal

    def _terminate(signum, frame):          # a killed run cleans up its temporary folder too
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        res = build_report(opts)
    finally:
        signal.signal(signal.SIGTERM, previous)
    stream = sys.stdout if res.status == 0 else sys.stderr
    print(res.message, file=stream)
    return res.status


def register(subparsers) -> None:
    q = subparsers.add_parser("report", help="regenerate the LaTeX/PDF report", description=HELP)
    q.add_argument("--out", default=str(DEFAULT_OUT),
                   help=f"output folder (default: {DEFAULT_OUT}, ignored by git)")
    q.add_argument("--quick", action="store_true", help="CI-sized audit")
    q.add_argument("--fresh", action="store_true", help="recompute everything (ignore the cache)")
    q.add_argument("--seed", type=int, default=None, help="master seed (default 0)")
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    q.add_argument("--only", nargs="+", action="extend", metavar="ID",
                   help="restrict to these derivation and/or section ids (a partial report)")
    q.add_argument("--cache-dir", default=None,
                   help="cache folder (default: cache/ inside --out, carried over to each new "
                        "report; a named folder must be new, empty or a cache of this tool)")
    q.add_argument("--no-pdf", action="store_true", help="write report.tex only")
    q.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="local processes for the derivations the cache lacks, one each "
                        "(default: one per usable core; 1 runs in this process); the numbers "
                        "are the serial run's")
    q.add_argument("--spectra", nargs=2, metavar=("BASE", "TUNED"),
                   help="also measure these checkpoints in the spectra section (minor comment 2)")
    q.add_argument("--spectra-adapter", metavar="DIR",
                   help="also measure this LoRA adapter (PEFT layout) in the spectra section")
    q.set_defaults(func=cmd_report)
