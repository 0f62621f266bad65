"""The template environment, the LaTeX filters, the Section contract and the referee mapping."""
import subprocess

import jinja2
import pytest

from reports.context import evidence_view, params_latex, text_or_tex
from reports.referee import referee_view
from reports.render import format_number, latex_escape, make_env, render_string, tex
from reports.section import Section

NASTY = r"50% of a_b & {c} ~ #1 $x^2 \ end | <tag> σ ≥ 0 ± 1"


def test_delimiters_and_strict_undefined():
    out = render_string(r"\section{\VAR{t|e}}\#{ a comment }"
                        "\n\\BLOCK{for x in xs}\n[\\VAR{x|num}]\n\\BLOCK{endfor}\n", t="A_B", xs=[1, 2.5])
    assert out == "\\section{A\\_B}[1]\n[2.5]\n"      # trim_blocks also eats a comment's newline
    # LaTeX braces and percent signs are not template syntax
    assert render_string(r"\textbf{x} % {# not a comment #} {% raw %}") == \
        r"\textbf{x} % {# not a comment #} {% raw %}"
    with pytest.raises(jinja2.UndefinedError):
        render_string(r"\VAR{missing}")


def test_escape_every_special_character():
    out = latex_escape(NASTY)
    for raw in ("%", "_", "&", "{", "}", "#", "$", "^", "~"):
        assert f"\\{raw}" in out or {"^": r"\textasciicircum{}", "~": r"\textasciitilde{}"}.get(raw) in out
    assert r"\textbackslash{}" in out and r"\ensuremath{\sigma}" in out and r"\ensuremath{\ge}" in out
    # nothing unescaped remains: strip the escapes and no special is left
    stripped = out
    for esc in (r"\textbackslash{}", r"\textasciicircum{}", r"\textasciitilde{}", r"\textless{}",
                r"\textgreater{}", r"\textbar{}", r"\%", r"\_", r"\&", r"\{", r"\}", r"\#", r"\$"):
        stripped = stripped.replace(esc, "")
    stripped = stripped.replace(r"\ensuremath{\sigma}", "").replace(r"\ensuremath{\ge}", "") \
        .replace(r"\ensuremath{\pm}", "")
    assert not set(stripped) & set("%_&{}#$^~\\")


@pytest.mark.tex
def test_escaped_text_compiles_and_reads_back(tmp_path):
    doc = ("\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage[utf8]{inputenc}"
           "\\usepackage{lmodern}\\begin{document}\n" + latex_escape(NASTY) + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=60)
    text = subprocess.run(["pdftotext", "t.pdf", "-"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    for piece in ("50% of a_b & {c} ~ #1 $x^2", "\\ end | <tag>", "≥ 0 ± 1"):
        assert piece in flat, (piece, flat)


def test_num_formatting():
    assert format_number(0.000012345) == r"\ensuremath{1.234\times 10^{-5}}" or \
        format_number(0.000012345) == r"\ensuremath{1.235\times 10^{-5}}"
    assert format_number(1e6) == r"\ensuremath{10^{6}}"
    assert format_number(123456) == r"123\,456"
    assert format_number(3.14159, 3) == "3.14"
    assert format_number(-2.5, sign=True) == "-2.5" and format_number(2.5, sign=True) == "+2.5"
    assert format_number(float("nan")) == "n/a"
    assert format_number(float("inf")) == r"\ensuremath{\infty}"
    assert format_number(None) == "--"
    assert format_number("all") == "all" and format_number("1e-50") == r"\ensuremath{10^{-50}}"
    assert format_number(True) == "yes"


def test_tex_filter_refuses_non_strings():
    assert tex(r"\alpha") == r"\alpha"
    with pytest.raises(TypeError):
        tex(3.0)


def test_text_or_tex_and_params():
    assert text_or_tex("plain 5% text") == r"plain 5\% text"
    assert text_or_tex(r"with $r$ math") == r"with $r$ math"
    s = params_latex({"d": 4, "k": 3, "n": 12, "r": 1, "sigma": 1.0, "shift_sv": [3, 2, 1],
                      "cov_eigs": [4.0, 4.0, 4.0, 1.0]})
    assert s.startswith("$") and s.endswith("$") and r"\Sigma" in s and r"4^{\times3}" in s


def test_evidence_view_generic():
    v = evidence_view({"digits_agreed": 49.3, "worst_ratio": 0.83, "traceback": "x",
                       "rows": [{"scale": 1, "rel_error": 0.05}, {"scale": 2, "rel_error": 0.01}]})
    labels = [f["label"] for f in v["facts"]]
    assert labels[0] == "digits agreed" and "worst ratio lhs/rhs found" in labels
    assert "traceback" not in " ".join(labels)
    assert v["tables"][0]["rows"][0] == ["1", r"5\%"]


def test_section_contract_validation():
    ok = Section(id="demo", title="Demo", order=1, compute=lambda ctx: {}, template="x.tex.j2",
                 answers={"major1": "shows it"})
    assert ok.id == "demo"
    with pytest.raises(ValueError):
        Section(id="Bad Id", title="", order=1, compute=lambda c: {}, template="x")
    with pytest.raises(ValueError):
        Section(id="demo", title="", order=1, compute=lambda c: {}, template="x",
                answers={"major3": "no such comment"})


def test_referee_cites_only_existing_evidence():
    secs = [{"id": "good", "answers": {"major1": "A"}, "ok": True},
            {"id": "broken", "answers": {"major2": "B"}, "ok": False, "error_line": "boom"}]
    ders = [{"id": "d1", "verdict": "pass"}, {"id": "d2", "verdict": "fail"}]
    out = {c["id"]: c for c in referee_view(secs, ders, {"d1": {"falsification": "C"},
                                                          "d2": {"major2": "D"}})}
    assert out["major1"]["status"] == "answered" and out["major1"]["evidence"][0]["ref"] == "sec:good"
    assert out["major2"]["status"] == "open" and len(out["major2"]["caveats"]) == 2
    assert out["falsification"]["status"] == "answered"
    assert out["minor1"]["status"] == "answered in part"  # the generated table; prose symbols are not checked
    assert out["minor2"]["status"] == "open" and "checkpoints" in out["minor2"]["would_answer"]


def test_referee_answered_in_part_when_a_section_states_what_remains_open():
    secs = [{"id": "mis", "answers": {"major1": "bound 3.2, tight to 4x"}, "ok": True,
             "answers_open": {"major1": "finite only from n/d = 8"}}]
    out = {c["id"]: c for c in referee_view(secs, [], {})}
    assert out["major1"]["status"] == "answered in part"
    assert out["major1"]["remains_open"] == ["finite only from n/d = 8"]
    assert out["major1"]["evidence"][0]["text"] == "bound 3.2, tight to 4x"
    secs[0]["ok"] = False                   # a failed section cites nothing, leaves nothing open
    assert {c["id"]: c for c in referee_view(secs, [], {})}["major1"]["status"] == "open"


def test_printer_braces_superscripted_names():
    from symbolic.ops import PInv
    from symbolic.printing import latex
    from symbolic.registry import sym

    assert latex(sym("Delta").T) == r"{\Delta^*}^{\top}"
    assert latex(PInv(sym("Delta"))) == r"{\Delta^*}^{+}"


def test_all_templates_parse():
    env = make_env()
    for name in env.list_templates():
        if name.endswith(".j2"):
            env.get_template(name)


def test_sensitivity_sweep_folder_follows_the_report_not_the_cwd(tmp_path, monkeypatch):
    """Regression: the report's sweep was written to ./out/sensitivity[-quick] whatever --out
    said; it now lives in the context's work folder (the cache), else inside out_dir."""
    from types import SimpleNamespace

    import numeric.sensitivity as sens
    from reports.sections import sensitivity as sec

    seen = []

    class Stop(Exception):
        pass

    def fake_run(cfg, out_dir, device, **kw):
        seen.append(out_dir)
        raise Stop

    monkeypatch.setattr(sens, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    for work, expect in ((tmp_path / "cache" / "work", tmp_path / "cache" / "work"),
                         (None, tmp_path / "build" / ".work")):
        ctx = SimpleNamespace(quick=True, seed=0, device="cpu", out_dir=tmp_path / "build",
                              work_dir=work, progress=lambda m: None)
        with pytest.raises(Stop):
            sec.compute(ctx)
        assert seen[-1] == expect / "sensitivity-quick"
    assert not (tmp_path / "out").exists()


def test_sensitivity_reads_the_falsification_cells_where_fft_wins(tmp_path):
    import json

    from reports.sections.sensitivity import _falsification_view

    assert _falsification_view(tmp_path) is None
    rows = [{"regime": "under", "n": 16, "s": 16, "x": 3.0, "r": 1, "mean_diff": 0.4,
             "verdict": "FFT better"},
            {"regime": "over", "n": 64, "s": 1, "x": 3.0, "r": 1, "mean_diff": -1.0,
             "verdict": "LoRA better"}]
    (tmp_path / "lora-falsification.json").write_text(json.dumps({"rows": rows, "grid": {"d": 32}}))
    v = _falsification_view(tmp_path)
    assert v["cells"] == 2 and len(v["fft_better"]) == 1 and v["fft_better_under"][0]["n"] == 16
    assert v["r_below_s"] == 1 and v["fft_better_over"] == [] and v["d"] == 32
