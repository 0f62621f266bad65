"""reports.plotting: the one matplotlib set-up used by every figure module."""
from __future__ import annotations

import ast
from pathlib import Path

from reports import plotting

REPORTS = Path(plotting.__file__).resolve().parent


def test_pyplot_is_headless_and_applies_the_style():
    plt = plotting.pyplot(plotting.PAGE_TALL)
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    assert tuple(plt.rcParams["figure.figsize"]) == (5.0, 3.2)
    assert plt.rcParams["pdf.fonttype"] == 42
    plotting.pyplot(plotting.PAGE)
    assert tuple(plt.rcParams["figure.figsize"]) == (5.0, 3.1)


def test_save_pdf_writes_a_pdf_and_closes_the_figure(tmp_path):
    plt = plotting.pyplot(plotting.PRINT)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = plotting.save_pdf(fig, tmp_path / "f.pdf")
    assert path.read_bytes().startswith(b"%PDF")
    assert not plt.fignum_exists(fig.number)


def test_no_module_sets_up_matplotlib_itself():
    """Backend choice and rcParams live in reports/plotting.py only (no copies of ``_plt``)."""
    offenders = []
    for f in sorted(REPORTS.rglob("*.py")):
        if f.name == "plotting.py":
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "_plt":
                offenders.append(f"{f.name}: def _plt")
            if isinstance(node, ast.Attribute) and node.attr in ("use", "rcParams") \
                    and isinstance(node.value, (ast.Name, ast.Attribute)) \
                    and getattr(node.value, "id", getattr(node.value, "attr", "")) in ("matplotlib", "plt"):
                offenders.append(f"{f.name}:{node.lineno}: {node.attr}")
    assert offenders == []
