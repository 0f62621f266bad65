"""The report's view of the formal checks: per-step class and "formally proved" column, lemmas."""
from reports.context import formal_view, step_proof_class


def _cert(method, verdict, summary="s", **ev):
    return {"method": method, "verdict": verdict, "summary": summary, "evidence": ev}


def test_step_proof_class():
    assert step_proof_class({"certificates": [_cert("symbolic", "pass"), _cert("formal", "pass")]}) == "formal"
    assert step_proof_class({"certificates": [_cert("symbolic", "pass"),
                                              _cert("formal", "not formalised")]}) == "symbolic only"
    assert step_proof_class({"certificates": [_cert("symbolic", "pass"),
                                              _cert("formal", "skipped")]}) == "symbolic only"
    assert step_proof_class({"certificates": [_cert("hp", "pass")]}) == "numeric only"


def test_formal_view_rows_and_lemmas():
    result = {"steps": [
        {"id": "a", "certificates": [_cert("symbolic", "pass"), _cert("formal", "pass", script_name="field")]},
        {"id": "b", "certificates": [_cert("symbolic", "pass"),
                                     _cert("formal", "not formalised", "not formalised: why")]},
        {"id": "c", "certificates": [_cert("mc", "pass")]}],
        "formal": {"file": "formal_x.v", "coqc": "8.16.1", "lemmas": [
            {"name": "L", "title": "t", "statement_latex": "x > 0", "hypotheses_latex": [],
             "verdict": "pass", "certificate": _cert("formal", "pass"),
             "controls": [{"name": "c1", "rejected": True, "certificate": _cert("formal", "fail")}]}]}}
    view = formal_view(None, result)
    assert [(r["id"], r["class"], r["formal"]) for r in view["steps"]] == [
        ("a", "formal", "pass"), ("b", "symbolic only", "not formalised"), ("c", "numeric only", "")]
    assert view["steps"][0]["why"] == "field" and "why" in view["steps"][1]["why"]
    assert view["file"] == "formal_x.v" and view["lemmas"][0]["controls"][0]["rejected"]


def test_formal_view_of_a_result_without_formal_data():
    view = formal_view(None, {"steps": [{"id": "a", "certificates": [_cert("symbolic", "pass")]}]})
    assert view["lemmas"] == [] and view["file"] is None
    assert view["steps"][0]["class"] == "symbolic only"
