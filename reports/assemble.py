"""From computed results to the report's files: figures, CSV/JSON data, the template context.

Called by ``reports.build`` (its render stage, with the build record ``reports.record.Build``)
after every result exists; draws figures from stored numbers and
renders the section templates and the main template.  It computes nothing new.
"""
from __future__ import annotations

import traceback

from .context import (derivation_view, notation_view, params_latex, provenance_view, text_or_tex)
from .figures import convergence_figure, sweep_figure, write_csv
from .referee import executive_summary, referee_view
from .record import Build
from .render import make_env


def assemble(b: Build):
    """``(template context, {data file name: JSON object}, failures)`` of the build ``b``
    (figures and CSV files are written into ``b.dir`` on the way)."""
    build, cfg, prov, opts, res = b.dir, b.cfg, b.prov, b.opts, b.result
    ders, stored, secs, sec_results = b.ders, b.stored, b.secs, b.sec_results
    failures = []
    der_views = []
    for der in ders:
        entry = stored[der.id]
        result = dict(entry["audit"])
        result["_cached"] = res.derivations.get(der.id) == "cached"
        result["_computed"] = entry.get("computed", {})
        sweep = entry.get("sweep")
        figures = {}
        if result["verdict"] != "pass":
            failures.append(f"derivation {der.id}: verdict {result['verdict']} "
                            f"(steps ok: {result['steps_ok']}, statement ok: {result['statement_ok']}, "
                            f"controls all rejected: {result['controls_ok']})")
        if sweep and sweep.get("error"):
            failures.append(f"derivation {der.id}: report_sweep failed: {sweep['error']}")
        view = derivation_view(der, result, sweep, figures)
        if view["sweep"] and view["sweep"]["beyond"]:
            failures.append(f"derivation {der.id}: the figure's sweep disagrees with the formula beyond "
                            f"4 SE at {sweep['param']} = {view['sweep']['beyond']}")
        try:
            if view["sweep"]:
                figures["sweep"] = sweep_figure(build, der.id, sweep, view["sweep"]["param"])
            if view["convergence"]:
                figures["convergence"] = convergence_figure(build, der.id, view["convergence"])
        except Exception as exc:  # noqa: BLE001
            failures.append(f"derivation {der.id}: figure failed: {type(exc).__name__}: {exc}")
            view["figure_error"] = f"{type(exc).__name__}: {exc}"
        e2e_rows = []
        for cert in result["statement"]["certificates"]:
            if cert["method"] == "end_to_end":
                for pt in cert["evidence"].get("points", []):
                    e2e_rows.append({**{f"param_{k}": (";".join(map(str, v)) if isinstance(v, list) else v)
                                        for k, v in pt["params"].items()},
                                     **{k: v for k, v in pt.items() if k != "params"}})
        if e2e_rows:
            write_csv(build / f"{der.id}-montecarlo.csv", e2e_rows)
            view["e2e_csv"] = f"{der.id}-montecarlo.csv"
        formal = result.get("formal") or {}
        if formal.get("text") and formal.get("file"):
            (build / formal["file"]).write_text(formal["text"], encoding="utf-8")
        der_views.append(view)

    env = make_env(b.template_dirs)
    sec_views = []
    for sec in secs:
        sr = sec_results[sec.id]
        view = {"id": sec.id, "title": sec.title, "answers": dict(sec.answers),
                "ok": sr["ok"], "status": res.sections.get(sec.id), "body": None,
                "error": sr.get("error"), "error_line": sr.get("error_line")}
        if sr["ok"]:
            data = sr["data"]
            view["verdict"] = data.get("verdict")
            # a section may state its answer with computed numbers, and what it leaves open
            view["answers"].update({k: v for k, v in (data.get("answers") or {}).items()
                                    if k in view["answers"]})
            view["answers_open"] = dict(data.get("answers_open") or {})
            if data.get("verdict") == "fail":
                failures.append(f"section {sec.id}: its checks failed (verdict fail)")
            if not data:
                view["ok"] = False
                view["error_line"] = "compute returned no data"
            try:
                view["body"] = env.get_template(sec.template).render(
                    data=data, section={"id": sec.id, "title": sec.title, "order": sec.order},
                    audit={"verdict": "pass" if all(d["verdict"] == "pass" for d in der_views) else "fail",
                           "derivations": {i: e["audit"] for i, e in stored.items()}})
            except Exception as exc:  # noqa: BLE001 -- a broken template is shown, exit 1
                view["ok"] = False
                view["error"] = traceback.format_exc(limit=4)
                view["error_line"] = f"template {sec.template}: {type(exc).__name__}: {exc}"
        if not view["ok"]:
            failures.append(f"section {sec.id}: {view['error_line']}")
        sec_views.append(view)

    der_answers = {der.id: dict(der.extra.answers) for der in ders}
    referee = referee_view(sec_views, der_views, der_answers, partial=bool(opts.only))

    n_pass = sum(d["verdict"] == "pass" for d in der_views)
    ok_data = {v["id"]: sec_results[v["id"]]["data"] for v in sec_views if v["ok"]}
    try:
        exec_summary = executive_summary(n_pass, len(der_views), ok_data, referee)
    except Exception as exc:  # noqa: BLE001 -- shown as a failure, never a silent omission
        failures.append(f"executive summary: {type(exc).__name__}: {exc}")
        exec_summary = []
    counts = {"formal": 0, "symbolic only": 0, "numeric only": 0}
    for d in der_views:
        for row in d["formal"]["steps"]:
            counts[row["class"]] += 1
    formal_ctx = {"counts": counts,
                  "lemmas": [dict(lm, derivation=d["id"]) for d in der_views
                             for lm in d["formal"]["lemmas"]],
                  "files": [d["formal"]["file"] for d in der_views if d["formal"]["file"]],
                  "coqc": next((d["formal"]["coqc"] for d in der_views if d["formal"]["coqc"]), None),
                  "not_formalised": [(d["id"], r["id"], r["why"]) for d in der_views
                                     for r in d["formal"]["steps"] if r["formal"] == "not formalised"]}
    ctx = {
        "title": "LoRA vs.\\ Full Fine-Tuning: an audited re-derivation",
        "paper": ("Zindari, Mulayoff, Stich, \\emph{LoRA vs.\\ Full Fine-Tuning: A Theoretical "
                  "Perspective}, arXiv 2605.19018 (2026)"),
        "prov": provenance_view(prov, cfg),
        "cfg": cfg.as_dict(),
        "partial": list(opts.only),
        "derivations": der_views,
        "sections": sec_views,
        "referee": referee,
        "executive_summary": exec_summary,
        "notation": notation_view(),
        "formal": formal_ctx,
        "n_pass": n_pass,
        "n_der": len(der_views),
        "failures": failures,
        "verdict": "pass" if not failures else "fail",
    }
    summary_rows = [{"id": d["id"], "title": d["plain_title"], "kind": d["kind"],
                     "regime": d["regime"], "verdict": d["verdict"],
                     "steps_passed": d["steps_passed"], "steps": len(d["steps"]),
                     "controls_rejected": d["controls_rejected"], "controls": len(d["controls"]),
                     "cached": d["cached"]} for d in der_views]
    write_csv(build / "summary.csv", summary_rows)
    data_files = {
        "audit.json": {"provenance": prov,
                       "verdict": "pass" if n_pass == len(der_views) else "fail",
                       "derivations": [stored[d.id]["audit"] for d in ders]},
        "report-data.json": {
            "sweeps": {d.id: stored[d.id].get("sweep") for d in ders},
            "computed": {d.id: stored[d.id].get("computed") for d in ders},
            "sections": {s.id: (sec_results[s.id].get("data") if sec_results[s.id]["ok"]
                                else {"error": sec_results[s.id].get("error")}) for s in secs},
            "referee": [{k: v for k, v in r.items()} for r in referee],
            "failures": failures,
            "cache": {"derivations": res.derivations, "sections": res.sections},
        },
    }
    return ctx, data_files, failures


def render_report(ctx: dict) -> str:
    """``report.tex`` from the context ``assemble`` made.  The main template and what it
    includes live in ``TEMPLATE_DIR`` (first in every template search path, so extra folders
    never replace them)."""
    from .render import TEMPLATE_DIR

    return make_env([TEMPLATE_DIR]).get_template("report.tex.j2").render(**ctx)


__all__ = ["assemble", "render_report", "params_latex"]
