"""The typed record one report build carries through its stages (see ``reports.build``).

``ReportOptions`` is what the user asked for, ``ReportResult`` what the command reports back,
``Build`` everything in between: each stage of ``reports.build.build_report`` reads the fields
the earlier stages filled and fills its own.  ``reports.assemble`` reads a ``Build`` too, so it
needs neither ``reports.build`` nor a long list of positional arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("out") / "report"


@dataclass
class ReportOptions:
    out: Path = DEFAULT_OUT
    quick: bool = False
    fresh: bool = False
    seed: int | None = None
    device: str = "auto"
    only: tuple = ()                 # derivation and/or section ids; empty = everything
    cache_dir: Path | None = None    # default: <out>/cache (kept across rebuilds)
    compile: bool = True             # run latexmk when present
    latex_timeout: int = 300
    spectra: tuple = ()              # (BASE, TUNED) checkpoints for the spectra section
    spectra_adapter: str | None = None   # or a LoRA adapter folder (PEFT layout)
    jobs: int = 1                    # local processes for the derivations to compute (1: here)


@dataclass
class ReportResult:
    status: int
    out: Path
    tex: Path | None = None
    pdf: Path | None = None
    failures: list = field(default_factory=list)
    derivations: dict = field(default_factory=dict)    # id -> "computed" | "cached"
    sections: dict = field(default_factory=dict)       # id -> "computed" | "cached" | "error"
    seconds: float = 0.0
    latex_log: str = ""
    message: str = ""


@dataclass
class Build:
    """One report build, stage by stage (the stage that fills a field is named beside it)."""

    # -- inputs (check_inputs: validated, nothing written yet) --
    opts: ReportOptions
    cfg: Any                          # derivations.config.AuditConfig
    device: Any                       # torch.device, resolved
    ders: list                        # the selected derivations, in registry order
    secs: list                        # the selected plug-in sections, in (order, id) order
    out: Path                         # the checked --out folder (replaced at the end)
    cache_root: Path                  # where the result cache lives
    inputs: dict                      # section id -> user inputs it reads (checked up front)
    template_dirs: list               # where templates are looked up (main + test folders)
    result: ReportResult
    t_start: float = 0.0
    # -- open_build: the cache and the temporary build folder beside --out --
    cache: Any = None                 # reports.cache.ResultCache
    dir: Path | None = None           # the build folder (moved into place by swap_into_place)
    # -- audit --
    stored: dict = field(default_factory=dict)           # derivation id -> cached/computed entry
    derivation_keys: dict = field(default_factory=dict)  # derivation module -> its cache key(s)
    prov: dict = field(default_factory=dict)             # provenance of this build
    audit: dict = field(default_factory=dict)            # what sections see: verdict, results
    # -- compute_sections --
    sec_results: dict = field(default_factory=dict)      # section id -> {"ok", "data" | "error"}
    # -- render --
    failures: list = field(default_factory=list)
    tex: str = ""                                        # the rendered report.tex
    data_files: dict = field(default_factory=dict)       # file name -> JSON-able object
    # -- compile --
    pdf: Path | None = None                              # report.pdf in the build folder
    have_tex: bool = False
