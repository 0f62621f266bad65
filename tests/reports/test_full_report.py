"""The complete report, as the README's main job builds it (quick-sized): every derivation and
every plug-in section, compiled for real and read back from the PDF.

Marked slow (about a minute and a half on two cores); CI runs it (``--runslow``).
"""
import json
import re
import subprocess

import pytest

from derivations import registry
from reports.build import ReportOptions, build_report
from reports.section import discover_sections

@pytest.fixture(scope="module")
def full(tmp_path_factory):
    import os

    tmp = tmp_path_factory.mktemp("full")
    cwd = os.getcwd()
    os.chdir(tmp)                          # nothing may be written relative to the cwd
    try:
        return build_report(ReportOptions(out=tmp / "report", quick=True, device="cpu",
                                          cache_dir=tmp / "cache"), progress=lambda m: None)
    finally:
        os.chdir(cwd)


MIN_TEXT_PT = 4.5        # smallest word-box height accepted (about a 5 pt font)


@pytest.mark.slow
@pytest.mark.tex
def test_every_page_is_legible_and_nothing_runs_off_the_page(full, tmp_path):
    """Every page renders; no word (figure labels included) is set below ~5 pt or leaves the
    page; the report is self-contained (no pointers to files or code the reader lacks)."""
    import html

    assert full.status == 0, (full.message, full.failures)
    xml = subprocess.run(["pdftotext", "-bbox-layout", str(full.pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', xml, re.S)
    assert len(pages) > 5
    small, off = [], []
    for no, (w, h, body) in enumerate(pages, start=1):
        for x0, y0, x1, y1, word in re.findall(
                r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>',
                body):
            x0, y0, x1, y1 = map(float, (x0, y0, x1, y1))
            if y1 - y0 < MIN_TEXT_PT and html.unescape(word).strip():
                small.append((no, html.unescape(word), round(y1 - y0, 2)))
            if x1 > float(w) + 0.5 or y1 > float(h) + 0.5 or x0 < -0.5 or y0 < -0.5:
                off.append((no, html.unescape(word)))
    assert not off, f"text off the page: {off[:10]}"
    png = subprocess.run(["pdftoppm", "-r", "20", "-png", str(full.pdf), str(tmp_path / "p")],
                         capture_output=True)
    assert png.returncode == 0 and len(list(tmp_path.glob("p*.png"))) == len(pages)
    text = subprocess.run(["pdftotext", str(full.pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    # the mutation suite's survivors are named by their code location (module.py::function::
    # mutation id) in "How far to trust this audit": identifiers for re-running them, exempt here
    prose = "\n".join(ln for ln in text.splitlines() if "::" not in ln)
    for leak in ("THEORY.md", "THEORY 4", "THEORY §", "numeric.", "derivations.theorems"):
        assert leak not in text, f"the report points the reader to {leak!r}, which they lack"
    assert ".py" not in prose, "the report points the reader to a source file"


def _small_words(pdf):
    import html

    xml = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    small = []
    for no, body in enumerate(re.findall(r'<page [^>]*>(.*?)</page>', xml, re.S), start=1):
        for y0, y1, word in re.findall(
                r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>',
                body):
            if float(y1) - float(y0) < MIN_TEXT_PT and html.unescape(word).strip():
                small.append((no, html.unescape(word), round(float(y1) - float(y0), 2)))
    return small


@pytest.mark.slow
@pytest.mark.tex
@pytest.mark.xfail(strict=True, reason="issue 15 (open): the sensitivity section's tables and "
                   "figures are still shrunk below 5 pt; this must start passing when they are "
                   "fixed (strict: an unexpected pass fails, so the marker cannot outlive the fix)")
def test_no_text_below_five_points(full):
    small = _small_words(full.pdf)
    assert len(small) <= 3, f"text below {MIN_TEXT_PT} pt: {small[:20]}"


@pytest.mark.slow
@pytest.mark.tex
def test_full_report_contains_every_derivation_and_section(full):
    res = full
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
    referee = text[text.index("Answers to the referee Each comment"):]
    for comment in ("Major comment 1", "Major comment 2", "Minor comment 1", "Minor comment 2"):
        assert re.search(comment + r": [^—]*— answered", referee), comment
    # formal proofs: the section, the counts, one Coq file per derivation with formal goals,
    # and (with Coq) each file re-runs
    assert "Formal proofs Steps certified formally" in text
    assert re.search(r"symbolically only \(SymPy\): \d+; numerically only", text)
    files = sorted(p.name for p in res.out.glob("formal_*.v"))
    from derivations.formal import coqc_path

    if coqc_path() is not None:
        assert "formal_fft_over.v" in files and "formal_lora_sharp_over.v" in files, files
        for name in files:
            run = subprocess.run([coqc_path(), "-q", name], cwd=res.out, capture_output=True,
                                 text=True, timeout=600)
            assert run.returncode == 0, (name, run.stdout[-500:], run.stderr[-500:])
    # major 1 states its numbers and what it leaves open
    assert re.search(r"Major comment 1: [^—]*— answered in part", referee)
    assert "Remains open:" in referee
    # the sensitivity sweep lives in the cache folder, not in ./out of the working directory
    assert (res.out.parent / "cache" / "work" / "sensitivity-quick" / "points.jsonl").is_file()
    assert not (res.out.parent / "out").exists()
    assert "quick, CI-sized sweep" in text
