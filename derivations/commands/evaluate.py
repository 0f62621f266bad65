"""``lora-audit evaluate`` and ``lora-audit simulate``: a derivation's value at parameters, and a
simulation of the actual estimator compared with it (library: ``derivations.points``)."""
from __future__ import annotations

import json

from .common import _fmt, _progress


def _params(args):
    from numeric.params import make_params, parse_assignments

    base = make_params(seed=args.seed) if args.seed is not None else None
    return parse_assignments(args.set, base)


def cmd_evaluate(args) -> int:
    from ..points import evaluate_point

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
    from ..points import simulate_point

    res = simulate_point(args.id, _params(args), args.trials, seed, args.device, progress=_progress)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(f"{res['id']}: mean {_fmt(res['mean'])} +- {_fmt(res['se'], 3)} (SE, {res['trials']} "
              f"trials, seed {seed}, {res['device']})")
        print(f"  formula {_fmt(res['formula'])}, z = {_fmt(res['z'], 3)}")
    return 0


def register(sub) -> None:
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
