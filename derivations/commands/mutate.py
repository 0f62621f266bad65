"""``lora-audit mutate``: the mutation suite (library: ``derivations.mutate``)."""
from __future__ import annotations

import sys
from dataclasses import asdict

from numeric.errors import InputError

from ..mutate import (affected_derivations, equivalent_reason, generate, merge_results,
                      run_baseline, run_mutant, sample, summarize_results)


DEFAULT_JSON = "out/mutation/results.json"


def cmd_mutate(args) -> int:
    from numeric.io import write_json_atomic
    from numeric.provenance import provenance

    if args.reach:
        return _cmd_reach(args)
    if args.merge:
        merged = merge_results(args.merge)
        write_json_atomic(args.json, merged)
        s = merged["summary"]
        print(f"merged {len(args.merge)} files: {s['killed']}/{s['judged']} mutants rejected "
              f"({100 * (s['catch_rate'] or 0):.1f} %), {s['equivalent']} equivalent; wrote "
              f"{args.json}")
        return 0
    if args.sample is not None and args.sample < 1:
        raise InputError(f"--sample must be positive, got {args.sample}")
    if args.timeout <= 0:
        raise InputError(f"--timeout must be positive, got {args.timeout}")
    if args.shard and not 0 <= args.shard[0] < args.shard[1]:
        raise InputError(f"--shard K/N needs 0 <= K < N, got {args.shard[0]}/{args.shard[1]}")
    if args.baseline_start < 0:
        raise InputError(f"--baseline-start must be >= 0, got {args.baseline_start}")
    if args.baseline_seeds < 0:
        raise InputError(f"--baseline-seeds must be >= 0, got {args.baseline_seeds}")
    everything = generate()
    chosen = everything if args.sample is None else sample(everything, args.sample, args.seed)
    if args.shard:
        k, count = args.shard
        chosen = chosen[k::count]
    if args.no_mutants:
        chosen = []
    if args.only:       # over every mutant (ids are content-based: stable when lines move)
        chosen = [m for m in everything if any(s in m.id for s in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.id}  line {m.line}: {m.original!r} -> {m.replacement!r}")
        print(f"{len(chosen)} of {len(everything)} mutants")
        return 0
    print(f"{len(everything)} mutants generated; running {len(chosen)} "
          f"({'--quick' if args.quick else 'full'} audit of the affected derivations)",
          file=sys.stderr)
    rows = []
    cache_ids: dict = {}
    for i, m in enumerate(chosen, 1):
        ids = cache_ids.setdefault(m.file, affected_derivations(m.file))
        if not ids:
            continue
        res = run_mutant(m, ids, quick=args.quick, seed=args.audit_seed, timeout=args.timeout)
        rows.append({"mutant": asdict(m), "derivations": ids, **res})
        tag = "EQUIVALENT " if equivalent_reason(m) else ""
        print(f"[{i}/{len(chosen)}] {tag}{res['status']:<8} {res['seconds']:6.1f}s  {m.file}:"
              f"{m.line} {m.op}: {m.original[:50]!r} -> {m.replacement[:50]!r}  "
              f"{res.get('caught_by') or ''}"[:260], flush=True)
        if args.json:      # written after every mutant: an interrupted run keeps its results
            write_json_atomic(args.json, {"partial": True, "summary": summarize_results(rows),
                                          "results": rows})
    baseline = None
    if args.baseline_seeds:
        print(f"unmutated audit at seeds {args.baseline_start}.."
              f"{args.baseline_start + args.baseline_seeds - 1}", file=sys.stderr)
        def _saved(runs):
            b = runs[-1]
            print(f"  seed {b['seed']}: {'pass' if not b['failed'] and b['status'] == 'survived' else 'FALSE ALARM'}"
                  f" {b['failed'] or ''} ({b['seconds']} s)", flush=True)
            if args.json:
                write_json_atomic(args.json, {"partial": True,
                                              "summary": summarize_results(rows, runs),
                                              "results": rows})
        seeds = range(args.baseline_start, args.baseline_start + args.baseline_seeds)
        baseline = run_baseline(seeds, quick=args.quick, progress=_saved)
    summ = summarize_results(rows, baseline)
    print(f"\nMUTATION SUITE: {summ['killed']}/{summ['judged']} mutants rejected "
          f"({100 * (summ['catch_rate'] or 0):.1f} %), {summ['equivalent']} listed as "
          f"equivalent; by status {summ['by_status']}")
    for r in summ["survivors"]:
        m = r["mutant"]
        print(f"  SURVIVOR {m['id']}  line {m['line']}: {m['original']!r} -> {m['replacement']!r}")
    if baseline is not None:
        b = summ["baseline"]
        print(f"FALSE ALARMS: {b['false_alarms']}/{len(baseline)} seeds")
    if args.json:
        write_json_atomic(args.json, {"provenance": provenance("cpu", config={
            "quick": args.quick, "audit_seed": args.audit_seed, "sample": args.sample,
            "sample_seed": args.seed, "generated": len(everything)}),
            "summary": {k: v for k, v in summ.items()}, "results": rows})
        print(f"wrote {args.json}")
    return 0 if not summ["survivors"] and not (baseline and summ["baseline"]["false_alarms"]) else 1


def _cmd_reach(args) -> int:
    """Every mutation site that no (unmutated) audit executes: a blind spot by construction."""
    from numeric.io import write_json_atomic
    from numeric.provenance import provenance

    from .. import registry
    from ..reach import UNREACHABLE, ReachError, executed_lines, unreached
    from .audit import default_jobs

    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be positive, got {args.jobs}")
    if args.json == DEFAULT_JSON:          # never over the mutation results
        args.json = "out/mutation/reach.json"
    ids = list(registry())
    jobs = args.jobs or default_jobs(len(ids))
    print(f"tracing the {'--quick' if args.quick else 'full'} audit of {len(ids)} derivations "
          f"({jobs} processes)", file=sys.stderr)
    try:
        executed = executed_lines(ids, quick=args.quick, seed=args.audit_seed, jobs=jobs,
                                  progress=lambda i, r: print(f"  {i}: {r['verdict']}",
                                                              file=sys.stderr, flush=True))
    except ReachError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = [i for i, r in executed.items() if r["verdict"] != "pass"]
    sites = unreached(executed)
    for s in sites:
        print(f"UNREACHED {s}")
    for key, why in UNREACHABLE.items():
        print(f"  exempt {key}: {why}")
    print(f"REACH: {len(sites)} unreached site(s), {sum(s.mutants for s in sites)} mutation(s); "
          f"{len(UNREACHABLE)} exempt function(s)" + (f"; audits not passing: {failed}"
                                                       if failed else ""))
    if args.json:
        write_json_atomic(args.json, {
            "provenance": provenance("cpu", config={"quick": args.quick,
                                                    "audit_seed": args.audit_seed}),
            "unreached": [dict(vars(s), derivations=list(s.derivations)) for s in sites],
            "exempt": UNREACHABLE, "audits_not_passing": failed})
        print(f"wrote {args.json}")
    return 0 if not sites and not failed else 1


def _shard(text: str):
    import argparse

    try:
        k, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants K/N (e.g. 0/2), got {text!r}") from None
    return k, count


def register(sub) -> None:
    q = sub.add_parser("mutate", help="mutation suite: plant errors, audit, report the catch rate")
    q.add_argument("--sample", type=int, default=None,
                   help="run a deterministic sample of this many mutants (default: all)")
    q.add_argument("--seed", type=int, default=0, help="seed of the sample")
    q.add_argument("--audit-seed", type=int, default=0, help="seed of the audits")
    q.add_argument("--full", dest="quick", action="store_false",
                   help="full audits instead of --quick ones")
    q.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                   help="only mutants whose id contains one of these strings")
    q.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    q.add_argument("--baseline-seeds", type=int, default=0,
                   help="also audit the unmutated tree at seeds 0..K-1 (false alarms)")
    q.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="run only every N-th chosen mutant from the K-th (0-based): parts of "
                        "one sample for parallel processes, joined with --merge")
    q.add_argument("--baseline-start", type=int, default=0, metavar="S",
                   help="first seed of --baseline-seeds (parts of one baseline for parallel "
                        "processes, joined with --merge)")
    q.add_argument("--list", action="store_true", help="list the mutants and exit")
    q.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="merge result files of one sample run in parts into --json, and exit")
    q.add_argument("--no-mutants", action="store_true",
                   help="run no mutant (with --baseline-seeds: the false-alarm rate alone)")
    q.add_argument("--reach", action="store_true",
                   help="plant nothing: trace the unmutated audit and list every mutation site "
                        "it never executes (exit 1 if there is one)")
    q.add_argument("--jobs", type=int, default=None,
                   help="processes for --reach (default: one per core)")
    q.add_argument("--json", default=DEFAULT_JSON, metavar="PATH",
                   help=f"results (default {DEFAULT_JSON}; with --reach out/mutation/reach.json)")
    q.set_defaults(func=cmd_mutate)
