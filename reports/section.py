"""The report plug-in contract: a ``Section`` and the context its ``compute`` receives.

A report section is a module in ``reports/sections/`` defining ``SECTION``::

    from reports.section import Section

    def compute(ctx) -> dict:          # JSON-able data for the template; may write files
        ...
    SECTION = Section(id="misalignment", title="Covariance--subspace misalignment", order=50,
                      compute=compute, template="sections/misalignment.tex.j2",
                      sources=("numeric.misalignment", "derivations.theorems.misalign_exact"),
                      answers={"major1": "one sentence: what this section shows"})

Rules (see also ``reports/render.py`` for the template environment):

* ``compute(ctx)`` does all the work and returns a JSON-able ``dict`` (numbers, strings, lists,
  dicts).  It may write figures (PDF) and data (CSV/JSON) into ``ctx.out_dir``, named
  ``<section-id>-*.pdf|csv|json``; put the *file name* (``path.name``, not the full path) into the
  returned data and use it in the template (``\\includegraphics{\\VAR{data.figure}}``): the report
  is compiled inside ``ctx.out_dir``.  Files written there are cached with the result.
* The template (under ``reports/templates/``) is the *body* of the section: the report wraps it
  in ``\\section{<title>}\\label{sec:<id>}``; use ``\\subsection`` inside.  It receives ``data``
  (what compute returned), ``section`` (``id``, ``title``, ``order``) and ``audit`` (see below).
  Templates never compute: mathematics is printed in ``compute`` through
  ``symbolic.printing.latex`` / ``relation_latex`` and passed to the template with ``|tex``.
* ``sources`` names the modules whose source the result depends on (the section's own module
  and its template are added automatically).  The cached result is reused only when these
  sources, the configuration and the library versions are unchanged.  If a source module is a
  derivation module (``derivations.theorems.*``), the cache key also covers that derivation's
  audit key, so a change to the derivation recomputes the section.
* ``answers`` maps referee comment ids (``major1``, ``major2``, ``minor1``, ``minor2``,
  ``falsification``) to one sentence (LaTeX allowed) saying what the section shows.  The
  "Answers to the referee" cites it only when ``compute`` succeeded and returned data.
  Return ``{"verdict": "fail", ...}`` (or raise) when the section's own checks fail: the report
  then shows the failure and ``lora-audit report`` exits with status 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REFEREE_COMMENTS = ("major1", "major2", "minor1", "minor2", "falsification")


@dataclass(frozen=True)
class Section:
    id: str                              # short identifier, [a-z0-9_-]; prefixes its files
    title: str                           # LaTeX allowed
    order: int                           # position among the plug-in sections (ascending)
    compute: Callable[["SectionContext"], dict]
    template: str                        # path under reports/templates/, e.g. "sections/x.tex.j2"
    sources: tuple = ()                  # module names the result depends on (cache key)
    answers: dict = field(default_factory=dict)   # referee comment id -> one sentence
    # ids of the sections whose files in ``ctx.out_dir`` this one reads: they are computed (or
    # restored from the cache) first, also when sections run in parallel (``report --jobs``)
    after: tuple = ()
    module: Any = None                   # filled by discovery (its source joins the cache key)

    def __post_init__(self):
        import re

        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", self.id):
            raise ValueError(f"section id {self.id!r}: use lower-case letters, digits, '_' or '-'")
        bad = set(self.answers) - set(REFEREE_COMMENTS)
        if bad:
            raise ValueError(f"section {self.id}: unknown referee comment id(s) {sorted(bad)}; "
                             f"known: {', '.join(REFEREE_COMMENTS)}")
        if not callable(self.compute):
            raise TypeError(f"section {self.id}: compute must be callable")
        from symbolic.text import check_title

        check_title(self.title, f"section {self.id}")


@dataclass
class SectionContext:
    """What ``Section.compute`` receives.  Attribute access (``ctx.cfg``) or item (``ctx["cfg"]``)."""

    cfg: Any                      # derivations.config.AuditConfig
    quick: bool                   # CI-sized run (cfg.quick)
    seed: int                     # master seed (cfg.seed); derive further seeds with
                                  # numeric.seeds.stable_seed(seed, section_id, ...)
    device: Any                   # torch.device, resolved
    out_dir: Path                 # write <section-id>-*.pdf/csv/json here (file names into data)
    audit: dict                   # {"provenance": ..., "verdict": ..., "derivations": {id: result}}
    progress: Callable[[str], None] = print
    # user inputs named on the command line for sections that read them, e.g.
    # {"spectra": {"base": ..., "tuned": ...} or {"adapter": ...}} (checkpoints to measure)
    inputs: dict = field(default_factory=dict)
    work_dir: Path | None = None  # persistent scratch for resumable work (inside the cache dir);
                                  # None: use a folder inside out_dir

    def __getitem__(self, key):
        return getattr(self, key)

    def derivation(self, der_id: str) -> dict | None:
        """The audit result of one derivation (``None`` when it was not part of this run)."""
        return self.audit.get("derivations", {}).get(der_id)


def discover_sections() -> dict:
    """Every ``SECTION`` in ``reports/sections/*.py``, ordered by ``(order, id)``."""
    import importlib
    import pkgutil

    from . import sections

    found = []
    for info in pkgutil.iter_modules(sections.__path__):
        mod = importlib.import_module(f"{sections.__name__}.{info.name}")
        sec = getattr(mod, "SECTION", None)
        if sec is None:
            continue
        if not isinstance(sec, Section):
            raise TypeError(f"{mod.__name__}.SECTION is not a reports.section.Section")
        object.__setattr__(sec, "module", mod)
        found.append(sec)
    found.sort(key=lambda s: (s.order, s.id))
    out = {}
    for sec in found:
        if sec.id in out:
            raise ValueError(f"report section id {sec.id!r} declared twice")
        out[sec.id] = sec
    check_after(out)
    return out


def check_after(sections: dict) -> None:
    """Serial builds run the sections in (order, id): what a section reads (``after``) must
    exist and come earlier, so that serial and parallel builds agree."""
    ids = list(sections)
    for sec in sections.values():
        late = [a for a in sec.after if a not in sections or ids.index(a) >= ids.index(sec.id)]
        if late:
            raise ValueError(f"report section {sec.id!r}: after={late!r} names no earlier "
                             f"section (each must exist and come first in (order, id))")
