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
    """Words of two or more characters whose box is below MIN_TEXT_PT, on every page (figures
    included: their text is text in the PDF).  A lone glyph is left to the figure test: pdftotext
    measures a single mathtext glyph by its outline (a subscript ``i`` reads 1.7 pt), not by its
    font size, which the figure test reads from the figure's own PDF."""
    import html

    xml = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    small, words = [], 0
    for no, body in enumerate(re.findall(r'<page [^>]*>(.*?)</page>', xml, re.S), start=1):
        for y0, y1, word in re.findall(
                r'<word xMin="[\d.]+" yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</word>',
                body):
            w = html.unescape(word).strip()
            if len(w) < 2:
                continue
            words += 1
            if float(y1) - float(y0) < MIN_TEXT_PT:
                small.append((no, w, round(float(y1) - float(y0), 2)))
    return small, words


@pytest.mark.slow
@pytest.mark.tex
def test_no_text_below_five_points(full):
    """Nothing is shrunk: no table, formula or figure label is set below about 5 pt."""
    small, words = _small_words(full.pdf)
    assert words > 10000                       # the check read the whole report
    assert not small, f"text below {MIN_TEXT_PT} pt: {small[:20]}"


def _unescape_pdf_string(raw: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(raw):
        c = raw[i]
        if c == 0x5C and i + 1 < len(raw):                     # backslash escape
            n = raw[i + 1]
            if 0x30 <= n <= 0x37:
                j = i + 1
                while j < len(raw) and j < i + 4 and 0x30 <= raw[j] <= 0x37:
                    j += 1
                out.append(int(raw[i + 1:j], 8) & 0xFF)
                i = j
                continue
            out.append({0x6E: 10, 0x72: 13, 0x74: 9, 0x62: 8, 0x66: 12}.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def figure_text_blocks(pdf_path) -> list:
    """Every text object (BT..ET) of a matplotlib PDF as ``(font sizes, glyphs)``: a label, a
    tick label, a legend entry.  Type 42 fonts take two bytes a glyph; mathtext sets one glyph
    per ``Tj`` with its own size, so one block holds a formula's base size and its scripts."""
    import zlib

    data = open(pdf_path, "rb").read()
    blocks = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            body = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for block in re.findall(rb"\bBT\b(.*?)\bET\b", body, re.S):
            size, sizes, glyphs = None, [], 0
            for tok in re.finditer(rb"/\S+ ([\d.]+) Tf|\[(.*?)\]\s*TJ|\(((?:\\.|[^\\)])*)\)\s*Tj",
                                   block, re.S):
                if tok.group(1):
                    size = float(tok.group(1))
                    continue
                parts = (re.findall(rb"\(((?:\\.|[^\\)])*)\)", tok.group(2), re.S)
                         if tok.group(2) is not None else [tok.group(3)])
                n = sum(len(_unescape_pdf_string(p)) for p in parts) // 2
                if n:
                    sizes.append(size)
                    glyphs += n
            if glyphs:
                blocks.append((sizes, glyphs))
    return blocks


MIN_FIGURE_PT = 7.0      # figure text as printed (figures are included at their natural size)
SCRIPT_FACTOR = 0.7      # mathtext sub/superscripts


def _illegible(blocks):
    """Blocks whose base size is below 7 pt or whose scripts are below 0.7 x 7 pt."""
    return [(sizes, n) for sizes, n in blocks
            if None in sizes or max(sizes) < MIN_FIGURE_PT
            or min(sizes) < MIN_FIGURE_PT * SCRIPT_FACTOR - 1e-6]


@pytest.mark.slow
@pytest.mark.tex
def test_figures_legible_at_print_size(full):
    """Every figure is included at its natural size (so its font sizes are the printed sizes)
    and fits the text width; every label in it is set at >= 7 pt, its sub/superscripts at
    >= 0.7 x 7 pt."""
    tex = (full.out / "report.tex").read_text()
    includes = re.findall(r"\\includegraphics(\[[^\]]*\])?\{([^}]*)\}", tex)
    assert len(includes) >= 8
    scaled = [name for opts, name in includes if opts]
    assert not scaled, f"figures scaled in the report (their fonts shrink): {scaled}"
    bad = []
    for _, name in includes:
        pdf = full.out / name
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
        width = float(re.search(r"Page size:\s+([\d.]+)", info).group(1))
        assert width <= 6.55 * 72, f"{name}: {width / 72:.2f} in wide, wider than the text"
        blocks = figure_text_blocks(pdf)
        assert blocks, f"{name}: no text found (the parser must read every figure)"
        bad.extend((name, b) for b in _illegible(blocks))
    assert not bad, f"figure text below {MIN_FIGURE_PT} pt: {bad[:20]}"


def test_figure_text_parser_reads_sizes(tmp_path):
    """The figure check can fail: a 5 pt label is flagged, a 9 pt label with a subscript and
    8 pt tick labels pass."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"pdf.fonttype": 42, "xtick.labelsize": 8,
                                "ytick.labelsize": 8}):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.set_xlabel("tiny label", fontsize=5)
        ax.set_ylabel(r"big $x_i$", fontsize=9)
        fig.savefig(tmp_path / "f.pdf")
        plt.close(fig)
    blocks = figure_text_blocks(tmp_path / "f.pdf")
    assert ([5.0], len("tiny label")) in blocks
    assert any(max(sz) == 9.0 and min(sz) == 9.0 * SCRIPT_FACTOR for sz, _ in blocks)
    assert _illegible(blocks) == [([5.0], len("tiny label"))]


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
