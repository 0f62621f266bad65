"""The complete report, as the README's main job builds it (quick-sized): every derivation and
every plug-in section, compiled for real and read back from the PDF.

Marked slow (about a minute and a half on two cores); CI runs it (``--runslow``).
"""
import json
import re
import shutil
import subprocess

import pytest

from derivations import registry
from reports.build import ReportOptions, build_report
from reports.section import discover_sections

HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None


@pytest.mark.slow
@pytest.mark.tex
def test_full_report_contains_every_derivation_and_section(tmp_path, monkeypatch):
    if not HAVE_TEX:
        pytest.skip("latexmk/pdftotext not installed")
    monkeypatch.chdir(tmp_path)             # nothing may be written relative to the cwd
    res = build_report(ReportOptions(out=tmp_path / "report", quick=True, device="cpu",
                                     cache_dir=tmp_path / "cache"), progress=lambda m: None)
    assert res.status == 0, (res.message, res.failures)
    text = " ".join(subprocess.run(["pdftotext", str(res.pdf), "-"], capture_output=True,
                                   text=True, check=True).stdout.split()).replace("\u2019", "'")
    audit = json.loads((res.out / "audit.json").read_text())
    assert [d["id"] for d in audit["derivations"]] == list(registry())
    for d in audit["derivations"]:
        # the title's words before any mathematics (which pdftotext renders differently)
        assert " ".join(d["title"].split("$")[0].split()[:3]) in text, d["id"]
        # the identifier line is a justified paragraph; its parts may wrap in any order
        m = re.search(rf"Identifier {re.escape(d['id'])} .{{0,400}}?verdict (PASS|FAIL)", text)
        assert m and m.group(1) == d["verdict"].upper() == "PASS", d["id"]
    assert set(res.sections) == set(discover_sections())
    assert all(v == "computed" for v in res.sections.values()), res.sections
    referee = text[text.index("Response to the referee Each comment"):]
    for comment in ("Major comment 1", "Major comment 2", "Minor comment 1"):
        assert re.search(comment + r": [^—]*— answered", referee), comment
    assert re.search(r"Minor comment 2: [^—]*— open", referee)
    # major 1 states its numbers and what it leaves open
    assert re.search(r"Major comment 1: [^—]*— answered in part", referee)
    assert "Remains open:" in referee
    # the sensitivity sweep lives in the cache folder, not in ./out of the working directory
    assert (tmp_path / "cache" / "work" / "sensitivity-quick" / "points.jsonl").is_file()
    assert not (tmp_path / "out").exists()
    assert "quick, CI-sized sweep" in text
