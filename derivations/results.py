"""Typed audit results: what ``derivations.audit`` returns, with ``.verdict`` and ``.to_json()``.

The audit builds these objects; everything that leaves the process (``audit --json``, the
report's cache, the mutation children, a Dask worker's answer) is their ``to_json()`` form, a
plain dict whose schema is the one the report and other tools read.  ``from_json`` reads it
back (a cached result), so ``X.from_json(x.to_json()).to_json() == x.to_json()``.

* ``StepResult`` -- one step: its certificates and ``verdict`` (``pass``/``fail``);
* ``ControlResult`` -- one negative control: ``rejected`` when a check *failed* on it, so its
  ``verdict`` is ``rejected`` or ``accepted`` (an accepted control is a failure of the audit);
* ``DerivationResult`` -- one derivation: integrity, steps, statement, controls, formal proofs;
* ``AuditRun`` -- many derivations with the run's provenance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .core import NEUTRAL_VERDICTS, Certificate


def _cert(d: dict) -> Certificate:
    return Certificate(method=d["method"], verdict=d["verdict"], evidence=d["evidence"],
                       seconds=d["seconds"], summary=d["summary"])


def _certs(items) -> tuple:
    return tuple(_cert(c) for c in items)


def step_verdict(certs) -> str:
    """pass: no check failed or errored and at least one passed (neutral ones do not count)."""
    if any(c.verdict not in ("pass", *NEUTRAL_VERDICTS) for c in certs):
        return "fail"
    return "pass" if any(c.verdict == "pass" for c in certs) else "fail"


@dataclass(frozen=True)
class StepResult:
    id: str
    certificates: tuple = ()

    @property
    def verdict(self) -> str:          # pass | fail, from the certificates
        return step_verdict(self.certificates)

    def to_json(self) -> dict:
        return {"id": self.id, "verdict": self.verdict,
                "certificates": [c.as_dict() for c in self.certificates]}

    @classmethod
    def from_json(cls, d: dict) -> "StepResult":
        out = cls(d["id"], _certs(d["certificates"]))
        if out.verdict != d["verdict"]:
            raise ValueError(f"step result {d['id']!r}: the stored verdict {d['verdict']!r} "
                             f"does not follow from its certificates ({out.verdict!r})")
        return out


@dataclass(frozen=True)
class ControlResult:
    name: str
    description: str
    target: str                        # a step id or "statement"
    rejected: bool                     # some check *failed* on the wrong statement
    certificates: tuple = ()

    @property
    def verdict(self) -> str:
        return "rejected" if self.rejected else "accepted"

    def to_json(self) -> dict:
        return {"name": self.name, "description": self.description, "target": self.target,
                "rejected": self.rejected,
                "certificates": [c.as_dict() for c in self.certificates]}

    @classmethod
    def from_json(cls, d: dict) -> "ControlResult":
        return cls(d["name"], d["description"], d["target"], d["rejected"],
                   _certs(d["certificates"]))


@dataclass(frozen=True)
class DerivationResult:
    id: str
    title: str
    plain_title: str
    kind: str
    regime: str
    integrity: tuple = ()              # Certificates (verdict pass | waived | fail | error)
    steps: tuple = ()                  # StepResults
    statement: tuple = ()              # the statement's Certificates
    controls: tuple = ()               # ControlResults
    formal: dict = field(default_factory=dict)   # ``derivations.audit.formal_summary``
    stopped_at: str | None = None      # stop_on_failure: the first check that did not pass
    seconds: float = 0.0

    # each part's verdict; a stopped audit fails every part (it did not run them all)
    @property
    def integrity_ok(self) -> bool:
        return self.stopped_at is None and \
            all(c.verdict in ("pass", "waived") for c in self.integrity)

    @property
    def steps_ok(self) -> bool:
        return self.stopped_at is None and all(s.verdict == "pass" for s in self.steps)

    @property
    def statement_ok(self) -> bool:
        return self.stopped_at is None and all(c.verdict == "pass" for c in self.statement)

    @property
    def controls_ok(self) -> bool:
        return self.stopped_at is None and all(c.rejected for c in self.controls)

    @property
    def formal_ok(self) -> bool:
        return self.formal.get("ok") is True      # no formal summary: not certified

    @property
    def verdict(self) -> str:
        ok = (self.integrity_ok and self.steps_ok and self.statement_ok and self.controls_ok
              and self.formal_ok)
        return "pass" if ok else "fail"

    def step(self, step_id: str) -> StepResult:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"{self.id} has no step result {step_id!r}")

    def control(self, name: str) -> ControlResult:
        for c in self.controls:
            if c.name == name:
                return c
        raise KeyError(f"{self.id} has no control result {name!r}")

    def to_json(self) -> dict:
        return {
            "id": self.id, "title": self.title, "plain_title": self.plain_title,
            "kind": self.kind, "regime": self.regime, "verdict": self.verdict,
            "integrity_ok": self.integrity_ok,
            "integrity": [c.as_dict() for c in self.integrity],
            "stopped_at": self.stopped_at, "steps_ok": self.steps_ok,
            "statement_ok": self.statement_ok, "controls_ok": self.controls_ok,
            "steps": [s.to_json() for s in self.steps],
            "statement": {"certificates": [c.as_dict() for c in self.statement]},
            "controls": [c.to_json() for c in self.controls],
            "formal": self.formal, "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, d: dict) -> "DerivationResult":
        out = cls(d["id"], d["title"], d["plain_title"], d["kind"], d["regime"],
                  integrity=_certs(d["integrity"]),
                  steps=tuple(StepResult.from_json(s) for s in d["steps"]),
                  statement=_certs(d["statement"]["certificates"]),
                  controls=tuple(ControlResult.from_json(c) for c in d["controls"]),
                  formal=d["formal"], stopped_at=d.get("stopped_at"), seconds=d["seconds"])
        if out.verdict != d["verdict"]:
            raise ValueError(f"audit result {d['id']!r}: the stored verdict {d['verdict']!r} "
                             f"does not follow from its parts ({out.verdict!r})")
        return out


@dataclass(frozen=True)
class AuditRun:
    derivations: tuple                 # DerivationResults, in the order asked for
    provenance: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return "pass" if all(r.verdict == "pass" for r in self.derivations) else "fail"

    def result(self, der_id: str) -> DerivationResult:
        for r in self.derivations:
            if r.id == der_id:
                return r
        raise KeyError(der_id)

    def to_json(self) -> dict:
        return {"provenance": self.provenance, "verdict": self.verdict,
                "derivations": [r.to_json() for r in self.derivations]}

    @classmethod
    def from_json(cls, d: dict) -> "AuditRun":
        return cls(tuple(DerivationResult.from_json(r) for r in d["derivations"]),
                   d["provenance"])
