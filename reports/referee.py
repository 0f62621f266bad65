"""The referee's comments (seed report, ``../shared/seed/``) and the evidence the report holds.

Evidence is cited only when it exists in *this* report: a plug-in section whose ``compute``
succeeded and returned data, a derivation that declares ``extra["answers"]`` *and* passed its
audit, or the built-in notation table.  Everything else about a comment is listed as open, with
what would answer it.
"""
from __future__ import annotations

from .section import REFEREE_COMMENTS

COMMENTS = {
    "major1": {
        "title": "Major comment 1: covariance--subspace misalignment",
        "quote": ("The risk expressions separate cleanly only when the sample covariance aligns "
                  "with the column space of Delta; the manuscript does not bound the operator-norm "
                  "distance between the covariance and this subspace or quantify the resulting "
                  "additive bias term that LoRA would incur."),
        "would_answer": (r"a bound on the misalignment $\varepsilon(C) = \lVert Q_\perp C Q\rVert_{\mathrm{op}}$ "
                         r"between the (sample) covariance and the top-$r$ row space of $\Delta^*$, and "
                         r"the additive bias $\beta_{\mathrm{mis}}(C) = \mathcal R(A_C) - b_r$ it causes, "
                         r"derived and checked numerically (exact small case, first- and second-order "
                         r"bounds, their tightness)"),
    },
    "major2": {
        "title": "Major comment 2: sensitivity to the rank of the shift",
        "quote": ("The low-rank modeling choice for Delta is presented as sufficient for the "
                  "superiority result, yet no independent verification or sensitivity analysis is "
                  "provided to show that the assumption is not chosen post-hoc."),
        "would_answer": (r"simulations varying the exact rank $s$ of $\Delta^*$ and its effective rank "
                         r"(spectral decay), reporting the LoRA/FFT excess-risk ratio and where the "
                         r"advantage of LoRA ends"),
    },
    "minor1": {
        "title": "Minor comment 1: notation",
        "quote": ("The notation for the pretraining weights and the downstream target could be "
                  "introduced earlier and used consistently when defining excess risk."),
        "would_answer": "one notation table from which every formula in the report is typeset",
    },
    "minor2": {
        "title": "Minor comment 2: spectra of real-task weight differences",
        "quote": ("It would help to report how closely the real-task weight differences approximate "
                  "the low-rank assumption (e.g., via singular-value spectra)."),
        "would_answer": (r"the singular-value spectra of $W_{\mathrm{ft}} - W_0$ for real fine-tuned "
                         r"checkpoints (per layer, for the tasks of the paper's experiments), with "
                         r"effective ranks (the paper's own checkpoints are not available here; "
                         r"\texttt{lora-audit spectra} measures any pair of checkpoints)"),
    },
    "falsification": {
        "title": "The seed's falsification test",
        "quote": ("In a controlled linear regression experiment where the optimal parameter shift "
                  "is known to be low-rank, does full fine-tuning show lower test error than LoRA "
                  "across multiple random seeds?"),
        "would_answer": (r"a controlled experiment with a known low-rank $\Delta^*$: LoRA and FFT "
                         r"excess risk simulated across seeds, reporting in how many seeds FFT beats "
                         r"LoRA"),
    },
}
assert tuple(COMMENTS) == REFEREE_COMMENTS


def referee_view(sections: list[dict], derivations: list[dict], der_answers: dict,
                 partial: bool = False) -> list[dict]:
    """``sections``: [{"id", "title", "answers", "ok", "error"}]; ``derivations``: views with
    ``id``/``verdict``/``title``; ``der_answers``: {der_id: {comment: sentence}}.  In a
    ``partial`` report (``--only``) a section's evidence may rest on derivations audited only in
    the full report: each answer then says so."""
    out = []
    for cid, c in COMMENTS.items():
        evidence, caveats, remains = [], [], []
        if cid == "minor1":
            evidence.append({"text": (r"Every symbol is declared once in the symbol registry "
                                      r"of the project; the notation table is generated "
                                      r"from it and every formula of this report is printed from the same "
                                      r"registry, so $W_0$, $W^* = W_0 + \Delta^*$ and the excess risk "
                                      r"$\mathcal R$ are introduced once and used consistently."),
                             "ref": "sec:notation"})
        for sec in sections:
            if cid not in sec["answers"]:
                continue
            if sec["ok"]:
                evidence.append({"text": sec["answers"][cid], "ref": f"sec:{sec['id']}"})
                if sec.get("answers_open", {}).get(cid):
                    remains.append(sec["answers_open"][cid])
                if sec.get("verdict") == "fail":
                    caveats.append(f"section {sec['id']} reports failing checks")
            else:
                caveats.append(f"section {sec['id']} was meant to address this but its computation "
                               f"failed ({sec.get('error_line', 'error')}); it is not cited")
        for der in derivations:
            sentence = der_answers.get(der["id"], {}).get(cid)
            if sentence is None:
                continue
            if der["verdict"] == "pass":
                evidence.append({"text": sentence, "ref": f"der:{der['id']}"})
            else:
                caveats.append(f"derivation {der['id']} bears on this comment but did not pass "
                               f"its audit; it is not cited as evidence")
        if partial and any(e["ref"].startswith("sec:") and e["ref"] != "sec:notation"
                           for e in evidence):
            caveats.append("partial report (--only): the sections cited here refer to derivations "
                           "that this report may not audit; the full report certifies them")
        status = ("answered in part" if remains else "answered") if evidence else "open"
        out.append({"id": cid, "title": c["title"], "quote": c["quote"], "status": status,
                    "evidence": evidence, "caveats": caveats, "would_answer": c["would_answer"],
                    "remains_open": remains})
    return out
