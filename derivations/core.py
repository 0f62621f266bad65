"""Derivations as data.

A ``Derivation`` declares its assumptions, the definitions of derived symbols, an ordered list of
``Step``s (each a relation between two SymPy expressions with its ``Justification`` and the
checks that apply), the ``Statement`` it proves (exact, asymptotic or a bound), the negative
``Control``s the audit must reject, and the numeric hooks the checkers need (instances at which
to evaluate, the formula's value, a simulator of the actual estimator).

Checkers (``derivations.checkers``) are plain functions of a step; renderers never compute.
"""
from __future__ import annotations

import inspect
import time
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable

JUSTIFICATION_KINDS = ("definition", "algebra", "lemma", "expectation", "inequality",
                       "literature", "asymptotic", "numerical")
RELATIONS = ("=", "<=", ">=", "~")
STATEMENT_KINDS = ("exact", "asymptotic", "bound")
# verdicts that neither certify nor refute: a check that could not run (``skipped``, e.g. no
# Coq installed) or a goal beyond the proof assistant's tactics (``not formalised``)
NEUTRAL_VERDICTS = ("skipped", "not formalised")


@dataclass(frozen=True)
class Justification:
    kind: str                 # one of JUSTIFICATION_KINDS
    text: str                 # what licenses the step, in words (LaTeX allowed)
    reference: str = ""       # a named lemma's source

    def __post_init__(self):
        if self.kind not in JUSTIFICATION_KINDS:
            raise ValueError(f"unknown justification kind {self.kind!r}")


@dataclass(frozen=True)
class Step:
    id: str
    lhs: Any                  # SymPy expression
    rel: str                  # "=", "<=", ">=" or "~" (asymptotically equal)
    rhs: Any
    why: Justification
    checks: tuple             # names of checkers in derivations.checkers.CHECKERS
    note: str = ""            # extra explanation shown in the report
    options: dict = field(default_factory=dict)  # checker options (e.g. which instances)

    def __post_init__(self):
        if self.rel not in RELATIONS:
            raise ValueError(f"step {self.id}: unknown relation {self.rel!r}")
        if not self.checks:
            raise ValueError(f"step {self.id}: a step without checks is not audited")

    def with_sides(self, lhs=None, rhs=None, options=None) -> "Step":
        from dataclasses import replace

        return replace(self, lhs=self.lhs if lhs is None else lhs,
                       rhs=self.rhs if rhs is None else rhs,
                       options={**self.options, **(options or {})})


@dataclass(frozen=True)
class Statement:
    lhs: Any
    rel: str
    rhs: Any
    kind: str                 # exact | asymptotic | bound
    conditions: tuple = ()    # plain-text (LaTeX) conditions under which it is claimed
    checks: tuple = ("end_to_end",)

    def __post_init__(self):
        if self.kind not in STATEMENT_KINDS:
            raise ValueError(f"unknown statement kind {self.kind!r}")


@dataclass(frozen=True)
class Control:
    """A deliberately wrong variant the audit must reject.

    ``target`` is a step id or ``"statement"``.  For a step, ``lhs``/``rhs`` replace its sides;
    for the statement, ``formula`` replaces the value function (``params -> float``);
    ``options`` are merged into the step's checker options (e.g. a perturbed root).
    """

    name: str
    description: str
    target: str
    lhs: Any = None
    rhs: Any = None
    formula: Callable | None = None
    options: dict | None = None

    def __post_init__(self):
        if self.target == "statement" and (self.lhs is not None or self.rhs is not None):
            raise ValueError(f"control {self.name!r}: a statement control replaces the value "
                             "function (formula=...), not lhs/rhs, which would be ignored")


@dataclass(frozen=True)
class Truth:
    """One source of truth: a numeric implementation tied to the SymPy expression it implements.

    The ``source_of_truth`` integrity check (``derivations.integrity``) evaluates ``expr`` with
    mpmath at ``cfg.dps`` digits and ``value(point)`` (the code the checks, ``evaluate`` or the
    report use) on random points and requires agreement to ``tol`` (relative).

    ``points``: ``cfg -> [point]``; a point is a ``Params`` (the expression then sees the
    instance, the scalar parameters and the derivation's definitions it needs) or a plain dict
    ``{symbol name: number}`` (for formulas in normalised variables such as ``x``, ``beta``).
    Default: random generic points around the derivation's check points.
    ``env``: ``(point, dps) -> {symbol name: value}``, extra values (e.g. ``||Delta*||_F^2`` as one
    symbol, or a fixed point solved numerically and certified by its own step).
    """

    name: str
    expr: Any
    value: Callable
    points: Callable | None = None
    env: Callable | None = None
    tol: float = 1e-9


@dataclass
class Certificate:
    method: str               # checker name
    verdict: str              # pass | fail | error
    evidence: dict            # numbers that back the verdict
    seconds: float
    summary: str              # one line for tables

    def as_dict(self) -> dict:
        return {"method": self.method, "verdict": self.verdict, "evidence": self.evidence,
                "seconds": round(self.seconds, 4), "summary": self.summary}


def _hook(default, doc: str):
    """A field of ``Hooks``: its default (``dict``: a fresh empty dict) and what reads it."""
    if default is dict:
        return field(default_factory=dict, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Hooks:
    """A derivation's optional hooks, typed, each with what reads it and its default when the
    derivation does not set it -- one commented place.  A derivation passes them as a dict
    (``extra={...}``); an unknown key is refused with a suggestion (a misspelt key would
    silently switch a check off).  Read them as attributes (``der.extra.truth``)."""

    truth: Any = _hook((), "Truth(s): numeric implementations tied to their SymPy expressions "
                           "(source_of_truth)")
    truth_statement: Any = _hook(True, "False: the statement's right side is not compared with "
                                       "`formula` (it is tied by `truth` entries instead)")
    truth_env: Any = _hook(None, "(Params, dps) -> {symbol: value}: extra values the statement's "
                                 "Truth needs")
    truth_domain: Any = _hook(None, "Params -> bool: where the statement's Truth applies (its own "
                                    "condition)")
    symbol_values: Any = _hook(dict, "{symbol name: SymPy expr}: scalar symbols of the statement "
                                     "defined by expressions, for the Truth's evaluation")
    no_closed_form: Any = _hook(None, "reason: the statement has no closed form to tie to "
                                      "`formula`")
    regions: Any = _hook(dict, "{name: Params -> bool}: regions the check points must visit "
                               "(generic_points)")
    step_regions: Any = _hook(dict, "{name: (step id, Params -> bool)}: regions a step's points "
                                    "must visit")
    generic_exempt: Any = _hook(dict, "{rule: reason}: genericity rules the mathematics does not "
                                      "allow")
    chain: Any = _hook(None, "step ids whose composition must end in the statement (chain)")
    chain_exempt: Any = _hook(None, "reason: the statement is checked directly, not through a "
                                    "chain of steps")
    homogeneity_exempt: Any = _hook(dict, "{step id: reason}: relations waived from the "
                                          "homogeneity check")
    integrity_waivers: Any = _hook(dict, "{check name: reason}: integrity checks waived, with the "
                                         "reason")
    statement_options: Any = _hook(dict, "options of the statement's checker (search spaces, "
                                         "iterations...)")
    pieces_mc: Any = _hook(None, "(Params, trials, gen, device, variant) -> (lhs, rhs[, scale]): "
                                 "checker pieces_mc")
    route_samples: Any = _hook(None, "(Params, trials, gen, device) -> samples: route B of checker"
                                     " two_routes")
    leading: Any = _hook(None, "Params -> coefficient: the series checker's leading coefficient")
    convergence: Any = _hook(None, "(cfg, formula) -> rows: the convergence study of an asymptotic"
                                   " statement")
    fixed_point: Any = _hook(None, "(Params, dps, perturb) -> root and residual: checker "
                                   "fixed_point")
    value_points: Any = _hook(None, "cfg -> [Params]: points of checker value_e2e")
    exact_estimator_value: Any = _hook(None, "Params -> float: the exact value (no Monte Carlo) "
                                       "of what `simulate` estimates, for a deterministic "
                                       "estimator; checker value_e2e compares it with the "
                                       "formula to round-off")
    simulate_raw: Any = _hook(None, "the raw-data simulator beside a fast sampler (first end-to-"
                                    "end point)")
    regime: Any = _hook(None, "'over' | 'under': the samplers' certification regime")
    evaluate_details: Any = _hook(None, "Params -> dict: what `evaluate` prints beside the value")
    value_label: Any = _hook(None, "what `evaluate`'s value is, when it is not the statement's "
                                   "right side")
    simulate_trials: Any = _hook(20000, "the default number of data sets of `simulate`")
    report_sweep: Any = _hook(None, "the report's one-parameter sweep of this derivation")
    display_names: Any = _hook((), "{symbol: LaTeX}: names the report shows for this derivation's "
                                   "symbols")
    display_names_note: Any = _hook("", "a sentence explaining display_names")
    answers: Any = _hook(dict, "{referee question: answer}: the derivation's answers in the "
                               "referee section")
    sources: Any = _hook((), "extra source files whose content keys the report's cache of this "
                             "derivation")
    def items(self):
        """The hooks this derivation sets (different from their defaults), as (name, value)."""
        for f in fields(self):
            v = getattr(self, f.name)
            dflt = f.default_factory() if f.default_factory is not MISSING else f.default
            if v != dflt:
                yield f.name, v

    def need(self, name: str, owner: str):
        """The hook ``name``, or a ``KeyError`` naming the derivation and the hook (a checker
        that needs a hook the derivation does not set)."""
        value = getattr(self, name)
        if value is None:
            raise KeyError(f"{owner} sets no extra[{name!r}] hook, which this check needs")
        return value

    @classmethod
    def from_dict(cls, owner: str, values: dict) -> "Hooks":
        import difflib

        for key in values:
            if key not in EXTRA_KEYS:
                near = difflib.get_close_matches(key, EXTRA_KEYS, n=1)
                raise ValueError(f"derivation {owner}: unknown extra key {key!r}"
                                 + (f" (did you mean {near[0]!r}?)" if near else "")
                                 + "; the known keys are the fields of derivations.core.Hooks")
        return cls(**values)


# name -> what reads it (the fields of ``Hooks``)
EXTRA_KEYS: dict[str, str] = {f.name: f.metadata["doc"] for f in fields(Hooks)}


@dataclass
class Derivation:
    id: str
    title: str
    regime: str                           # "overdetermined" | "underdetermined" | ...
    assumptions: tuple                    # LaTeX sentences
    definitions: tuple                    # ((name, sympy expr), ...) evaluated in order
    steps: tuple
    statement: Statement
    controls: tuple
    # --- numeric hooks ---------------------------------------------------------------
    validate: Callable                    # Params -> None, raises InputError
    formula: Callable                     # Params -> float (value of the statement's rhs)
    simulate: Callable | None             # (Params, trials, gen, device) -> tensor of samples
    hp_params: Callable                   # ctx -> [Params] for high-precision checks
    mc_params: Callable                   # ctx -> [Params] for Monte Carlo step checks
    check_points: Callable                # ctx -> [Params] for the end-to-end check
    summary: str = ""                     # one paragraph for the report
    references: tuple = ()
    extra: Any = field(default_factory=dict)    # a dict of hooks, made ``Hooks`` on creation
    module: Any = None                    # filled by the registry (for cache keys)
    # machine-readable scalar assumptions (SymPy relations, e.g. ``n > d + 1``): the formal
    # checker's hypotheses, beside the registry's symbol assumptions
    scalar_assumptions: tuple = ()

    def __post_init__(self):
        import sympy as sp

        if isinstance(self.extra, dict):
            self.extra = Hooks.from_dict(self.id, self.extra)
        elif not isinstance(self.extra, Hooks):
            raise TypeError(f"derivation {self.id}: extra must be a dict or Hooks, "
                            f"got {type(self.extra).__name__}")

        for a in self.scalar_assumptions:
            if not isinstance(a, (sp.core.relational.Relational, sp.And)):
                raise TypeError(f"derivation {self.id}: scalar assumption {a!r} is not a SymPy "
                                "relation (write e.g. sp.Gt(n, d + 1))")

    @property
    def plain_title(self) -> str:
        """The title for the terminal (Unicode text; ``title`` itself is LaTeX)."""
        from symbolic.text import plain

        return plain(self.title)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"{self.id} has no step {step_id!r}")

    @property
    def kind(self) -> str:
        return self.statement.kind

    def source_text(self) -> str:
        """Source of the module that declares this derivation (a cache-key ingredient)."""
        return inspect.getsource(self.module) if self.module is not None else ""


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        return False
