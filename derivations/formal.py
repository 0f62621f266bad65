"""The ``formal`` checker: scalar steps and scalar claims proved by Coq's kernel.

For a step ``lhs = rhs`` (or an inequality) the checker builds a Coq goal

    forall (v1 ... : R), H1 -> ... -> Hm -> lhs = rhs

whose hypotheses come from machine-readable assumptions only: the registry's assumptions of
each symbol (``positive`` -> ``0 < v``, a positive integer -> ``1 <= v``, ``nonnegative`` ->
``0 <= v``), the derivation's ``scalar_assumptions`` (SymPy relations such as ``n > d + 1``) and
the definitions of scalar symbols the goal uses (``lam_top = ...``).  Coq's ``/`` and ``sqrt``
are total, so every goal comes with a *domain lemma*: its denominators are non-zero and its
radicands non-negative under the same hypotheses.

Proof search tries a fixed sequence of tactic scripts (``field`` with side conditions discharged
by ``lra``/``nra``; the same after replacing products of square roots by the rational expression
SymPy proposes for them, the replacement itself proved in Coq; ``lra``/``nra`` with the facts
``sqrt a >= 0``, ``sqrt a * sqrt a = a``; ``psatz``; ``interval`` for inequalities).  When no
script proves a goal, the checker looks for a counterexample (a rational point satisfying the
hypotheses where the two sides differ, found with mpmath) and asks Coq to prove the *negation*
at that point.  Verdicts:

* ``pass`` -- the goal and its domain lemma compiled with ``coqc`` (exit 0), no ``Admitted``,
  and ``Print Assumptions`` lists nothing beyond the axioms of Coq's standard real numbers;
* ``fail`` -- Coq proved the negation at a counterexample (a wrong statement, e.g. a negative
  control);
* ``not formalised`` -- neither; the certificate says why (a construct with no Coq rendering,
  no script succeeded, a proof needing further axioms).  Never a pass;
* ``skipped`` -- ``coqc`` is not installed (``LORA_AUDIT_COQC`` names another binary; an empty
  value disables Coq); one line on stderr says so.  Never a pass.

All goals of one derivation go into one file ``formal_<id>.v`` (one ``coqc`` run to find the
scripts, one to check the final file); results are cached by the hash of the goals.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import mpmath as mp
import numpy as np
import sympy as sp

from numeric.seeds import stable_seed
from symbolic.coq import CoqPrintError, coq, coq_name, domain_conditions, sqrt_atoms, sqrt_groups
from symbolic.registry import REGISTRY

from .core import Certificate

ENGINE_VERSION = 2          # bump when the file layout or the scripts change (cache key)
NEUTRAL = ("skipped", "not formalised")
# the axioms of Coq's standard library real numbers (Coq 8.16: classical Dedekind reals)
STANDARD_AXIOMS = frozenset({
    "ClassicalDedekindReals.sig_forall_dec",
    "ClassicalDedekindReals.sig_not_dec",
    "FunctionalExtensionality.functional_extensionality_dep",
})
LARGE_GOAL = 1200          # characters: beyond this only field-based scripts and lra are tried
TACTIC_TIMEOUT = 10         # seconds per script attempt (Coq's ``timeout``)
COQC_TIMEOUT = 600          # seconds per coqc run
FORBIDDEN = re.compile(r"\b(Admitted|admit|Axiom|Parameter|Hypothesis|Conjecture)\b")

PREAMBLE = r"""Require Import Reals Lra Psatz.
Open Scope R_scope.

(* helpers: non-negativity of quotients, positivity / non-zeroness of expressions built from
   positive parts, sign of a quotient *)
Lemma fp_div_le (a b : R) : 0 <= a -> 0 < b -> 0 <= a / b.
Proof. intros; unfold Rdiv; apply Rmult_le_pos; [assumption | apply Rlt_le, Rinv_0_lt_compat; assumption]. Qed.

Lemma fp_div_pos_iff (p q : R) : 0 < q -> (0 < p / q <-> 0 < p).
Proof.
  intro Hq; split; intro H.
  - assert (E : p = p / q * q) by (field; lra). rewrite E. apply Rmult_lt_0_compat; assumption.
  - apply Rdiv_lt_0_compat; assumption.
Qed.

Lemma fp_mul_pos_iff (p q : R) : 0 < p -> (0 < p * q <-> 0 < q).
Proof.
  intro Hp; split; intro H.
  - assert (E : q = p * q / p) by (field; lra). rewrite E. apply Rdiv_lt_0_compat; assumption.
  - apply Rmult_lt_0_compat; assumption.
Qed.

Ltac fp_pos := first [ lra | nra |
  match goal with
  | |- _ > _ => unfold Rgt; fp_pos
  | |- _ >= _ => apply Rle_ge; fp_pos
  | |- 0 < _ + _ => apply Rplus_lt_0_compat; fp_pos
  | |- 0 < _ * _ => apply Rmult_lt_0_compat; fp_pos
  | |- 0 < _ / _ => apply Rdiv_lt_0_compat; fp_pos
  | |- 0 < / _ => apply Rinv_0_lt_compat; fp_pos
  | |- 0 < _ ^ _ => apply pow_lt; fp_pos
  | |- 0 < sqrt _ => apply sqrt_lt_R0; fp_pos
  | |- 0 <= sqrt _ => apply sqrt_pos
  | |- 0 <= _ + _ => apply Rplus_le_le_0_compat; fp_pos
  | |- 0 <= _ * _ => apply Rmult_le_pos; fp_pos
  | |- 0 <= _ / _ => apply fp_div_le; fp_pos
  | |- 0 <= _ ^ _ => apply pow_le; fp_pos
  | |- 0 <= _ => apply Rlt_le; fp_pos
  end ].

Ltac fp_nz := first [ apply Rgt_not_eq; unfold Rgt; fp_pos | apply Rlt_not_eq; lra
  | intro; nra
  | match goal with
    | |- _ ^ _ <> 0 => apply pow_nonzero; fp_nz
    | |- _ * _ <> 0 => apply Rmult_integral_contrapositive_currified; fp_nz
    | |- _ / _ <> 0 => unfold Rdiv; apply Rmult_integral_contrapositive_currified;
                       [fp_nz | apply Rinv_neq_0_compat; fp_nz]
    end ].

Ltac fp_field := field; repeat split; fp_nz.
"""
INTERVAL_IMPORT = "Require Import Interval.Tactic.\n"


# ------------------------------------------------------------------------------ coqc itself
def coqc_path() -> str | None:
    """The ``coqc`` binary: ``$LORA_AUDIT_COQC`` when set (empty: none), else ``coqc`` on PATH."""
    override = os.environ.get("LORA_AUDIT_COQC")
    if override is not None:
        if not override.strip():
            return None
        found = shutil.which(override)
        return found
    return shutil.which("coqc")


@lru_cache(maxsize=8)
def _version_of(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    m = re.search(r"version\s+(\S+)", out.stdout)
    return m.group(1) if m else out.stdout.strip()[:40]


def coq_version() -> str | None:
    """coqc's version (``"8.16.1"``), or ``None`` when Coq is not available."""
    path = coqc_path()
    if path is None:
        return None
    return _version_of(path) or None


_NOTICE_SHOWN = False


def _notice_once() -> None:
    global _NOTICE_SHOWN
    if not _NOTICE_SHOWN:
        _NOTICE_SHOWN = True
        print("formal: coqc not found, formal checks skipped (install Coq: apt-get install coq "
              "libcoq-interval libcoq-coquelicot)", file=sys.stderr)


# ------------------------------------------------------------------------- Print Assumptions
def parse_assumptions(text: str) -> list[str]:
    """Names listed by one ``Print Assumptions`` block (``[]`` for "Closed under the global
    context").  Entries are ``Name : type`` or ``Name`` followed by an indented ``: type``;
    continuation lines are indented.  Section variables, axioms and opaque or assumed
    transparent constants are all reported."""
    text = text.strip()
    if not text or text.startswith("Closed under the global context"):
        return []
    names = []
    for line in text.splitlines():
        if not line.strip() or line[0].isspace():
            continue
        if re.match(r"^(Axioms|Section Variables|Opaque constants|Transparent constants"
                    r"|Constants assumed)\b.*:\s*$", line):
            continue
        m = re.match(r"^([^\s:]+)\s*(:|$)", line)
        if m:
            names.append(m.group(1))
        else:
            names.append(line.split()[0])
    return names


def nonstandard_axioms(names) -> list[str]:
    return sorted(set(names) - STANDARD_AXIOMS)


# ------------------------------------------------------------------------------------ goals
@dataclass
class Goal:
    """One formal goal: ``forall vars, hyps -> concl``; ``concl`` a SymPy relation."""

    name: str                         # Coq identifier of the lemma
    variables: tuple                  # SymPy symbols, in order
    hypotheses: tuple                 # atomic SymPy relations
    concl: object                     # SymPy relation (Eq, Lt, Le, Gt, Ge, Equivalent)
    definitions: dict = field(default_factory=dict)   # symbol -> defining expression
    scripts: tuple = ()               # extra (name, script) tried first
    sibling: str | None = None        # a proved goal whose lemma a refutation may use
    error: str | None = None          # why it cannot be stated (printing refused)

    # -- Coq text ------------------------------------------------------------------
    def binders(self) -> str:
        return " ".join(coq_name(v.name) for v in self.variables)

    def prop(self) -> str:
        hyps = "".join(f"{coq(h)} -> " for h in self.hypotheses)
        return f"forall ({self.binders()} : R), {hyps}{coq(self.concl)}" if self.variables \
            else f"{hyps}{coq(self.concl)}"

    def intro_line(self) -> str:
        names = [coq_name(v.name) for v in self.variables] + \
                [f"H{i}" for i in range(1, len(self.hypotheses) + 1)]
        return f"intros {' '.join(names)}." if names else ""

    def domain(self) -> list:
        sides = _relation_sides(self.concl)
        return domain_conditions(*sides)

    def domain_prop(self) -> str | None:
        conds = self.domain()
        if not conds:
            return None
        parts = [f"{coq(e)} <> 0" if kind == "nonzero" else f"0 <= {coq(e)}" for kind, e in conds]
        hyps = "".join(f"{coq(h)} -> " for h in self.hypotheses)
        body = " /\\ ".join(f"({p})" for p in parts)
        return f"forall ({self.binders()} : R), {hyps}{body}" if self.variables else f"{hyps}{body}"

    def domain_script(self) -> str:
        tacs = []
        for kind, e in self.domain():
            base = "fp_nz" if kind == "nonzero" else "fp_pos"
            options = [base]
            for alt in (sp.factor(e), sp.together(e)):
                if not e.is_Atom and coq(alt) != coq(e):
                    # bring the expression to factored / one-denominator form first (by field)
                    options.append(f"replace ({coq(e)}) with ({coq(alt)}) by "
                                   f"(first [ring | fp_field]); {base}")
            tac = options[0] if len(options) == 1 else "first [" + " | ".join(
                f"solve [{o}]" for o in options) + "]"
            tacs.append(tac)
        return _conj_script(tacs)

    def statement_hash(self) -> str:
        return hashlib.sha256((self.prop() + "\n" + (self.domain_prop() or "")).encode()).hexdigest()

    def uses_interval(self) -> bool:
        return not isinstance(self.concl, sp.Equality)


def _relation_sides(rel):
    if isinstance(rel, sp.Equivalent):
        out = []
        for a in rel.args:
            out.extend(_relation_sides(a))
        return out
    if isinstance(rel, (sp.And, sp.Or)):
        out = []
        for a in rel.args:
            out.extend(_relation_sides(a))
        return out
    return [rel.lhs, rel.rhs]


def _conj_script(tacs) -> str:
    if not tacs:
        return "idtac"
    if len(tacs) == 1:
        return f"solve [{tacs[0]}]"
    return f"split; [solve [{tacs[0]}] | {_conj_script(tacs[1:])}]"


def registry_hypotheses(symbols) -> list:
    """``0 < v`` / ``1 <= v`` / ``0 <= v`` from the registry's assumptions of each symbol."""
    out = []
    for s in symbols:
        info = REGISTRY.get(s.name)
        a = info.assumptions if info is not None else {}
        a = {**{k: v for k, v in s.assumptions0.items() if v}, **a}
        if a.get("integer") and a.get("positive"):
            out.append(sp.Le(1, s, evaluate=False))
        elif a.get("positive"):
            out.append(sp.Lt(0, s, evaluate=False))
        elif a.get("nonnegative"):
            out.append(sp.Le(0, s, evaluate=False))
    return out


def _atomic(rel) -> list:
    if isinstance(rel, sp.And):
        out = []
        for a in rel.args:
            out.extend(_atomic(a))
        return out
    if isinstance(rel, sp.logic.boolalg.BooleanTrue):
        return []
    if not isinstance(rel, sp.core.relational.Relational):
        raise TypeError(f"a scalar assumption must be a SymPy relation, got {rel!r}")
    return [rel]


def _scalar_definitions(derivation) -> dict:
    """Definitions of scalar symbols whose defining expression Coq can print."""
    out = {}
    for name, expr in getattr(derivation, "definitions", ()):
        info = REGISTRY.get(name)
        if info is None or info.kind != "scalar":
            continue
        try:
            coq(expr)
        except CoqPrintError:
            continue
        out[sp.Symbol(name, **info.assumptions)] = expr
    return out


def make_goal(name, concl, assumptions=(), definitions=None, scripts=(), sibling=None) -> Goal:
    """A goal for ``concl`` with hypotheses from the registry, ``assumptions`` (relations whose
    symbols the goal uses) and the printable scalar ``definitions`` it depends on."""
    definitions = definitions or {}
    used = set(concl.free_symbols)
    frontier = set(used)
    while frontier:          # definitions used, transitively
        new = set()
        for s in frontier:
            if s in definitions:
                new |= set(sp.sympify(definitions[s]).free_symbols) - used
        used |= new
        frontier = new
    hyps = []
    for a in assumptions:
        for h in _atomic(a):
            if h.free_symbols <= used and h not in hyps:
                hyps.append(h)
    defs = {s: e for s, e in definitions.items() if s in used}
    variables = tuple(sorted(used, key=lambda s: s.name))
    all_hyps = registry_hypotheses(variables) + hyps + [sp.Eq(s, e, evaluate=False)
                                                       for s, e in defs.items()]
    g = Goal(name, variables, tuple(all_hyps), concl, defs, tuple(scripts), sibling)
    try:
        g.prop()
        g.domain_prop()
    except CoqPrintError as exc:
        g.error = str(exc)
    return g


def step_relation(step):
    if step.rel == "=":
        return sp.Eq(step.lhs, step.rhs, evaluate=False)
    if step.rel == "<=":
        return sp.Le(step.lhs, step.rhs, evaluate=False)
    if step.rel == ">=":
        return sp.Ge(step.lhs, step.rhs, evaluate=False)
    raise CoqPrintError(f"relation {step.rel!r} has no formal meaning (an asymptotic claim)")


def lemma_ident(*parts) -> str:
    return "_".join(re.sub(r"[^A-Za-z0-9]+", "_", str(p)).strip("_") for p in parts)


def goal_for_step(step, derivation, name=None, sibling=None) -> Goal:
    name = name or lemma_ident("step", step.id)
    try:
        concl = step_relation(step)
    except CoqPrintError as exc:
        return Goal(name, (), (), sp.true, error=str(exc))
    return make_goal(name, concl, getattr(derivation, "scalar_assumptions", ()),
                     _scalar_definitions(derivation), sibling=sibling)


# ---------------------------------------------------------------------------------- scripts
def _sqrt_facts(expr_list) -> list[str]:
    lines = []
    for i, a in enumerate(dict.fromkeys(r for e in expr_list for r in sqrt_atoms(e))):
        t = coq(a)
        lines.append(f"pose proof (sqrt_pos ({t})) as Fp{i}")
        lines.append(f"assert (Fs{i} : sqrt ({t}) * sqrt ({t}) = {t}) by (apply sqrt_sqrt; fp_pos)")
    return lines


def _group_replacements(goal) -> list[str]:
    """``replace (sqrt-group) with (rational) by (...)`` for every product of square roots that
    SymPy (untrusted) says equals a rational expression; Coq proves each replacement."""
    out = []
    pos = {s: sp.Symbol(s.name, positive=True) for s in goal.variables}
    for side in _relation_sides(goal.concl):
        for grp in sqrt_groups(side):
            num, den = [], []
            for f in sp.Mul.make_args(grp):
                (num if f.exp > 0 else den).append(f.base)
            radicand = sp.Mul(*num) / sp.Mul(*den)
            try:
                g = sp.factor(sp.sqrt(sp.factor(sp.together(radicand.subs(pos)))))
            except Exception:  # noqa: BLE001 -- a suggestion only
                continue
            if g.atoms(sp.Pow) and any(isinstance(p.exp, sp.Rational) and p.exp.q == 2
                                       for p in g.atoms(sp.Pow)):
                continue
            g = g.subs({v: k for k, v in pos.items()})
            gt, Gt = coq(g), f"({_group_text(grp)})"
            nz_roots = "; ".join(["repeat split", "fp_nz"])
            out.append(
                f"replace {Gt} with ({gt}) by ("
                f"apply Rsqr_inj; [fp_pos | fp_pos | unfold Rsqr; "
                f"replace ({Gt} * {Gt}) with ({_square_text(num, den)}) by (field; {nz_roots}); "
                f"rewrite ?sqrt_sqrt by fp_pos; fp_field])")
    return out


def _group_text(grp) -> str:
    """The printed square-root group exactly as ``CoqPrinter._print_Mul`` writes it."""
    from symbolic.coq import CoqPrinter

    pr = CoqPrinter()
    num = [f for f in sp.Mul.make_args(grp) if f.exp > 0]
    den = [1 / f for f in sp.Mul.make_args(grp) if f.exp < 0]
    text = pr._product(num) if num else "1"
    if den:
        d = pr._product(den)
        text = f"{text} / {d if len(den) == 1 else f'({d})'}"
    return text


def _square_text(num, den) -> str:
    n = " * ".join(f"(sqrt {_paren(coq(a))} * sqrt {_paren(coq(a))})" for a in num) or "1"
    if not den:
        return n
    d = " * ".join(f"(sqrt {_paren(coq(b))} * sqrt {_paren(coq(b))})" for b in den)
    return f"({n}) / ({d})"


def _paren(t: str) -> str:
    from symbolic.coq import _balanced_outer

    return t if re.fullmatch(r"[A-Za-z0-9_]+", t) or (t.startswith("(") and _balanced_outer(t)) \
        else f"({t})"


def _factor_replacements(goal) -> list[str]:
    """``replace (D) with (factored D) by ring`` for every denominator SymPy factors further,
    so that ``field``'s side conditions are about the factors (each proved non-zero)."""
    out = []
    for kind, e in goal.domain():
        if kind != "nonzero" or e.is_Atom:
            continue
        f = sp.factor(e)
        if f != e and coq(f) != coq(e):
            out.append(f"replace ({coq(e)}) with ({coq(f)}) by (first [ring | fp_field])")
    return out


def scripts_for(goal: Goal) -> list[tuple[str, str]]:
    """The fixed sequence of tactic scripts tried on a goal (its own extra scripts first)."""
    sides = _relation_sides(goal.concl)
    facts = "; ".join(_sqrt_facts(sides + [h for h in goal.hypotheses]))
    pre = f"{facts}; " if facts else ""
    out = list(goal.scripts)
    if isinstance(goal.concl, sp.Equality):
        out.append(("field", "fp_field"))
        facs = _factor_replacements(goal)
        if facs:
            out.append(("denominators factored, field", "; ".join(facs) + "; fp_field"))
        reps = _group_replacements(goal)
        if reps:
            out.append(("sqrt groups replaced, field", "; ".join(reps) + "; fp_field"))
        if len(goal.prop()) > LARGE_GOAL:
            # nra/psatz on a goal this large never succeed within the time limit: only the
            # field-based scripts and lra are tried (a fixed rule, stated in the certificate)
            if facts:
                out.append(("sqrt facts, lra", f"{pre}lra"))
            return out
        if facts:
            out.append(("sqrt facts, lra", f"{pre}lra"))
            out.append(("sqrt facts, nra", f"{pre}nra"))
            out.append(("sqrt facts, field_simplify, nra",
                        f"{pre}field_simplify_eq; [nra | repeat split; fp_nz ..]"))
        out.append(("nra", "nra"))
        out.append(("field_simplify, nra", "field_simplify_eq; [nra | repeat split; fp_nz ..]"))
        out.append(("psatz", f"{pre}psatz R 3"))
    else:
        out.append(("lra", "lra"))
        out.append(("nra", f"{pre}nra"))
        out.append(("positivity", f"{pre}fp_pos"))
        out.append(("psatz", f"{pre}psatz R 3"))
        out.append(("interval", "interval"))
    return out


# ----------------------------------------------------------------------------- refutation
_SMALL = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20)


def _candidate(goal: Goal, rng) -> dict:
    point = {}
    # variables that are themselves radicands get perfect squares (exact square roots at the
    # point keep the refutation in rational arithmetic)
    bare = {a for e in _relation_sides(goal.concl) for a in sqrt_atoms(e) if isinstance(a, sp.Symbol)}
    for v in goal.variables:
        if v in bare and v not in goal.definitions:
            point[v] = sp.Integer(int(rng.choice((1, 4, 9, 16, 25, 36))))
            continue
        if v in goal.definitions:
            continue
        a = {**{k: x for k, x in v.assumptions0.items() if x},
             **(REGISTRY[v.name].assumptions if v.name in REGISTRY else {})}
        if a.get("integer"):
            point[v] = sp.Integer(int(rng.choice(_SMALL)))
        else:
            q = int(rng.choice((1, 2, 3, 4, 5, 8, 10)))
            p = int(rng.integers(1, 5 * q + 1))
            val = sp.Rational(p, q)
            if not (a.get("positive") or a.get("nonnegative")) and rng.random() < 0.3:
                val = -val
            point[v] = val
    return point


def _value(expr, point, defs):
    e = sp.sympify(expr)
    for _ in range(4):
        e = e.subs(defs)
    return e.subs(point)


def find_counterexample(goal: Goal, seed=0, tries=300):
    """A rational point satisfying every hypothesis (at 50 digits, strict ones with a margin)
    where the conclusion is false by a clear margin; ``None`` if none is found.

    Two phases.  (1) ``tries`` random rational points.  (2) If none refutes, a deterministic
    scan: from a few random base points, each free variable in turn runs over a fixed rational
    grid (float64, vectorised) and the grid values where the conclusion looks false are
    confirmed at 50 digits.  A wrong statement is often wrong only in a thin band (a threshold
    moved by a few percent); random points find such a band at some seeds and miss it at
    others, the scan finds it at every seed."""
    if goal.error or not isinstance(goal.concl, (sp.core.relational.Relational, sp.Equivalent)):
        return None
    rng = np.random.default_rng(stable_seed(seed, "formal-counterexample", goal.name))
    free = [v for v in goal.variables if v not in goal.definitions]
    hyps = [h for h in goal.hypotheses
            if not (isinstance(h, sp.Equality) and h.lhs in goal.definitions)]
    rels = list(goal.concl.args) if isinstance(goal.concl, sp.Equivalent) else [goal.concl]
    try:
        fns = {id(rel): (_compile(rel.lhs, free, goal), _compile(rel.rhs, free, goal))
               for rel in hyps + rels}
    except Exception:  # noqa: BLE001 -- no numeric search possible: no refutation
        return None
    with mp.workdps(50):
        for _ in range(tries):
            point = _candidate(goal, rng)
            hit = _refutes(goal, point, free, hyps, rels, fns)
            if hit is not None:
                return hit
        for point in _scan_points(goal, rng, free, hyps, rels):
            hit = _refutes(goal, point, free, hyps, rels, fns)
            if hit is not None:
                return hit
    return None


def _refutes(goal, point, free, hyps, rels, fns):
    """``(point, margin)`` if ``point`` satisfies the hypotheses and falsifies the conclusion at
    the working precision (50 digits), else ``None``."""
    vals = [mp.mpf(int(point[v].p)) / int(point[v].q) for v in free]

    def ev(rel):
        f, g = fns[id(rel)]
        try:
            lv, rv = f(*vals), g(*vals)
        except (ZeroDivisionError, ValueError, TypeError):
            return None, None
        out = []
        for z in (lv, rv):
            if isinstance(z, mp.mpc):
                if abs(z.imag) > mp.mpf(10) ** -40 * max(1, abs(z)):
                    return None, None
                z = z.real
            try:
                z = mp.mpf(z)
            except (TypeError, ValueError):
                return None, None
            if not mp.isfinite(z):
                return None, None
            out.append(z)
        return out[0], out[1]

    for h in hyps:
        lv, rv = ev(h)
        if lv is None or not _hyp_holds(h, lv, rv):
            return None
    if isinstance(goal.concl, sp.Equivalent):
        truth = [_truth_at(rel, *ev(rel)) for rel in rels]
        if None not in truth and truth[0] != truth[1]:
            return point, 1.0 if truth[0] else -1.0
        return None
    lv, rv = ev(goal.concl)
    if lv is not None and _clearly_false(goal.concl, lv, rv):
        return point, float(lv - rv)
    return None


# the scan: real variables over j/64, j = 1..1920 (0 < v <= 30; and -v where the sign is free),
# radicands over squares of that grid (exact square roots), integers over 1..40
_SCAN_DEN, _SCAN_MAX, _SCAN_BASES, _SCAN_KEEP = 64, 30, 24, 4


def _scan_points(goal, rng, free, hyps, rels):
    """Candidate points of the deterministic scan, most clearly violating first (float64
    screening only: each is confirmed at 50 digits by the caller)."""
    if not free:
        return []
    try:
        fl = {id(rel): (_compile_float(rel.lhs, free, goal), _compile_float(rel.rhs, free, goal))
              for rel in hyps + rels}
    except Exception:  # noqa: BLE001 -- no float form: no scan
        return []
    bare = {a for e in _relation_sides(goal.concl) for a in sqrt_atoms(e) if isinstance(a, sp.Symbol)}
    js = np.arange(1, _SCAN_DEN * _SCAN_MAX + 1)
    out = []
    for _ in range(_SCAN_BASES):
        base = _candidate(goal, rng)
        for i, v in enumerate(free):
            a = {**{k: x for k, x in v.assumptions0.items() if x},
                 **(REGISTRY[v.name].assumptions if v.name in REGISTRY else {})}
            if a.get("integer"):
                grid = [sp.Integer(j) for j in range(1, 41)]
            elif v in bare:
                grid = [sp.Rational(int(j), _SCAN_DEN) ** 2 for j in js]
            else:
                grid = [sp.Rational(int(j), _SCAN_DEN) for j in js]
                if not (a.get("positive") or a.get("nonnegative")):
                    grid += [-g for g in grid]
            cols = [np.full(len(grid), float(base[w])) for w in free]
            cols[i] = np.array([float(g) for g in grid])
            score = _float_violation(goal, fl, hyps, rels, cols)
            if score is None:
                continue
            for j in np.argsort(-score)[:_SCAN_KEEP]:
                if score[j] > 0:
                    out.append((float(score[j]), {**base, v: grid[int(j)]}))
    out.sort(key=lambda t: -t[0])
    return [p for _, p in out[:4 * _SCAN_KEEP * len(free)]]


def _float_violation(goal, fl, hyps, rels, cols):
    """Per grid point, a positive score where (in float64) every hypothesis holds and the
    conclusion is false by a relative margin of 1e-9, else 0; ``None`` if it cannot be
    evaluated."""
    with np.errstate(all="ignore"):
        def sides(rel):
            f, g = fl[id(rel)]
            lv = np.broadcast_to(np.asarray(f(*cols), dtype=float), cols[0].shape)
            rv = np.broadcast_to(np.asarray(g(*cols), dtype=float), cols[0].shape)
            return lv, rv

        def gap(rel):
            """signed margin by which ``rel`` holds (positive: true), relative to its size"""
            lv, rv = sides(rel)
            scale = np.maximum(1.0, np.maximum(np.abs(lv), np.abs(rv)))
            if isinstance(rel, (sp.StrictLessThan, sp.LessThan)):
                g = (rv - lv) / scale
            elif isinstance(rel, (sp.StrictGreaterThan, sp.GreaterThan)):
                g = (lv - rv) / scale
            elif isinstance(rel, sp.Equality):
                g = -np.abs(lv - rv) / scale
            elif isinstance(rel, sp.Unequality):
                g = np.abs(lv - rv) / scale
            else:
                raise TypeError(rel)
            return np.where(np.isfinite(g), g, np.nan)

        try:
            ok = np.ones(cols[0].shape, dtype=bool)
            for h in hyps:
                g = gap(h)
                ok &= (g >= 1e-9) if isinstance(h, (sp.StrictLessThan, sp.StrictGreaterThan)) \
                    else (g >= -1e-12)
            if isinstance(goal.concl, sp.Equivalent):
                ga, gb = gap(rels[0]), gap(rels[1])
                score = np.minimum(np.abs(ga), np.abs(gb))
                score = np.where(np.sign(ga) * np.sign(gb) < 0, score, 0.0)
            else:
                score = -gap(goal.concl)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
    score = np.where(ok & np.isfinite(score) & (score > 1e-9), score, 0.0)
    return score


def _compile_float(expr, free, goal):
    e = sp.sympify(expr)
    for _ in range(4):
        e = e.subs(goal.definitions)
    return sp.lambdify(free, e, "numpy")


def _compile(expr, free, goal):
    e = sp.sympify(expr)
    for _ in range(4):
        e = e.subs(goal.definitions)
    return sp.lambdify(free, e, "mpmath")


def _truth_at(rel, lv, rv):
    if lv is None:
        return None
    if _hyp_holds(rel, lv, rv) and not isinstance(rel, (sp.LessThan, sp.GreaterThan, sp.Equality)):
        return True
    if _clearly_false(rel, lv, rv):
        return False
    return None


def _hyp_holds(rel, lv, rv) -> bool:
    eps = mp.mpf(10) ** -30 * max(1, abs(lv), abs(rv))
    if isinstance(rel, sp.Equality):
        return abs(lv - rv) <= eps
    if isinstance(rel, sp.StrictLessThan):
        return lv < rv - eps
    if isinstance(rel, sp.StrictGreaterThan):
        return lv > rv + eps
    if isinstance(rel, sp.LessThan):
        return lv <= rv + eps
    if isinstance(rel, sp.GreaterThan):
        return lv >= rv - eps
    if isinstance(rel, sp.Unequality):
        return abs(lv - rv) > eps
    raise TypeError(f"cannot evaluate relation {rel!r}")


def _clearly_false(rel, lv, rv) -> bool:
    eps = mp.mpf(10) ** -20 * max(1, abs(lv), abs(rv))
    if isinstance(rel, sp.Equality):
        return abs(lv - rv) > eps
    if isinstance(rel, sp.StrictLessThan):
        return lv >= rv + eps
    if isinstance(rel, sp.LessThan):
        return lv > rv + eps
    if isinstance(rel, sp.StrictGreaterThan):
        return lv <= rv - eps
    if isinstance(rel, sp.GreaterThan):
        return lv < rv - eps
    return False


def _instance_args(goal: Goal, point: dict):
    """Coq arguments instantiating ``goal``'s variables at ``point``; a defined symbol is given
    its definition applied to the point (so that its hypothesis holds by ``reflexivity``).
    ``None`` when a variable has no value."""
    free = [v for v in goal.variables if v not in goal.definitions]
    args = []
    for v in goal.variables:
        if v in goal.definitions:
            body = goal.definitions[v]
            deps = [u for u in free if u in sp.sympify(body).free_symbols]
            fun = f"(fun {' '.join(coq_name(u.name) for u in deps)} : R => {coq(body)})" if deps \
                else f"({coq(body)})"
            args.append(f"({fun} {' '.join(f'({coq(point[u])})' for u in deps)})" if deps else fun)
        elif v in point:
            args.append(f"({coq(point[v])})")
        else:
            return None
    return args


def _instantiate(text: str, values: dict) -> str:
    """Coq text with every variable identifier replaced by its (parenthesised) value."""
    if not values:
        return text
    pat = re.compile(r"\b(" + "|".join(re.escape(k) for k in values) + r")\b")
    return pat.sub(lambda m: values[m.group(1)], text)


_HYP_TAC = "ltac:(first [reflexivity | lra | fp_pos | nra | fp_nz])"


def refutation_script(goal: Goal, point: dict, sibling: Goal | None = None,
                      diff: float = 0.0) -> str | None:
    """Coq script proving ``~ (goal)`` from the counterexample ``point`` (optionally using the
    proved lemma ``sibling`` at the same point); ``None`` if it cannot be instantiated."""
    args = _instance_args(goal, point)
    if args is None:
        return None
    hyp_args = " ".join(_HYP_TAC for _ in goal.hypotheses)
    lines = ["intro H", f"pose proof (H {' '.join(args)} {hyp_args}) as Hc", "cbv beta in Hc"]
    # square-root facts at the point, about the radicands exactly as they appear in Hc after
    # instantiation (the goal's text with each variable replaced by its value), with rational
    # bounds tight enough to separate the two sides
    values = {coq_name(v.name): args[i] for i, v in enumerate(goal.variables)}
    radicands = []
    for e in _relation_sides(goal.concl) + [goal.definitions[v] for v in goal.definitions]:
        for a in sqrt_atoms(e):
            if a not in radicands and not (sp.sympify(a).free_symbols - set(goal.variables)):
                radicands.append(a)
    for i, a in enumerate(radicands):
        t = _instantiate(coq(a), values)
        av = _value(a, point, goal.definitions)
        with mp.workdps(60):
            r = mp.sqrt(mp.mpf(str(sp.N(av, 60))))
            lo = Fraction(mp.nstr(r * (1 - mp.mpf(10) ** -25), 45)).limit_denominator(10 ** 30)
            hi = Fraction(mp.nstr(r * (1 + mp.mpf(10) ** -25), 45)).limit_denominator(10 ** 30)
        exact = sp.sqrt(sp.nsimplify(av)) if sp.sympify(av).is_Rational else None
        if exact is not None and exact.is_Rational:
            # an exact root: replace it by its value (sqrt_lem_1 proves the replacement)
            lines.append(f"try replace (sqrt ({t})) with ({coq(exact)}) in Hc by "
                         f"(symmetry; apply sqrt_lem_1; lra)")
        lines.append(f"pose proof (sqrt_pos ({t})) as Rp{i}")
        lines.append(f"assert (Rs{i} : sqrt ({t}) * sqrt ({t}) = {t}) by (apply sqrt_sqrt; lra)")
        lines.append(f"assert (Rl{i} : {coq(sp.Rational(lo.numerator, lo.denominator))} <= "
                     f"sqrt ({t})) by nra")
        lines.append(f"assert (Ru{i} : sqrt ({t}) <= {coq(sp.Rational(hi.numerator, hi.denominator))}) "
                     f"by nra")
    closing = ["lra", "nra", "(field_simplify in Hc; [lra | fp_nz ..])"]
    if isinstance(goal.concl, sp.Equivalent):
        first, second = goal.concl.args
        true_side, arrow = (first, "Hab") if diff > 0 else (second, "Hba")
        lines.append("destruct Hc as [Hab Hba]")
        lines.append(f"assert (Ht : {_instantiate(coq(true_side), values)}) by (first [lra | nra])")
        lines.append(f"apply {arrow} in Ht")
        lines.append("first [lra | nra]")
        return "; ".join(lines)
    if sibling is not None:
        sargs = _instance_args(sibling, point)
        if sargs is None:
            return None
        s_hyps = " ".join(_HYP_TAC for _ in sibling.hypotheses)
        lines.append(f"pose proof ({sibling.name} {' '.join(sargs)} {s_hyps}) as Hs")
        lines.append("cbv beta in Hs")
        closing = ["lra", "nra", "(field_simplify in Hc; field_simplify in Hs; [lra | fp_nz ..])"]
    lines.append(f"first [{' | '.join(closing)}]")
    return "; ".join(lines)


def refutation_scripts(goal, point, sibling, diff=0.0) -> list[tuple[str, str]]:
    out = []
    if sibling is not None and not isinstance(goal.concl, sp.Equivalent):
        s = refutation_script(goal, point, sibling, diff)
        if s:
            out.append((f"counterexample, with lemma {sibling.name}", s))
    s = refutation_script(goal, point, None, diff)
    if s:
        out.append(("counterexample", s))
    return out


# --------------------------------------------------------------------------- running coqc
def _run_coqc(text: str, timeout=COQC_TIMEOUT) -> tuple[int, str]:
    path = coqc_path()
    with tempfile.TemporaryDirectory(prefix="lora-audit-coq-") as tmp:
        f = Path(tmp) / "goals.v"
        f.write_text(text, encoding="utf-8")
        try:
            proc = subprocess.run([path, "-q", f.name], cwd=tmp, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 124, f"coqc did not finish within {timeout} s"
        return proc.returncode, proc.stdout + proc.stderr


def _preamble(goals) -> str:
    return PREAMBLE + (INTERVAL_IMPORT if any(g.uses_interval() for g in goals) else "")


def _attempts(tag, name, scripts) -> str:
    """``first [...]`` over scripts; each prints a marker before it runs, so the last marker
    printed names the script that succeeded, and ``@@NO<tag>`` that none did."""
    tries = [f'idtac "@@{tag} {name} {i}"; timeout {TACTIC_TIMEOUT} (solve [{script}])'
             for i, script in enumerate(scripts)]
    tries.append(f'idtac "@@NO{tag} {name}"')
    return "first [ " + "\n        | ".join(tries) + " ]"


def _proof_trials(goals) -> str:
    parts = [_preamble(goals)]
    for g in goals:
        parts.append(f"Goal {g.prop()}.\nProof.\n  {g.intro_line()}\n  "
                     f"{_attempts('TRY', g.name, [s for _, s in scripts_for(g)])}.\nAbort.\n")
        if g.domain_prop():
            parts.append(f"Goal {g.domain_prop()}.\nProof.\n  {g.intro_line()}\n  "
                         f"{_attempts('DOM', g.name, [g.domain_script()])}.\nAbort.\n")
    return "\n".join(parts)


def _parse_markers(out: str, tag: str) -> dict:
    """{name: index of the script that succeeded, or None}."""
    res = {}
    for m in re.finditer(rf"@@(NO)?{tag} (\S+)(?: (\d+))?", out):
        res[m.group(2)] = None if m.group(1) else int(m.group(3))
    return res


def _lemma_text(g, script_name, script) -> str:
    text = (f"(* tactic script: {script_name} *)\nLemma {g.name} : {g.prop()}.\nProof.\n"
            f"  {g.intro_line()}\n  {script}.\nQed.\n")
    if g.domain_prop():
        text += (f"Lemma {g.name}_domain : {g.domain_prop()}.\nProof.\n  {g.intro_line()}\n  "
                 f"{g.domain_script()}.\nQed.\n")
    return text


def _refutation_trials(goals, proved, counterexamples, by_name) -> tuple[str, dict]:
    parts = [_preamble(goals)]
    for g in goals:
        if g.name in proved:
            parts.append(_lemma_text(g, *proved[g.name]))
    options = {}
    for g in goals:
        if g.name not in counterexamples or g.name in proved:
            continue
        sib = by_name.get(g.sibling) if g.sibling in proved else None
        opts = refutation_scripts(g, counterexamples[g.name][0], sib, counterexamples[g.name][1])
        if not opts:
            continue
        options[g.name] = opts
        parts.append(f"Goal ~ ({g.prop()}).\nProof.\n  "
                     f"{_attempts('REF', g.name, [s for _, s in opts])}.\nAbort.\n")
    return "\n".join(parts), options


ALL_LEMMAS = "lora_audit_all_lemmas"


def _final_text(goals, proved, refuted, counterexamples, per_lemma=False) -> tuple[str, list]:
    """The file a referee re-runs: every proved lemma (with its domain lemma), every
    refutation, and ``Print Assumptions`` of a definition naming them all (the union of their
    axioms: one traversal of the library instead of one per lemma); ``per_lemma`` prints them
    lemma by lemma instead, between markers (used when the union holds a non-standard axiom,
    to say which lemma needs it)."""
    parts = [_preamble(goals), "(* Generated by lora-audit (derivations/formal.py); re-run with "
             "`coqc <this file>`. *)\n"]
    names = []
    for g in goals:
        if g.error:
            parts.append(f"(* {g.name}: not formalised -- {g.error} *)\n")
        elif g.name in proved:
            parts.append(_lemma_text(g, *proved[g.name]))
            names.append(g.name)
            if g.domain_prop():
                names.append(f"{g.name}_domain")
        elif g.name in refuted:
            sname, script = refuted[g.name]
            parts.append(f"(* {sname}: {_point_text(counterexamples[g.name][0])} *)\n"
                         f"Lemma {g.name}_refuted : ~ ({g.prop()}).\nProof.\n  {script}.\nQed.\n")
            names.append(f"{g.name}_refuted")
        else:
            parts.append(f"(* {g.name}: not proved by any tactic script; statement:\n   "
                         f"{g.prop()} *)\n")
    if per_lemma or len(names) < 2:
        for n in names:
            parts.append(f'Goal True. idtac "@@ASSUMPTIONS {n}". exact I. Abort.\n'
                         f'Print Assumptions {n}.\n')
    else:
        parts.append(f"Definition {ALL_LEMMAS} := ({', '.join(names)}).\n"
                     f'Goal True. idtac "@@ASSUMPTIONS {ALL_LEMMAS}". exact I. Abort.\n'
                     f"Print Assumptions {ALL_LEMMAS}.\n")
    parts.append('Goal True. idtac "@@END". exact I. Abort.\n')
    return "\n".join(parts), names


def _point_text(point) -> str:
    return ", ".join(f"{k.name} = {v}" for k, v in sorted(point.items(), key=lambda kv: kv[0].name))


def _parse_final(out: str) -> dict:
    blocks = {}
    pieces = re.split(r"@@ASSUMPTIONS (\S+)\n", out)
    for i in range(1, len(pieces), 2):
        blocks[pieces[i]] = parse_assumptions(pieces[i + 1].split("@@")[0])
    return blocks


# ------------------------------------------------------------------------------------ cache
_MEMO: dict = {}


def cache_dir() -> Path | None:
    d = os.environ.get("LORA_AUDIT_COQ_CACHE")
    return Path(d) if d else None


def _cache_load(key):
    if key in _MEMO:
        return _MEMO[key]
    d = cache_dir()
    if d is not None and (d / f"{key}.json").is_file():
        import json

        try:
            val = json.loads((d / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        _MEMO[key] = val
        return val
    return None


def _cache_store(key, val):
    _MEMO[key] = val
    d = cache_dir()
    if d is not None:
        import json

        from numeric.io import write_text_atomic

        d.mkdir(parents=True, exist_ok=True)
        write_text_atomic(d / f"{key}.json", json.dumps(val))


# ------------------------------------------------------------------------------------ hints
# A hint says which tactic script proved (or which refutation script refuted) a goal before,
# keyed by the goal's statement hash.  It only chooses what to try: the final file is compiled
# by coqc on every run all the same, and a hint that no longer works (a changed script list, a
# different Coq) makes the batch fall back to the full search.  ``formal_hints.json`` (committed)
# holds the hints learned from the registry's goals; ``python3 -m derivations.formal
# --learn-hints`` regenerates it.  ``LORA_AUDIT_COQ_HINTS=0`` disables hints.
HINTS_FILE = Path(__file__).with_name("formal_hints.json")
_HINTS: dict | None = None
_LEARNED: dict = {}


def _script_sha(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()[:16]


def hints_enabled() -> bool:
    return os.environ.get("LORA_AUDIT_COQ_HINTS", "1") not in ("0", "")


def load_hints() -> dict:
    global _HINTS
    if _HINTS is None:
        import json

        try:
            _HINTS = json.loads(HINTS_FILE.read_text(encoding="utf-8")).get("hints", {})
        except (OSError, ValueError):
            _HINTS = {}
    return _HINTS


def _hint(g: Goal) -> dict | None:
    if not hints_enabled() or g.error:
        return None
    return _LEARNED.get(g.statement_hash()) or load_hints().get(g.statement_hash())


def _hinted_script(g: Goal, hint) -> tuple[str, str] | None:
    """The script the hint names, if the goal's script list still contains it verbatim."""
    if not hint or hint.get("status") != "proved":
        return None
    for sname, script in scripts_for(g):
        if sname == hint.get("script_name") and _script_sha(script) == hint.get("script_sha"):
            return sname, script
    return None


def _learn(goals, results) -> None:
    for g in goals:
        r = results.get(g.name, {})
        if g.error or r.get("status") not in ("proved", "refuted"):
            continue
        _LEARNED[g.statement_hash()] = {"status": r["status"], "script_name": r["script_name"],
                                        "script_sha": _script_sha(r["script"])}


def write_hints(path=None) -> int:
    """Write the hints learned in this process (merged over none: only goals seen now)."""
    import json

    from numeric.io import write_text_atomic

    path = Path(path) if path else HINTS_FILE
    body = {"about": "tactic-script hints for derivations/formal.py, keyed by goal statement "
                     "hash; they only order the search, coqc checks every proof on every run",
            "engine_version": ENGINE_VERSION,
            "hints": dict(sorted(_LEARNED.items()))}
    write_text_atomic(path, json.dumps(body, indent=1, sort_keys=False) + "\n")
    return len(_LEARNED)


# --------------------------------------------------------------------------- proving a batch
def prove_goals(goals, file_stem="goals", seed=0, use_hints=True) -> dict:
    """Prove (or refute) a batch of goals in one file.  Returns ``{"file": name, "text": the
    final .v, "coqc": version, "results": {goal name: result}}``; a result has ``status``
    (``proved`` | ``refuted`` | ``not formalised`` | ``skipped`` | ``error``), ``reason``,
    ``script``, ``assumptions``, ``goal_hash``, ``statement``.

    With hints (see ``_hint``) a goal proved before is not searched again: its hinted script
    goes straight into the final file; a goal refuted before skips the proof search and its
    hinted refutation script is used at the (recomputed, seeded) counterexample.  Any failure
    of the hinted final file reruns the batch without hints, so hints change the time, never
    the verdicts."""
    version = coq_version()
    if version is None:
        _notice_once()
        return {"file": None, "text": None, "coqc": None,
                "results": {g.name: {"status": "skipped", "reason": "coqc not found",
                                     "goal_hash": None if g.error else g.statement_hash()}
                            for g in goals}}
    ok_goals = [g for g in goals if not g.error]
    key_src = "\n".join([str(ENGINE_VERSION), version, PREAMBLE, str(seed)]
                        + [f"{g.name}|{g.statement_hash()}|{scripts_for(g)}|{g.sibling}"
                           for g in ok_goals] + [f"{g.name}|error|{g.error}" for g in goals if g.error])
    key = hashlib.sha256(key_src.encode()).hexdigest()
    cached = _cache_load(key)
    if cached is not None:           # the same goals (e.g. both regimes of a derivation)
        return {**cached, "file": f"{file_stem}.v" if cached.get("file") else None}
    by_name = {g.name: g for g in ok_goals}
    hints = {g.name: _hint(g) for g in ok_goals} if use_hints else {}
    hints = {k: v for k, v in hints.items() if v}
    proved = {}
    for name, h in hints.items():
        hs = _hinted_script(by_name[name], h)
        if hs is not None:
            proved[name] = hs
    skip_search = set(proved) | {n for n, h in hints.items() if h.get("status") == "refuted"}
    search = [g for g in ok_goals if g.name not in skip_search]
    tries = {}
    if search:
        rc, out = _run_coqc(_proof_trials(search))
        if rc != 0:
            return _batch_error(goals, version, "the proof-search file did not compile", out)
        tries, doms = _parse_markers(out, "TRY"), _parse_markers(out, "DOM")
        for g in search:
            idx = tries.get(g.name)
            if idx is not None and (doms.get(g.name) is not None or not g.domain_prop()):
                proved[g.name] = scripts_for(g)[idx]
    counterexamples = {}
    for g in ok_goals:
        if g.name not in proved:
            cx = find_counterexample(g, seed=seed)
            if cx is not None:
                counterexamples[g.name] = cx
    refuted = {}
    if counterexamples:
        text_r, options = _refutation_trials(ok_goals, proved, counterexamples, by_name)
        pending = set(options)
        for name in list(pending):       # a hinted refutation script, if still generated
            h = hints.get(name)
            if h and h.get("status") == "refuted":
                for opt in options[name]:
                    if opt[0] == h.get("script_name") and _script_sha(opt[1]) == h.get("script_sha"):
                        refuted[name] = opt
                        pending.discard(name)
                        break
        if pending:
            if len(pending) < len(options):
                text_r, options = _refutation_trials(
                    ok_goals, proved, {k: v for k, v in counterexamples.items() if k in pending},
                    by_name)
            rc, out = _run_coqc(text_r)
            if rc != 0:
                if hints:
                    return prove_goals(goals, file_stem, seed, use_hints=False)
                return _batch_error(goals, version, "the refutation file did not compile", out)
            for name, idx in _parse_markers(out, "REF").items():
                if idx is not None and name in options:
                    refuted[name] = options[name][idx]
    if hints and any(h.get("status") == "refuted" and n not in refuted for n, h in hints.items()):
        return prove_goals(goals, file_stem, seed, use_hints=False)   # a stale refutation hint
    text, names = _final_text(goals, proved, refuted, counterexamples)
    forbidden = FORBIDDEN.search(text)
    rc2, out2 = _run_coqc(text)
    if rc2 != 0 or "@@END" not in out2 or forbidden is not None:
        if hints and forbidden is None:
            return prove_goals(goals, file_stem, seed, use_hints=False)   # a stale hint
        why = "forbidden command in the final file" if forbidden else "the final file did not compile"
        return _batch_error(goals, version, why, out2)
    assumptions = _parse_final(out2)
    scope = "this lemma (Print Assumptions)"
    if ALL_LEMMAS in assumptions:
        union = assumptions.pop(ALL_LEMMAS)
        if nonstandard_axioms(union):      # say which lemma needs it: one lemma at a time
            text, names = _final_text(goals, proved, refuted, counterexamples, per_lemma=True)
            rc2, out2 = _run_coqc(text)
            if rc2 != 0 or "@@END" not in out2:
                return _batch_error(goals, version, "the final file did not compile", out2)
            assumptions = _parse_final(out2)
        else:   # every lemma's axioms lie within the union, itself within the standard ones
            assumptions = {n: union for n in names}
            scope = "the union over every lemma of the file (one Print Assumptions)"
    results = {}
    for g in goals:
        base = {"goal_hash": None if g.error else g.statement_hash(),
                "statement": None if g.error else g.prop(),
                "domain_statement": None if g.error else g.domain_prop()}
        if g.error:
            results[g.name] = {**base, "status": "not formalised", "reason": g.error}
        elif g.name in proved:
            sname, script = proved[g.name]
            axioms = set(assumptions.get(g.name, [])) | set(assumptions.get(f"{g.name}_domain", []))
            extra = nonstandard_axioms(axioms)
            info = {**base, "script": script, "script_name": sname, "assumptions": sorted(axioms),
                    "assumptions_scope": scope}
            if extra:
                results[g.name] = {**info, "status": "not formalised",
                                   "reason": "the proof uses axioms beyond Coq's standard reals: "
                                             + ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")}
            else:
                results[g.name] = {**info, "status": "proved", "lemma": g.name, "reason": "",
                                   "domain_lemma": f"{g.name}_domain" if g.domain_prop() else None}
        elif g.name in refuted:
            sname, script = refuted[g.name]
            axioms = assumptions.get(f"{g.name}_refuted", [])
            extra = nonstandard_axioms(axioms)
            pt, diff = counterexamples[g.name]
            info = {**base, "script": script, "script_name": sname, "assumptions": sorted(axioms),
                    "assumptions_scope": scope, "counterexample": _point_text(pt), "difference": diff}
            if extra:
                results[g.name] = {**info, "status": "not formalised",
                                   "reason": "the refutation uses axioms beyond the standard reals: "
                                             + ", ".join(extra[:5])}
            else:
                results[g.name] = {**info, "status": "refuted", "lemma": f"{g.name}_refuted",
                                   "reason": f"Coq proved the negation at {_point_text(pt)} "
                                             f"(lhs - rhs = {diff:.6g} there)"}
        else:
            if tries.get(g.name) is not None:
                why = ("a script proved the goal but not its domain conditions (denominators "
                       "non-zero, radicands non-negative)")
            else:
                why = "no tactic script proved it (tried: " + ", ".join(n for n, _ in scripts_for(g)) + ")"
            if g.name in counterexamples:
                why += (f"; a numerical counterexample exists at "
                        f"{_point_text(counterexamples[g.name][0])} but Coq did not certify it")
            else:
                why += "; no counterexample found either"
            results[g.name] = {**base, "status": "not formalised", "reason": why}
    res = {"file": f"{file_stem}.v", "text": text, "coqc": version, "results": results}
    _learn(ok_goals, results)
    _cache_store(key, res)
    return res


def _batch_error(goals, version, why, out) -> dict:
    tail = out.strip()[-600:]
    return {"file": None, "text": None, "coqc": version,
            "results": {g.name: {"status": "error", "reason": f"{why}: {tail}",
                                 "goal_hash": None if g.error else g.statement_hash()}
                        for g in goals}}


# ----------------------------------------------------------------------- derivation batches
def formal_targets(derivation) -> list:
    """Steps that get the ``formal`` check: every step with a ``symbolic`` check."""
    return [s for s in derivation.steps if "symbolic" in s.checks]


def derivation_goals(derivation, lemmas=()) -> tuple[list, dict]:
    """Goals of a derivation: its formal steps, the controls targeting them, its lemmas (and
    their controls).  Returns (goals, {("step", id) | ("control", name) | ("lemma", name):
    goal name})."""
    goals, index = [], {}
    targets = {s.id: s for s in formal_targets(derivation)}
    for s in targets.values():
        g = goal_for_step(s, derivation)
        goals.append(g)
        index[("step", s.id)] = g.name
    for c in derivation.controls:
        if c.target in targets:
            step = targets[c.target].with_sides(c.lhs, c.rhs, c.options)
            g = goal_for_step(step, derivation, name=lemma_ident("control", c.name),
                              sibling=index[("step", c.target)])
            goals.append(g)
            index[("control", c.name)] = g.name
    for lem in lemmas:
        g = lem.goal()
        goals.append(g)
        index[("lemma", lem.name)] = g.name
        for cname, cgoal in lem.control_goals():
            goals.append(cgoal)
            index[("lemma-control", lem.name, cname)] = cgoal.name
    return goals, index


def certificate(result: dict, coqc: str | None, file: str | None) -> Certificate:
    status = result["status"]
    ev = {k: result.get(k) for k in ("goal_hash", "script_name", "script", "lemma",
                                     "domain_lemma", "counterexample", "assumptions",
                                     "assumptions_scope", "reason", "statement") if result.get(k) not in (None, "", [])}
    ev["coqc"] = coqc or "not installed"
    if file:
        ev["file"] = file
    if status == "proved":
        return Certificate("formal", "pass", ev, 0.0,
                           f"proved in Coq {coqc} ({result.get('script_name')}); "
                           f"goal {result['goal_hash'][:12]}")
    if status == "refuted":
        return Certificate("formal", "fail", ev, 0.0,
                           f"refuted in Coq {coqc}: counterexample {result['counterexample']}")
    if status == "skipped":
        return Certificate("formal", "skipped", ev, 0.0, "skipped: coqc not installed")
    if status == "not formalised":
        return Certificate("formal", "not formalised", ev, 0.0,
                           f"not formalised: {result.get('reason', '')}")
    return Certificate("formal", "error", ev, 0.0, f"error: {result.get('reason', '')}")


_PREPARED: dict = {}


def prepare(derivation, cfg, lemmas=None) -> dict:
    """Prove every formal goal of a derivation in one file; later ``formal`` checks of its
    steps and controls read the results.  Returns the batch (see ``prove_goals``) plus
    ``index``."""
    from .formal_lemmas import lemmas_for

    lemmas = lemmas_for(derivation.id) if lemmas is None else lemmas
    goals, index = derivation_goals(derivation, lemmas)
    if not goals:
        return {"file": None, "text": None, "coqc": coq_version(), "results": {}, "index": {}}
    batch = prove_goals(goals, file_stem=f"formal_{derivation.id}", seed=getattr(cfg, "seed", 0))
    batch = {**batch, "index": index, "goals": {g.name: g for g in goals}}
    for g in goals:
        _PREPARED[(batch["coqc"], derivation.id, g.statement_hash() if not g.error else g.name)] = \
            (batch["results"][g.name], batch["coqc"], batch["file"])
    return batch


__all__ = ["Goal", "make_goal", "goal_for_step", "prove_goals", "prepare",
           "parse_assumptions", "nonstandard_axioms", "coqc_path", "coq_version",
           "formal_targets", "derivation_goals", "certificate", "NEUTRAL", "STANDARD_AXIOMS"]


def learn_hints(path=None, seed=0) -> int:
    """Run the full proof search (no hints) on every registered derivation's goals and write
    the scripts that worked to ``path`` (default: the committed ``formal_hints.json``)."""
    from . import registry
    from .config import make_config

    cfg = make_config(quick=True, seed=seed)
    old = os.environ.get("LORA_AUDIT_COQ_HINTS")
    os.environ["LORA_AUDIT_COQ_HINTS"] = "0"
    try:
        _LEARNED.clear()
        _MEMO.clear()
        for der in registry().values():
            prepare(der, cfg)
    finally:
        if old is None:
            os.environ.pop("LORA_AUDIT_COQ_HINTS", None)
        else:
            os.environ["LORA_AUDIT_COQ_HINTS"] = old
    return write_hints(path)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python3 -m derivations.formal",
                                 description="maintain the Coq tactic-script hint table")
    ap.add_argument("--learn-hints", action="store_true", required=True,
                    help="search every registered goal without hints and write formal_hints.json")
    ap.add_argument("--out", default=None, help="where to write (default: the committed table)")
    a = ap.parse_args()
    print(f"wrote {learn_hints(a.out)} hints")
