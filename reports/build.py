"""``lora-audit report``: audit (or reuse cached results) -> sections -> context -> LaTeX -> PDF.

Pipeline (renderers never compute):

1. configuration and selection (bad input -> ``InputError``, exit 2, nothing written);
2. every derivation: its audit result and its ``report_sweep``, reused from the cache when the
   key (sources, configuration, library versions; see ``reports.cache``) is unchanged;
3. every plug-in section's ``compute(ctx)``, cached the same way (with the files it wrote);
4. figures and CSV/JSON data from those results; the template context; ``report.tex``;
5. ``latexmk -pdf`` when present.

Everything is built in a temporary folder beside ``--out`` and moved into place only when it
succeeded: a LaTeX error (or any exception) leaves the previous report as it was; the failed
build is kept in ``.<out-name>.failed/`` for inspection and the relevant part of the LaTeX log is
printed.

Exit status: 0 when every derivation is certified, every section computed and (with TeX) the PDF
compiled; 1 when the report was written but shows failures (a check failed, a control was not
rejected, a section or sweep raised) -- the report is still produced, it shows the failures --
or when LaTeX failed (previous report intact); 2 on bad input.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from numeric.errors import InputError
from numeric.io import dumps, write_json_atomic, write_text_atomic

DEFAULT_OUT = Path("out") / "report"
# Written into every report folder this tool makes: ``--out`` may replace only a folder that
# carries it (or an empty one); any other existing folder is refused, never deleted.
REPORT_MARKER = ".lora-audit-report"
CACHE_SUBDIR = "cache"            # default cache: inside --out, carried over to each new report


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------------- selection
def select(only, ders: dict, secs: dict):
    if not only:
        return list(ders.values()), list(secs.values())
    unknown = [x for x in only if x not in ders and x not in secs]
    if unknown:
        raise InputError(f"--only: unknown derivation or section id(s) {', '.join(unknown)}; "
                         f"derivations: {', '.join(ders)}; sections: {', '.join(secs) or 'none'}")
    return [d for i, d in ders.items() if i in only], [s for i, s in secs.items() if i in only]


def _now():
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def template_dirs() -> list[Path]:
    from .render import TEMPLATE_DIR

    return [TEMPLATE_DIR, *EXTRA_TEMPLATE_DIRS]


EXTRA_TEMPLATE_DIRS: list[Path] = []      # tests add folders with their own section templates


# --------------------------------------------------------------------------- derivations
def compute_derivation(der, cfg, device, progress) -> dict:
    from derivations.audit import audit_derivation
    from numeric.provenance import git_revision

    from .sweep import run_sweep

    t0 = time.perf_counter()
    result = audit_derivation(der, cfg, progress)
    try:
        sweep = run_sweep(der, cfg, device, progress)
    except Exception as exc:  # noqa: BLE001 -- shown in the report, exit status 1
        sweep = {"error": f"{type(exc).__name__}: {exc}"}
    return {"audit": result, "sweep": sweep,
            "computed": {"date": _now(), "git": git_revision(),
                         "seconds": round(time.perf_counter() - t0, 2)}}


# ----------------------------------------------------------------------------- sections
def compute_section(sec, ctx) -> dict:
    data = sec.compute(ctx)
    if not isinstance(data, dict):
        raise TypeError(f"section {sec.id}: compute must return a dict, got {type(data).__name__}")
    import json

    return json.loads(dumps(data))           # JSON-able, normalised (tuples -> lists)


def _latex_log_excerpt(build: Path, context_lines: int = 12) -> str:
    log = build / "report.log"
    if not log.is_file():
        return "(no report.log was written)"
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    out, i, blocks = [], 0, 0
    while i < len(lines) and blocks < 2:
        if lines[i].startswith("!") or re.match(r"^\S*\.tex:\d+:", lines[i]):
            block = [lines[i]]
            for line in lines[i + 1:i + context_lines]:
                if line.startswith("Here is how much") or re.match(r"^\S*\.tex:\d+:", line):
                    break
                block.append(line)
            out.extend(block + ["..."])
            blocks += 1
            i += len(block)
        else:
            i += 1
    m = re.search(r"(?:l\.|\.tex:)(\d+)", "\n".join(out))
    tex = build / "report.tex"
    if m and tex.is_file():
        n = int(m.group(1))
        src = tex.read_text(encoding="utf-8", errors="replace").splitlines()
        lo, hi = max(0, n - 4), min(len(src), n + 2)
        out.append(f"report.tex lines {lo + 1}-{hi}:")
        out.extend(f"{j + 1:6d}| {src[j]}" for j in range(lo, hi))
    return "\n".join(out[:80]) if out else "\n".join(lines[-30:])


def compile_pdf(build: Path, timeout: int) -> tuple[bool, str]:
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
           "report.tex"]
    try:
        proc = subprocess.run(cmd, cwd=build, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"latexmk did not finish within {timeout} s\n" + _latex_log_excerpt(build)
    if proc.returncode != 0 or not (build / "report.pdf").is_file():
        return False, _latex_log_excerpt(build)
    return True, ""


def _is_ours(folder: Path) -> bool:
    return (folder / REPORT_MARKER).is_file()


def _write_marker(folder: Path) -> None:
    write_text_atomic(folder / REPORT_MARKER,
                      "lora-audit report folder: `lora-audit report --out` replaces this folder "
                      "as a whole when it rebuilds the report.\n")


def check_out(out_arg) -> Path:
    """Refuse (exit 2, before any work) an ``--out`` whose replacement would destroy data.

    Allowed: a folder that does not exist yet, an empty folder, or a previous report of this
    tool (it carries ``REPORT_MARKER``).  Refused: the empty path, the current folder or any
    folder above it, the home folder, the file-system root, a file, a non-empty folder that is
    not a report of this tool, and a location that cannot be written.
    """
    from numeric.io import check_dir_writable

    if str(out_arg).strip() == "":
        raise InputError("--out: an empty path is not a folder name")
    out = Path(out_arg).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise InputError(f"--out {out_arg}: is the current folder or contains it; the report "
                         "replaces its --out folder as a whole: name a new folder, e.g. out/report")
    if out == Path.home().resolve() or out.parent == out:
        raise InputError(f"--out {out_arg}: refusing to replace the home folder or the root")
    if out.is_dir() and any(out.iterdir()) and not _is_ours(out):
        raise InputError(f"--out {out_arg}: the folder exists, is not empty and is not a report of "
                         f"this tool (no {REPORT_MARKER} in it); the report replaces its --out "
                         "folder as a whole, so name a new or empty folder")
    check_dir_writable(out, "--out")
    check_dir_writable(out.parent, "--out")       # the build folder is made beside it
    return out


def check_section_inputs(opts) -> dict:
    """User inputs of plug-in sections, validated before any work: ``{section_id: {...}}``."""
    if not opts.spectra and not opts.spectra_adapter:
        return {}
    from numeric import checkpoints as ck

    if opts.spectra and opts.spectra_adapter:
        raise InputError("--spectra BASE TUNED and --spectra-adapter DIR: give one of them")
    if opts.spectra:
        if len(opts.spectra) != 2:
            raise InputError(f"--spectra takes two paths, BASE and TUNED, got {len(opts.spectra)}")
        ck.pair_checkpoints(*opts.spectra)          # names, shapes, formats: exit 2 now
        return {"spectra": {"base": str(Path(opts.spectra[0]).resolve()),
                            "tuned": str(Path(opts.spectra[1]).resolve())}}
    ck.read_adapter(opts.spectra_adapter)
    return {"spectra": {"adapter": str(Path(opts.spectra_adapter).resolve())}}


def _swap_into_place(build: Path, out: Path) -> None:
    """Replace ``out`` (a previous report of ours, or absent) by ``build``; the cache kept
    inside the old report moves into the new one."""
    if out.exists():
        if any(out.iterdir()) and not _is_ours(out):     # checked up front; re-checked here
            raise InputError(f"{out}: not a report of this tool, refusing to replace it")
        old_cache = out / CACHE_SUBDIR
        if old_cache.is_dir() and not (build / CACHE_SUBDIR).exists():
            os.rename(old_cache, build / CACHE_SUBDIR)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
        os.rename(build, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(build, out)


# ---------------------------------------------------------------------------------- main
def build_report(opts: ReportOptions, progress=_progress, echo=print) -> ReportResult:
    from derivations import registry
    from derivations.config import make_config
    from numeric.device import resolve
    from numeric.provenance import provenance

    from . import cache as cache_mod
    from .section import SectionContext, discover_sections

    t_start = time.perf_counter()
    cfg = make_config(quick=opts.quick, seed=opts.seed, device=opts.device)
    device = resolve(cfg.device)
    ders, secs = select(tuple(opts.only), registry(), discover_sections())
    cache_mod.snapshot_loaded()      # keys hash the sources as imported now (edits later: not)
    out = check_out(opts.out)
    inputs = check_section_inputs(opts)
    cache_root = (cache_mod.check_cache_dir(opts.cache_dir) if opts.cache_dir is not None
                  else out / CACHE_SUBDIR)
    # -- nothing was written before this line: every refusal above leaves the disk untouched --
    out.mkdir(parents=True, exist_ok=True)
    if not _is_ours(out):                    # new or empty: now a (still empty) report folder
        _write_marker(out)
    cache = cache_mod.ResultCache(cache_root, enabled=not opts.fresh)
    res = ReportResult(status=0, out=out)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    os.chmod(build, 0o755)
    _write_marker(build)
    try:
        # -- derivations --------------------------------------------------------------
        stored, keys_by_module = {}, {}
        for der in ders:
            key, ingredients = cache_mod.derivation_key(der, cfg, device)
            keys_by_module.setdefault(der.module.__name__ if der.module else der.id, []).append(key)
            entry = cache.load("derivations", der.id, key)
            if entry is None:
                progress(f"{der.id}: auditing")
                entry = compute_derivation(der, cfg, device, progress)
                cache.store("derivations", der.id, key, entry, ingredients)
                res.derivations[der.id] = "computed"
            else:
                progress(f"{der.id}: reusing the cached audit (computed {entry['computed']['date']})")
                res.derivations[der.id] = "cached"
            stored[der.id] = entry
        keys_by_module = {m: "+".join(k) for m, k in keys_by_module.items()}

        prov = provenance(device, config=cfg.as_dict())
        audit = {"provenance": prov,
                 "verdict": "pass" if all(e["audit"]["verdict"] == "pass" for e in stored.values())
                 else "fail",
                 "derivations": {i: e["audit"] for i, e in stored.items()}}

        # -- sections -------------------------------------------------------------------
        sec_results = {}
        for sec in secs:
            sec_inputs = inputs.get(sec.id)
            key, ingredients = cache_mod.section_key(
                sec, cfg, device, keys_by_module, template_dirs(),
                inputs={"named": sec_inputs, "files": cache_mod.file_fingerprint(
                    *sec_inputs.values())} if sec_inputs else None)
            data = cache.load("sections", sec.id, key, files_to=build)
            if data is not None:
                progress(f"section {sec.id}: reusing the cached result")
                sec_results[sec.id] = {"data": data, "ok": True}
                res.sections[sec.id] = "cached"
                continue
            progress(f"section {sec.id}: computing")
            before = set(os.listdir(build))
            ctx = SectionContext(cfg=cfg, quick=cfg.quick, seed=cfg.seed, device=device,
                                 inputs=sec_inputs or {},
                                 out_dir=build, audit=audit, progress=progress,
                                 work_dir=cache.root / "work")
            t0 = time.perf_counter()
            try:
                data = compute_section(sec, ctx)
            except Exception as exc:  # noqa: BLE001 -- shown in the report, exit status 1
                sec_results[sec.id] = {"ok": False, "error": traceback.format_exc(limit=6),
                                       "error_line": f"{type(exc).__name__}: {exc}"}
                res.sections[sec.id] = "error"
                continue
            new_files = sorted(build / f for f in set(os.listdir(build)) - before
                               if (build / f).is_file())
            cache.store("sections", sec.id, key, data, ingredients, files=new_files)
            sec_results[sec.id] = {"data": data, "ok": True,
                                   "seconds": round(time.perf_counter() - t0, 2)}
            res.sections[sec.id] = "computed"

        # -- figures, data, context, LaTeX ---------------------------------------------------
        from .assemble import assemble, render_report

        ctx, data_files, failures = assemble(build, cfg, prov, ders, stored, secs, sec_results,
                                             res, opts)
        res.failures = failures
        tex_text = render_report(ctx)
        write_text_atomic(build / "report.tex", tex_text)
        for name, obj in data_files.items():
            write_json_atomic(build / name, obj)

        have_tex = shutil.which("latexmk") is not None
        if opts.compile and have_tex:
            progress("compiling report.pdf with latexmk")
            ok, log = compile_pdf(build, opts.latex_timeout)
            if not ok:
                failed = out.with_name(f".{out.name}.failed")
                if failed.exists():
                    if not (failed.is_dir() and _is_ours(failed)):
                        raise InputError(f"{failed}: exists and is not a failed build of this "
                                         "tool; move it away to keep failed builds")
                    shutil.rmtree(failed)
                os.rename(build, failed)
                res.status, res.latex_log = 1, log
                res.message = (f"LaTeX failed; the previous report in {out} is unchanged; the "
                               f"failed build is in {failed}\n--- LaTeX log (relevant part) ---\n{log}")
                res.seconds = time.perf_counter() - t_start
                return res
        for f in build.iterdir():
            if f.is_file():
                os.chmod(f, 0o644)
        _swap_into_place(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    res.tex = out / "report.tex"
    res.pdf = out / "report.pdf" if (out / "report.pdf").is_file() else None
    res.status = 1 if res.failures else 0
    res.seconds = time.perf_counter() - t_start
    n_comp = sum(v == "computed" for v in res.derivations.values())
    summary = (f"{len(res.derivations)} derivations ({n_comp} computed, "
               f"{len(res.derivations) - n_comp} reused from the cache), "
               f"{len(res.sections)} sections, {res.seconds:.1f} s")
    if res.pdf:
        res.message = f"wrote {res.pdf} ({summary})"
    elif opts.compile and not have_tex:
        res.message = (f"wrote {res.tex} ({summary}); latexmk not found, so no PDF: install TeX "
                       f"(e.g. apt-get install latexmk texlive-latex-extra lmodern) and run "
                       f"`latexmk -pdf report.tex` in {out}")
    else:
        res.message = f"wrote {res.tex} ({summary}; PDF not requested)"
    if res.failures:
        res.message += "\nFAILURES shown in the report:\n" + "\n".join(f"  - {f}" for f in res.failures)
    return res
