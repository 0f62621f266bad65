"""Which lines of the mathematics does the audit execute?  (``lora-audit mutate --reach``)

A planted error on a line that no check point executes can never be rejected: such a line is
a blind spot by construction, whatever the checks are.  This module runs the audit of every
derivation (the configuration the mutation suite uses, ``--quick`` by default) under a line
tracer restricted to the mutation suite's target files, and lists every *mutation site* --
every place :func:`derivations.mutate.generate` would plant an error -- that the audit of the
derivations the site can affect (:func:`derivations.mutate.affected_derivations`) never
executes.

The negative controls are not traced: a line that only a control executes is exercised by code
whose rejection is expected, so a planted error there is not seen either (the control is still
rejected).  Line reach is necessary, not sufficient: an executed line can still hide an error
(a special value, an untied quantity); those are the integrity checks' concern.

The tracer is ``coverage`` (a well-kept C tracer: the audit runs about as fast as untraced);
it is an optional dependency (extra ``test``).  Each derivation is audited in a child process
(several at once, ``jobs``), like the mutation suite's runs.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from numeric.errors import InputError

from .mutate import ROOT, TARGET_FILES, affected_derivations, generate

# Sites that no audit can execute on this machine, each with its reason (by mutant function,
# ``file::function``).  Everything else unexecuted is an error of the check-point tables.
UNREACHABLE: dict[str, str] = {
    "derivations/theorems/misalign_decomposition.py::under_simulate":
        "the `simulate` command's hook of misalign_cross_under: the first output of the pieces "
        "hook (E chi from the estimator's risk) that the statement's pieces_mc check audits; "
        "the audit calls the pieces hook itself",
}

CHILD = r"""
import json, sys
args = json.loads(sys.argv[1])
import coverage
cov = coverage.Coverage(data_file=None, include=args["include"], branch=False,
                        config_file=False)
cov.start()
from derivations import get
from derivations.audit import audit_derivation
from derivations.config import make_config
cfg = make_config(quick=args["quick"], seed=args["seed"], device="cpu")
res = audit_derivation(get(args["id"]), cfg, on_phase=lambda phase: cov.stop()
                       if phase == "controls" else None)
cov.stop()
data = cov.get_data()
lines = {f: sorted(data.lines(f) or []) for f in data.measured_files()}
print("REACH-RESULT " + json.dumps({"verdict": res.verdict, "lines": lines}), flush=True)
"""


class ReachError(RuntimeError):
    """A traced audit that crashed or timed out: no reach figure can be given (exit status 1,
    one line, no traceback: the fault is the audit's, not the user's input)."""


def _child(der_id: str, quick: bool, seed: int, root: Path, timeout: float) -> dict:
    import importlib.util

    if importlib.util.find_spec("coverage") is None:
        raise InputError("--reach needs the package 'coverage' (pip install -e '.[mutation]')")
    include = [str(root / f) for f in TARGET_FILES]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = json.dumps({"id": der_id, "quick": quick, "seed": seed, "include": include})
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ReachError(f"reach: the traced audit of {der_id} ran past {timeout:g} s") from None
    for line in proc.stdout.splitlines():
        if line.startswith("REACH-RESULT "):
            out = json.loads(line[len("REACH-RESULT "):])
            return {"verdict": out["verdict"],
                    "lines": {str(Path(f).resolve().relative_to(root)): set(v)
                              for f, v in out["lines"].items()}}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise ReachError(f"reach: the traced audit of {der_id} crashed: {tail}")


def executed_lines(ids, quick: bool = True, seed: int = 0, jobs: int = 2, root: Path = ROOT,
                   timeout: float = 1800, progress=None) -> dict:
    """``{derivation id: {"verdict", "lines": {file: set of executed line numbers}}}``."""
    out = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {i: pool.submit(_child, i, quick, seed, root, timeout) for i in ids}
        for i, fut in futures.items():
            out[i] = fut.result()
            if progress:
                progress(i, out[i])
    return out


def _statement_spans(tree: ast.AST):
    """(start, end, header_end) of every statement: a site inside a compound statement's
    header (an ``if`` test, a ``for`` iterable, a default argument) is reached when the header
    is; one in a simple statement when any of its lines is."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            header_end = (body[0].lineno - 1 if isinstance(body, list) and body
                          and isinstance(body[0], ast.stmt) else node.end_lineno)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and node.decorator_list:
                start = node.decorator_list[0].lineno
            else:
                start = node.lineno
            spans.append((start, node.end_lineno, max(header_end, node.lineno)))
    return spans


def _innermost(spans, line: int):
    best = None
    for s, e, h in spans:
        if s <= line <= e and (best is None or e - s < best[1] - best[0]):
            best = (s, e, h)
    return best


@dataclass(frozen=True)
class Site:
    file: str
    line: int
    function: str
    mutants: int
    derivations: tuple

    def __str__(self):
        return (f"{self.file}:{self.line} ({self.function}): {self.mutants} mutation(s) no "
                f"audit of {', '.join(self.derivations) or 'any derivation'} executes")


def unreached(executed: dict, mutants=None, root: Path = ROOT) -> list[Site]:
    """Mutation sites that the audits in ``executed`` (from :func:`executed_lines`) never run,
    grouped by line; sites listed in :data:`UNREACHABLE` are left out."""
    mutants = generate() if mutants is None else mutants
    spans, affected, grouped = {}, {}, {}
    for m in mutants:
        if f"{m.file}::{m.function}" in UNREACHABLE:
            continue
        if m.file not in spans:
            spans[m.file] = _statement_spans(ast.parse((root / m.file).read_text("utf-8")))
            affected[m.file] = tuple(affected_derivations(m.file))
        inner = _innermost(spans[m.file], m.line)
        lo, hi = (m.line, m.line) if inner is None else (inner[0], inner[2])
        if inner is not None and inner[2] == inner[1]:
            lo, hi = inner[0], inner[1]         # a simple statement: any of its lines
        ran = any(lo <= ln <= hi for d in affected[m.file] if d in executed
                  for ln in executed[d]["lines"].get(m.file, ()))
        if not ran:
            key = (m.file, lo)
            grouped.setdefault(key, [m.function, 0])[1] += 1
    return [Site(f, ln, fn, n, affected[f]) for (f, ln), (fn, n) in sorted(grouped.items())]
