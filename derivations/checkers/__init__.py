"""The checker registry.

Every checker is a plain function with one signature::

    fn(item, derivation, cfg, formula=None) -> Certificate

``item`` is a step (``Step``) or the derivation's statement (``Statement``); ``formula`` is a
negative control's replacement of the statement's value function (statement checkers only:
``run_checker`` refuses one for a step).  Checkers register by name with ``@checker("name")``;
steps and statements name the checks they run.  Each module of this package is one family, and
``load_all()`` imports every one of them up front, so the registry is complete before an audit
starts and a misspelt name fails at once:

* ``exact``       -- ``symbolic`` (SymPy, exact);
* ``precision``   -- ``hp`` (mpmath at ``cfg.dps`` digits);
* ``montecarlo``  -- ``mc``, ``end_to_end`` and the Monte Carlo pass rule;
* ``inequality``, ``convergence``, ``fixed_point``, ``rank_rule``, ``misalignment_search``,
  ``estimators`` (``two_sample``, ``lora_train``), ``spiked``, ``samplers``, ``formal`` (Coq).

Seeds come from ``numeric.seeds.stable_seed``.
"""
from __future__ import annotations

import importlib
import pkgutil
import traceback

from ..core import Certificate, Step, Timer

CHECKERS: dict = {}


def checker(name):
    """Register ``fn`` under ``name``; a second, different function under one name is refused."""
    def deco(fn):
        old = CHECKERS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (fn.__module__,
                                                                       fn.__qualname__):
            raise ValueError(f"checker {name!r} registered twice: {old.__module__}."
                             f"{old.__qualname__} and {fn.__module__}.{fn.__qualname__}")
        CHECKERS[name] = fn
        return fn
    return deco


_LOADED = False


def load_all() -> dict:
    """Import every module of this package (each registers its checkers); the registry."""
    global _LOADED
    if not _LOADED:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            importlib.import_module(f"{__name__}.{info.name}")
        _LOADED = True
    return CHECKERS


def modules() -> list[str]:
    """The package's modules (cache keys of the report depend on their source)."""
    return [f"{__name__}.{i.name}" for i in sorted(pkgutil.iter_modules(__path__),
                                                    key=lambda i: i.name)]


def get_checker(name):
    return load_all().get(name)


def run_checker(name, item, derivation, cfg, formula=None) -> Certificate:
    """Run one checker; an exception becomes an ``error`` certificate, never a pass."""
    fn = get_checker(name)
    with Timer() as t:
        try:
            if fn is None:
                raise KeyError(f"no checker named {name!r}; known: {', '.join(sorted(CHECKERS))}")
            if formula is not None and isinstance(item, Step):
                raise TypeError(f"checker {name!r}: a formula replaces the statement's value "
                                f"function; step {item.id!r} has none")
            cert = fn(item, derivation, cfg, formula=formula)
        except Exception as exc:  # noqa: BLE001 -- reported, not swallowed
            cert = Certificate(name, "error", {"exception": repr(exc),
                                               "traceback": traceback.format_exc(limit=4)},
                               0.0, f"error: {exc}")
    cert.seconds = t.seconds
    return cert
