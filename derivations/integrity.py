"""Integrity checks of a derivation itself, run by the audit before any of its steps.

The step checkers can only see an error at the points they are run at and in the code they
are run on.  An adversarial mutation test (issue 13) found the blind spots this module closes;
each is a certificate of the derivation, and a failure is an ``error`` of the derivation (it is
not certified), never a pass:

* ``generic_points`` -- every set of points a checker uses must make each parameter it depends
  on *generic* wherever the derivation admits it: ``sigma != 1`` (else ``sigma`` and
  ``sigma^2`` agree), ``Sigma`` with distinct eigenvalues, not ``I`` (else a weighted and an
  unweighted norm agree), ``d, k, n`` pairwise different, two distinct non-zero singular values
  of the shift, a rank ``r >= 2`` where ``r`` enters.  The statement's points must also visit
  both sides of the output dimension (``k`` larger and smaller than the sample side, ``d`` when
  ``n > d`` and ``n`` when ``n < d``: the two branches of every ``max(k, .)``) and every region
  the derivation declares in ``extra["regions"]`` (``{name: predicate(params) -> bool}``, e.g.
  a spike on each side of a detection threshold); ``extra["step_regions"]`` (``{name: (step id,
  predicate)}``) declares a region the points of one step must visit (a control that is false
  only beyond a threshold is rejected only if some point lies there).  "Admits" is decided by the derivation's own
  ``validate``: a generic variant of one of its points is built and offered to it.
* ``source_of_truth`` -- each numeric implementation (the ``formula`` the checks compare with,
  the bounds ``evaluate`` prints, per-component costs) is evaluated against the SymPy expression
  it implements at ``cfg.dps`` digits on random points (``core.Truth``; default: the statement's
  right-hand side against ``derivation.formula``).  A change to one of the two copies alone is
  caught exactly, however small.  A derivation without any such pair must say why in
  ``extra["no_closed_form"]`` (its value is a Monte Carlo mean, say).
* ``chain`` -- the statement must follow from the steps *symbolically*: with
  ``extra["chain"] = (step ids)``, the statement's left side is rewritten by each step in turn
  (its left side replaced by its right side, expectations stripped) and must end, after
  simplification, in the statement's right side; without it, the right side of some step must
  equal the statement's.  A statement whose constant no longer matches what its steps derive
  is refused.  ``extra["chain_exempt"]`` (a reason) marks a statement that is itself checked
  pointwise by an exact checker.
"""
from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import sympy as sp

from numeric import evaluate as ev
from numeric import instances
from numeric.errors import InputError
from numeric.params import Params, make_params
from symbolic import ops

from numeric.seeds import stable_seed

from .checkers.dependencies import _names
from .core import Certificate, Timer, Truth

# checkers whose points come from the derivation's check points (they simulate the estimator)
STATEMENT_SIMULATORS = ("end_to_end", "bound_e2e", "two_sample", "pieces_mc", "convergence")
NOISE = {"sigma", "E", "G"}
COVARIANCE = {"Sigma", "SigmaHalf", "X", "S"}


# --------------------------------------------------------------------------------- point sets
def _step_names(step, der) -> set[str]:
    from .checkers.dependencies import _used_names

    return _used_names(step, der)


def point_sets(der, cfg) -> list[dict]:
    """The parameter sets the audit's checkers use, with who uses them and the symbols they see."""
    sets: dict = {}
    every = set()
    for _, expr in der.definitions:
        every |= _names(expr)
    for s in der.steps:
        every |= _names(s.lhs) | _names(s.rhs)
    every |= _names(der.statement.lhs) | _names(der.statement.rhs) | {"sigma", "Sigma", "Delta",
                                                                       "X", "E", "d", "k", "n"}

    def add(label, fn, names, statement=False):
        if fn is None:
            return
        entry = sets.setdefault(id(fn), {"fn": fn, "users": [], "names": set(),
                                         "statement": False})
        entry["users"].append(label)
        entry["names"] |= names
        entry["statement"] |= statement

    for step in der.steps:
        names = _step_names(step, der)
        opts = step.options
        for c in step.checks:
            if c == "hp":
                add(f"step {step.id}", opts.get("hp_params", der.hp_params), names)
            elif c == "mc":
                add(f"step {step.id}", opts.get("mc_params", der.mc_params), names)
            elif c in ("ineq", "mis_ineq"):
                default = der.mc_params if (ops.contains_expectation(step.lhs)
                                            or ops.contains_expectation(step.rhs)) else der.hp_params
                add(f"step {step.id}", opts.get("ineq_params", default), names)
            elif c == "fixed_point":
                add(f"step {step.id}", opts.get("params", der.hp_params), names)
            elif c == "lora_train":
                add(f"step {step.id}", opts.get("train_params", der.hp_params), names)
    st_opts = der.extra.statement_options
    for c in der.statement.checks:
        if c in STATEMENT_SIMULATORS:
            add("statement", der.check_points, every, statement=True)
        elif c == "value_e2e":
            add("statement (value)", (der.extra.value_points or der.check_points), every,
                statement=True)
        elif c in ("stmt_ineq", "ineq"):
            add("statement", st_opts.get("ineq_params", der.hp_params), every)
        elif c == "stmt_hp":
            add("statement", st_opts.get("hp_params", der.hp_params), every)
        elif c == "series_hp":
            add("statement", der.hp_params, every)
    out = []
    for entry in sets.values():
        pts = [p for p in entry["fn"](cfg) if isinstance(p, Params)]
        out.append({**entry, "points": pts})
    return out


def _variant(der, p: Params, **changes):
    """``p`` with ``changes`` (shift and rank clipped to the new shape) if the derivation
    accepts it, else ``None``."""
    vals = p.as_dict()
    vals.update(changes)
    m = min(vals["d"], vals["k"])
    vals["shift_sv"] = list(vals["shift_sv"])[:m]
    vals["r"] = min(vals["r"], m)
    try:
        q = make_params(**vals)
        der.validate(q)
    except Exception:  # noqa: BLE001 -- any refusal means "not admitted"
        return None
    return q


def _side(p: Params) -> int:
    """The sample side the output dimension ``k`` is compared with: ``d`` over, ``n`` under."""
    return p.d if p.n > p.d else p.n


def _dims_candidates(p: Params):
    ks = [p.k + 1, p.k + 2, p.k - 1, p.k - 2, p.d + 1, p.n + 1, max(p.d, p.n) + 1]
    for kk in ks:
        if kk >= 1 and len({p.d, kk, p.n}) == 3:
            yield {"k": kk}
    for nn in (p.n + 1, p.n - 1, p.n + 2):
        if nn >= 1 and len({p.d, p.k, nn}) == 3:
            yield {"n": nn}


def _rules(der, entry) -> list[dict]:
    """Each rule: name, whether it applies (the parameter matters and a generic variant is
    admitted), whether it holds, and the witness or the admitted variant."""
    pts, names = entry["points"], entry["names"]
    probe = pts[:4]
    rules = []

    def rule(name, holds_fn, variants, relevant=True):
        if not relevant or not pts:
            return
        holds = [p for p in pts if holds_fn(p)]
        admitted = None
        if not holds:
            for p in probe:
                for ch in variants(p):
                    q = _variant(der, p, **ch)
                    if q is not None and holds_fn(q):
                        admitted = ch
                        break
                if admitted:
                    break
        rules.append({"rule": name, "holds": bool(holds), "applies": bool(holds) or bool(admitted),
                      "witness": holds[0].as_dict() if holds else None, "admitted_variant": admitted})

    rule("sigma != 1", lambda p: p.sigma != 1, lambda p: [{"sigma": 1.37}],
         relevant=bool(names & NOISE))
    rule("Sigma != I with distinct eigenvalues",
         lambda p: (not p.isotropic) and len(set(p.cov_eigs)) >= 2,
         lambda p: [{"cov_eigs": tuple(np.linspace(2.0, 0.5, p.d))}],
         relevant=bool(names & COVARIANCE))
    rule("d, k, n pairwise different", lambda p: len({p.d, p.k, p.n}) == 3, _dims_candidates)
    rule("two distinct non-zero shift singular values",
         lambda p: len({v for v in p.shift_sv if v}) >= 2,
         lambda p: [{"shift_sv": (3.0, 1.7)}, {"shift_sv": (3.0, 1.7), "r": 2}],
         relevant="Delta" in names)
    rule("rank r >= 2", lambda p: p.r >= 2, lambda p: [{"r": 2}, {"r": 2, "shift_sv": (3.0, 1.7)}],
         relevant="r" in names)
    for name, (sid, pred) in der.extra.step_regions.items():
        if f"step {sid}" in entry["users"]:
            hit = [p for p in pts if pred(p)]
            rules.append({"rule": f"region of step {sid}: {name}", "holds": bool(hit),
                          "applies": True, "witness": hit[0].as_dict() if hit else None,
                          "admitted_variant": None})
    if entry["statement"]:
        rule("output dimension k above the sample side", lambda p: p.k > _side(p),
             lambda p: [{"k": _side(p) + 1}, {"k": _side(p) + 3}])
        rule("output dimension k below the sample side", lambda p: p.k < _side(p),
             lambda p: [{"k": _side(p) - 1}, {"k": max(1, _side(p) - 3)}])
        for name, pred in der.extra.regions.items():
            hit = [p for p in pts if pred(p)]
            rules.append({"rule": f"region: {name}", "holds": bool(hit), "applies": True,
                          "witness": hit[0].as_dict() if hit else None, "admitted_variant": None})
    return rules


def check_generic(der, cfg) -> Certificate:
    """``extra["generic_exempt"] = {rule: reason}`` waives a rule the derivation's mathematics
    does not see (reported in the evidence, never silently)."""
    rows, bad = [], []
    exempt = der.extra.generic_exempt
    for entry in point_sets(der, cfg):
        for r in _rules(der, entry):
            if not r["applies"]:
                continue
            if r["rule"] in exempt and not r["holds"]:
                rows.append({"used_by": entry["users"], **r, "exempt": exempt[r["rule"]]})
                continue
            row = {"used_by": entry["users"], "points": len(entry["points"]), **r}
            rows.append(row)
            if not r["holds"]:
                bad.append(row)
    if bad:
        first = bad[0]
        why = (f"'{first['rule']}' never holds at the {first['points']} point(s) used by "
               f"{', '.join(first['used_by'][:3])}")
        if first["admitted_variant"]:
            why += f" although the derivation admits it (e.g. {first['admitted_variant']})"
        return Certificate("generic_points", "error", {"rules": rows, "violations": bad}, 0.0,
                           f"special check points: {why}" + (f" (+{len(bad) - 1} more)"
                                                            if len(bad) > 1 else ""))
    return Certificate("generic_points", "pass", {"rules": rows}, 0.0,
                       f"{len(rows)} genericity/region rules hold at the audit's points")


# ------------------------------------------------------------------------------ source of truth
def random_points(der, cfg, count: int, tag: str = "truth") -> list[Params]:
    """Random generic points near the derivation's small points (sigma, shift, spectrum drawn)."""
    bases = [p for p in list(der.hp_params(cfg)) + list(der.check_points(cfg))
             if isinstance(p, Params) and max(p.d, p.k, p.n) <= 16]
    if not bases:
        raise ValueError("no small parameter point to evaluate the formulas at; give the "
                         "Truth its own points")
    rng = np.random.default_rng(stable_seed(cfg.seed, der.id, tag))
    out = []
    for i in range(count):
        b = bases[i % len(bases)]
        q = None
        for _ in range(20):
            ch = {"sigma": float(rng.uniform(0.3, 2.5)), "seed": int(rng.integers(1 << 30))}
            if b.shift_sv:
                ch["shift_sv"] = tuple(sorted((v * float(rng.uniform(0.5, 1.5)) if v else 0.0
                                               for v in b.shift_sv), reverse=True))
            if not b.isotropic:
                ch["cov_eigs"] = tuple(float(x) for x in rng.uniform(0.2, 3.0, b.d))
            q = _variant(der, b, **ch)
            if q is not None:
                break
        out.append(q or b)
    return out


def _truth_env(der, truth: Truth, point, dps):
    if isinstance(point, Params):
        env = dict(instances.mp_instance(point))
        if truth.env is not None:
            env.update(truth.env(point, dps))
        used = _names(truth.expr)
        defs = dict(der.definitions)
        frontier = set(used)
        while frontier:              # definitions needed, not expanding what the instance has
            new = set()
            for name in frontier:
                if name in defs and name not in env:
                    new |= _names(defs[name]) - used
            used |= new
            frontier = new
        backend = ev.MpBackend()
        needed = tuple((nm, e) for nm, e in der.definitions if nm in used and nm not in env)
        env = ev.evaluate_definitions(needed, env, backend)
        # scalar symbols of the statement defined by SymPy expressions (e.g. ||Delta*||_F^2)
        for nm, e in der.extra.symbol_values.items():
            env[nm] = ev.evaluate(e, env, backend)
        return env
    env = {k: (mp.mpf(v) if isinstance(v, (int, float)) else v) for k, v in dict(point).items()}
    if truth.env is not None:
        env.update(truth.env(point, dps))
    return env


def truths(der) -> list[Truth]:
    declared = list(der.extra.truth)
    if der.extra.truth_statement and not der.extra.no_closed_form \
            and not ops.contains_expectation(der.statement.rhs):
        declared.insert(0, Truth("statement right-hand side vs formula", der.statement.rhs,
                                 der.formula, env=der.extra.truth_env))
    return declared


def check_truth(der, cfg) -> Certificate:
    pairs = truths(der)
    if not pairs:
        reason = der.extra.no_closed_form
        if reason:
            return Certificate("source_of_truth", "pass", {"no_closed_form": reason}, 0.0,
                               f"no closed form to compare with: {reason}")
        return Certificate("source_of_truth", "error", {}, 0.0,
                           "no numeric formula is tied to a SymPy expression (declare "
                           "extra['truth'] or extra['no_closed_form'] with the reason)")
    count = 4 if cfg.quick else 8
    rows, worst_name, worst = [], None, 0.0
    backend = ev.MpBackend()
    with mp.workdps(cfg.dps):
        for t in pairs:
            pts = t.points(cfg) if t.points is not None else random_points(der, cfg, count, t.name)
            gaps = []
            domain = der.extra.truth_domain      # the statement's own condition
            for pt in pts:
                if domain is not None and isinstance(pt, Params) and not domain(pt):
                    continue                             # the bound is not claimed there
                env = _truth_env(der, t, pt, cfg.dps)
                exact = ev.evaluate(t.expr, env, backend)
                code = t.value(pt)
                exact_f, code_f = mp.mpf(exact), mp.mpf(float(code))
                ref = max(abs(exact_f), abs(code_f))
                gap = float(abs(exact_f - code_f) / ref) if ref else 0.0
                if not math.isfinite(float(code_f)) or not mp.isfinite(exact_f):
                    gap = 0.0 if (mp.isinf(exact_f) and mp.isinf(code_f)) else math.inf
                gaps.append({"point": pt.as_dict() if isinstance(pt, Params) else dict(pt),
                             "sympy": mp.nstr(exact_f, 15), "code": float(code_f), "gap": gap})
            if not gaps:
                return Certificate("source_of_truth", "error", {"pair": t.name}, 0.0,
                                   f"'{t.name}': no check point lies inside the statement's "
                                   "domain (extra['truth_domain'])")
            g = max(x["gap"] for x in gaps)
            rows.append({"name": t.name, "expression": sp.sstr(t.expr)[:300], "points": len(pts),
                         "worst_relative_gap": g, "tolerance": t.tol, "ok": g <= t.tol,
                         "worst_point": max(gaps, key=lambda x: x["gap"])})
            if g > worst or worst_name is None:
                worst, worst_name = g, t.name
    bad = [r for r in rows if not r["ok"]]
    evidence = {"pairs": rows, "dps": cfg.dps}
    if bad:
        b = bad[0]
        return Certificate("source_of_truth", "error", evidence, 0.0,
                           f"'{b['name']}': code and SymPy expression disagree, relative gap "
                           f"{b['worst_relative_gap']:.3g} at {b['worst_point']['point']}")
    return Certificate("source_of_truth", "pass", evidence, 0.0,
                       f"{len(rows)} numeric implementation(s) agree with their SymPy expressions "
                       f"({sum(r['points'] for r in rows)} random points, {cfg.dps} digits; worst "
                       f"gap {worst:.2g})")


# ------------------------------------------------------------------------------------- chain
def strip_expectations(expr):
    """``expr`` with every ``Expect(e, ...)`` replaced by ``e`` (the chain works pointwise)."""
    expr = sp.sympify(expr)
    while ops.contains_expectation(expr):
        expr = expr.replace(lambda x: isinstance(x, ops.Expect), lambda x: x.expr)
    return expr


def _same(a, b) -> bool:
    """Symbolic equality of two scalar expressions (cheap tests first: the chain compares the
    statement with every step, most of which differ in their symbols)."""
    if a == b:
        return True
    if getattr(a, "is_Matrix", False) or getattr(b, "is_Matrix", False):
        return False
    if a.free_symbols != b.free_symbols:
        return False
    try:
        diff = sp.cancel(sp.together(sp.expand(a - b)))
        if diff == 0:
            return True
        if sp.count_ops(diff) > 400:
            return False
        return sp.simplify(diff) == 0
    except Exception:  # noqa: BLE001 -- nodes without arithmetic
        return False


def check_chain(der, cfg=None) -> Certificate:
    st = der.statement
    target = strip_expectations(st.rhs)
    exempt = der.extra.chain_exempt
    chain = der.extra.chain
    if chain:
        expr = strip_expectations(st.lhs)
        trail = [sp.sstr(expr)[:200]]
        for sid in chain:
            step = der.step(sid)
            lhs, rhs = strip_expectations(step.lhs), strip_expectations(step.rhs)
            new = expr.subs(lhs, rhs) if expr != lhs else rhs
            if new == expr:
                return Certificate("chain", "error", {"chain": list(chain), "trail": trail,
                                                      "stuck_at": sid}, 0.0,
                                   f"step {sid!r} does not apply to {sp.sstr(expr)[:120]}: the "
                                   "statement does not follow from the declared chain of steps")
            expr = new
            trail.append(sp.sstr(expr)[:200])
        ok = _same(expr, target)
        ev_ = {"chain": list(chain), "trail": trail, "end": sp.sstr(expr)[:300],
               "statement_rhs": sp.sstr(target)[:300]}
        if not ok:
            return Certificate("chain", "error", ev_, 0.0,
                               f"the steps {' -> '.join(chain)} end in {sp.sstr(expr)[:100]}, not "
                               f"in the statement's right side {sp.sstr(target)[:100]}")
        return Certificate("chain", "pass", ev_, 0.0,
                           f"statement = {' -> '.join(chain)} applied to its left side "
                           "(symbolically)")
    for step in der.steps:
        if _same(strip_expectations(step.rhs), target):
            return Certificate("chain", "pass", {"step": step.id}, 0.0,
                               f"the statement's right side is the result of step {step.id!r}")
    if exempt:
        return Certificate("chain", "pass", {"exempt": exempt}, 0.0, f"checked directly: {exempt}")
    return Certificate("chain", "error", {"statement_rhs": sp.sstr(target)[:300]}, 0.0,
                       "the statement's right side is not the result of any step (declare "
                       "extra['chain'] or add the step that derives it)")


# ------------------------------------------------------------------------------- homogeneity
HOMOGENEITY_SCALE = mp.mpf(3) / 2
HOMOGENEITY_SCALE_2 = mp.mpf(5) / 2  # a second scale: a sum of terms of two degrees shows
HOMOGENEITY_TOL = 1e-12       # exact homogeneity agrees to ~1e-45 at 50 digits


def _scaled_sides(item, der, p: Params, scale, idx: int, cfg):
    """|lhs|, |rhs| (Frobenius norms of matrices; expectations stripped, one draw of every
    random symbol from a fixed seed) at the instance with the shift and the noise scaled."""
    import dataclasses

    from .checkers.dependencies import _needed_randoms, needed_definitions

    q = dataclasses.replace(p, shift_sv=tuple(v * scale for v in p.shift_sv),
                            sigma=p.sigma * scale)
    backend = ev.MpBackend()
    inst = instances.mp_instance(q)
    rng = np.random.default_rng(stable_seed(cfg.seed, der.id, getattr(item, "id", "statement"),
                                            "homogeneity", idx))
    env = dict(inst)
    env.update(instances.draw_mp(_needed_randoms(item, der), inst, rng))
    env = ev.evaluate_definitions(needed_definitions(item, der), env, backend)
    env.update({k: mp.mpf(v) for k, v in ((getattr(item, "options", None) or {})
                                          .get("constants") or {}).items()})
    out = []
    for side in (item.lhs, item.rhs):
        v = ev.evaluate(strip_expectations(side), env, backend)
        out.append(mp.sqrt(backend.frob2(v)) if isinstance(v, mp.matrix) else abs(v))
    # the arguments of indicators (a deviation event 1[X > threshold]): their two sides must
    # have one dimension too, though the indicator itself is dimensionless
    for node in sorted({h for side in (item.lhs, item.rhs)
                        for h in sp.sympify(strip_expectations(side)).atoms(sp.Heaviside)},
                       key=sp.default_sort_key):
        out.append(abs(ev.evaluate(node.args[0], env, backend)))
    return out


def check_homogeneity(der, cfg) -> Certificate:
    """Scaling the shift and the noise together (``Delta* -> c Delta*``, ``sigma -> c sigma``;
    design, covariances and dimensionless parameters fixed) multiplies both sides of every
    relation by the same power of ``c``: a risk by ``c^2``, an error by ``c``, a probability or
    a trace of a Wishart inverse by ``1``.  Both sides' degrees are measured at ``c = 3/2`` at
    ``cfg.dps`` digits (same draws) and must agree: a squared, dropped or extra dimensioned
    factor, or a term of another dimension added, is refused however loose the inequality it
    sits in.  Relations whose sides vanish at the draw, need values a point does not carry
    (normalised variables such as ``x``, solved fixed points) or are asymptotic are reported as
    not measured; ``extra["homogeneity_exempt"]`` ({step id: reason}) waives one with its
    reason."""
    exempt = der.extra.homogeneity_exempt
    rows, bad = [], []
    with mp.workdps(cfg.dps):
        tiny = mp.mpf(10) ** (-(cfg.dps // 2))
        for item in (*der.steps, der.statement):
            sid = getattr(item, "id", "statement")
            if item.rel == "~" or sid in exempt:
                rows.append({"id": sid, "measured": False,
                             "why": exempt.get(sid, "asymptotic relation")})
                continue
            try:
                pts = [q for q in (getattr(item, "options", None) or {}).get(
                    "hp_params", der.hp_params)(cfg) if isinstance(q, Params)][:1 if cfg.quick else 2]
            except InputError:
                pts = []
            degrees, why = [], None
            for i, p in enumerate(pts):
                try:
                    base = _scaled_sides(item, der, p, 1, i, cfg)
                    at = [_scaled_sides(item, der, p, c, i, cfg)
                          for c in (HOMOGENEITY_SCALE, HOMOGENEITY_SCALE_2)]
                except (ev.MissingValue, InputError, ValueError, ZeroDivisionError) as exc:
                    why = f"not evaluable pointwise ({type(exc).__name__}: {str(exc)[:80]})"
                    break
                deg = [[mp.log(v / v0) / mp.log(c) if min(v, v0) >= tiny else None
                        for v, v0 in zip(vals, base)]
                       for c, vals in zip((HOMOGENEITY_SCALE, HOMOGENEITY_SCALE_2), at)]
                dl, dr = deg[0][0], deg[0][1]
                if dl is None or dr is None:
                    why = why or "a side vanishes at the draw"
                else:
                    degrees.append((float(dl), float(dr)))
                    # equal degrees on both sides, and the same degree at the second scale
                    if max(abs(dl - dr), abs(deg[1][0] - dl) if deg[1][0] is not None else 0,
                           abs(deg[1][1] - dr) if deg[1][1] is not None else 0) > HOMOGENEITY_TOL:
                        bad.append((sid, f"scaling Delta* and sigma by c multiplies its left side by "
                                         f"c^{float(dl):.4g} and its right side by c^{float(dr):.4g} at "
                                         f"c = 3/2 (left c^{float(deg[1][0] or 0):.4g}, right "
                                         f"c^{float(deg[1][1] or 0):.4g} at c = 5/2)", p))
                for j in range(2, len(base)):            # indicator arguments
                    a1, a2 = deg[0][j], deg[1][j]
                    if a1 is not None and a2 is not None:
                        degrees.append(("indicator", float(a1)))
                        if abs(a1 - a2) > HOMOGENEITY_TOL:
                            bad.append((sid, f"the argument of an indicator scales as c^{float(a1):.4g} "
                                              f"at c = 3/2 but c^{float(a2):.4g} at c = 5/2 (terms of two "
                                              f"dimensions)", p))
            row = {"id": sid, "measured": bool(degrees), "degrees": degrees}
            if not degrees:
                row["why"] = why or "no high-precision instance"
            rows.append(row)
    measured = sum(r["measured"] for r in rows)
    ev_ = {"scale": float(HOMOGENEITY_SCALE), "tolerance": HOMOGENEITY_TOL, "relations": rows}
    if bad:
        sid, text, p = bad[0]
        return Certificate("homogeneity", "error", {**ev_, "worst": {
            "id": sid, "finding": text, "point": p.as_dict()}}, 0.0,
            f"{sid!r} is not homogeneous: {text}")
    return Certificate("homogeneity", "pass", ev_, 0.0,
                       f"{measured} of {len(rows)} relations homogeneous in (Delta*, sigma) with "
                       f"equal degrees on both sides; the others not measured (see evidence)")


# ------------------------------------------------------------------------------------ driver
INTEGRITY_CHECKS = (("generic_points", check_generic), ("source_of_truth", check_truth),
                    ("chain", check_chain), ("homogeneity", check_homogeneity))


def run_integrity(der, cfg) -> list[Certificate]:
    import traceback

    out = []
    for name, fn in INTEGRITY_CHECKS:
        with Timer() as t:
            try:
                cert = fn(der, cfg)
            except InputError as exc:
                cert = Certificate(name, "error", {"exception": repr(exc)}, 0.0,
                                   f"error: {exc}")
            except Exception as exc:  # noqa: BLE001 -- reported, never a pass
                cert = Certificate(name, "error", {"exception": repr(exc),
                                                   "traceback": traceback.format_exc(limit=4)},
                                   0.0, f"error: {exc}")
        cert.seconds = t.seconds
        reason = der.extra.integrity_waivers.get(name)
        if reason and cert.verdict != "pass":
            # a declared, visible waiver: shown as "waived" with its reason and the finding,
            # never as a pass (derivation modules that landed before this check was written)
            cert = Certificate(name, "waived", {**cert.evidence, "waiver": reason}, cert.seconds,
                               f"WAIVED ({reason}); finding: {cert.summary}")
        out.append(cert)
    return out
