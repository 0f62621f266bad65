"""``formal``: a step's Coq goal (``derivations.formal``), proved in the derivation's batch file
prepared before the audit's checks (or alone when none was prepared)."""
from __future__ import annotations

import sympy as sp

from ..core import Certificate
from ..formal import (_PREPARED, _notice_once, certificate, coq_version, goal_for_step,
                      lemma_ident, prove_goals)
from . import checker


@checker("formal")
def check_formal(step, derivation, cfg, formula=None) -> Certificate:
    g = goal_for_step(step, derivation)
    if coq_version() is None:
        _notice_once()
        return certificate({"status": "skipped", "reason": "coqc not found",
                            "goal_hash": None if g.error else g.statement_hash()}, None, None)
    key = (coq_version(), derivation.id, g.statement_hash() if not g.error else g.name)
    if key not in _PREPARED:
        batch = prove_goals([g], file_stem=lemma_ident("formal", derivation.id, step.id),
                            seed=getattr(cfg, "seed", 0))
        _PREPARED[key] = (batch["results"][g.name], batch["coqc"], batch["file"])
    result, version, file = _PREPARED[key]
    cert = certificate(result, version, file)
    if cert.verdict == "pass" and sp.sympify(step.lhs) == sp.sympify(step.rhs):
        # SymPy's automatic evaluation already made the two sides identical when the step was
        # constructed: Coq proves what SymPy built, which here is a tautology
        cert.evidence["note"] = ("both sides are identical as constructed (SymPy evaluated the "
                                 "step on construction): the Coq goal is trivial")
        cert.summary += " (trivial: sides identical as constructed)"
    return cert
