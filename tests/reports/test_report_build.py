"""``lora-audit report`` end to end: the real PDF, the cache, atomic output, the no-TeX path.

The report is restricted (``only``) to the two FFT derivations and a demo section so the module
stays within its time budget; the full report includes everything ``derivations.registry()`` and
``reports/sections`` hold (that selection code path is the same).
"""
import hashlib
import re
import shutil
import subprocess

import pytest

import reports.build as build_mod
import reports.section as section_mod
from reports.build import ReportOptions, build_report
from reports.section import Section

DERS = ("fft_over", "fft_under_iso")
NASTY = r"Demo & escaping: 50% of a_b {c} ~ #1 $ ^"
HAVE_TEX = shutil.which("latexmk") is not None and shutil.which("pdftotext") is not None


def _demo_compute(ctx):
    """A plug-in section: reads the audit, writes a figure and data, returns JSON-able data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    der = ctx.derivation("fft_over")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([1, 2, 3], [1, 4, 9])
    name = "demo-curve.pdf"
    fig.savefig(ctx.out_dir / name)
    plt.close(fig)
    (ctx.out_dir / "demo-data.csv").write_text("x,y\n1,1\n")
    return {"figure": name, "text": NASTY, "fft_over_verdict": der["verdict"] if der else "absent",
            "value": 1.2345e-7}


_DEMO_TEMPLATE = r"""\noindent Demo text: \VAR{data.text|e}. fft\_over verdict: \VAR{data.fft_over_verdict|verdict};
a tiny value \VAR{data.value|num}.
\begin{center}\includegraphics[width=4cm]{\VAR{data.figure}}\end{center}
"""


def _boom(ctx):
    raise RuntimeError("demo failure")


DEMO = Section(id="demo", title=r"Demo section \& its figure", order=1, compute=_demo_compute,
               template="sections/demo.tex.j2",
               sources=("numeric.stats", "derivations.theorems.fft_over"),
               answers={"major1": r"the demo section shows a figure (test only)"})
BROKEN = Section(id="broken", title="Broken section", order=2, compute=_boom,
                 template="sections/demo.tex.j2", sources=(),
                 answers={"major2": "never cited"})


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    d = tmp_path_factory.mktemp("templates")
    (d / "sections").mkdir()
    (d / "sections" / "demo.tex.j2").write_text(_DEMO_TEMPLATE)
    return d


@pytest.fixture
def plugins(monkeypatch, templates):
    monkeypatch.setattr(build_mod, "EXTRA_TEMPLATE_DIRS", [templates])
    sections = {"demo": DEMO, "broken": BROKEN}
    monkeypatch.setattr(section_mod, "discover_sections", lambda: dict(sections))
    return sections


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("report")


def _opts(workdir, **kw):
    base = dict(out=workdir / "report", quick=True, device="cpu", only=DERS + ("demo",),
                cache_dir=workdir / "cache", compile=HAVE_TEX)
    base.update(kw)
    return ReportOptions(**base)


@pytest.fixture(scope="module")
def first(workdir, templates):
    """The first build (computes everything; compiles the PDF when TeX is present)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(build_mod, "EXTRA_TEMPLATE_DIRS", [templates])
    mp.setattr(section_mod, "discover_sections", lambda: {"demo": DEMO})
    try:
        res = build_report(_opts(workdir), progress=lambda m: None)
    finally:
        mp.undo()
    return res


def _pdf_text(pdf) -> str:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


@pytest.mark.tex
def test_pdf_has_every_derivation_verdict_and_the_parts(first):
    import json

    assert first.status == 0, first.message
    assert first.pdf is not None and first.pdf.is_file()
    text = _pdf_text(first.pdf)
    audit = json.loads((first.out / "audit.json").read_text())
    assert [d["id"] for d in audit["derivations"]] == list(DERS)
    for d in audit["derivations"]:
        assert d["title"] in text
        m = re.search(rf"Identifier {d['id']} kind .*? verdict (PASS|FAIL)", text)
        assert m and m.group(1) == d["verdict"].upper()
    for part in ("Notation", "Summary of the claims", "Answers to the referee", "Negative controls",
                 "Monte Carlo: formula against a simulation", "Figure 1", "Provenance",
                 "git revision", "master seed", "Configuration", "Step 1: error"):
        assert part in text, part
    assert "Demo section & its figure" in text
    assert NASTY in text                                  # escaped plain text, read back
    # the referee section cites the section that produced data, lists the rest as open
    referee = text[text.index("Answers to the referee Each comment"):]
    assert re.search(r"Major comment 1: covariance.subspace misalignment — answered", referee)
    assert re.search(r"Major comment 2: sensitivity to the rank of the shift — open", referee)
    assert "Minor comment 2: spectra of real-task weight differences — open" in referee


def test_output_files(first):
    out = first.out
    for name in ("report.tex", "audit.json", "report-data.json", "summary.csv",
                 "fft_over-sweep.pdf", "fft_over-sweep.csv", "fft_over-montecarlo.csv",
                 "fft_under_iso-sweep.pdf", "demo-curve.pdf", "demo-data.csv"):
        assert (out / name).is_file(), name
    assert first.derivations == {"fft_over": "computed", "fft_under_iso": "computed"} or \
        set(first.derivations.values()) <= {"computed", "cached"}
    tex = (out / "report.tex").read_text()
    assert r"\VAR{" not in tex and r"\BLOCK{" not in tex
    assert not list(out.parent.glob(".report.build-*"))   # no temporary folder left behind


def test_cache_reuse_and_exact_invalidation(first, workdir, plugins, monkeypatch):
    from derivations import get

    calls = []
    import derivations.audit as audit_mod

    real = audit_mod.audit_derivation
    monkeypatch.setattr(audit_mod, "audit_derivation",
                        lambda der, cfg, progress=None: calls.append(der.id) or real(der, cfg, progress))
    # unchanged: everything reused
    res = build_report(_opts(workdir, compile=False), progress=lambda m: None)
    assert res.derivations == {"fft_over": "cached", "fft_under_iso": "cached"}
    assert res.sections == {"demo": "cached"} and calls == []
    assert (res.out / "demo-curve.pdf").is_file()        # the section's files come back from the cache
    # a change to one derivation's source: exactly it (and the section that reads it) recomputes
    der = get("fft_over")
    monkeypatch.setattr(der, "source_text", lambda: "# edited\n" + type(der).source_text(der))
    res = build_report(_opts(workdir, compile=False), progress=lambda m: None)
    assert calls == ["fft_over"]
    assert res.derivations == {"fft_over": "computed", "fft_under_iso": "cached"}
    assert res.sections == {"demo": "computed"}
    # a different configuration (seed) never reuses: checked on the key, without recomputing
    from derivations.config import make_config
    from numeric.device import resolve
    from reports.cache import derivation_key

    k0, _ = derivation_key(get("fft_under_iso"), make_config(quick=True, device="cpu"), resolve("cpu"))
    k1, _ = derivation_key(get("fft_under_iso"), make_config(quick=True, device="cpu", seed=1),
                           resolve("cpu"))
    assert k0 != k1


def test_a_cached_audit_whose_verdict_contradicts_its_parts_is_audited_again(first, workdir,
                                                                             plugins):
    import json

    [path] = (workdir / "cache" / "derivations").glob("fft_under_iso-*/result.json")
    stored = json.loads(path.read_text())
    assert stored["result"]["audit"]["verdict"] == "pass"
    stored["result"]["audit"]["verdict"] = "fail"          # tampered: its parts still pass
    path.write_text(json.dumps(stored))
    msgs = []
    res = build_report(_opts(workdir, compile=False), progress=msgs.append)
    # (fft_over may be recomputed too: an earlier test cached it under an edited source)
    assert res.derivations["fft_under_iso"] == "computed"
    assert any("fft_under_iso: the cached audit is inconsistent" in m for m in msgs)
    assert not any("fft_over: the cached audit is inconsistent" in m for m in msgs)
    again = json.loads(next((workdir / "cache" / "derivations").glob(
        "fft_under_iso-*/result.json")).read_text())
    assert again["result"]["audit"]["verdict"] == "pass"    # the entry is repaired


def test_fresh_recomputes(workdir, plugins):
    res = build_report(_opts(workdir, compile=False, only=("demo",), fresh=True),
                       progress=lambda m: None)
    assert res.sections == {"demo": "computed"} and res.status == 0


def test_failing_section_is_shown_not_cited(workdir, plugins, tmp_path):
    res = build_report(_opts(workdir, out=tmp_path / "rep", compile=False, only=("demo", "broken")),
                       progress=lambda m: None)
    assert res.status == 1 and res.sections["broken"] == "error"
    assert any("broken" in f and "demo failure" in f for f in res.failures)
    tex = (res.out / "report.tex").read_text()
    assert "This section could not be produced" in tex and "demo failure" in tex
    major2 = tex[tex.index("Major comment 2"):tex.index("Minor comment 1")]
    assert "never cited" not in major2 and "Open." in major2


@pytest.mark.tex
def test_latex_error_leaves_previous_report_intact(first, workdir, plugins, monkeypatch, tmp_path):
    import reports.assemble as assemble_mod

    out = tmp_path / "rep"
    good = build_report(_opts(workdir, out=out), progress=lambda m: None)     # cached: compile only
    assert good.status == 0 and good.pdf.is_file()
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    real = assemble_mod.render_report
    monkeypatch.setattr(assemble_mod, "render_report",
                        lambda ctx: real(ctx).replace(r"\end{document}", "\\thisisnotamacro\n\\end{document}"))
    res = build_report(_opts(workdir, out=out), progress=lambda m: None)
    assert res.status == 1
    assert "Undefined control sequence" in res.latex_log and "thisisnotamacro" in res.latex_log
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()} == digest
    assert (tmp_path / ".rep.failed" / "report.tex").is_file()
    assert not list(tmp_path.glob(".rep.build-*"))


def test_bad_input_exit_2_writes_nothing(tmp_path, capsys):
    from derivations.cli import main

    assert main(["report", "--only", "no_such_id", "--out", str(tmp_path / "r")]) == 2
    assert "unknown derivation or section id(s) no_such_id" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.build-*"))
    (tmp_path / "file").write_text("x")
    assert main(["report", "--out", str(tmp_path / "file"), "--only", "fft_over"]) == 2


def test_bad_jobs_exit_2_writes_nothing(tmp_path, capsys):
    from derivations.cli import main

    assert main(["report", "--jobs", "0", "--only", "fft_over", "--out", str(tmp_path / "r")]) == 2
    assert "--jobs must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_local_processes_give_the_serial_report_bitwise(tmp_path):
    """``jobs = 2``: the derivations the cache lacks are computed in local processes; their
    audits and sweeps are the serial build's bit for bit (only dates and seconds differ), in
    registry order, and each is cached as it arrives."""
    import json

    from derivations.audit import LAST_CHILD_CPU, without_timings

    def build(jobs):
        res = build_report(ReportOptions(out=tmp_path / f"r{jobs}", quick=True, device="cpu",
                                         only=DERS, compile=False, jobs=jobs),
                           progress=lambda m: None)
        assert res.status == 0, res.message
        assert res.derivations == {d: "computed" for d in DERS}
        entries = {}
        for d in DERS:
            [path] = (res.out / "cache" / "derivations").glob(f"{d}-*/result.json")
            entry = json.loads(path.read_text())["result"]
            entries[d] = {"audit": without_timings(entry["audit"]), "sweep": entry["sweep"]}
        audit = json.loads((res.out / "audit.json").read_text())
        return entries, [x["id"] for x in audit["derivations"]]

    serial, order1 = build(1)
    LAST_CHILD_CPU.update(seconds=0.0, processes=0)
    par, order2 = build(2)
    assert LAST_CHILD_CPU["processes"] == 2 and LAST_CHILD_CPU["seconds"] > 0
    assert order1 == order2 == list(DERS)
    for d in DERS:            # json text: floats compared by their exact repr, NaN-safe
        assert json.dumps(par[d], sort_keys=True) == json.dumps(serial[d], sort_keys=True), d


def _without_run_details(x):
    """A build's data without what may differ between two builds of the same inputs: timings,
    dates, the build's own paths."""
    drop = {"seconds", "sweep_seconds", "sweep_dir", "computed", "provenance", "date"}
    if isinstance(x, dict):
        return {k: _without_run_details(v) for k, v in x.items() if k not in drop}
    if isinstance(x, list):
        return [_without_run_details(v) for v in x]
    return x


@pytest.mark.slow
def test_sections_in_local_processes_give_the_serial_report(tmp_path):
    """``jobs = 2``: the real quick sections that the cache lacks run in local processes, each in
    a staging folder of its own; the sensitivity section, which reads the LoRA section's
    falsification file (``Section.after``), still sees it; data and every CSV/JSON file equal
    the serial build's, and the sections are listed in the serial order."""
    import json

    only = ("fft_over", "lora", "sensitivity", "spectra")

    def build(jobs):
        res = build_report(ReportOptions(out=tmp_path / f"r{jobs}", quick=True, device="cpu",
                                         only=only, compile=False, jobs=jobs),
                           progress=lambda m: None)
        assert res.status == 0, res.message
        assert list(res.sections.items()) == [(s, "computed") for s in only[1:]]
        data = json.loads((res.out / "report-data.json").read_text())
        files = {f.name: f.read_text() for f in sorted(res.out.iterdir())
                 if f.suffix == ".csv" and f.is_file()}
        files.update({f.name: _without_run_details(json.loads(f.read_text()))
                      for f in sorted(res.out.iterdir()) if f.suffix == ".json"
                      and f.name not in ("audit.json", "report-data.json")})
        assert not [p for p in res.out.iterdir() if p.name.startswith(".section-")]
        return _without_run_details(data["sections"]), files

    serial_data, serial_files = build(1)
    par_data, par_files = build(2)
    assert serial_data["sensitivity"]["falsification"] is not None     # read the LoRA file
    assert par_data == serial_data
    assert sorted(par_files) == sorted(serial_files) and "lora-falsification.json" in par_files
    for name in serial_files:
        assert par_files[name] == serial_files[name], name


def test_without_tex_writes_tex_and_one_line_hint(workdir, plugins, monkeypatch, tmp_path, capsys):
    from derivations.cli import main

    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "latexmk"
                        else real_which(name, *a, **k))
    out = tmp_path / "notex"
    rc = main(["report", "--quick", "--device", "cpu", "--only", "demo", "--out", str(out),
               "--cache-dir", str(workdir / "cache")])
    printed = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    assert (out / "report.tex").is_file() and not (out / "report.pdf").exists()
    assert len(printed) == 1 and "latexmk not found" in printed[0] and "latexmk -pdf report.tex" in printed[0]
