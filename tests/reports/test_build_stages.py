"""reports.build as stages on one record (reports.record.Build); no build <-> assemble cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reports.assemble as assemble_mod
from numeric.errors import InputError
from reports.build import check_inputs
from reports.record import Build, ReportOptions


def _imports(module) -> set:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_assemble_does_not_import_build():
    found = _imports(assemble_mod)
    assert ".build" not in found and "reports.build" not in found
    assert ".record" in found                    # it reads the typed record instead


def test_check_inputs_fills_the_record_and_writes_nothing(tmp_path):
    out = tmp_path / "r"
    b = check_inputs(ReportOptions(out=out, quick=True, device="cpu", only=("fft_over",)))
    assert isinstance(b, Build)
    assert [d.id for d in b.ders] == ["fft_over"] and b.secs == []
    assert b.out == out.resolve() and b.cache_root == out.resolve() / "cache"
    assert b.dir is None and b.cache is None and b.stored == {} and b.result.status == 0
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_check_inputs_refuses_before_writing(tmp_path):
    with pytest.raises(InputError, match="unknown derivation or section id"):
        check_inputs(ReportOptions(out=tmp_path / "r", quick=True, device="cpu", only=("nope",)))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("data")
    with pytest.raises(InputError, match="not a report of this tool"):
        check_inputs(ReportOptions(out=tmp_path / "x", quick=True, device="cpu", only=("fft_over",)))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "x"]


def test_after_must_name_an_earlier_section():
    from reports.section import Section, check_after

    def mk(i, order, after=()):
        return Section(id=i, title=i, order=order, compute=dict, template="t", after=after)

    check_after({"a": mk("a", 1), "b": mk("b", 2, after=("a",))})
    with pytest.raises(ValueError, match=r"after=\['c'\] names no earlier section"):
        check_after({"a": mk("a", 1), "b": mk("b", 2, after=("c",))})        # unknown
    with pytest.raises(ValueError, match=r"after=\['b'\] names no earlier section"):
        check_after({"a": mk("a", 1, after=("b",)), "b": mk("b", 2)})        # later
    from reports.section import discover_sections

    assert discover_sections()["sensitivity"].after == ("lora",)   # reads lora-falsification.json


def test_only_picklable_sections_go_to_local_processes():
    from reports.build import _picklable
    from reports.section import Section, discover_sections

    assert all(_picklable(s) for s in discover_sections().values())
    local = Section(id="x", title="x", order=1, compute=lambda ctx: {}, template="t")
    assert not _picklable(local)              # computed in the parent instead
