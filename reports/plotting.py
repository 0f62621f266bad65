"""The report's one matplotlib set-up: headless backend, print styles, saving a PDF.

Every figure module (``reports.figures``, ``reports.sensitivity_figures``,
``reports.spectra_figures`` and the section modules) gets pyplot from ``pyplot(style)`` and
writes its files with ``save_pdf``, so the backend (Agg: no display needed), the print sizes and
the saving options are stated once, here.

Styles (matplotlib ``rcParams``; pyplot's settings are global, so each figure function asks for
its style when it draws):

* ``PAGE``: derivation-page and section figures, 9 pt text on a 5.0 x 3.1 in figure, light grid,
  tight bounding box on save;
* ``PAGE_TALL``: the same at 5.0 x 3.2 in (the LoRA risk-versus-rank figures);
* ``PRINT``: figures drawn at natural size in the report (sensitivity): every text >= 7 pt.
"""
from __future__ import annotations

from pathlib import Path

PDF_FONTS = {"pdf.fonttype": 42}          # embed TrueType fonts (selectable text in the PDF)
PAGE = {"font.size": 9, "figure.figsize": (5.0, 3.1), **PDF_FONTS,
        "savefig.bbox": "tight", "axes.grid": True, "grid.alpha": 0.3}
PAGE_TALL = {**PAGE, "figure.figsize": (5.0, 3.2)}
# drawn at natural size in the report (no scaling): these are the printed sizes, all >= 7 pt
PRINT = {"font.size": 8.5, "axes.titlesize": 8.5, "axes.labelsize": 8.5,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 7.5, **PDF_FONTS}
TEXT_WIDTH = 6.4        # inches: the report's text width is 6.5 in


def pyplot(style: dict | None = None):
    """``matplotlib.pyplot`` on the Agg backend, with ``style`` applied to its ``rcParams``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if style:
        plt.rcParams.update(style)
    return plt


def save_pdf(fig, path: Path, *, tight: bool = True) -> Path:
    """Write ``fig`` as a PDF at ``path`` and close it (frees its memory in long builds)."""
    plt = pyplot()
    if tight:
        fig.savefig(path, format="pdf", bbox_inches="tight")
    else:
        fig.savefig(path, format="pdf")
    plt.close(fig)
    return Path(path)
