"""Coq speed-ups that must not change a verdict: tactic-script hints (they only choose what
coqc compiles first; a stale or wrong hint falls back to the full search) and the single
``Print Assumptions`` of the union of a file's lemmas (per lemma when the union is not standard)."""
import pytest
import sympy as sp

from derivations import formal, registry
from derivations.formal_lemmas import lemmas_for
from symbolic.registry import sym

d, n = sym("d"), sym("n")
HYP = (sp.Gt(n, d + 1),)


@pytest.fixture
def fresh(monkeypatch):
    """No cached batches, no hints learned in this process; coqc runs counted."""
    monkeypatch.setattr(formal, "_MEMO", {})
    monkeypatch.setattr(formal, "_LEARNED", {})
    monkeypatch.delenv("LORA_AUDIT_COQ_CACHE", raising=False)
    calls = []
    real = formal._run_coqc

    def counted(text, *a, **k):
        calls.append(text)
        return real(text, *a, **k)

    monkeypatch.setattr(formal, "_run_coqc", counted)
    return calls


def _true_goal(name="hinted_true"):
    lhs = sp.Mul(d / (n - d - 1), n - d - 1, evaluate=False)
    return formal.make_goal(name, sp.Eq(lhs, d, evaluate=False), HYP,
                            scripts=(("lra only", "lra"),))


def _hint_for(goal, status, sname, script):
    return {goal.statement_hash(): {"status": status, "script_name": sname,
                                    "script_sha": formal._script_sha(script)}}


def test_hinted_script_must_match_the_current_script_list_verbatim():
    g = _true_goal()
    assert formal._hinted_script(g, {"status": "proved", "script_name": "field",
                                     "script_sha": formal._script_sha("fp_field")}) == ("field", "fp_field")
    assert formal._hinted_script(g, {"status": "proved", "script_name": "field",
                                     "script_sha": formal._script_sha("fp_field; lra")}) is None
    assert formal._hinted_script(g, {"status": "refuted", "script_name": "field",
                                     "script_sha": formal._script_sha("fp_field")}) is None
    assert formal._hinted_script(g, None) is None


@pytest.mark.coq
def test_hint_skips_the_search_and_gives_the_searched_result(fresh, monkeypatch):
    g = _true_goal()
    searched = formal.prove_goals([g], "t_h", use_hints=False)
    assert searched["results"][g.name]["status"] == "proved"
    assert searched["results"][g.name]["script_name"] == "field"
    assert len(fresh) == 2                          # search + final file
    monkeypatch.setattr(formal, "_MEMO", {})        # learned hint kept, cached batch dropped
    fresh.clear()
    hinted = formal.prove_goals([g], "t_h")
    assert len(fresh) == 1 and "Lemma hinted_true :" in fresh[0]   # only the final file
    assert hinted == searched


@pytest.mark.coq
def test_stale_hint_falls_back_to_the_full_search(fresh, monkeypatch):
    # the hint names a script of the list that does not prove the goal: the final file fails,
    # the batch is searched again without hints, and the goal is still proved (by field)
    g = _true_goal("stale_hint")
    monkeypatch.setattr(formal, "_LEARNED", _hint_for(g, "proved", "lra only", "lra"))
    res = formal.prove_goals([g], "t_stale")["results"][g.name]
    assert res["status"] == "proved" and res["script_name"] == "field"
    assert len(fresh) == 3                          # hinted final (fails), search, final


@pytest.mark.coq
def test_a_hint_never_proves_a_wrong_goal(fresh, monkeypatch):
    wrong = formal.make_goal("hint_wrong", sp.Eq(d / (n - d), d / (n - d - 1), evaluate=False),
                             HYP)
    monkeypatch.setattr(formal, "_LEARNED", _hint_for(wrong, "proved", "field", "fp_field"))
    res = formal.prove_goals([wrong], "t_hw")["results"]["hint_wrong"]
    assert res["status"] == "refuted", res
    # and a "refuted" hint on a true goal cannot refute it: the search runs again, it is proved
    true = _true_goal("hint_true_refuted")
    monkeypatch.setattr(formal, "_LEARNED", _hint_for(true, "refuted", "x", "lra"))
    res = formal.prove_goals([true], "t_ht")["results"][true.name]
    assert res["status"] == "proved", res


@pytest.mark.coq
def test_union_of_assumptions_falls_back_per_lemma_when_not_standard(fresh):
    # one lemma needs the interval tactic's primitive-float axioms: the union is not standard,
    # so the file is re-run lemma by lemma and only that lemma is refused
    bad = formal.make_goal("union_interval", sp.Lt(sp.sqrt(2), sp.Rational(3, 2), evaluate=False),
                           scripts=(("interval only", "interval"),))
    good = _true_goal("union_true")
    batch = formal.prove_goals([bad, good], "t_union", use_hints=False)
    assert batch["results"]["union_interval"]["status"] == "not formalised"
    assert "axioms beyond" in batch["results"]["union_interval"]["reason"]
    ok = batch["results"]["union_true"]
    assert ok["status"] == "proved" and formal.nonstandard_axioms(ok["assumptions"]) == []
    assert ok["assumptions_scope"].startswith("this lemma")
    assert "Print Assumptions union_true." in batch["text"]


def test_committed_hints_cover_every_proved_registry_goal():
    """Every hint names a script the goal's list still contains (else it is dead weight and the
    audit pays the full search): regenerate with ``python3 -m derivations.formal --learn-hints``."""
    hints = formal.load_hints()
    assert hints
    seen = 0
    for der in registry().values():
        goals, _ = formal.derivation_goals(der, lemmas_for(der.id))
        for g in goals:
            h = hints.get(None if g.error else g.statement_hash())
            if h and h["status"] == "proved":
                assert formal._hinted_script(g, h) is not None, (der.id, g.name)
                seen += 1
    assert seen >= 20
