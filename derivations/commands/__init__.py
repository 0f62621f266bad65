"""The ``lora-audit`` command line: one module per command (family), found by ``discover``.

Each module of this package that defines ``register(subparsers)`` adds its sub-command(s) with
``set_defaults(func=...)``; ``discover`` imports them in a fixed order (the order of ``--help``).
Library functions live beside what they run (``derivations.audit.run_audit``,
``derivations.points``, ``numeric.sensitivity.run``); the report command is the one place
besides the report itself that imports ``reports``.

Exit status: 0 when everything asked for passes, 1 when a check fails, 2 on bad input (an
unknown derivation or parameter, a value outside a formula's domain, a malformed config).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from numeric.errors import InputError

ORDER = ("listing", "audit", "evaluate", "report", "sensitivity", "spectra", "mutate")


def discover() -> list:
    """The command modules (those defining ``register``), in ``ORDER``, then any others."""
    names = [i.name for i in pkgutil.iter_modules(__path__)]
    ordered = [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)
    mods = [importlib.import_module(f"{__name__}.{n}") for n in ordered]
    return [m for m in mods if hasattr(m, "register")]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lora-audit", description="list, audit, evaluate and "
                                "simulate derivations; report, sensitivity, spectra, mutate")
    sub = p.add_subparsers(dest="command", required=True)
    for mod in discover():
        mod.register(sub)
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
