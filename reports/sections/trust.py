"""Report section: how far to trust this audit (issue 13).

Three kinds of evidence, all computed elsewhere and only collected here:

* the project's own mutation suite (``lora-audit mutate``, ``derivations.mutate``): the catch
  rate of planted errors, every survivor, the mutants listed as equivalent with their reasons,
  and the false-alarm rate of the unmutated audit over seeds -- read from the results JSON the
  command writes (``out/mutation/results.json`` and ``out/mutation/baseline.json`` beside the
  report's folder); when they are absent the section says so and names the command;
* the integrity certificates of this build's audit (generic check points, code tied to SymPy,
  statements derived by their steps), per derivation;
* the smallest relative error each Monte Carlo or convergence check of this build could have
  detected (its resolution), read from the certificates.
"""
from __future__ import annotations

import json
from pathlib import Path

from reports.section import Section

SID = "trust"
MC_METHODS = ("mc", "end_to_end", "bound_e2e", "two_sample", "pieces_mc", "value_e2e")


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mutation(folder: Path) -> dict:
    res = _load(folder / "results.json")
    base = _load(folder / "baseline.json")
    conf = ((res or {}).get("provenance") or {}).get("config", {})
    sample = f" --sample {conf['sample']} --seed {conf.get('sample_seed', 0)}" \
        if conf.get("sample") else ""
    out = {"available": res is not None, "folder": str(folder),
           "command": f"lora-audit mutate{sample}{'' if conf.get('quick', True) else ' --full'}",
           "revision": ((res or {}).get("provenance") or {}).get("git_revision"),
           "baseline_command": "lora-audit mutate --no-mutants --full --baseline-seeds 10 "
                               "--json out/mutation/baseline.json"}
    if res is not None:
        s = res["summary"]
        crashed = s["by_status"].get("crashed", 0)
        judged = s["judged"]
        out.update({
            "partial": bool(res.get("partial")), "mutants": s["mutants"], "judged": judged,
            "killed": s["killed"], "equivalent": s["equivalent"], "catch_rate": s["catch_rate"],
            "by_status": [{"status": k, "count": v} for k, v in sorted(s["by_status"].items())],
            "catch_rate_without_crashes": ((s["killed"] - crashed) / (judged - crashed)
                                           if judged > crashed else None),
            "generated": (res.get("provenance") or {}).get("config", {}).get("generated"),
            "date": (res.get("provenance") or {}).get("date"),
            "survivors": [{"id": r["mutant"]["id"], "line": r["mutant"]["line"],
                           "change": f"{r['mutant']['original']} -> {r['mutant']['replacement']}"}
                          for r in s["survivors"]],
            "equivalents": [{"id": r["mutant"]["id"], "reason": r["reason"]}
                            for r in s["equivalent_mutants"]],
            "caught_by": _caught_by(res["results"]),
            "note": res.get("note", ""),
        })
    b = (base or {}).get("summary", {}).get("baseline") or (res or {}).get("summary", {}).get(
        "baseline")
    out["baseline"] = None if not b else {"seeds": len(b["runs"]),
                                           "false_alarms": b["false_alarms"],
                                           "rate": b["false_alarm_rate"],
                                           "failed": [f"seed {r['seed']}: {', '.join(r['failed'])}"
                                                      for r in b["runs"] if r["failed"]],
                                           "note": (base or {}).get("note", ""),
                                           "mode": "quick" if ((base or res or {}).get(
                                               "provenance") or {}).get("config", {}).get(
                                               "quick", True) else "full",
                                           "revision": ((base or res or {}).get("provenance")
                                                        or {}).get("git_revision")}
    return out


def _caught_by(rows) -> list[dict]:
    """Which kind of check rejected the killed mutants (integrity, step, statement, control)."""
    counts: dict = {}
    for r in rows:
        if r["status"] != "killed":
            continue
        where = (r.get("caught_by") or "").split(": ", 1)[-1]
        kind = where.split(" ")[0] if where else "other"
        key = f"{kind} {where.split(' ')[1]}" if kind == "integrity" and " " in where else kind
        counts[key] = counts.get(key, 0) + 1
    return [{"where": k, "count": v} for k, v in sorted(counts.items(), key=lambda t: -t[1])]


def _resolution(ctx) -> list[dict]:
    rows = []
    for der_id, res in ctx.audit.get("derivations", {}).items():
        certs = [("statement", c) for c in res["statement"]["certificates"]]
        certs += [(f"step {s['id']}", c) for s in res["steps"] for c in s["certificates"]]
        for where, c in certs:
            ev = c.get("evidence", {})
            if c["method"] in MC_METHODS and "mc_max_detectable_rel" in ev:
                # value_e2e with an exact row: the exact comparison and the held-out Monte Carlo
                rows.append({"derivation": der_id, "check": where + " (exact value)",
                             "method": c["method"], "detectable": ev["max_detectable_rel"]})
                rows.append({"derivation": der_id, "check": where + " (held-out Monte Carlo)",
                             "method": c["method"], "detectable": ev["mc_max_detectable_rel"]})
            elif c["method"] in MC_METHODS and "max_detectable_rel" in ev:
                rows.append({"derivation": der_id, "check": where, "method": c["method"],
                             "detectable": ev["max_detectable_rel"]})
            elif c["method"] in ("convergence", "spiked"):
                res_ = ev.get("resolution")
                if res_ is None and ev.get("points"):
                    res_ = max(p.get("resolution", 0) for p in ev["points"])
                if res_ is not None:
                    rows.append({"derivation": der_id, "check": where, "method": c["method"],
                                 "detectable": res_})
    return rows


def _integrity(ctx) -> list[dict]:
    rows = []
    for der_id, res in ctx.audit.get("derivations", {}).items():
        certs = {c["method"]: c for c in res.get("integrity", [])}
        g, t, ch, hm = (certs.get(k, {}) for k in ("generic_points", "source_of_truth", "chain",
                                                   "homogeneity"))
        relations = hm.get("evidence", {}).get("relations", [])
        rows.append({"derivation": der_id,
                     "generic": len(g.get("evidence", {}).get("rules", [])),
                     "generic_ok": g.get("verdict") in ("pass", "waived"),
                     "waived": [k for k, c in certs.items() if c.get("verdict") == "waived"],
                     "truths": len(t.get("evidence", {}).get("pairs", [])),
                     "truth_ok": t.get("verdict") in ("pass", "waived"),
                     "truth_note": "no closed form" if "no_closed_form" in t.get("evidence", {})
                     else "",
                     "chain": ("exempt" if "exempt" in ch.get("evidence", {}) else
                               "steps " + str(len(ch["evidence"]["chain"]))
                               if "chain" in ch.get("evidence", {}) else
                               "step " + str(ch.get("evidence", {}).get("step", "?"))),
                     "chain_ok": ch.get("verdict") in ("pass", "waived"),
                     "homogeneous": f"{sum(r['measured'] for r in relations)}/{len(relations)}",
                     "homogeneity_ok": hm.get("verdict") in ("pass", "waived")})
    return rows


RECORDED = Path(__file__).resolve().parent.parent / "data" / "mutation"


def compute(ctx) -> dict:
    # a run of `lora-audit mutate` beside the report wins; else the recorded run committed with
    # the code (reports/data/mutation/, labelled as such in the report)
    folder = Path(ctx.out_dir).resolve().parent / "mutation"
    recorded = not (folder / "results.json").is_file() and (RECORDED / "results.json").is_file()
    if recorded:
        folder = RECORDED
    res = _resolution(ctx)
    data = {"mutation": {**_mutation(folder), "recorded": recorded}, "resolution": sorted(res, key=lambda r: -r["detectable"]),
            "integrity": _integrity(ctx), "quick": ctx.quick,
            "worst_detectable": max((r["detectable"] for r in res), default=None)}
    data["verdict"] = "pass" if all(r["generic_ok"] and r["truth_ok"] and r["chain_ok"]
                                    and r["homogeneity_ok"] for r in data["integrity"]) else "fail"
    return data


SECTION = Section(
    id=SID, title="How far to trust this audit", order=90, compute=compute,
    template="sections/trust.tex.j2",
    sources=("derivations.mutate", "derivations.integrity"),
    answers={})
