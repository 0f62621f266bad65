"""Typed audit results (``derivations.results``): verdicts follow from the parts, the JSON form
round-trips, and a stored verdict that contradicts its parts is refused."""
import dataclasses
import json

import pytest

from derivations.core import Certificate
from derivations.results import AuditRun, ControlResult, DerivationResult, StepResult


def _cert(verdict="pass", method="symbolic"):
    return Certificate(method, verdict, {"x": 1.5}, 0.25, f"{method} {verdict}")


def _der(step_verdict="pass", rejected=True, integrity="pass", stopped=None, formal_ok=True):
    return DerivationResult(
        "toy", "Toy $x$", "Toy x", "theorem", "over",
        integrity=(_cert(integrity, "generic_points"),),
        steps=(StepResult("s1", (_cert(step_verdict),)),),
        statement=(_cert("pass", "hp"),),
        controls=(ControlResult("c1", "a wrong sign", "s1", rejected,
                                (_cert("fail" if rejected else "pass"),)),),
        formal={"ok": formal_ok, "lemmas": []}, stopped_at=stopped, seconds=1.0)


def test_verdict_follows_from_every_part():
    assert _der().verdict == "pass"
    assert _der(step_verdict="fail").verdict == "fail"
    assert _der(rejected=False).verdict == "fail"          # a control that passed: a failure
    assert _der(integrity="error").verdict == "fail"
    assert _der(integrity="waived").verdict == "pass"
    assert _der(formal_ok=False).verdict == "fail"
    assert dataclasses.replace(_der(), formal={}).verdict == "fail"   # no formal summary
    stopped = _der(stopped="step s1")
    assert stopped.verdict == "fail" and not stopped.steps_ok and not stopped.controls_ok


def test_control_verdict_words():
    assert _der().control("c1").verdict == "rejected"
    assert _der(rejected=False).control("c1").verdict == "accepted"
    with pytest.raises(KeyError, match="no control result"):
        _der().control("nope")
    with pytest.raises(KeyError, match="no step result"):
        _der().step("nope")


@pytest.mark.parametrize("variant", [{}, {"step_verdict": "fail"}, {"rejected": False},
                                     {"stopped": "integrity generic_points"}])
def test_json_round_trip(variant):
    d = _der(**variant)
    j = d.to_json()
    json.dumps(j)                                           # plain JSON, nothing typed left
    assert j["verdict"] == d.verdict and j["controls_ok"] == d.controls_ok
    assert DerivationResult.from_json(j).to_json() == j
    run = AuditRun((d, _der()), {"seed": 3})
    assert AuditRun.from_json(run.to_json()).to_json() == run.to_json()
    assert run.verdict == ("pass" if d.verdict == "pass" else "fail")
    assert run.result("toy") is d


def test_a_stored_step_verdict_contradicting_its_certificates_is_refused():
    j = _der().to_json()
    j["steps"][0]["verdict"] = "fail"
    with pytest.raises(ValueError, match="step result 's1'"):
        DerivationResult.from_json(j)


def test_a_stored_verdict_contradicting_its_parts_is_refused():
    j = _der(rejected=False).to_json()
    j["verdict"] = "pass"
    with pytest.raises(ValueError, match="does not follow"):
        DerivationResult.from_json(j)


def test_a_real_audit_result_is_typed_and_round_trips(audit_cache):
    res = audit_cache("fft_over")
    assert isinstance(res, DerivationResult) and res.verdict == "pass"
    assert all(isinstance(s, StepResult) for s in res.steps)
    assert all(isinstance(c, Certificate) for c in res.statement)
    text = json.dumps(res.to_json(), sort_keys=True)     # evidence tuples become lists
    back = DerivationResult.from_json(json.loads(text))
    assert json.dumps(back.to_json(), sort_keys=True) == text
