"""The section "How far to trust this audit": it collects the mutation suite's recorded results
and this build's certificates (it computes nothing itself) and renders them."""
import json
from types import SimpleNamespace

from reports.render import make_env
from reports.sections import trust


def render(template, **context):
    return make_env().get_template(template).render(**context)


def _audit():
    cert = {"method": "end_to_end", "verdict": "pass", "summary": "",
            "evidence": {"max_detectable_rel": 0.031}}
    conv = {"method": "convergence", "verdict": "pass", "summary": "", "evidence": {"resolution": 0.027}}
    integ = [{"method": "generic_points", "verdict": "pass", "evidence": {"rules": [1, 2, 3]}},
             {"method": "source_of_truth", "verdict": "pass", "evidence": {"pairs": [1]}},
             {"method": "chain", "verdict": "pass", "evidence": {"step": "assemble"}},
             {"method": "homogeneity", "verdict": "pass", "evidence": {"relations": [
                 {"id": "s", "measured": True}, {"id": "statement", "measured": False}]}}]
    return {"derivations": {"fft_over": {"statement": {"certificates": [cert]}, "steps": [
        {"id": "s", "certificates": [conv]}], "integrity": integ}}}


def _results():
    rows = [{"mutant": {"id": "a", "line": 3, "original": "1", "replacement": "(2)"},
             "status": "killed", "caught_by": "fft_over: integrity source_of_truth"},
            {"mutant": {"id": "b", "line": 4, "original": "n - d", "replacement": "(n)"},
             "status": "survived", "caught_by": None}]
    summ = {"mutants": 2, "judged": 2, "equivalent": 0, "killed": 1, "catch_rate": 0.5,
            "by_status": {"killed": 1, "survived": 1}, "survivors": [rows[1]],
            "equivalent_mutants": []}
    return {"provenance": {"date": "2026-12-02", "git_revision": "abc123",
                           "config": {"generated": 99, "sample": 80, "sample_seed": 20,
                                      "quick": True}}, "summary": summ,
            "results": rows}


def test_collects_recorded_results_and_certificates(tmp_path, monkeypatch):
    monkeypatch.setattr(trust, "RECORDED", tmp_path / "none")
    (tmp_path / "mutation").mkdir()
    (tmp_path / "mutation" / "results.json").write_text(json.dumps(_results()))
    (tmp_path / "mutation" / "baseline.json").write_text(json.dumps({"summary": {"baseline": {
        "runs": [{"seed": 0, "failed": []}, {"seed": 1, "failed": ["x"]}], "false_alarms": 1,
        "false_alarm_rate": 0.5}}}))
    ctx = SimpleNamespace(out_dir=tmp_path / "report", audit=_audit(), quick=True)
    data = trust.compute(ctx)
    m = data["mutation"]
    assert m["available"] and m["killed"] == 1 and m["catch_rate"] == 0.5
    assert [s["id"] for s in m["survivors"]] == ["b"]
    assert m["caught_by"] == [{"where": "integrity source_of_truth", "count": 1}]
    assert m["baseline"]["false_alarms"] == 1 and m["baseline"]["failed"] == ["seed 1: x"]
    assert data["worst_detectable"] == 0.031 and data["verdict"] == "pass"
    assert m["command"] == "lora-audit mutate --sample 80 --seed 20" and m["revision"] == "abc123"
    assert data["integrity"][0]["homogeneous"] == "1/2"
    body = render("sections/trust.tex.j2", data=data, section={"id": "trust"}, audit={})
    assert r"(50\%)" in body or "50" in body.split("rejected")[1][:30]
    assert "Survivors" in body and r"n - d" in body and "abc123" in body
    # a derivation whose relations are not homogeneous fails the section's verdict
    bad = _audit()
    bad["derivations"]["fft_over"]["integrity"][3]["verdict"] = "error"
    assert trust.compute(SimpleNamespace(out_dir=tmp_path / "report", audit=bad,
                                         quick=True))["verdict"] == "fail"


def test_without_results_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(trust, "RECORDED", tmp_path / "none")
    ctx = SimpleNamespace(out_dir=tmp_path / "report", audit=_audit(), quick=True)
    data = trust.compute(ctx)
    assert not data["mutation"]["available"] and data["mutation"]["baseline"] is None
    body = render("sections/trust.tex.j2", data=data, section={"id": "trust"}, audit={})
    assert "was not run" in body and "Not measured" in body


def test_falls_back_to_the_recorded_run(tmp_path, monkeypatch):
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "results.json").write_text(json.dumps(_results()))
    monkeypatch.setattr(trust, "RECORDED", rec)
    data = trust.compute(SimpleNamespace(out_dir=tmp_path / "report", audit=_audit(), quick=True))
    assert data["mutation"]["available"] and data["mutation"]["recorded"]
    body = render("sections/trust.tex.j2", data=data, section={"id": "trust"}, audit={})
    assert "recorded run" in body
