"""``lora-audit list``: the registered derivations (``--json`` for tools)."""
from __future__ import annotations

import json


def cmd_list(args) -> int:
    from .. import registry

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


def register(sub) -> None:
    q = sub.add_parser("list", help="list derivations")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_list)
