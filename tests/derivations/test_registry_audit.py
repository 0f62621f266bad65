"""Every derivation of the registry, audited in the quick configuration: every step certified
(or neutral: no Coq, not formalised), the statement certified, every negative control rejected
by a failing check (not by an error).  Parametrised over the registry itself -- no hand-kept id
lists -- and the registry is compared with the theorem modules on disk, so a theorem that
silently drops out of it (a module whose ``DERIVATIONS`` went missing) fails here."""
from pathlib import Path

import pytest

from derivations import registry
from derivations.core import NEUTRAL_VERDICTS  # formal: skipped / not formalised

THEOREMS = Path(__file__).resolve().parents[2] / "derivations" / "theorems"
IDS = list(registry())


def test_every_theorem_module_on_disk_feeds_the_registry():
    on_disk = {f"derivations.theorems.{p.stem}" for p in THEOREMS.glob("*.py")
               if p.name != "__init__.py"}
    assert len(on_disk) >= 10, f"theorem modules not found under {THEOREMS}"
    in_registry = {der.module.__name__ for der in registry().values()}
    assert in_registry == on_disk, {"on disk, no derivation": sorted(on_disk - in_registry)}
    for der in registry().values():
        assert der in der.module.DERIVATIONS


@pytest.mark.parametrize("der_id", IDS)
def test_every_step_and_the_statement_pass(audit_cache, der_id):
    res = audit_cache(der_id)
    bad = [(s.id, c.method, c.summary) for s in res.steps for c in s.certificates
           if c.verdict not in ("pass", *NEUTRAL_VERDICTS)]
    assert not bad, bad
    assert res.statement
    assert all(c.verdict == "pass" for c in res.statement)
    assert res.verdict == "pass"


@pytest.mark.parametrize("der_id", IDS)
def test_every_control_rejected_by_a_failing_check(audit_cache, der_id):
    res = audit_cache(der_id)
    assert res.controls, "a derivation without negative controls"
    missed = [c.name for c in res.controls if not c.rejected]
    assert not missed, f"wrong statements that passed: {missed}"
    errored = [c.name for c in res.controls
               if not any(x.verdict == "fail" for x in c.certificates)]
    assert not errored, f"controls rejected only by an error, not by a failing check: {errored}"


def test_an_unknown_extra_key_is_refused_with_a_suggestion():
    import dataclasses

    from derivations import get
    from derivations.core import EXTRA_KEYS

    der = get("fft_over")
    with pytest.raises(ValueError, match=r"unknown extra key 'truht' \(did you mean 'truth'\?\)"):
        dataclasses.replace(der, extra={"truht": ()})
    # every key a derivation uses is declared, with what reads it
    from derivations import registry

    used = {k for d in registry().values() for k, _ in d.extra.items()}
    assert used <= set(EXTRA_KEYS) and all(len(v) > 20 for v in EXTRA_KEYS.values())


def test_hooks_are_typed_with_their_defaults_and_frozen():
    import dataclasses

    from derivations import get
    from derivations.core import Hooks

    h = Hooks()
    assert h.truth == () and h.truth_statement is True and h.simulate_trials == 20000
    assert h.statement_options == {} and h.chain is None and list(h.items()) == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.truth = ()
    der = get("lora_sharp_over")
    assert isinstance(der.extra, Hooks) and der.extra.truth          # passed as a dict
    assert dict(der.extra.items())["truth"] == der.extra.truth
    assert "simulate_trials" not in dict(der.extra.items())           # default: not listed
    with pytest.raises(TypeError, match="extra must be a dict or Hooks"):
        dataclasses.replace(der, extra=[("truth", ())])
    assert der.extra.need("truth", der.id) is der.extra.truth
    with pytest.raises(KeyError, match=r"lora_sharp_over sets no extra\['fixed_point'\] hook"):
        der.extra.need("fixed_point", der.id)
