"""The formal (Coq) checker: pass on true goals, refutation of wrong ones, skipped without Coq,
the Print Assumptions gate, and the negative controls of symbolic steps."""
import pytest
import sympy as sp

from derivations import formal, get
from derivations.audit import audit_control, audit_step, step_checks
from derivations.results import step_verdict
from derivations.core import Certificate
from symbolic.ops import Frob2
from symbolic.registry import sym

d, n, k = sym("d"), sym("n"), sym("k")
HYP = (sp.Gt(n, d + 1),)

CLOSED = "Closed under the global context\n"
STANDARD = """Axioms:
ClassicalDedekindReals.sig_not_dec : forall P : Prop, {~ ~ P} + {~ P}
ClassicalDedekindReals.sig_forall_dec
  : forall P : nat -> Prop,
    (forall n : nat, {P n} + {~ P n}) ->
    {n : nat | ~ P n} + {forall n : nat, P n}
FunctionalExtensionality.functional_extensionality_dep
  : forall (A : Type) (B : A -> Type) (f g : forall x : A, B x),
    (forall x : A, f x = g x) -> f = g
"""
PRIMITIVE = STANDARD + """Classical_Prop.classic : forall P : Prop, P \\/ ~ P
PrimFloat.sqrt : PrimFloat.float -> PrimFloat.float
my_lemma : 1 = 1
"""


# ------------------------------------------------------------------- Print Assumptions parsing
def test_parse_assumptions_closed_and_standard():
    assert formal.parse_assumptions(CLOSED) == []
    names = formal.parse_assumptions(STANDARD)
    assert names == ["ClassicalDedekindReals.sig_not_dec", "ClassicalDedekindReals.sig_forall_dec",
                     "FunctionalExtensionality.functional_extensionality_dep"]
    assert formal.nonstandard_axioms(names) == []


def test_parse_assumptions_flags_everything_else():
    names = formal.parse_assumptions(PRIMITIVE)
    assert formal.nonstandard_axioms(names) == ["Classical_Prop.classic", "PrimFloat.sqrt", "my_lemma"]


# ----------------------------------------------------------------------- verdict bookkeeping
def _c(v):
    return Certificate("x", v, {}, 0.0, "")


def test_neutral_verdicts_neither_certify_nor_fail():
    assert step_verdict([_c("pass"), _c("skipped")]) == "pass"
    assert step_verdict([_c("pass"), _c("not formalised")]) == "pass"
    assert step_verdict([_c("skipped")]) == "fail"             # nothing certified it
    assert step_verdict([_c("pass"), _c("error")]) == "fail"
    assert step_verdict([_c("pass"), _c("fail")]) == "fail"


def test_formal_is_added_wherever_symbolic_applies():
    der = get("fft_over")
    assert step_checks(der.step("assemble")) == ("symbolic", "formal")
    assert step_checks(der.step("trace")) == ("hp",)


def test_hypotheses_come_from_registry_and_declared_assumptions():
    g = formal.make_goal("g", sp.Eq(d / (n - d - 1), d / (n - d - 1), evaluate=False), HYP)
    prop = g.prop()
    assert "1 <= d" in prop and "1 <= n" in prop and "n > d + 1" in prop
    assert "(- d + n - 1) <> 0" in g.domain_prop()


def test_unprintable_goal_is_not_formalised_with_the_reason():
    M = sp.MatrixSymbol("M", 2, 2)
    g = formal.make_goal("g", sp.Eq(Frob2(M), Frob2(M), evaluate=False))
    assert g.error and "Frob2" in g.error
    res = formal.prove_goals([g], "t")["results"]["g"]
    assert res["status"] in ("not formalised", "skipped")


# -------------------------------------------------------------------------- without Coq
@pytest.mark.parametrize("how", ["env", "path"])
def test_skipped_without_coqc(monkeypatch, capsys, tmp_path, how):
    if how == "env":
        monkeypatch.setenv("LORA_AUDIT_COQC", "")
    else:
        monkeypatch.delenv("LORA_AUDIT_COQC", raising=False)
        monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(formal, "_NOTICE_SHOWN", False)
    assert formal.coqc_path() is None and formal.coq_version() is None
    der = get("fft_over")
    from derivations.checkers.formal import check_formal

    cert = check_formal(der.step("assemble"), der, None)
    assert cert.verdict == "skipped" and cert.verdict != "pass"
    err = capsys.readouterr().err
    assert err.count("coqc not found") == 1 and len(err.strip().splitlines()) == 1
    res = audit_step(der.step("assemble"), der, None)
    assert res.verdict == "pass"      # symbolic still certifies it; formal is neutral
    assert [c.verdict for c in res.certificates] == ["pass", "skipped"]


# ----------------------------------------------------------------------------- with Coq
@pytest.mark.coq
def test_true_goal_is_proved_with_its_domain():
    # unevaluated, so that SymPy does not cancel the quotient before Coq sees it
    lhs = sp.Mul(d / (n - d - 1), n - d - 1, evaluate=False)
    g = formal.make_goal("true_goal", sp.Eq(lhs, d, evaluate=False), HYP)
    batch = formal.prove_goals([g], "t_true")
    res = batch["results"]["true_goal"]
    assert res["status"] == "proved", res
    assert res["domain_lemma"] == "true_goal_domain"
    assert formal.nonstandard_axioms(res["assumptions"]) == []
    assert "Lemma true_goal :" in batch["text"] and "Admitted" not in batch["text"]
    cert = formal.certificate(res, batch["coqc"], batch["file"])
    assert cert.verdict == "pass" and cert.evidence["goal_hash"] == g.statement_hash()
    assert cert.evidence["coqc"].startswith("8.") and cert.evidence["script"]


@pytest.mark.coq
def test_true_goal_without_its_side_condition_is_not_a_pass():
    # without n > d + 1 the denominator may vanish: never certified
    lhs = sp.Mul(d / (n - d - 1), n - d - 1, evaluate=False)
    g = formal.make_goal("no_side", sp.Eq(lhs, d, evaluate=False))
    res = formal.prove_goals([g], "t_noside")["results"]["no_side"]
    assert res["status"] != "proved"


@pytest.mark.coq
def test_wrong_goal_is_refuted_at_a_counterexample():
    g = formal.make_goal("wrong_goal", sp.Eq(d / (n - d), d / (n - d - 1), evaluate=False), HYP)
    batch = formal.prove_goals([g], "t_wrong")
    res = batch["results"]["wrong_goal"]
    assert res["status"] == "refuted", res
    assert "wrong_goal_refuted" in batch["text"]
    assert formal.certificate(res, batch["coqc"], batch["file"]).verdict == "fail"


@pytest.mark.coq
def test_proof_with_nonstandard_axioms_is_rejected():
    # the interval tactic's proofs rest on Coq's primitive-float axioms: not a formal pass
    g = formal.make_goal("interval_goal", sp.Lt(sp.sqrt(2), sp.Rational(3, 2), evaluate=False),
                         scripts=(("interval only", "interval"),))
    res = formal.prove_goals([g], "t_axioms")["results"]["interval_goal"]
    assert res["status"] == "not formalised", res
    assert "axioms beyond" in res["reason"]


@pytest.mark.coq
def test_admitted_proof_is_never_a_pass():
    g = formal.make_goal("admitted_goal", sp.Eq(d, d + 1, evaluate=False),
                         scripts=(("admit", "admit"),))
    res = formal.prove_goals([g], "t_admit")["results"]["admitted_goal"]
    assert res["status"] not in ("proved",)


@pytest.mark.coq
def test_results_are_cached_by_goal_hash(monkeypatch):
    g = formal.make_goal("cached_goal", sp.Eq((n - d) / (n - d), 1, evaluate=False), HYP)
    first = formal.prove_goals([g], "t_cache")
    calls = []
    monkeypatch.setattr(formal, "_run_coqc", lambda *a, **k: calls.append(1) or (1, ""))
    assert formal.prove_goals([g], "t_cache") == first and not calls


@pytest.mark.coq
def test_controls_of_symbolic_steps_make_formal_fail(quick_cfg):
    der = get("fft_under_general")
    formal.prepare(der, quick_cfg)
    res = audit_step(der.step("isotropic-bias"), der, quick_cfg)
    assert {c.method: c.verdict for c in res.certificates}["formal"] == "pass"
    ctl = next(c for c in der.controls if c.target == "isotropic-bias")
    out = audit_control(ctl, der, quick_cfg)
    verdicts = {c.method: c.verdict for c in out.certificates}
    assert out.rejected and verdicts["formal"] == "fail" and verdicts["symbolic"] == "fail"


@pytest.mark.coq
@pytest.mark.slow
@pytest.mark.parametrize("der_id", ["lora_sharp_over", "misalign_exact"])
def test_every_control_on_a_symbolic_step_is_refuted_in_coq(quick_cfg, der_id):
    der = get(der_id)
    batch = formal.prepare(der, quick_cfg)
    targets = {s.id for s in formal.formal_targets(der)}
    # controls that change a side (a wrong statement); a control that only changes another
    # checker's options (e.g. the rank rule's threshold) leaves the algebra true
    controls = [c for c in der.controls if c.target in targets
                and (c.lhs is not None or c.rhs is not None)]
    assert controls
    for c in controls:
        res = batch["results"][batch["index"][("control", c.name)]]
        assert res["status"] == "refuted", (c.name, res)


@pytest.mark.coq
@pytest.mark.slow
def test_named_lemmas_proved_and_their_controls_refuted():
    from derivations.formal_lemmas import LEMMAS

    goals = []
    for lem in LEMMAS:
        goals.append(lem.goal())
        goals.extend(g for _, g in lem.control_goals())
    res = formal.prove_goals(goals, "t_lemmas")["results"]
    for lem in LEMMAS:
        assert res[lem.name]["status"] == "proved", (lem.name, res[lem.name])
        for _, g in lem.control_goals():
            assert res[g.name]["status"] == "refuted", (g.name, res[g.name])
