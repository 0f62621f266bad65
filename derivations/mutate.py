"""``lora-audit mutate``: the project's own mutation suite -- how often does the audit reject a
planted error?

Mutations are generated systematically from the syntax trees of the mathematical code
(``derivations/theorems/*.py`` -- SymPy statements, steps, definitions, numeric formulas -- and
the numeric modules ``numeric/{sharp,lora_bounds,ridgeless,misalignment,estimators,
sample_misalignment,samplers}.py`` -- the last the fast estimator path of the simulations), one
change each:

* ``const+1`` / ``const-1``: a numeric constant in arithmetic changed by one (off-by-one
  denominators, constants, exponents);
* ``op-swap``: ``+`` <-> ``-``, ``*`` <-> ``/`` (signs, inverted factors);
* ``drop-left`` / ``drop-right``: a factor or term dropped (``a*b -> a``, ``a - b -> a``);
* ``square``: a factor squared (``a*b -> a*b**2``);
* ``neg-drop``: a unary minus removed (a flipped sign);
* ``swap-dim``: a dimension swapped for another (``d -> n``, ``k -> d``, ...; names and
  attributes ``p.d``);
* ``method-swap``: an estimator primitive replaced by a wrong one (``rsqrt -> sqrt``,
  ``svdvals -> eigvalsh``...);
* ``swap-sym``: a symbol of the mathematics swapped for one it is easily confused with
  (``s_r <-> s_{r+1}``, ``eta <-> eps``, ``C <-> C_0``, ``sigma <-> sigma^2``...; only to a
  name the same file uses, so the mutant runs);
* ``call-drop``: a one-argument ``sqrt``/``exp``/``log``/``abs`` dropped (an exponent 1/2
  lost, a scale changed).

Code that is the audit's own (negative controls, check-point tables, instance generators,
input validation, messages, the source-of-truth tables) is not mutated: a mutation there
changes what is checked, not the mathematics.  Each mutant is written into a temporary copy of
the tree and the derivations whose modules import the mutated module (transitively) are
audited (``--quick`` by default) in a child process that stops at the first check that does
not pass.  A mutant is *killed* when the audit does not certify it (a failed check, an error,
a crash or a timeout -- each counted separately), *survived* otherwise.  ``EQUIVALENT`` lists,
with a reason, mutants whose statement is still true (the suite reports them apart); every
other survivor is a miss of the audit and is printed.

``--baseline-seeds K`` also audits the unmutated tree at seeds ``0..K-1`` (the false-alarm
rate).  Results (every mutant, its verdict, the check that caught it) go to ``--json``
(default ``out/mutation/results.json``), which the report's section "How far to trust this
audit" reads.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("derivations", "numeric", "symbolic")
TARGET_FILES = tuple(sorted(str(p.relative_to(ROOT)) for p in (ROOT / "derivations" /
                                                               "theorems").glob("*.py")
                            if p.name != "__init__.py")) + (
    "numeric/sharp.py", "numeric/lora_bounds.py", "numeric/ridgeless.py",
    "numeric/misalignment.py", "numeric/estimators.py", "numeric/sample_misalignment.py",
    "numeric/samplers.py")

# the audit's own code: not the mathematics under test
SKIP_CALLS = {"Control", "Justification", "make_params", "require", "InputError", "Certificate",
              "range", "hp_sizes", "print", "generator", "stable_seed", "randn", "summarize",
              "default_rng", "uniform", "integers", "len", "enumerate", "zip", "dict", "Truth",
              "lru_cache", "format", "nstr", "isinstance", "round", "linspace", "geomspace",
              "full", "empty", "sorted", "max_detectable", "_ineq", "replace", "sample_data",
              "draw_torch", "torch_instance", "mp_instance", "workdps", "Derivation"}
SKIP_KEYWORDS = {"options", "checks", "seed", "chunk", "trials", "search_iters", "count", "points",
                 "extra", "summary", "references", "title", "note", "dps", "tol", "test_size",
                 "jitter", "init_scale", "controls", "check_points", "hp_params", "mc_params",
                 "assumptions", "conditions", "regime", "kind", "id", "device", "dtype",
                 "steps", "value_points", "statement_options", "ineq_params", "batch",
                 "adam_steps", "tag"}
SKIP_FUNCTIONS = {"validate", "validate_over", "validate_under", "validate_point", "_validate",
                  "_check", "_check_dims", "_check_sv", "_check_beta", "_regime", "details",
                  "_details", "under_details", "convergence_study", "_spiked_sim",
                  "_spiked_draws", "_draw", "_instances", "first_params", "second_params",
                  "hp_first", "hp_second", "_truths", "_regions", "_spike_points",
                  "_detected_points", "_geometry_points", "_finite_second", "_first_in_range",
                  "_value_points", "truth_env", "_trunc_params", "_ds_params", "_conv_params",
                  "_all_conv_params", "conv_params", "_conv_sim", "_simulated", "convergence",
                  "_convergence", "check_spiked", "check_two_sample", "check_lora_train",
                  "_adam_finding", "_drop_bias", "_drop_cross", "formula_no_df2_in_variance",
                  "formula_isotropic", "formula_naive_bias", "_keep_iff_sides", "_scaled",
                  "_batches", "_route_value", "_closed_form_risk", "_mp_tail_table",
                  "bound_beats_fft", "lora_risk_curve", "_simulate_trained", "estimators_loss",
                  "sample_cov_measures", "_make", "mp_upper_quantile"}
SKIP_ASSIGN = {"ORDER", "T_DS", "INIT_SCALES", "SEARCH", "_SEARCH", "_CONV", "_BASE", "_OVER",
               "_UNDER", "_HP", "_MC_BASE", "_LEVELS", "_UNDER_ADAM", "_SPIKE_POINTS",
               "_SPIKE_M0", "_CHECK_POINTS", "GENERIC_EXEMPT", "SMALL_MATRIX", "NOISE_FREE",
               "_SPIKE_QUANTITY", "MAPPINGS", "lit"}


def _is_validator(name: str) -> bool:
    """Input validation (skipped as a function, so a call to it is not mutated either: swapping
    an argument of ``_check(d, k, n, ...)`` changes what is refused, not the mathematics)."""
    return name in SKIP_FUNCTIONS and name.lstrip("_").startswith(("validate", "check"))


# the size of the blocks in which data sets are drawn (a function ``*chunk*`` or a variable of
# these names): another size draws the same law in other blocks -- other random numbers, the
# same mathematics
CHUNK_NAMES = {"chunk", "batch", "block"}

DIMS = {"d": "n", "n": "d", "k": "d"}
# symbols of the mathematics that are easily confused: a head and a tail singular value, the
# two deviations of a covariance, a weighted and an unweighted quantity, sqrt(n) and sqrt(d)
SYMBOL_SWAPS = {"s_r": "s_r1", "s_r1": "s_r", "head": "tail", "tail": "head", "sn": "sd",
                "sd": "sn", "eta": "eps", "eps": "eta", "m0": "m_t", "b_r": "b0", "b0": "b_r",
                "tau2": "b_r", "C0": "C", "C": "C0", "W": "Wcov", "SigmaHalf": "Sigma",
                "Sigma": "SigmaHalf", "sigma": "sigma2", "sigma2": "sigma", "beta": "b_r",
                "rho": "eta", "kappa": "eta", "Z1": "Z2", "Z2": "Z1", "U": "V", "V": "U"}
# one-argument functions whose dropping changes an exponent (sqrt: 1/2) or a scale
DROP_CALLS = {"sqrt", "exp", "log", "abs", "rsqrt", "log1p"}
METHODS = {"rsqrt": "sqrt", "svdvals": "eigvalsh", "eigvalsh": "svdvals", "cholesky": "inv",
           "pinv": "inv"}

# Mutants whose statement is still true, with the reason (reported apart from the catch rate).
# Filled from the recorded run of the full suite: a survivor is either fixed or listed here.
EQUIVALENT: dict = {
    "derivations/theorems/lora_decomposition.py::route_over.one::op-swap::de7e64c9":
        "P_r(M + G) -> P_r(M - G) in the decomposition route: G is drawn i.i.d. N(0, sigma^2) "
        "and -G has the law of G, so the route's law is unchanged (the deterministic step "
        "whitened-fit, M + G, is checked at 50 digits and has its own sign control)",
    "derivations/theorems/lora_decomposition.py::route_over.one::op-swap::b5b5bddf":
        "P_{r + rank_shift} -> P_{r - rank_shift}: only the negative control's knob changes "
        "sign (it then truncates at r - 1 instead of r + 1 -- still a wrong route, still "
        "rejected); the route itself (rank_shift = 0) is unchanged",
    "numeric/misalignment.py::_trained_fit::drop-left::89ba186d":
        "design X = chol(d C) -> chol(C): reduced-rank regression on X X^T = c C gives "
        "P_r(Delta* C^{1/2}) C^{-1/2} for every c > 0 (the scale cancels in S^{-1/2}), so the "
        "trained estimator is unchanged",
    "numeric/misalignment.py::_trained_fit::swap-dim::c82827b1":
        "design X = chol(d C) -> chol(n C): the same scale invariance of the whitened fit",
    "numeric/misalignment.py::_trained_fit::const-1::8361585f":
        "lora_over(...)[0] -> [-1] on a batch of one: the same element",
    "numeric/samplers.py::draw_stats::op-swap::8d6ea837":
        "d - n + k + dof_shift -> d - n + k - dof_shift in the reduced underdetermined sampler: "
        "only the negative controls' knob changes sign (they then draw one degree of freedom too "
        "many for too few and vice versa -- still wrong samplers, still rejected); the sampler "
        "itself (dof_shift = 0) is unchanged",
    "numeric/estimators.py::simulate_risk::drop-right::25d96000":
        "every chunk draws `trials` data sets instead of the remainder: more simulated data sets "
        "of the same law, every expectation unchanged",
    "numeric/ridgeless.py::solve_kappa::const+1::ca70b9c3":
        "lower end of the bisection bracket 0 -> 1: the secant polish still reaches the root "
        "(kappa < 1 included), and solve_kappa's postcondition (kappa > 0, residual below "
        "10^-dps n) makes any other result an error wherever it is used",
    "numeric/ridgeless.py::solve_kappa::const-1::55274fb5":
        "lower end of the bisection bracket 0 -> -1: the same root or, through the "
        "postcondition (kappa > 0, residual below 10^-dps n), an error -- never a wrong value",
    "numeric/ridgeless.py::solve_kappa::const-1::2b2b2a74":
        "`hi *= 2` -> `hi *= 1` in the bracket expansion, which never runs: the initial bracket "
        "max(s) * d already has f(hi) < 0",
    "numeric/ridgeless.py::solve_kappa::square::9d80a271":
        "a wider initial bracket for the bisection: the same unique root",
    "numeric/lora_bounds.py::lora_bound::drop-right::ed807535":
        "changes only the descriptive text of the formula in the result dictionary",
    "derivations/theorems/misalign_exact.py::<module>::const-1::9ed3816a":
        "index [0] -> [-1] of a 1 x 1 matrix: the same element",
    "derivations/theorems/misalign_bounds.py::<module>::const-1::7deb6f01":
        "step 'eta' becomes -eta lambda_max(C) <= (1 + eta) lambda_min(C): still true (its left "
        "side is <= 0); the bound it supports is unchanged and still certified by its own step",
    "numeric/sample_misalignment.py::mean_bias_bound::op-swap::ac58bf6b":
        "the grid search picks t by main - tail instead of main + tail: the value returned is "
        "still B_mis at an admissible t (tied to SymPy at that t), a valid, looser bound",
    "derivations/theorems/misalign_decomposition.py::<module>::swap-dim::34b28ed1":
        "C = S/d instead of S/n: C enters only through A_C = P_r(Delta C^{1/2}) C^{-1/2}, which "
        "is invariant under C -> alpha C",
    "derivations/theorems/misalign_sample.py::<module>::const+1::22badef6":
        "T_BIAS 2.5 -> 3.5: the deviation t at which the high-probability bias bound is checked; "
        "the bound is claimed (and derived) for every admissible t",
    "derivations/theorems/mc_samplers.py::_fast_lora_risk::const-1::a6c0fcb9":
        "index [0] -> [-1] of a batch of one data set: the same element",
    "numeric/misalignment.py::second_order_bound::const-1::13dcb356":
        "C.shape[-1] -> C.shape[0] of the square covariance C: the same d",
    "numeric/samplers.py::simulate_ranks::swap-dim::54fad7dc":
        "q = min(d, k, n) -> min(d, k, d) changes only the default rank list and its range guard: "
        "every caller in the audit, the report and the sweep passes its ranks (1..min(d, k, n)), "
        "and the risks at a rank do not depend on q",
    "derivations/theorems/misalign_bounds.py::<module>::const+1::835646e0":
        "step 'eta' becomes M_C (1 - eta) <= (2 + eta) m_C: still true (a larger right side); "
        "the bound it supports is certified by its own step",
    "derivations/theorems/lora_bounds.py::<module>::const-1::ab50b268":
        "step 'davidson-szarek' with e^(-t^2) for e^(-t^2/2): stronger than the cited theorem, "
        "but true wherever it is measured (sigma_min(X) concentrates above sqrt d - sqrt n, so "
        "the lower-tail indicator is 0 in every draw at t = T_DS); a Monte Carlo check can only "
        "refute a tail bound that is false, and the bound it supports uses e^(-t^2/2)",
    "derivations/theorems/misalign_sample.py::<module>::const-1::dabce82a":
        "step 'ds-lower' with the event sigma_min(Z Z^T) < lo_t for < lo_t^2: a smaller event "
        "wherever lo_t >= 1 (every point of the step), so a still true, weaker tail bound; the "
        "eta threshold it supports is built from the squared form as written",
    "numeric/misalignment.py::under_pieces::drop-right::4df8134e":
        "torch.zeros_like(Delta @ P) -> zeros_like(Delta): the same k x d zero matrix",
    "derivations/theorems/mc_samplers.py::_stats_draw::op-swap::0e9c6759":
        "the random instance of the typeset-identity Truth gets E + 2 Delta* X for its noise: "
        "the identity holds for any statistics, so both sides still agree (the laws of the "
        "statistics are certified by the two-sample check, not by this Truth)",
    "derivations/theorems/misalign_decomposition.py::_cross_code.value::const-1::2a0ae8bd":
        "[key][0] -> [key][-1] of a batch of one data set (X_[None]): the same entry",
    "derivations/theorems/misalign_decomposition.py::under_simulate::const+1::4af61898":
        "the simulate hook returns chi on the independent second draws (the pieces hook's right "
        "side) instead of R - variance - bias on the first: two unbiased samples of the same "
        "E chi, independent of each other",
    "derivations/theorems/fft_under_iso.py::formula::const-1::e84e7a8a":
        "the else branch of (k if k_factor else 1) is taken only by the negative control "
        "'variance without k' (k_factor=False); 0 makes that control more wrong, still rejected",
    "numeric/estimators.py::sample_data::op-swap::8dd31d58":
        "R = Delta* X - E for Delta* X + E: E is centred Gaussian, so -E has the same law and "
        "every simulated risk has the same distribution",
    "derivations/theorems/misalign_bounds.py::<module>::swap-sym::0f4f8b04":
        "step 'schur' with s_r for s_{r+1} on the right: a larger (s_r >= s_{r+1}), still true "
        "bound; the second-order bound uses the step with s_{r+1} as written in its own chain",
    "derivations/theorems/lora_estimators.py::<module>::op-swap::219e06a1":
        "step 'eckart-young' with R + P_r(G) X for R - P_r(G) X: still true, since -P_r(G) X is "
        "also of rank <= r",
    "numeric/misalignment.py::point_summary::swap-dim::a70e4dc6":
        "the 2 x 2 leading coefficient is then also printed for d = 2 and k != 2: still its "
        "value, since the bias depends on Delta* only through Delta*^T Delta* (U is orthonormal)",
    "derivations/theorems/misalign_exact.py::<module>::neg-drop::b6c22005":
        "step 'even' with Den(eps) for Den(-eps): still true, since N and Den are even in eps "
        "(the step's own claim)",
    "derivations/theorems/misalign_sample.py::simulate::const+1::3bd04a87":
        "the eviction size of the simulation cache (16 -> 17 entries): the same numbers",
    "derivations/theorems/misalign_sample.py::<module>::swap-sym::584c0695":
        "step 'eta' becomes P(eps > eta_t) <= 2 e^{-t^2/2}: still true, since eps = ||Q_perp W "
        "Q|| <= ||W - I|| = eta (an off-diagonal block of W - I)",
    "derivations/theorems/misalign_exact.py::<module>::neg-drop::fbdcab89":
        "step 'even' becomes the tautology N(eps)/Den(eps)^2 = N(eps)/Den(eps)^2: still true; "
        "the proof of evenness is lost but no statement becomes false",
}


# Names that are orthogonal projections wherever the mathematics uses them (misalign_sample's
# ``Q = P_r(D)^+ P_r(D)``, ``Qperp = I - Q``; ``P = X X^+`` and ``I - P`` wherever a derivation
# defines ``P``, and the numeric code's ``eye - P`` beside ``P = X @ pinv(X)``;
# ``tests/derivations/test_mutate.py`` checks those definitions): squaring one (``P^2 = P``)
# changes no value.
PROJECTIONS = {"Q", "Qperp", "P", "Id - P", "eye - P"}


def equivalent_reason(m) -> str | None:
    """Why the mutant ``m`` (a :class:`Mutant` or its dict) leaves every statement true, or
    None: listed in ``EQUIVALENT``, or a squared orthogonal projection."""
    get = m.get if isinstance(m, dict) else lambda key: getattr(m, key)
    if get("id") in EQUIVALENT:
        return EQUIVALENT[get("id")]
    rep = get("replacement") or ""
    if get("op") == "square" and any(rep.endswith(f"* ({p}) ** 2)") for p in PROJECTIONS):
        return "a squared orthogonal projection (P^2 = P): the same matrix"
    return None


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    function: str
    line: int
    op: str
    original: str
    replacement: str
    start: int          # character offsets in the file's text
    end: int

    def apply(self, text: str) -> str:
        if text[self.start:self.end] != self.original:
            raise ValueError(f"mutant {self.id}: the file changed since the mutant was generated")
        return text[: self.start] + self.replacement + text[self.end:]


# ---------------------------------------------------------------------------- generation
def _offsets(text: str):
    starts, pos = [0], 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        starts.append(pos)
    return lambda lineno, col: starts[lineno - 1] + col


def _call_name(node) -> str:
    f = node.func
    return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


# ------------------------------------------------------------------- the audit's own code
# Option keys whose callables are check-point tables (which points a check visits), not the
# mathematics; "points" / "params" anywhere in the key counts too.
TABLE_KEYS = {"points", "params", "ineq_params", "hp_params", "mc_params", "check_points",
              "value_points", "conv_params"}


def _is_table_key(key) -> bool:
    return isinstance(key, str) and (key in TABLE_KEYS or "points" in key or "params" in key)


def _top_name(fn, lambda_owner: bool = False):
    """(file relative to ROOT, dotted name) of a function defined in the project: ``f`` for a
    top-level function, ``outer.f`` for a closure (only the closure, never its factory, which
    may build the mathematics too); lambdas and foreign callables give None."""
    import functools
    import inspect

    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(fn, "__code__", None)
    qual = getattr(fn, "__qualname__", "")
    if code is None:
        return None
    if "<lambda>" in qual:
        # a lambda is named by the function it is written in only where that function is a
        # table by construction (a factory of region predicates); elsewhere it names nothing
        parts = qual.split(".<locals>.")
        if not lambda_owner or parts[-1] != "<lambda>" or len(parts) < 2 \
                or "<lambda>" in parts[-2]:
            return None
        qual = ".<locals>.".join(parts[:-1])
    try:
        rel = str(Path(code.co_filename).resolve().relative_to(ROOT))
    except ValueError:
        return None
    return rel, qual.replace(".<locals>", "")


def _callables(obj, table: bool, out_table: set, out_math: set, depth=0, lambda_owner=False):
    """Walk hooks: callables under a table key go to ``out_table``, others to ``out_math``."""
    if depth > 4:
        return
    if isinstance(obj, dict):
        for key, v in obj.items():
            _callables(v, table or _is_table_key(key), out_table, out_math, depth + 1,
                       lambda_owner)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _callables(v, table, out_table, out_math, depth + 1, lambda_owner)
    elif callable(obj) and not isinstance(obj, type):
        name = _top_name(obj, lambda_owner)
        if name:
            (out_table if table else out_math).add(name)


def audit_table_functions() -> dict:
    """Functions (dotted names), per file, that the derivations use only as the audit's own tables:
    check points and instance lists (``hp_params``, ``mc_params``, ``check_points``, option keys
    with "points"/"params", ``Truth.points``/``env``), input validation, region predicates
    (``extra["regions"]``, ``extra["step_regions"]``) and the negative controls' variants.  A
    function also used as mathematics (a ``formula``, ``simulate``, a ``Truth`` value, any other
    hook) is never in the set."""
    from dataclasses import fields

    from . import registry
    from .core import Truth

    table, math = set(), set()
    for der in registry().values():
        for hook in ("hp_params", "mc_params", "check_points", "validate"):
            _callables(getattr(der, hook), True, table, math)
        for hook in ("formula", "simulate"):
            _callables(getattr(der, hook), False, table, math)
        for c in der.controls:
            for f in fields(c):
                _callables(getattr(c, f.name), True, table, math)
        for st in (*der.steps, der.statement):
            for key, v in (getattr(st, "options", None) or {}).items():
                _callables(v, _is_table_key(key), table, math)
        for key, v in der.extra.items():
            if key in ("regions", "step_regions", "generic_exempt"):
                _callables(v, True, table, math, lambda_owner=True)
            elif key == "truth":
                for t in (v if isinstance(v, (list, tuple)) else (v,)):
                    if isinstance(t, Truth):
                        _callables(t.value, False, table, math)
                        _callables((t.points, t.env), True, table, math)
            else:
                _callables(v, _is_table_key(key), table, math)
    out: dict = {}
    for rel, name in table - math:
        out.setdefault(rel, set()).add(name)
    return out


def _decorated_checker(node) -> bool:
    return any(isinstance(d, ast.Call) and _call_name(d) == "checker" for d in node.decorator_list)


def audit_code_names(text: str, table: set = frozenset()) -> set:
    """Top-level names of ``text`` that are the audit's own code: functions registered as
    checkers (``@checker``), the given table functions, and -- to a fixed point -- every
    top-level function or assignment whose every use in the file lies inside audit code (a
    checker's helpers, the planted variants its controls select)."""
    tree = ast.parse(text)
    tops = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            tops[node.name] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    tops[t.id] = node
    audit = {n for n, node in tops.items()
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and (_decorated_checker(node) or n in table)}
    nested = {n for n in table if "." in n}
    # where each top-level name is used: the top-level definition containing the use
    uses: dict = {}
    for node in tree.body:
        owner = (node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 else next((t.id for t in getattr(node, "targets", ()) if isinstance(t, ast.Name)),
                           None))
        # a use inside a negative control's construction (``Control(..., formula=variant(c))``)
        # is the audit's own: the control selects a planted variant
        in_control = {id(n) for c in ast.walk(node) if isinstance(c, ast.Call)
                      and _call_name(c) == "Control" for n in ast.walk(c)}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id in tops:
                uses.setdefault(sub.id, []).append(CONTROL_OWNER if id(sub) in in_control
                                                   else owner)
    audit.add(CONTROL_OWNER)
    changed = True
    while changed:
        changed = False
        for n in tops:
            if n in audit or not uses.get(n):
                continue
            if all(o in audit and o != n for o in uses[n]):
                audit.add(n)
                changed = True
    return (audit - {CONTROL_OWNER}) | nested


CONTROL_OWNER = "<negative control>"


class _Collector(ast.NodeVisitor):
    def __init__(self, text, path, audit_names=frozenset()):
        self.text, self.path, self.off = text, path, _offsets(text)
        self.scope = ["<module>"]
        self.skip = 0
        self.names = {n.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)}
        self.audit_names = set(audit_names)
        self.seen: dict = {}
        self.out = []

    # -- context ------------------------------------------------------------------------
    def _skipping(self, node, fn):
        self.skip += 1
        fn(node)
        self.skip -= 1

    def visit_FunctionDef(self, node):
        self.scope.append(node.name)
        if node.name in SKIP_FUNCTIONS or ".".join(self.scope[1:]) in self.audit_names \
                or "chunk" in node.name:
            self._skipping(node, self.generic_visit)
        else:
            for stmt in node.body:
                self.visit(stmt)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._skipping(node, self.generic_visit)

    def visit_Assign(self, node):
        names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        if names & SKIP_ASSIGN or (len(self.scope) == 1 and names and
                                   names <= self.audit_names):
            return
        if names & CHUNK_NAMES:
            return
        # module-level tables of check points (``_RULE_POINTS``, ``_POINTS``, ``_CHECK_PARAMS``)
        if len(self.scope) == 1 and any("POINTS" in nm or "PARAMS" in nm for nm in names):
            return
        self.generic_visit(node)

    def visit_Raise(self, node):
        return

    def visit_If(self, node):
        # a guard ``if <condition>: raise ...`` is input validation: its condition decides what
        # is refused, not the mathematics (the body is skipped by visit_Raise anyway)
        if node.body and all(isinstance(b, ast.Raise) for b in node.body) and not node.orelse:
            return
        self.generic_visit(node)

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return                                   # docstring
        self.generic_visit(node)

    def visit_JoinedStr(self, node):
        return

    def visit_Compare(self, node):
        # comparisons are thresholds and case splits: mutate the constants inside them only
        self.generic_visit(node)

    def visit_Call(self, node):
        name = _call_name(node)
        if name in SKIP_CALLS or _is_validator(name):
            return
        if name in DROP_CALLS and len(node.args) == 1 and not node.keywords:
            self._add(node, "call-drop", ast.unparse(node.args[0]))
        self.visit(node.func)
        for a in node.args:
            self.visit(a)
        for kw in node.keywords:
            if kw.arg not in SKIP_KEYWORDS:
                self.visit(kw.value)

    # -- sites ---------------------------------------------------------------------------
    def _add(self, node, op, new_src):
        if self.skip:
            return
        try:
            start = self.off(node.lineno, node.col_offset)
            end = self.off(node.end_lineno, node.end_col_offset)
        except (AttributeError, IndexError):
            return
        orig = self.text[start:end]
        repl = f"({new_src})"
        if repl.strip("()") == orig.strip("()"):
            return
        func = ".".join(self.scope[1:]) or "<module>"
        # the same change of the same text twice in one function (two sites of `d`): the
        # second and later sites get their occurrence in the hash (the first keeps its id)
        key = (func, op, orig, repl)
        nth = self.seen.get(key, 0)
        self.seen[key] = nth + 1
        tag = f"{self.path}|{func}|{op}|{orig}|{repl}" + (f"|{nth}" if nth else "")
        h = hashlib.sha1(tag.encode()).hexdigest()[:8]
        self.out.append(Mutant(f"{self.path}::{func}::{op}::{h}", self.path, func, node.lineno,
                               op, orig, repl, start, end))

    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return
        self._add(node, "const+1", repr(v + 1))
        self._add(node, "const-1", repr(v - 1))

    def visit_BinOp(self, node):
        left, right = ast.unparse(node.left), ast.unparse(node.right)
        swaps = {ast.Add: "-", ast.Sub: "+", ast.Mult: "/", ast.Div: "*"}
        sym = swaps.get(type(node.op))
        if sym:
            self._add(node, "op-swap", f"({left}) {sym} ({right})")
        if isinstance(node.op, (ast.Mult, ast.Div, ast.Add, ast.Sub, ast.MatMult)):
            if not isinstance(node.op, (ast.Add, ast.Sub)):
                self._add(node, "drop-left", right)
            self._add(node, "drop-right", left)
        if isinstance(node.op, ast.Mult):
            self._add(node, "square", f"({left}) * ({right}) ** 2")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            self._add(node, "neg-drop", ast.unparse(node.operand))
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in DIMS and isinstance(node.ctx, ast.Load):
            self._add(node, "swap-dim", DIMS[node.id])
        other = SYMBOL_SWAPS.get(node.id)
        if other and other in self.names and isinstance(node.ctx, ast.Load):
            self._add(node, "swap-sym", other)     # only to a name the file defines/uses

    def visit_Attribute(self, node):
        if node.attr in DIMS and isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name):
            self._add(node, "swap-dim", f"{node.value.id}.{DIMS[node.attr]}")
        elif node.attr in METHODS:
            self._add(node, "method-swap", f"{ast.unparse(node.value)}.{METHODS[node.attr]}")
        self.generic_visit(node)


def generate(files=TARGET_FILES, root: Path = ROOT) -> list[Mutant]:
    """Every mutant of the target files (deterministic order), syntax-checked; the audit's own
    code (:func:`audit_code_names`) is not mutated."""
    out = []
    tables = audit_table_functions() if root == ROOT else {}
    for rel in files:
        text = (root / rel).read_text(encoding="utf-8")
        col = _Collector(text, rel, audit_code_names(text, tables.get(rel, set())))
        col.visit(ast.parse(text))
        seen = set()
        for m in col.out:
            if m.id in seen:
                continue
            seen.add(m.id)
            if "\n" in m.original:   # a parenthesised expression is valid wherever one was;
                try:                # only a multi-line original needs the (slow) full parse
                    ast.parse(m.apply(text))
                except SyntaxError:
                    continue
            out.append(m)
    return out


def sample(mutants, count: int, seed: int = 0) -> list[Mutant]:
    """A deterministic sample spread over files and operators (round robin over the groups)."""
    rng = random.Random(seed)
    groups: dict = {}
    for m in mutants:
        groups.setdefault((m.file, m.op), []).append(m)
    for g in groups.values():
        rng.shuffle(g)
    keys = sorted(groups)
    rng.shuffle(keys)
    picked = []
    while len(picked) < count and any(groups.values()):
        for key in keys:
            if groups[key] and len(picked) < count:
                picked.append(groups[key].pop())
    return picked


# ---------------------------------------------------------------------------- affected ids
def affected_derivations(rel: str) -> list[str]:
    """Derivation ids whose module imports (transitively) the module of file ``rel``."""
    from reports.cache import project_dependencies

    from . import registry

    mod = rel[:-3].replace("/", ".")
    return [d.id for d in registry().values()
            if d.module is not None and mod in project_dependencies(d.module.__name__)]


# ---------------------------------------------------------------------------------- runner
CHILD = r"""
import json, sys, traceback
args = json.loads(sys.argv[1])
try:
    from derivations import get
    from derivations.audit import audit_derivation
    from derivations.config import make_config
    import derivations
    assert derivations.__file__.startswith(args["root"]), derivations.__file__
    cfg = make_config(quick=args["quick"], seed=args["seed"], device="cpu")
    out = []
    for i in args["ids"]:
        r = audit_derivation(get(i), cfg, stop_on_failure=args["stop"])
        out.append({"id": i, "verdict": r.verdict, "stopped_at": r.stopped_at})
        if r.verdict != "pass" and args["stop"]:
            break
    print("MUTANT-RESULT " + json.dumps(out), flush=True)
except Exception as exc:
    print("MUTANT-CRASH " + json.dumps({"error": repr(exc)[:300],
                                       "traceback": traceback.format_exc(limit=3)[-600:]}))
"""


def _copy_tree(dst: Path, root: Path = ROOT):
    for pkg in PACKAGES:
        shutil.copytree(root / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__"))


def run_tree(tree: Path, ids, quick=True, seed=0, timeout=900, stop=True) -> dict:
    """Audit ``ids`` on the copy ``tree``; returns status, caught_by and seconds."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    args = json.dumps({"ids": list(ids), "quick": quick, "seed": seed, "stop": stop,
                       "root": str(tree)})
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, args], cwd=tree, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "caught_by": f"no answer within {timeout} s",
                "seconds": round(time.perf_counter() - t0, 1)}
    secs = round(time.perf_counter() - t0, 1)
    for line in proc.stdout.splitlines():
        if line.startswith("MUTANT-RESULT "):
            res = json.loads(line[len("MUTANT-RESULT "):])
            failed = [r for r in res if r["verdict"] != "pass"]
            if failed:
                return {"status": "killed", "caught_by": f"{failed[0]['id']}: "
                        f"{failed[0]['stopped_at'] or 'not certified'}", "seconds": secs,
                        "audits": res}
            return {"status": "survived", "caught_by": None, "seconds": secs, "audits": res}
        if line.startswith("MUTANT-CRASH "):
            info = json.loads(line[len("MUTANT-CRASH "):])
            return {"status": "crashed", "caught_by": info["error"], "seconds": secs}
    return {"status": "crashed", "caught_by": (proc.stderr.strip().splitlines() or ["?"])[-1][:300],
            "seconds": secs}


def run_mutant(m: Mutant, ids, quick=True, seed=0, timeout=900) -> dict:
    with tempfile.TemporaryDirectory(prefix="lora-mutant-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        path = tree / m.file
        path.write_text(m.apply(path.read_text(encoding="utf-8")), encoding="utf-8")
        return run_tree(tree, ids, quick, seed, timeout)


def run_baseline(seeds, quick=True, timeout=3600, ids=None, progress=None) -> list[dict]:
    """The unmutated tree audited at each seed; ``progress(rows)`` after every seed."""
    from . import registry

    ids = ids or list(registry())
    out = []
    with tempfile.TemporaryDirectory(prefix="lora-baseline-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        for s in seeds:
            res = run_tree(tree, ids, quick, s, timeout, stop=False)
            failed = [a["id"] for a in res.get("audits", []) if a["verdict"] != "pass"]
            out.append({"seed": s, "status": res["status"], "failed": failed,
                        "seconds": res["seconds"], "detail": res.get("caught_by")})
            if progress:
                progress(out)
    return out


def summarize_results(rows, baseline=None) -> dict:
    judged = [r for r in rows if equivalent_reason(r["mutant"]) is None]
    equivalent = [dict(r, reason=equivalent_reason(r["mutant"])) for r in rows
                  if equivalent_reason(r["mutant"]) is not None]
    killed = [r for r in judged if r["status"] != "survived"]
    by = {}
    for r in judged:
        by[r["status"]] = by.get(r["status"], 0) + 1
    out = {"mutants": len(rows), "judged": len(judged), "equivalent": len(equivalent),
           "killed": len(killed), "by_status": by,
           "catch_rate": len(killed) / len(judged) if judged else None,
           "survivors": [r for r in judged if r["status"] == "survived"],
           "equivalent_mutants": equivalent}
    if baseline is not None:
        false = [b for b in baseline if b["status"] != "survived" or b["failed"]]
        out["baseline"] = {"seeds": [b["seed"] for b in baseline], "runs": baseline,
                           "false_alarms": len(false),
                           "false_alarm_rate": len(false) / len(baseline) if baseline else None}
    return out


# ------------------------------------------------------------------------------------- cli
def merge_results(paths) -> dict:
    """Several result files of one sample run in parts (e.g. two processes) as one."""
    from numeric.errors import InputError

    parts = []
    for p in paths:
        try:
            part = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"--merge {p}: not a readable results file ({exc})") from None
        if not isinstance(part, dict) or "results" not in part or "summary" not in part:
            raise InputError(f"--merge {p}: not a results file of lora-audit mutate "
                             "(no 'results'/'summary')")
        parts.append(part)
    rows, seen = [], set()
    for part in parts:
        for r in part["results"]:
            if r["mutant"]["id"] not in seen:
                seen.add(r["mutant"]["id"])
                rows.append(r)
    runs = {}                 # baselines of several parts (seed ranges) join, by seed
    for part in parts:
        for b in (part["summary"].get("baseline") or {}).get("runs", []):
            runs.setdefault(b["seed"], b)
    baseline = [runs[s] for s in sorted(runs)] or None
    prov = next((p["provenance"] for p in parts if p.get("provenance")), None)
    return {"provenance": prov, "merged_from": [str(p) for p in paths],
            "partial": any(p.get("partial") for p in parts),
            "summary": summarize_results(rows, baseline), "results": rows}


