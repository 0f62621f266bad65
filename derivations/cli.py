"""``lora-audit``: list, audit, evaluate and simulate derivations (plus plug-in commands).

Exit status: 0 when everything asked for passes, 1 when a check fails, 2 on bad input (an
unknown derivation or parameter, a value outside a formula's domain, a malformed config).

Further sub-commands live in their own modules and are listed in ``COMMAND_MODULES``; each such
module defines ``register(subparsers)`` which adds its parser with ``set_defaults(func=...)``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys

from numeric.errors import InputError

COMMAND_MODULES: tuple[str, ...] = ("reports.cli", "derivations.sensitivity_cli",
                                   "derivations.spectra_cli", "derivations.mutate")


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _fmt(x, digits=6):
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)


# ----------------------------------------------------------------------------------- list
def cmd_list(args) -> int:
    from . import registry

    rows = [{"id": d.id, "title": d.plain_title, "title_latex": d.title, "kind": d.kind,
             "regime": d.regime,
             "steps": len(d.steps), "controls": len(d.controls)} for d in registry().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        w = max(len(r["id"]) for r in rows)
        for r in rows:
            print(f"{r['id']:<{w}}  {r['kind']:<10}  {r['regime']:<16}  {r['title']}")
    return 0


# ---------------------------------------------------------------------------------- audit
def _audit_on_worker(der_id: str, cfg, threads: int) -> dict:
    """One derivation's audit on a Dask worker (the registry is rebuilt there), with the
    client's torch thread count, so that its numbers are the serial run's."""
    import torch

    from . import get
    from .audit import audit_derivation

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return audit_derivation(get(der_id), cfg, None)
    finally:
        torch.set_num_threads(before)


def default_jobs(n_items: int) -> int:
    """``audit``'s default ``--jobs``: one local process per usable core, at most one per
    derivation (the numbers do not depend on it: every seed derives from the master seed and
    the derivation's id, and the children keep the parent's torch thread count)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:                    # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_items))


def run_audit(ids, cfg, progress=_progress, client=None, jobs=1) -> dict:
    """Audit the derivations (all when ``ids`` is empty), in-process or, with a
    ``distributed.Client``, one derivation per task on its workers (results in the order of
    ``ids``; each derivation's seeds derive from the master seed and its id, so the
    certificates do not depend on where or in which order it ran)."""
    from . import get, registry
    from .audit import audit_derivation
    from numeric.device import resolve
    from numeric.provenance import provenance

    ders = [get(i) for i in ids] if ids else list(registry().values())
    device = resolve(cfg.device)
    if client is None and jobs > 1:          # local processes: the serial numbers, bit for bit
        from .audit import audit_in_processes

        results = audit_in_processes(ders, cfg, jobs, progress)
        from .audit import LAST_CHILD_CPU

        print(f"audit: {LAST_CHILD_CPU['processes']} local processes, CPU in them "
              f"{LAST_CHILD_CPU['seconds']:.1f} s", file=sys.stderr)
    elif client is None:
        results = [audit_derivation(d, cfg, progress) for d in ders]
    else:
        import torch

        from numeric.distributed import as_completed

        threads = torch.get_num_threads()
        futs = {client.submit(_audit_on_worker, d.id, cfg, threads,
                              key=f"audit-{d.id}-{cfg.seed}", pure=False): d.id for d in ders}
        by_id = {}
        for fut in as_completed(client, list(futs)):
            by_id[futs[fut]] = fut.result()
            if progress:
                progress(f"{futs[fut]}: audited ({len(by_id)}/{len(ders)})")
        results = [by_id[d.id] for d in ders]
    return {"provenance": provenance(device, config=cfg.as_dict()),
            "verdict": "pass" if all(r["verdict"] == "pass" for r in results) else "fail",
            "derivations": results}


def print_audit_table(report: dict, out=sys.stdout) -> None:
    for r in report["derivations"]:
        print(f"\n== {r['id']} [{r['kind']}] {r.get('plain_title', r['title'])} -- "
              f"{r['verdict'].upper()}", file=out)
        for c in r.get("integrity", []):
            print(f"   {'INTEGRITY':<27} {c['method']:<11} {c['verdict']:<5} {c['summary']}", file=out)
        for s in r["steps"]:
            for c in s["certificates"]:
                print(f"   step {s['id']:<22} {c['method']:<11} {c['verdict']:<5} {c['summary']}", file=out)
        for c in r["statement"]["certificates"]:
            print(f"   {'STATEMENT':<27} {c['method']:<11} {c['verdict']:<5} {c['summary']}", file=out)
        for c in r["controls"]:
            tag = "rejected" if c["rejected"] else "NOT REJECTED"
            why = "; ".join(x["summary"] for x in c["certificates"])
            print(f"   control {c['name']:<19} {tag:<17} {why}", file=out)
        for lm in (r.get("formal") or {}).get("lemmas", []):
            print(f"   lemma {lm['name']:<21} {'formal':<11} {lm['verdict']:<5} "
                  f"{lm['certificate']['summary']}", file=out)
            for c in lm["controls"]:
                tag = "rejected" if c["rejected"] else ("skipped" if c["skipped"] else "NOT REJECTED")
                print(f"     lemma control {c['name']:<13} {tag:<17} {c['certificate']['summary']}",
                      file=out)
    print(f"\nAUDIT {report['verdict'].upper()}: "
          f"{sum(r['verdict'] == 'pass' for r in report['derivations'])}/"
          f"{len(report['derivations'])} derivations certified", file=out)


def cmd_audit(args) -> int:
    from numeric.io import write_json_atomic

    from .config import make_config

    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {args.jobs}")
    cfg = make_config(quick=args.quick, seed=args.seed, device=args.device)
    if args.json is not None:                   # refuse an unwritable path before the work
        from numeric.io import check_file_writable

        check_file_writable(args.json, "--json")
    if args.ids:
        from . import get

        for i in args.ids:
            get(i)                               # unknown ids: exit 2 before any work
    from numeric import distributed as dist

    dist.check_request(args.workers, args.scheduler)
    with dist.cluster(args.workers, args.scheduler, timeout=args.timeout) as client:
        from . import registry

        n_ders = len(args.ids) if args.ids else len(registry())
        jobs = args.jobs if args.jobs is not None else default_jobs(n_ders)
        report = run_audit(args.ids, cfg, client=client, jobs=jobs)
    print_audit_table(report)
    if args.json:
        write_json_atomic(args.json, report)
        print(f"wrote {args.json}")
    return 0 if report["verdict"] == "pass" else 1


# ----------------------------------------------------------------------- evaluate/simulate
def _params(args):
    from numeric.params import make_params, parse_assignments

    base = make_params(seed=args.seed) if args.seed is not None else None
    return parse_assignments(args.set, base)


def evaluate_point(der_id: str, params) -> dict:
    from . import get

    from numeric.memory import check_point

    der = get(der_id)
    der.validate(params)
    check_point(params.d, params.k, params.n, f"evaluate {der.id}")
    value = float(der.formula(params))
    out = {"id": der.id, "kind": der.kind, "params": params.as_dict(), "value": value}
    if der.extra.get("value_label"):
        out["value_label"] = der.extra["value_label"]
    extra = der.extra.get("evaluate_details")
    if extra:
        out["details"] = extra(params)
    return out


def simulate_point(der_id: str, params, trials: int | None, seed: int, device="auto",
                   progress=None) -> dict:
    if seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed}")
    from numeric.device import describe, generator, resolve
    from numeric.stats import compare

    from . import get
    from numeric.seeds import stable_seed

    der = get(der_id)
    der.validate(params)
    if der.simulate is None:
        raise InputError(f"derivation {der_id!r} has no simulator")
    if trials is None:   # a derivation whose simulation is costly says how many are sensible
        trials = int(der.extra.get("simulate_trials", 20000))
    if trials < 2:
        raise InputError(f"--trials must be at least 2, got {trials}")
    from numeric.memory import check_simulation

    # fixed-size chunks (a function of the sizes and `trials` only, never of the machine, so
    # the same seed gives the same numbers everywhere), with progress on stderr for long runs
    chunk = check_simulation(params.d, params.k, params.n, trials, f"simulate {der.id}")
    import torch

    dev = resolve(device)
    gen = generator(stable_seed(seed, der.id, "simulate"))
    parts, done = [], 0
    while done < trials:
        b = min(chunk, trials - done)
        parts.append(der.simulate(params, b, gen, dev).reshape(-1))
        done += b
        if trials > chunk and progress:
            progress(f"simulate {der.id}: {done}/{trials} data sets")
    c = compare(torch.cat(parts), der.formula(params))
    return {"id": der.id, "params": params.as_dict(), "mean": c["mean"], "se": c["se"],
            "trials": c["trials"], "seed": seed, "device": describe(dev),
            "formula": c["formula"], "z": c["z"], "relative_error": c["rel_error"]}


def cmd_evaluate(args) -> int:
    res = evaluate_point(args.id, _params(args))
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        label = f" -- {res['value_label']}" if res.get("value_label") else ""
        print(f"{res['id']} ({res['kind']}): {_fmt(res['value'], 12)}{label}")
        for k, v in res.get("details", {}).items():
            print(f"  {k} = {_fmt(v, 10)}")
    return 0


def cmd_simulate(args) -> int:
    seed = args.seed if args.seed is not None else 0
    res = simulate_point(args.id, _params(args), args.trials, seed, args.device, progress=_progress)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(f"{res['id']}: mean {_fmt(res['mean'])} +- {_fmt(res['se'], 3)} (SE, {res['trials']} "
              f"trials, seed {seed}, {res['device']})")
        print(f"  formula {_fmt(res['formula'])}, z = {_fmt(res['z'], 3)}")
    return 0


# ----------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lora-audit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("list", help="list derivations")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)

    q = sub.add_parser("audit", help="check every step, statement and negative control")
    q.add_argument("ids", nargs="*", help="derivation ids (default: all)")
    q.add_argument("--json", metavar="PATH", help="write all certificates as JSON")
    q.add_argument("--quick", action="store_true", help="CI-sized run")
    q.add_argument("--seed", type=int, default=None)
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    q.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="local processes, one derivation each (default: one per usable "
                        "core; 1 runs in this process); the numbers are the serial run's")
    from .sensitivity_cli import add_dask_flags

    add_dask_flags(q)
    q.set_defaults(func=cmd_audit)

    for name, fn, helptext in (("evaluate", cmd_evaluate, "value of a statement at parameters"),
                               ("simulate", cmd_simulate, "Monte Carlo of the estimator")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("id")
        q.add_argument("--set", nargs="+", action="extend", default=[], metavar="NAME=VALUE",
                       help="parameters: d k n r sigma shift_sv cov_eigs seed ...")
        q.add_argument("--seed", type=int, default=None,
                       help="seed of the instance (and of the draws for simulate)")
        q.add_argument("--json", action="store_true")
        if name == "simulate":
            q.add_argument("--trials", type=int, default=None,
                           help="simulated data sets (default 20000, or the derivation's own "
                                "smaller default when each one is costly)")
            q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        q.set_defaults(func=fn)

    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"lora-audit: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:        # an allocation the estimates (numeric.memory) missed
        print(f"lora-audit: error: out of memory ({exc or 'allocation refused'}); reduce the "
              "dimensions or --trials", file=sys.stderr)
        return 2
    except BrokenPipeError:           # output piped into `head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("lora-audit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
