"""``lora-audit report``: audit (or reuse cached results) -> sections -> context -> LaTeX -> PDF.

Pipeline (renderers never compute): ``build_report`` runs small named stages on one typed
record, ``reports.record.Build``; each stage fills its own fields of it:

1. ``check_inputs``: configuration and selection, ``--out``, section inputs, ``--cache-dir``
   (bad input -> ``InputError``, exit 2, nothing written);
2. ``open_build``: the report marker, the cache, the build folder beside ``--out``;
3. ``audit``: every derivation's audit result and ``report_sweep``, reused from the cache when
   the key (sources, configuration, library versions; see ``reports.cache``) is unchanged;
4. ``compute_sections``: every plug-in section's ``compute(ctx)``, cached the same way (with the
   files it wrote);
5. ``render``: figures and CSV/JSON data from those results, the template context, ``report.tex``
   (``reports.assemble``, which reads the record and never imports this module);
6. ``compile_report``: ``latexmk -pdf`` when present;
7. ``swap_into_place``: the build folder replaces ``--out``; 8. ``summarise``: status, message.

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
from pathlib import Path

from numeric.errors import InputError
from numeric.io import dumps, write_json_atomic, write_text_atomic

from .record import DEFAULT_OUT, Build, ReportOptions, ReportResult
# Written into every report folder this tool makes: ``--out`` may replace only a folder that
# carries it (or an empty one); any other existing folder is refused, never deleted.
REPORT_MARKER = ".lora-audit-report"
CACHE_SUBDIR = "cache"            # default cache: inside --out, carried over to each new report


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


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
    return {"audit": result.to_json(), "sweep": sweep,
            "computed": {"date": _now(), "git": git_revision(),
                         "seconds": round(time.perf_counter() - t0, 2)}}


def _compute_task(der_id: str, cfg, device) -> dict:
    """``compute_derivation`` in a local process (``derivations.audit.map_in_processes``)."""
    from derivations import get

    return compute_derivation(get(der_id), cfg, device, None)


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


# ---------------------------------------------------------------------------------- stages
def check_inputs(opts: ReportOptions) -> Build:
    """Stage 1: configuration, selection, ``--out``, section inputs, ``--cache-dir``.

    Every refusal (``InputError``, exit 2) happens here, before anything is written."""
    from derivations import registry
    from derivations.config import make_config
    from numeric.device import resolve

    from . import cache as cache_mod
    from .section import discover_sections

    t_start = time.perf_counter()
    if not isinstance(opts.jobs, int) or isinstance(opts.jobs, bool) or opts.jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {opts.jobs!r}")
    cfg = make_config(quick=opts.quick, seed=opts.seed, device=opts.device)
    device = resolve(cfg.device)
    ders, secs = select(tuple(opts.only), registry(), discover_sections())
    cache_mod.snapshot_loaded()      # keys hash the sources as imported now (edits later: not)
    out = check_out(opts.out)
    inputs = check_section_inputs(opts)
    cache_root = (cache_mod.check_cache_dir(opts.cache_dir) if opts.cache_dir is not None
                  else out / CACHE_SUBDIR)
    return Build(opts=opts, cfg=cfg, device=device, ders=ders, secs=secs, out=out,
                 cache_root=cache_root, inputs=inputs, template_dirs=template_dirs(),
                 result=ReportResult(status=0, out=out), t_start=t_start)


def open_build(b: Build) -> None:
    """Stage 2: mark ``--out`` as ours, open the cache, make the build folder beside ``--out``."""
    from . import cache as cache_mod

    b.out.mkdir(parents=True, exist_ok=True)
    if not _is_ours(b.out):                  # new or empty: now a (still empty) report folder
        _write_marker(b.out)
    b.cache = cache_mod.ResultCache(b.cache_root, enabled=not b.opts.fresh)
    b.dir = Path(tempfile.mkdtemp(prefix=f".{b.out.name}.build-", dir=b.out.parent))
    os.chmod(b.dir, 0o755)
    _write_marker(b.dir)


def audit(b: Build, progress) -> None:
    """Stage 3: every derivation's audit result and sweep, from the cache or computed."""
    from derivations.results import AuditRun, DerivationResult
    from numeric.provenance import provenance

    from . import cache as cache_mod

    keys_by_module, missing = {}, []
    for der in b.ders:
        key, ingredients = cache_mod.derivation_key(der, b.cfg, b.device)
        keys_by_module.setdefault(der.module.__name__ if der.module else der.id, []).append(key)
        entry = b.cache.load("derivations", der.id, key)
        if entry is not None:
            try:                # a stored verdict must follow from its stored parts
                DerivationResult.from_json(entry["audit"])
            except (KeyError, TypeError, ValueError) as exc:
                progress(f"{der.id}: the cached audit is inconsistent ({str(exc)[:120]}); "
                         f"auditing again")
                entry = None
        if entry is None:
            missing.append((der, key, ingredients))
        else:
            progress(f"{der.id}: reusing the cached audit (computed {entry['computed']['date']})")
            b.result.derivations[der.id] = "cached"
            b.stored[der.id] = entry
    keys = {der.id: (key, ingredients) for der, key, ingredients in missing}

    def store(der, entry):                 # at once: a killed run keeps what it finished
        key, ingredients = keys[der.id]
        b.cache.store("derivations", der.id, key, entry, ingredients)
        b.result.derivations[der.id] = "computed"
        b.stored[der.id] = entry

    _compute_missing(b, [m[0] for m in missing], store, progress)
    b.stored = {d.id: b.stored[d.id] for d in b.ders}           # registry order, as before
    b.derivation_keys = {m: "+".join(k) for m, k in keys_by_module.items()}
    b.prov = provenance(b.device, config=b.cfg.as_dict())
    run = AuditRun(tuple(DerivationResult.from_json(e["audit"]) for e in b.stored.values()),
                   b.prov)
    b.audit = {"provenance": b.prov, "verdict": run.verdict,
               "derivations": {i: e["audit"] for i, e in b.stored.items()}}


def _compute_missing(b: Build, ders: list, store, progress) -> None:
    """The derivations the cache lacks, in ``b.opts.jobs`` local processes (or here): every
    seed derives from the master seed and the derivation's id and the children keep this
    process's torch thread count, so the entries are the serial run's, bit for bit, except
    their ``computed`` fields (date, seconds).  ``store(der, entry)`` takes each as it
    arrives."""
    from derivations.audit import LAST_CHILD_CPU, map_in_processes

    if b.opts.jobs <= 1 or len(ders) <= 1:
        for der in ders:
            progress(f"{der.id}: auditing")
            store(der, compute_derivation(der, b.cfg, b.device, progress))
        return
    progress(f"auditing {len(ders)} derivations in {min(b.opts.jobs, len(ders))} local "
             f"processes")
    map_in_processes(_compute_task, ders, b.opts.jobs, (b.cfg, b.device), progress, "audited",
                     on_result=store)
    # the benchmark adds this to the command's own CPU (the children fork from a fork server)
    print(f"report: {LAST_CHILD_CPU['processes']} local processes, CPU in them "
          f"{LAST_CHILD_CPU['seconds']:.1f} s", file=sys.stderr)


def _section_inputs_key(sec_inputs):
    from . import cache as cache_mod

    if not sec_inputs:
        return None
    return {"named": sec_inputs, "files": cache_mod.file_fingerprint(*sec_inputs.values())}


def _section_key(b: Build, sec):
    from . import cache as cache_mod

    sec_inputs = b.inputs.get(sec.id)
    key, ingredients = cache_mod.section_key(sec, b.cfg, b.device, b.derivation_keys,
                                             b.template_dirs, inputs=_section_inputs_key(sec_inputs))
    return key, ingredients


def _section_cached(b: Build, sec, key, progress) -> bool:
    """Restore a cached section (its data, and its files into the build folder)."""
    data = b.cache.load("sections", sec.id, key, files_to=b.dir)
    if data is None:
        return False
    progress(f"section {sec.id}: reusing the cached result")
    b.sec_results[sec.id] = {"data": data, "ok": True}
    b.result.sections[sec.id] = "cached"
    return True


def _section_context(b: Build, sec, out_dir: Path, progress):
    from .section import SectionContext

    return SectionContext(cfg=b.cfg, quick=b.cfg.quick, seed=b.cfg.seed, device=b.device,
                          inputs=b.inputs.get(sec.id) or {}, out_dir=out_dir, audit=b.audit,
                          progress=progress, work_dir=b.cache.root / "work")


def _run_section(sec, ctx) -> dict:
    """One section's ``compute`` (here or in a local process): its data, or the error shown in
    the report (exit status 1)."""
    t0 = time.perf_counter()
    try:
        data = compute_section(sec, ctx)
    except Exception as exc:  # noqa: BLE001 -- shown in the report, exit status 1
        return {"ok": False, "error": traceback.format_exc(limit=6),
                "error_line": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "data": data, "seconds": round(time.perf_counter() - t0, 2)}


def _section_in_child(sec, ctx, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)           # the parent's count: the serial build's numbers
    return _run_section(sec, ctx)


def _finish_section(b: Build, sec, key, ingredients, outcome: dict, new_files: list) -> None:
    if not outcome["ok"]:
        b.sec_results[sec.id] = {k: outcome[k] for k in ("ok", "error", "error_line")}
        b.result.sections[sec.id] = "error"
        return
    b.cache.store("sections", sec.id, key, outcome["data"], ingredients, files=new_files)
    b.sec_results[sec.id] = {"data": outcome["data"], "ok": True, "seconds": outcome["seconds"]}
    b.result.sections[sec.id] = "computed"


def _compute_one_section(b: Build, sec, progress) -> None:
    key, ingredients = _section_key(b, sec)
    if _section_cached(b, sec, key, progress):
        return
    progress(f"section {sec.id}: computing")
    before = set(os.listdir(b.dir))
    outcome = _run_section(sec, _section_context(b, sec, b.dir, progress))
    new_files = sorted(b.dir / f for f in set(os.listdir(b.dir)) - before
                       if (b.dir / f).is_file())
    _finish_section(b, sec, key, ingredients, outcome, new_files)


def compute_sections(b: Build, progress) -> None:
    """Stage 4: every plug-in section's ``compute``, from the cache or computed (with its files).

    With ``jobs > 1`` the sections the cache lacks run in local processes, each one as soon as
    the sections it reads (``Section.after``) are done, in a staging folder of its own (holding
    a copy of what the build folder holds when it starts): its new files are exactly what it
    wrote, moved into the build folder when it ends.  Seeds derive from the master seed and the
    section's id and each child keeps this process's torch thread count, so the data are the
    serial build's."""
    if b.opts.jobs <= 1:
        for sec in b.secs:
            _compute_one_section(b, sec, progress)
        return
    todo = []
    for sec in b.secs:                       # the cached ones first: their files, for the others
        key, ingredients = _section_key(b, sec)
        if not _section_cached(b, sec, key, progress):
            todo.append((sec, key, ingredients))
    if len(todo) <= 1 or not all(_picklable(sec) for sec, _, _ in todo):
        for sec, key, ingredients in todo:          # here (a plug-in with a local compute)
            progress(f"section {sec.id}: computing")
            before = set(os.listdir(b.dir))
            outcome = _run_section(sec, _section_context(b, sec, b.dir, progress))
            _finish_section(b, sec, key, ingredients, outcome,
                            sorted(b.dir / f for f in set(os.listdir(b.dir)) - before
                                   if (b.dir / f).is_file()))
        return
    _sections_in_processes(b, todo, progress)


def _picklable(sec) -> bool:
    import dataclasses
    import pickle

    try:
        pickle.dumps(dataclasses.replace(sec, module=None))
    except Exception:  # noqa: BLE001 -- pickle raises several types; any means "not here"
        return False
    return True


def _sections_in_processes(b: Build, todo: list, progress) -> None:
    import dataclasses
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import torch

    from derivations.audit import pool_context, stop_pool

    threads = torch.get_num_threads()
    selected = {sec.id for sec, _, _ in todo}
    pending, running, done = list(todo), {}, set()
    jobs = min(b.opts.jobs, len(todo))
    progress(f"computing {len(todo)} sections in {jobs} local processes")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=pool_context()) as pool:
        try:
            while pending or running:
                for item in [t for t in pending
                             if all(a not in selected or a in done for a in t[0].after)]:
                    pending.remove(item)
                    sec = item[0]
                    staging = b.dir / f".section-{sec.id}"
                    shutil.rmtree(staging, ignore_errors=True)
                    staging.mkdir()
                    for name in os.listdir(b.dir):        # what it may read (Section.after)
                        if (b.dir / name).is_file():
                            shutil.copy2(b.dir / name, staging / name)
                    before = set(os.listdir(staging))
                    ctx = _section_context(b, sec, staging, _progress)
                    progress(f"section {sec.id}: computing (local process)")
                    fut = pool.submit(_section_in_child, dataclasses.replace(sec, module=None),
                                      ctx, threads)
                    running[fut] = (item, staging, before)
                if not running:              # cannot happen: discovery checks Section.after
                    raise RuntimeError(f"sections {[t[0].id for t in pending]} wait for "
                                       f"sections that never run")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    (sec, key, ingredients), staging, before = running.pop(fut)
                    outcome = fut.result()
                    new_files = []
                    for name in sorted(set(os.listdir(staging)) - before):
                        if (staging / name).is_file():
                            os.replace(staging / name, b.dir / name)
                            new_files.append(b.dir / name)
                    shutil.rmtree(staging, ignore_errors=True)
                    _finish_section(b, sec, key, ingredients, outcome, new_files)
                    done.add(sec.id)
                    progress(f"section {sec.id}: done ({len(done)}/{len(todo)})")
        except BaseException:
            stop_pool(pool)
            raise
    order = [sec.id for sec in b.secs]          # as a serial build lists them
    b.sec_results = {i: b.sec_results[i] for i in order if i in b.sec_results}
    b.result.sections = {i: b.result.sections[i] for i in order if i in b.result.sections}


def render(b: Build) -> None:
    """Stage 5: figures, data files and ``report.tex`` in the build folder (nothing computed)."""
    from . import assemble as assemble_mod

    ctx, b.data_files, b.failures = assemble_mod.assemble(b)
    b.result.failures = b.failures
    b.tex = assemble_mod.render_report(ctx)
    write_text_atomic(b.dir / "report.tex", b.tex)
    for name, obj in b.data_files.items():
        write_json_atomic(b.dir / name, obj)


def compile_report(b: Build, progress) -> bool:
    """Stage 6: ``latexmk`` when asked for and present.  False when LaTeX failed: the build
    folder is then kept as ``.<out>.failed`` and ``--out`` is left as it was."""
    b.have_tex = shutil.which("latexmk") is not None
    if not (b.opts.compile and b.have_tex):
        return True
    progress("compiling report.pdf with latexmk")
    ok, log = compile_pdf(b.dir, b.opts.latex_timeout)
    if ok:
        b.pdf = b.dir / "report.pdf"
        return True
    failed = b.out.with_name(f".{b.out.name}.failed")
    if failed.exists():
        if not (failed.is_dir() and _is_ours(failed)):
            raise InputError(f"{failed}: exists and is not a failed build of this "
                             "tool; move it away to keep failed builds")
        shutil.rmtree(failed)
    os.rename(b.dir, failed)
    res = b.result
    res.status, res.latex_log = 1, log
    res.message = (f"LaTeX failed; the previous report in {b.out} is unchanged; the "
                   f"failed build is in {failed}\n--- LaTeX log (relevant part) ---\n{log}")
    res.seconds = time.perf_counter() - b.t_start
    return False


def swap_into_place(b: Build) -> None:
    """Stage 7: the finished build folder replaces ``--out`` (the cache inside it moves over)."""
    for f in b.dir.iterdir():
        if f.is_file():
            os.chmod(f, 0o644)
    _swap_into_place(b.dir, b.out)


def summarise(b: Build) -> ReportResult:
    """Stage 8: status, timings and the one-paragraph message of a build that finished."""
    res, out = b.result, b.out
    res.tex = out / "report.tex"
    res.pdf = out / "report.pdf" if (out / "report.pdf").is_file() else None
    res.status = 1 if res.failures else 0
    res.seconds = time.perf_counter() - b.t_start
    n_comp = sum(v == "computed" for v in res.derivations.values())
    summary = (f"{len(res.derivations)} derivations ({n_comp} computed, "
               f"{len(res.derivations) - n_comp} reused from the cache), "
               f"{len(res.sections)} sections, {res.seconds:.1f} s")
    if res.pdf:
        res.message = f"wrote {res.pdf} ({summary})"
    elif b.opts.compile and not b.have_tex:
        res.message = (f"wrote {res.tex} ({summary}); latexmk not found, so no PDF: install TeX "
                       f"(e.g. apt-get install latexmk texlive-latex-extra lmodern) and run "
                       f"`latexmk -pdf report.tex` in {out}")
    else:
        res.message = f"wrote {res.tex} ({summary}; PDF not requested)"
    if res.failures:
        res.message += "\nFAILURES shown in the report:\n" + "\n".join(f"  - {f}" for f in res.failures)
    return res


# ---------------------------------------------------------------------------------- main
def build_report(opts: ReportOptions, progress=_progress, echo=print) -> ReportResult:
    b = check_inputs(opts)
    # -- nothing was written before this line: every refusal above leaves the disk untouched --
    open_build(b)
    try:
        audit(b, progress)
        compute_sections(b, progress)
        render(b)
        if not compile_report(b, progress):
            return b.result                  # LaTeX failed: previous report intact
        swap_into_place(b)
    except BaseException:
        shutil.rmtree(b.dir, ignore_errors=True)
        raise
    return summarise(b)
