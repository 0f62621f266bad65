"""Turns audit results, sweeps and the derivations' SymPy objects into the template context.

Everything a template shows is prepared here as strings that are already LaTeX (printed through
``symbolic.printing``) or plain values the template formats with ``|e`` / ``|num``.  No number is
computed here beyond re-arranging the certificates' evidence for display.
"""
from __future__ import annotations

import re

from symbolic.printing import NamedPart, latex, name_parts, relation_display, relation_latex
from symbolic.registry import OPERATORS, REGISTRY, latex_name

from .render import format_number, latex_escape, percent

KIND_LABELS = {"exact": "exact", "asymptotic": "asymptotic (approximation, labelled as such)",
               "bound": "bound (an inequality, not an equality)"}
GROUP_TITLES = {"model": "Model and scalars", "data": "Data", "estimators": "Estimators",
                "lora": "LoRA analysis", "misalignment": "Covariance--subspace misalignment"}
# evidence keys shown first, with their labels and formatters
_EVIDENCE_LABELS = {
    "digits_agreed": ("digits agreed", "num"),
    "dps": ("working precision (digits)", "num"),
    "instances": ("instances", "num"),
    "worst_relative_gap": ("worst relative gap", "num"),
    "tolerance": ("tolerance", "num"),
    "simplified_difference": ("lhs $-$ rhs simplifies to", "text"),
    "gap": ("gap (rhs $-$ lhs)", "text"),
    "max_abs_z": ("max $|z|$", "num"),
    "z_threshold": ("pass threshold $|z| \\le$", "num"),
    "max_detectable_rel": ("smallest detectable relative error", "pct"),
    "worst_ratio": ("worst ratio lhs/rhs found", "num"),
    "observed_rate": ("observed rate (slope of $\\log|e|$ vs $\\log$ scale)", "num"),
    "powered": ("powered", "num"),
    "small": ("small at the largest size", "num"),
    "shrinking": ("shrinking", "num"),
    "exception": ("exception", "text"),
}
_SKIP = {"traceback", "device"}
_COLUMN_LABELS = {
    "mean_lhs_minus_rhs": "mean lhs$-$rhs", "se": "SE", "z": "$z$", "rhs": "rhs",
    "detectable_rel": "detectable", "trials": "draws", "instance": "inst.", "formula": "formula",
    "mean": "simulation", "rel_error": "rel.\\ error", "rel_se": "rel.\\ SE", "scale": "scale",
    "dims": "dimensions", "params": "parameters", "ratio": "lhs/rhs",
}
_PCT_COLUMNS = {"detectable_rel", "rel_error", "rel_se"}


def text_or_tex(s: str) -> str:
    """A free-text field that may be LaTeX already (``$..$`` or a macro): pass it, else escape."""
    s = str(s)
    return s if re.search(r"\$|\\[A-Za-z]", s) else latex_escape(s)


def _compress(values) -> str:
    """(4, 4, 4, 1) -> '4\\times3, 1' (run-length, LaTeX math)."""
    out, i = [], 0
    values = list(values)
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[i]:
            j += 1
        v = format_number(values[i], 4)
        out.append(v if j == i else rf"{v}^{{\times{j - i + 1}}}")
        i = j + 1
    return ",".join(out)


def params_latex(p: dict) -> str:
    """A parameter point as inline LaTeX, symbol names from the registry."""
    parts = []
    for name in ("d", "k", "n", "r", "sigma"):
        if name in p:
            parts.append(f"{latex_name(name)}={format_number(p[name], 4)}")
    if p.get("shift_sv"):
        parts.append(rf"\sigma_i({latex_name('Delta')})=({_compress(p['shift_sv'])})")
    if p.get("cov_eigs"):
        parts.append(rf"\lambda_i({latex_name('Sigma')})=({_compress(p['cov_eigs'])})")
    else:
        parts.append(rf"{latex_name('Sigma')}=I")
    # one math group per parameter: the line may break between them (never shrunk to fit)
    return ", ".join(f"${x}$" for x in parts)


def _fmt_value(v, how="num") -> str:
    if how == "pct" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return percent(v)
    if how == "text" or isinstance(v, str):
        return latex_escape(v) if not isinstance(v, str) or how == "text" else format_number(v)
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v):
        return ", ".join(format_number(x) for x in v)
    if isinstance(v, dict):
        parts = []
        for k, x in v.items():
            if k == "params" and isinstance(x, dict):
                parts.append(params_latex(x))
            elif isinstance(x, (dict, list, tuple)) and len(str(x)) > 60:
                parts.append(latex_escape(f"{k}: see audit.json"))
            elif isinstance(x, (int, float)) and not isinstance(x, bool):
                parts.append(latex_escape(f"{str(k).replace('_', ' ')} = ") + format_number(x))
            else:
                parts.append(latex_escape(f"{str(k).replace('_', ' ')}: {x}"))
        return ", ".join(parts)
    if isinstance(v, (list, tuple)) and len(str(v)) > 120:
        return latex_escape("(long list: see audit.json)")
    return format_number(v)


def _cell(col: str, v) -> str:
    if col == "params" and isinstance(v, dict):
        return params_latex(v)
    if col == "dims" and isinstance(v, dict):
        return "$" + ",".join(f"{latex_name(k) if k in REGISTRY else latex_escape(k)}={format_number(x)}"
                              for k, x in v.items()) + "$"
    if col in _PCT_COLUMNS and isinstance(v, (int, float)):
        return percent(v)
    if isinstance(v, float) and col in ("z",):
        return format_number(v, 3)
    return _fmt_value(v)


TABLE_WIDTH = 88        # visible characters of a footnotesize table row on the report's page


def split_columns(header: list, rows: list, width: int = TABLE_WIDTH) -> list:
    """A table too wide for the page, as several tables of consecutive columns, each repeating
    the first (identifying) column: broken, never shrunk."""
    from symbolic.printing import visible_width

    if not header:
        return [(header, rows)]
    # a column wider than WRAP_COLUMN wraps in a paragraph cell (column_spec): it takes that much
    w = [min(max([visible_width(str(h))] + [visible_width(str(r[j])) for r in rows]),
             WRAP_COLUMN + 4) + 3 for j, h in enumerate(header)]
    if sum(w) <= width or len(header) <= 2:
        return [(header, rows)]
    groups, cur, used = [], [], w[0]
    for j in range(1, len(header)):
        if cur and used + w[j] > width:
            groups.append(cur)
            cur, used = [], w[0]
        cur.append(j)
        used += w[j]
    groups.append(cur)
    return [([header[0]] + [header[j] for j in g], [[r[0]] + [r[j] for j in g] for r in rows])
            for g in groups]


WRAP_COLUMN = 36        # a column wider than this (visible characters) wraps in a paragraph cell


def column_spec(header: list, rows: list) -> str:
    """LaTeX column types: a column too wide for one line (a parameter point) becomes a ragged
    paragraph column that wraps, so a table fits the page without being shrunk."""
    from symbolic.printing import visible_width

    spec = []
    for j, h in enumerate(header):
        w = max([visible_width(str(h))] + [visible_width(str(r[j])) for r in rows])
        spec.append(r">{\raggedright\arraybackslash}p{0.42\linewidth}" if w > WRAP_COLUMN
                    else "l")
    return "@{}" + " ".join(spec) + "@{}"


def evidence_view(evidence: dict, skip=()) -> dict:
    """Evidence -> {"facts": [(label, value-latex)], "tables": [{"title", "header", "rows"}]}."""
    facts, tables = [], []
    keys = [k for k in _EVIDENCE_LABELS if k in evidence] + \
        [k for k in evidence if k not in _EVIDENCE_LABELS]
    for key in keys:
        if key in _SKIP or key in skip or evidence[key] in ({}, [], ""):
            continue
        v = evidence[key]
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = []
            for row in v:
                cols.extend(c for c in row if c not in cols)
            # a column with no value in any row says nothing: it is left out, not shown as "--"
            cols = [c for c in cols if any(row.get(c) is not None for row in v)]
            header = [_COLUMN_LABELS.get(c, latex_escape(c.replace("_", " "))) for c in cols]
            rows = [[_cell(c, row.get(c)) for c in cols] for row in v]
            parts = split_columns(header, rows)
            for i, (h, rr) in enumerate(parts):
                title = latex_escape(key.replace("_", " "))
                if len(parts) > 1:
                    title += f" (part {i + 1} of {len(parts)})"
                tables.append({"title": title, "header": h, "rows": rr, "spec": column_spec(h, rr)})
            continue
        label, how = _EVIDENCE_LABELS.get(key, (latex_escape(key.replace("_", " ")), "num"))
        if isinstance(v, str) and how == "num":
            how = "text" if not re.fullmatch(r"[+-]?[\d.eE+-]+|all", v) else "num"
        if isinstance(v, list) and v and isinstance(v[0], str):
            val = latex_escape(", ".join(v))
        elif how == "num" and isinstance(v, str):
            val = format_number(v)
        else:
            val = _fmt_value(v, how)
        facts.append({"label": label, "value": val})
    return {"facts": facts, "tables": tables}


# evidence shown elsewhere in the derivation's page (its own table or figure)
_SHOWN_ELSEWHERE = {"end_to_end": ("points",), "convergence": ()}
# a formal certificate's evidence is Coq source (script, lemma, axioms, goal hash): it is in the
# .v file beside the report; the printed report shows its summary and note only
_FORMAL_SHOWN = ("note",)


def tidy_summary(text: str) -> str:
    """A checker's summary for print: a range whose ends are equal is one number
    ("1.000-1.000" -> "1.000")."""
    text = re.sub(r"(?<![\d.])(\d+(?:\.\d+)?)-\1(?![\d.])", r"\1", str(text))
    # a SymPy difference printed as code ("lhs - rhs = sa**2*c11 ...") says only that it is
    # not zero; the expression itself is in audit.json
    return re.sub(r"lhs - rhs = [^;)]*(\*\*|\w\*\w)[^;]*?(?=\)?$|;)",
                  "lhs - rhs is not identically 0", text)


def certificate_view(cert: dict) -> dict:
    ev = cert.get("evidence", {})
    if cert["method"] == "formal":
        ev = {k: v for k, v in ev.items() if k in _FORMAL_SHOWN}
    return {"method": cert["method"], "verdict": cert["verdict"],
            "summary": tidy_summary(cert["summary"]), "seconds": cert.get("seconds"),
            **evidence_view(ev, _SHOWN_ELSEWHERE.get(cert["method"], ()))}


def _definition_latex(name, expr) -> str:
    lhs = latex_name(name) if name in REGISTRY else latex_escape(name)
    return rf"{lhs} := {latex(expr)}"


def step_proof_class(res: dict) -> str:
    """How a step is certified: ``formal`` (Coq), ``symbolic only`` (SymPy) or ``numeric only``."""
    verdicts = {c["method"]: c["verdict"] for c in res["certificates"]}
    if verdicts.get("formal") == "pass":
        return "formal"
    if verdicts.get("symbolic") == "pass":
        return "symbolic only"
    return "numeric only"


def formal_view(der, result: dict) -> dict:
    """Per-step "formally proved" entries, the derivation's Coq lemmas and its .v file."""
    rows = []
    for res in result["steps"]:
        cert = next((c for c in res["certificates"] if c["method"] == "formal"), None)
        rows.append({"id": res["id"], "class": step_proof_class(res),
                     "formal": cert["verdict"] if cert else "",
                     "why": cert["summary"] if cert and cert["verdict"] != "pass" else
                     (cert["evidence"].get("script_name", "") if cert else "")})
    f = result.get("formal") or {}
    lemmas = [{"name": lm["name"], "title": lm["title"], "statement": lm["statement_latex"],
               "hypotheses": lm.get("hypotheses_latex", []), "verdict": lm["verdict"],
               "summary": lm["certificate"]["summary"],
               "controls": [{"name": c["name"], "rejected": c["rejected"],
                             "summary": c["certificate"]["summary"]} for c in lm["controls"]]}
              for lm in f.get("lemmas", [])]
    return {"steps": rows, "lemmas": lemmas, "file": f.get("file"), "coqc": f.get("coqc")}


def named_display(lhs, rel, rhs, names=()) -> tuple:
    """A relation for a display with its long sub-expressions named (a derivation's
    ``extra["display_names"]``: ``[(key, tex, sub-expression)]``, smallest first), and the
    names it uses with their definitions ``[(tex, definition display)]``: long formulas are
    named in parts (``where h := ...``), never shrunk."""
    if not names:
        return relation_display(lhs, rel, rhs), []
    (lhs, rhs), defs = name_parts([lhs, rhs], names)
    return (relation_display(lhs, rel, rhs),
            [(tex, relation_display(NamedPart("def", tex), ":=", expr)) for tex, expr in defs])


def derivation_view(der, result: dict, sweep: dict | None, figures: dict) -> dict:
    st = der.statement
    names = tuple(der.extra.display_names)
    statement, where = named_display(st.lhs, st.rel, st.rhs, names)
    used = dict(where)                     # every name of the statement or a step, defined once
    steps = []
    for step, res in zip(der.steps, result["steps"]):
        assert step.id == res["id"], (step.id, res["id"])
        relation, where = named_display(step.lhs, step.rel, step.rhs, names)
        used.update(where)
        steps.append({
            "id": step.id,
            "relation": relation, "where": [tex for tex, _ in where],
            "why_kind": step.why.kind,
            "why": step.why.text,
            "reference": step.why.reference,
            "note": text_or_tex(step.note) if step.note else "",
            "verdict": res["verdict"],
            "formal": next((c["verdict"] for c in res["certificates"] if c["method"] == "formal"), ""),
            "certificates": [certificate_view(c) for c in res["certificates"]],
        })
    controls = []
    for c in result["controls"]:
        controls.append({"name": c["name"], "description": c["description"], "target": c["target"],
                         "rejected": c["rejected"],
                         "by": "; ".join(f"{x['method']} on this wrong statement: {x['verdict']} "
                                         f"({tidy_summary(x['summary'])})"
                                         for x in c["certificates"])})
    e2e = []
    for cert in result["statement"]["certificates"]:
        if cert["method"] == "end_to_end":
            for pt in cert["evidence"].get("points", []):
                e2e.append({"params": params_latex(pt["params"]), **{k: pt.get(k) for k in (
                    "formula", "mean", "se", "z", "detectable_rel", "trials")},
                    "rel_error": (pt["mean"] - pt["formula"]) / pt["formula"] if pt.get("formula") else None})
    conv = []
    for cert in result["statement"]["certificates"]:
        if cert["method"] == "convergence":
            conv = cert["evidence"].get("rows", [])
    sweep_view = None
    if sweep and not sweep.get("error"):
        sweep_view = {"param": latex_name(sweep["param"]) if sweep["param"] in REGISTRY
                      else latex_escape(sweep["param"]),
                      "base": params_latex(sweep["base"]), "trials": sweep["trials"],
                      "max_abs_z": sweep["max_abs_z"], "points": sweep["points"],
                      "beyond": [p[sweep["param"]] for p in sweep["points"] if abs(p["z"]) > 4],
                      "name": sweep["param"]}
    return {
        "id": der.id, "title": der.title, "plain_title": der.plain_title,
        "kind": der.kind, "kind_label": KIND_LABELS.get(der.kind, der.kind),
        "regime": der.regime, "verdict": result["verdict"],
        "steps_ok": result["steps_ok"], "statement_ok": result["statement_ok"],
        "controls_ok": result["controls_ok"],
        "summary": der.summary,
        "assumptions": list(der.assumptions),
        "definitions": [_definition_latex(n, e) for n, e in der.definitions],
        "statement": statement,
        "statement_where": [used[tex] for _, tex, _ in names if tex in used],
        "names_note": der.extra.display_names_note if used else "",
        "conditions": list(st.conditions),
        "statement_certificates": [certificate_view(c) for c in result["statement"]["certificates"]],
        "steps": steps,
        "controls": controls,
        "controls_rejected": sum(c["rejected"] for c in controls),
        "e2e": e2e,
        "convergence": conv,
        "sweep": sweep_view,
        "sweep_error": (sweep or {}).get("error"),
        "figures": figures,
        "references": list(der.references),
        "seconds": result.get("seconds"),
        "cached": result.get("_cached", False),
        "computed": result.get("_computed", {}),
        "steps_passed": sum(s["verdict"] == "pass" for s in result["steps"]),
        "formal": formal_view(der, result),
    }


def notation_view() -> dict:
    groups = {}
    for info in REGISTRY.values():
        shape = "" if info.shape is None else \
            r"{}\times {}".format(*(REGISTRY[s].latex for s in info.shape))
        groups.setdefault(info.group, []).append({"latex": info.latex, "shape": shape,
                                                  "meaning": info.meaning, "name": info.name})
    return {"groups": [{"title": GROUP_TITLES.get(g, g.capitalize()), "rows": rows}
                       for g, rows in groups.items()],
            "operators": [{"latex": a, "meaning": b} for a, b in OPERATORS]}


def provenance_view(prov: dict, cfg) -> dict:
    from derivations.config import describe_defaults

    rows = [{"name": name, "value": _fmt_value(getattr(cfg, name)) if not isinstance(
        getattr(cfg, name), str) else latex_escape(getattr(cfg, name)), "meaning": meaning}
        for name, _, _, meaning in describe_defaults() if hasattr(cfg, name)]
    return {"version": prov.get("project_version", "?"), "git": prov.get("git_revision", "?"),
            "date": prov.get("date", "?"), "device": prov.get("device", "?"),
            "machine": prov.get("machine", "?"),
            "libraries": sorted(prov.get("libraries", {}).items()), "config": rows}
