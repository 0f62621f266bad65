"""Run every check of a derivation: its integrity, its steps, its statement, its negative controls.

A derivation is certified when its integrity checks pass (``derivations.integrity``: generic
check points, numeric code tied to its SymPy expressions, the statement derived by its steps),
every step's every check passes, the statement's checks pass, and every negative control is
rejected (at least one of its checks fails).  Every step with a
``symbolic`` check also gets the ``formal`` check (Coq; ``derivations.formal``), added here in
one place; its neutral verdicts (``skipped`` without Coq, ``not formalised`` for a goal beyond
the tactics) neither certify nor fail a step.  The derivation's named Coq lemmas
(``derivations.formal_lemmas``) must not be refuted, and their controls must be.  A control that
passes means the check could not tell a wrong statement from the right one: that is a failure of
the audit, reported as such.
"""
from __future__ import annotations

import sys
import time

from .checkers import run_checker
from .core import NEUTRAL_VERDICTS, Certificate, Derivation
from .results import AuditRun, ControlResult, DerivationResult, StepResult


def step_checks(step) -> tuple:
    """The checks a step runs: its own, plus ``formal`` wherever ``symbolic`` applies."""
    checks = tuple(step.checks)
    if "symbolic" in checks and "formal" not in checks:
        checks += ("formal",)
    return checks


def _statement_cert(name, derivation, cfg, formula=None) -> Certificate:
    return run_checker(name, derivation.statement, derivation, cfg, formula=formula)


def audit_step(step, derivation, cfg) -> StepResult:
    certs = tuple(run_checker(c, step, derivation, cfg) for c in step_checks(step))
    return StepResult(step.id, certs)


def audit_control(control, derivation, cfg) -> ControlResult:
    if control.target == "statement":
        certs = [_statement_cert(c, derivation, cfg, formula=control.formula)
                 for c in derivation.statement.checks]
    else:
        step = derivation.step(control.target).with_sides(control.lhs, control.rhs, control.options)
        certs = [run_checker(c, step, derivation, cfg) for c in step_checks(step)]
    # A control is rejected when a check *fails* on it; an error is not a rejection.
    rejected = any(c.verdict == "fail" for c in certs)
    return ControlResult(control.name, control.description, control.target, rejected,
                         tuple(certs))


def formal_summary(derivation, batch) -> dict:
    """The derivation's Coq file and its named lemmas (with their controls) for the result."""
    from symbolic.printing import latex

    from .formal import certificate
    from .formal_lemmas import lemmas_for

    lemmas = []
    for lem in lemmas_for(derivation.id):
        res = batch["results"].get(batch["index"].get(("lemma", lem.name)), {"status": "error",
                                                                            "reason": "not run"})
        cert = certificate(res, batch.get("coqc"), batch.get("file"))
        controls = []
        for cname, _ in lem.control_goals():
            cres = batch["results"].get(batch["index"].get(("lemma-control", lem.name, cname)),
                                        {"status": "error", "reason": "not run"})
            ccert = certificate(cres, batch.get("coqc"), batch.get("file"))
            controls.append({"name": cname, "rejected": ccert.verdict == "fail",
                             "skipped": ccert.verdict == "skipped",
                             "certificate": ccert.as_dict()})
        lemmas.append({"name": lem.name, "title": lem.title,
                       "statement_latex": latex(lem.statement),
                       "hypotheses_latex": [latex(h) for h in lem.hypotheses],
                       "verdict": cert.verdict, "certificate": cert.as_dict(),
                       "controls": controls})
    ok = all(lm["verdict"] in ("pass", *NEUTRAL_VERDICTS) for lm in lemmas) and \
        all(c["rejected"] or c["skipped"] for lm in lemmas for c in lm["controls"])
    return {"file": batch.get("file"), "text": batch.get("text"), "coqc": batch.get("coqc"),
            "lemmas": lemmas, "ok": ok}


class _Stop(Exception):
    """Raised in ``stop_on_failure`` mode at the first check that does not pass."""


def audit_derivation(derivation: Derivation, cfg, progress=None,
                     stop_on_failure: bool = False, on_phase=None) -> DerivationResult:
    """Audit one derivation.  ``stop_on_failure`` (the mutation suite) returns at the first
    check that does not pass -- the verdict is then already ``fail`` -- with ``stopped_at``
    naming it; a normal audit runs everything.  ``on_phase(name)`` is called as each phase
    (``integrity``, ``steps``, ``statement``, ``controls``) begins (the reach tracer stops at
    the controls)."""
    phase = on_phase or (lambda name: None)
    from . import formal
    from .integrity import run_integrity

    t0 = time.perf_counter()
    if progress:
        progress(f"{derivation.id}: formal proofs (Coq)")
    batch = formal.prepare(derivation, cfg)
    integrity, steps, stmt_certs, controls = [], [], [], []
    stopped = None

    def gate(where, ok):
        nonlocal stopped
        if stop_on_failure and not ok:
            stopped = where
            raise _Stop

    try:
        phase("integrity")
        if progress:
            progress(f"{derivation.id}: integrity")
        for cert in run_integrity(derivation, cfg):
            integrity.append(cert)
            gate(f"integrity {cert.method}", cert.verdict in ("pass", "waived"))
        phase("steps")
        for step in derivation.steps:
            if progress:
                progress(f"{derivation.id}: step {step.id}")
            steps.append(audit_step(step, derivation, cfg))
            gate(f"step {step.id}", steps[-1].verdict == "pass")
        phase("statement")
        if progress:
            progress(f"{derivation.id}: statement")
        for c in derivation.statement.checks:
            stmt_certs.append(_statement_cert(c, derivation, cfg))
            gate(f"statement {c}", stmt_certs[-1].verdict == "pass")
        phase("controls")
        for control in derivation.controls:
            if progress:
                progress(f"{derivation.id}: control {control.name}")
            controls.append(audit_control(control, derivation, cfg))
            gate(f"control {control.name}", controls[-1].rejected)
    except _Stop:
        pass
    return DerivationResult(
        derivation.id, derivation.title, derivation.plain_title, derivation.kind,
        derivation.regime, integrity=tuple(integrity), steps=tuple(steps),
        statement=tuple(stmt_certs), controls=tuple(controls),
        formal=formal_summary(derivation, batch), stopped_at=stopped,
        seconds=round(time.perf_counter() - t0, 3))


# ------------------------------------------------------------------- local process parallelism
def without_timings(result):
    """An audit result (or any part of one) without its ``seconds`` fields: what must agree
    bit for bit between two runs of the same audit, serial, in processes or on a cluster.
    A typed result is compared through its ``to_json()`` form."""
    if hasattr(result, "to_json"):
        result = result.to_json()
    if isinstance(result, dict):
        return {k: without_timings(v) for k, v in result.items() if k != "seconds"}
    if isinstance(result, (list, tuple)):
        return [without_timings(v) for v in result]
    return result


def _in_child(task, der_id: str, threads: int, args: tuple) -> tuple:
    import torch

    torch.set_num_threads(threads)           # the parent's count: the serial run's numbers
    c0 = _cpu_seconds()
    res = task(der_id, *args)
    return res, _cpu_seconds() - c0


def _audit_task(der_id: str, cfg) -> DerivationResult:
    from . import get

    return audit_derivation(get(der_id), cfg, None)


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (coqc)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# CPU seconds the children of the last ``map_in_processes`` call spent (their results carry
# only what a serial run's carry; the command line prints this on stderr for the benchmark)
LAST_CHILD_CPU = {"seconds": 0.0, "processes": 0}


def pool_context():
    """The multiprocessing context of the local process pools: a clean fork server (no torch
    thread pool inherited) that has imported the package once; spawn where there is none."""
    import multiprocessing as mp

    try:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["derivations", "derivations.audit", "derivations.checkers",
                                    "derivations.formal"])
    except ValueError:                       # no fork server on this platform
        ctx = mp.get_context("spawn")
    return ctx


def stop_pool(pool) -> None:
    """After a failed task, Ctrl-C or SIGTERM: stop the pool's children now instead of letting
    the pool's exit wait for the work they are still doing."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def map_in_processes(task, ders, jobs: int, args: tuple = (), progress=None,
                     verb: str = "audited", on_result=None) -> list:
    """``[task(d.id, *args) for d in ders]`` in ``jobs`` local processes, one derivation per
    task, results in the order of ``ders``.  ``task`` is a module-level function (it is
    pickled by name).  Every seed derives from the master seed and the derivation's id and
    each child keeps the parent's torch thread count, so every number is the serial run's,
    bit for bit (only timings differ).  The children fork from a clean fork server (no torch
    thread pool inherited), which has imported the package once.  Their CPU seconds land in
    ``LAST_CHILD_CPU``.  ``on_result(der, result)``, when given, runs here as each one
    arrives (e.g. to store it at once)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    import torch

    threads = torch.get_num_threads()
    by_id = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(ders)), mp_context=pool_context()) as pool:
        # the larger derivations first, so that no core idles at the end (order of submission
        # changes nothing else: the results are put back in the order of ``ders``)
        order = sorted(ders, key=lambda d: -(len(d.steps) + 2 * len(d.controls)))
        futs = {pool.submit(_in_child, task, d.id, threads, args): d for d in order}
        cpu = 0.0
        try:
            for fut in as_completed(futs):
                der = futs[fut]
                by_id[der.id], c = fut.result()
                cpu += c
                if on_result is not None:
                    on_result(der, by_id[der.id])
                if progress:
                    progress(f"{der.id}: {verb} ({len(by_id)}/{len(ders)})")
        except BaseException:
            stop_pool(pool)
            raise
    LAST_CHILD_CPU.update(seconds=cpu, processes=min(jobs, len(ders)))
    return [by_id[d.id] for d in ders]


def audit_in_processes(ders, cfg, jobs: int, progress=None) -> list:
    """Audit ``ders`` in ``jobs`` local processes (``map_in_processes``) and return the
    results in the order of ``ders``: the serial run's, bit for bit (only the ``seconds``
    fields differ)."""
    if jobs <= 1 or len(ders) <= 1:
        return [audit_derivation(d, cfg, progress) for d in ders]
    return map_in_processes(_audit_task, ders, jobs, (cfg,), progress, "audited")


# ------------------------------------------------------------------- running many derivations
def _audit_on_worker(der_id: str, cfg, threads: int) -> DerivationResult:
    """One derivation's audit on a Dask worker (the registry is rebuilt there), with the
    client's torch thread count, so that its numbers are the serial run's."""
    import torch

    from . import get

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return audit_derivation(get(der_id), cfg, None)
    finally:
        torch.set_num_threads(before)


def run_audit(ids, cfg, progress=None, client=None, jobs=1) -> AuditRun:
    """Audit the derivations (all when ``ids`` is empty), in-process or, with a
    ``distributed.Client``, one derivation per task on its workers (results in the order of
    ``ids``; each derivation's seeds derive from the master seed and its id, so the
    certificates do not depend on where or in which order it ran)."""
    from . import get, registry
    from numeric.device import resolve
    from numeric.provenance import provenance

    ders = [get(i) for i in ids] if ids else list(registry().values())
    device = resolve(cfg.device)
    if client is None and jobs > 1:          # local processes: the serial numbers, bit for bit
        results = audit_in_processes(ders, cfg, jobs, progress)
        print(f"audit: {LAST_CHILD_CPU['processes']} local processes, CPU in them "
              f"{LAST_CHILD_CPU['seconds']:.1f} s", file=sys.stderr)
    elif client is None:
        results = [audit_derivation(d, cfg, progress) for d in ders]
    else:
        import torch

        from numeric.distributed import as_completed

        threads = torch.get_num_threads()
        futs = {client.submit(_audit_on_worker, d.id, cfg, threads,
                              key=f"audit-{d.id}-{cfg.seed}", pure=False): d.id for d in ders}
        by_id = {}
        for fut in as_completed(client, list(futs)):
            by_id[futs[fut]] = fut.result()
            if progress:
                progress(f"{futs[fut]}: audited ({len(by_id)}/{len(ders)})")
        results = [by_id[d.id] for d in ders]
    return AuditRun(tuple(results), provenance(device, config=cfg.as_dict()))
