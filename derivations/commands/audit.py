"""``lora-audit audit``: check every step, statement and negative control of the derivations,
in this process, in local processes (``--jobs``) or on a Dask cluster."""
from __future__ import annotations

import os
import sys

from numeric.errors import InputError

from .common import _progress


def default_jobs(n_items: int) -> int:
    """``audit``'s default ``--jobs``: one local process per usable core, at most one per
    derivation (the numbers do not depend on it: every seed derives from the master seed and
    the derivation's id, and the children keep the parent's torch thread count)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                    # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_items))


def print_audit_table(report, out=None) -> None:
    """One line per certificate of an ``AuditRun`` (``derivations.results``)."""
    out = out or sys.stdout
    for r in report.derivations:
        print(f"\n== {r.id} [{r.kind}] {r.plain_title} -- {r.verdict.upper()}", file=out)
        for c in r.integrity:
            print(f"   {'INTEGRITY':<27} {c.method:<11} {c.verdict:<5} {c.summary}", file=out)
        for s in r.steps:
            for c in s.certificates:
                print(f"   step {s.id:<22} {c.method:<11} {c.verdict:<5} {c.summary}", file=out)
        for c in r.statement:
            print(f"   {'STATEMENT':<27} {c.method:<11} {c.verdict:<5} {c.summary}", file=out)
        for c in r.controls:
            tag = "rejected" if c.rejected else "NOT REJECTED"
            why = "; ".join(x.summary for x in c.certificates)
            print(f"   control {c.name:<19} {tag:<17} {why}", file=out)
        for lm in r.formal.get("lemmas", []):
            print(f"   lemma {lm['name']:<21} {'formal':<11} {lm['verdict']:<5} "
                  f"{lm['certificate']['summary']}", file=out)
            for c in lm["controls"]:
                tag = "rejected" if c["rejected"] else ("skipped" if c["skipped"] else "NOT REJECTED")
                print(f"     lemma control {c['name']:<13} {tag:<17} {c['certificate']['summary']}",
                      file=out)
    print(f"\nAUDIT {report.verdict.upper()}: "
          f"{sum(r.verdict == 'pass' for r in report.derivations)}/"
          f"{len(report.derivations)} derivations certified", file=out)


def cmd_audit(args) -> int:
    from numeric.io import write_json_atomic

    from ..audit import run_audit
    from ..config import make_config

    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {args.jobs}")
    cfg = make_config(quick=args.quick, seed=args.seed, device=args.device)
    if args.json is not None:                   # refuse an unwritable path before the work
        from numeric.io import check_file_writable

        check_file_writable(args.json, "--json")
    if args.ids:
        from .. import get

        for i in args.ids:
            get(i)                               # unknown ids: exit 2 before any work
    from numeric import distributed as dist

    dist.check_request(args.workers, args.scheduler)
    with dist.cluster(args.workers, args.scheduler, timeout=args.timeout) as client:
        from .. import registry

        n_ders = len(args.ids) if args.ids else len(registry())
        jobs = args.jobs if args.jobs is not None else default_jobs(n_ders)
        report = run_audit(args.ids, cfg, progress=_progress, client=client, jobs=jobs)
    print_audit_table(report)
    if args.json:
        write_json_atomic(args.json, report.to_json())
        print(f"wrote {args.json}")
    return 0 if report.verdict == "pass" else 1


def register(sub) -> None:
    q = sub.add_parser("audit", help="check every step, statement and negative control")
    q.add_argument("ids", nargs="*", help="derivation ids (default: all)")
    q.add_argument("--json", metavar="PATH", help="write all certificates as JSON")
    q.add_argument("--quick", action="store_true", help="CI-sized run")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    q.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="local processes, one derivation each (default: one per usable "
                        "core; 1 runs in this process); the numbers are the serial run's")
    from .sensitivity import add_dask_flags

    add_dask_flags(q)
    q.set_defaults(func=cmd_audit)
