"""derivations.reach: every mutation site is executed by the (unmutated) audit."""
import ast

import pytest

from derivations import mutate, reach

FILE = "numeric/ridgeless.py"


@pytest.fixture(scope="module")
def sites():
    return mutate.generate(files=(FILE,))


def _all_lines(ids):
    text = (mutate.ROOT / FILE).read_text(encoding="utf-8")
    return {i: {"verdict": "pass", "lines": {FILE: set(range(1, text.count("\n") + 2))}}
            for i in ids}


def test_nothing_executed_reports_every_site(sites):
    out = reach.unreached({}, sites)
    assert sites and sum(s.mutants for s in out) == len(sites)
    assert {s.file for s in out} == {FILE}


def test_everything_executed_reports_nothing(sites):
    ids = mutate.affected_derivations(FILE)
    assert reach.unreached(_all_lines(ids), sites) == []


def test_one_line_left_out_is_reported_and_only_by_its_derivations(sites):
    ids = mutate.affected_derivations(FILE)
    line = sites[len(sites) // 2].line
    spans = reach._statement_spans(ast.parse((mutate.ROOT / FILE).read_text("utf-8")))
    lo, hi, head = reach._innermost(spans, line)
    stmt_lines = set(range(lo, (hi if head == hi else head) + 1))
    ex = _all_lines(ids)
    for v in ex.values():
        v["lines"][FILE] -= stmt_lines
    out = reach.unreached(ex, sites)
    assert [s.line for s in out] == [lo]
    assert out[0].mutants == sum(1 for m in sites if lo <= m.line <= max(stmt_lines))
    # lines executed only by a derivation that cannot see the file do not count
    other = {"fft_over_not_affected": {"verdict": "pass", "lines": _all_lines(["x"])["x"]["lines"]}}
    assert [s.line for s in reach.unreached({**ex, **other}, sites)] == [lo]


def test_a_compound_header_is_reached_by_its_own_lines_not_its_body():
    tree = ast.parse("def f(a=1):\n    if a > 2:\n        return a\n    return 0\n")
    spans = reach._statement_spans(tree)
    assert reach._innermost(spans, 2) == (2, 3, 2)      # the `if` header is line 2 alone
    assert reach._innermost(spans, 1) == (1, 4, 1)      # a default argument: the def line


def test_exemptions_name_functions_that_have_sites():
    functions = {f"{m.file}::{m.function}" for m in mutate.generate()}
    assert set(reach.UNREACHABLE) <= functions
    assert all(len(why) > 40 for why in reach.UNREACHABLE.values())


def test_reach_jobs_must_be_positive():
    from derivations.cli import main

    assert main(["mutate", "--reach", "--jobs", "0"]) == 2


@pytest.mark.slow
def test_the_quick_audit_executes_every_mutation_site(tmp_path):
    """A planted error where no check point goes can never be rejected: the audit's check
    points must execute every site the mutation suite plants errors at (or it is exempt, with
    its reason, in ``reach.UNREACHABLE``)."""
    from derivations import registry
    from derivations.commands.audit import default_jobs

    ids = list(registry())
    executed = reach.executed_lines(ids, quick=True, seed=0, jobs=default_jobs(len(ids)))
    assert all(r["verdict"] == "pass" for r in executed.values())
    missing = reach.unreached(executed)
    assert missing == [], "\n".join(str(s) for s in missing)


def test_a_crashed_traced_audit_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    from derivations.cli import main

    def crash(*a, **k):
        raise reach.ReachError("reach: the traced audit of fft_over crashed: ZeroDivisionError")

    monkeypatch.setattr(reach, "executed_lines", crash)
    assert main(["mutate", "--reach", "--json", str(tmp_path / "r.json")]) == 1
    err = capsys.readouterr().err
    assert "crashed: ZeroDivisionError" in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


def test_a_child_that_prints_no_result_raises_reach_error(monkeypatch):
    import subprocess

    class Done:
        stdout, stderr = "nothing here\n", "boom: KeyError('x')\n"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(reach.ReachError, match="crashed: boom"):
        reach._child("fft_over", True, 0, mutate.ROOT, 5)
