"""The mutation suite (``lora-audit mutate``): generation is systematic and deterministic, and a
small fixed sample of planted errors -- one per kind of blind spot the suite was built
against -- is rejected while the unmutated tree is certified (no false alarm).  The full suite
is a command (README: "How far to trust this audit"); CI runs only this sample."""
import json

import pytest

from derivations import mutate
from derivations.cli import main

# (file, function, operator, original text): stable under edits elsewhere in the files
SAMPLE = [
    # a dimension swapped in the numeric formula only
    ("derivations/theorems/fft_over.py", "formula", "swap-dim", "p.n"),
    # an off-by-one made consistently in the statement and its assembly step
    ("derivations/theorems/fft_over.py", "<module>", "drop-right", "n - d - 1"),
    # a factor squared where sigma = 1 would hide it
    ("derivations/theorems/fft_over.py", "<module>", "square", "sigma ** 2 * k"),
    # a constant of a valid bound changed in the numeric code (8 r -> 9 r)
    ("numeric/lora_bounds.py", "<module>", "const+1", "8"),
    # a per-component cost of the sharp risk (below the convergence gate's resolution)
    ("numeric/sharp.py", "_keep_split", "const+1", "1"),
    # the leading coefficient of the misalignment series in the numeric code
    ("numeric/misalignment.py", "leading_coefficient_2x2", "const+1", "2"),
    # a quantity only the report shows (the tail energy below which the bound beats FFT)
    ("numeric/sample_misalignment.py", "fft_threshold_tail", "swap-dim", "k"),
    # a case split of what evaluate prints (the 2 x 2 leading coefficient then never shown)
    ("numeric/misalignment.py", "point_summary", "swap-dim", "p.d"),
]


def _pick(mutants, file, function, op, original):
    for m in mutants:
        if (m.file, m.function, m.op, m.original) == (file, function, op, original):
            return m
    raise AssertionError(f"no mutant {file}:{function} {op} {original!r}")


def test_generation_is_systematic_and_deterministic():
    ms = mutate.generate()
    assert len(ms) >= 60 and len({m.id for m in ms}) == len(ms)
    assert {"const+1", "const-1", "op-swap", "drop-left", "drop-right", "square", "neg-drop",
            "swap-dim", "method-swap", "swap-sym", "call-drop"} <= {m.op for m in ms}
    # the sample-covariance bounds and the fast estimator path are mutated too
    assert {"numeric/sample_misalignment.py", "numeric/samplers.py"} <= {m.file for m in ms}
    assert {m.file.split("/")[0] for m in ms} == {"derivations", "numeric"}
    assert [m.id for m in mutate.sample(ms, 60, seed=1)] == [m.id for m in mutate.sample(ms, 60, 1)]
    assert len(mutate.sample(ms, 60, seed=1)) == 60
    # the audit's own code (controls, check-point tables) is never mutated
    assert not any("Control(" in m.original or m.function.startswith("validate") for m in ms)


def test_affected_derivations_follow_imports():
    assert mutate.affected_derivations("derivations/theorems/fft_over.py") == ["fft_over",
                                                                               "lora_bound_over",
                                                                               "lora_bound_under"]
    assert set(mutate.affected_derivations("numeric/sharp.py")) >= {"lora_sharp_over",
                                                                  "lora_sharp_under"}


@pytest.mark.slow
def test_fixed_sample_is_rejected_and_baseline_certified(tmp_path):
    ms = mutate.generate()
    rows = []
    for spec in SAMPLE:
        m = _pick(ms, *spec)
        ids = mutate.affected_derivations(m.file)
        res = mutate.run_mutant(m, ids, quick=True, seed=0, timeout=600)
        rows.append((m.id, res["status"], res.get("caught_by")))
    survivors = [r for r in rows if r[1] != "killed"]
    assert not survivors, survivors
    base = mutate.run_baseline([0], quick=True, ids=["fft_over", "misalign_exact"])
    assert base[0]["status"] == "survived" and not base[0]["failed"], base


def test_cli_list_and_bad_input(tmp_path, capsys):
    assert main(["mutate", "--list", "--sample", "5", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "5 of" in out
    assert main(["mutate", "--sample", "0"]) == 2
    assert "--sample must be positive" in capsys.readouterr().err
    # shards of one sample partition it
    lists = []
    for k in range(3):
        assert main(["mutate", "--list", "--sample", "10", "--shard", f"{k}/3"]) == 0
        lists.append([ln.split()[0] for ln in capsys.readouterr().out.splitlines()[:-1]])
    assert main(["mutate", "--list", "--sample", "10"]) == 0
    whole = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()[:-1]]
    assert sorted(sum(lists, [])) == sorted(whole) and len(whole) == 10
    assert main(["mutate", "--list", "--shard", "3/3"]) == 2
    assert "--shard" in capsys.readouterr().err


def test_summary_counts_equivalents_apart(monkeypatch):
    rows = [{"mutant": {"id": "a"}, "status": "killed"}, {"mutant": {"id": "b"}, "status": "survived"},
            {"mutant": {"id": "c"}, "status": "survived"}]
    monkeypatch.setattr(mutate, "EQUIVALENT", {"c": "a looser constant in a valid bound"})
    s = mutate.summarize_results(rows, [{"seed": 0, "status": "survived", "failed": []}])
    assert s["judged"] == 2 and s["killed"] == 1 and s["catch_rate"] == 0.5
    assert [r["mutant"]["id"] for r in s["survivors"]] == ["b"] and s["equivalent"] == 1
    assert s["baseline"]["false_alarms"] == 0
    json.dumps(s)


def test_merge_joins_parts_of_one_run(tmp_path):
    def part(ids, status, baseline=None):
        rows = [{"mutant": {"id": i}, "status": status} for i in ids]
        return {"provenance": {"date": "x"}, "summary": mutate.summarize_results(rows, baseline),
                "results": rows}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(part(["m1", "m2"], "killed")))
    b.write_text(json.dumps(part(["m2", "m3"], "survived",
                                 [{"seed": 0, "status": "survived", "failed": []}])))
    c = tmp_path / "c.json"
    c.write_text(json.dumps(part([], "killed", [{"seed": 1, "status": "survived",
                                                  "failed": ["x"]}])))
    merged = mutate.merge_results([a, b, c])
    s = merged["summary"]
    assert s["mutants"] == 3 and s["killed"] == 2
    # the baselines of parts join by seed: seed 1 failed in its part
    assert s["baseline"]["seeds"] == [0, 1] and s["baseline"]["false_alarms"] == 1
    assert main(["mutate", "--merge", str(a), str(b), "--json", str(tmp_path / "m.json")]) == 0


def test_symbol_swaps_and_dropped_calls_are_valid_code():
    """A swapped symbol is always one the file itself uses (the mutant runs, it does not just
    crash), and a dropped sqrt/exp keeps the argument."""
    ms = mutate.generate(files=("derivations/theorems/misalign_sample.py",))
    text = (mutate.ROOT / "derivations/theorems/misalign_sample.py").read_text()
    swaps = [m for m in ms if m.op == "swap-sym"]
    assert swaps and all(m.replacement.strip("()") in text for m in swaps)
    assert any(m.original == "s_r1" and m.replacement == "(s_r)" for m in swaps)
    drops = [m for m in ms if m.op == "call-drop"]
    assert any(m.original.startswith("sp.exp(") for m in drops)
    for m in swaps[:5] + drops[:5]:
        compile(m.apply(text), "mutant", "exec")


def test_every_listed_equivalent_is_a_generated_mutant():
    """A key of EQUIVALENT that no longer names a mutant (its code changed) is stale: the
    classification it carried must be redone, not silently kept."""
    ids = {m.id for m in mutate.generate()}
    stale = sorted(set(mutate.EQUIVALENT) - ids)
    assert not stale, stale


def test_the_audits_own_code_is_not_mutated_but_the_mathematics_is():
    ms = mutate.generate()
    where = {(m.file, m.function.split(".")[0]) for m in ms}
    # the checkers live in their own package, never a target
    assert not any(m.file.startswith("derivations/checkers/") for m in ms)
    audit_code = [
        ("derivations/theorems/mc_samplers.py", "_wrong_dof"),       # a control's variant
        ("derivations/theorems/misalign_bounds.py", "_k_below_1"),   # a region predicate
        ("derivations/theorems/misalign_bounds.py", "_K_summary"),   # used by predicates only
        ("derivations/theorems/lora_sharp.py", "_regions"),          # a factory of predicates
        ("derivations/theorems/lora_sharp.py", "_components"),       # used by it only
        ("derivations/theorems/misalign_growth.py", "params"),       # a check-point table
        ("derivations/theorems/misalign_sample.py", "bias_points"),
    ]
    assert not [c for c in audit_code if c in where]
    mathematics = [
        ("derivations/theorems/misalign_growth.py", "_bound_value"),
        ("derivations/theorems/lora_sharp.py", "_weighted_sv"),
        ("derivations/theorems/misalign_exact.py", "<module>"),
        ("numeric/samplers.py", "risks"),
    ]
    assert not [c for c in mathematics if c not in where]


def test_audit_code_closure_on_a_small_module():
    text = """
@checker("x")
def check_x(step, der, cfg):
    return _helper(2) + shared(3)

def _helper(v):
    return v + 1

def shared(v):
    return v * 2

def formula(p):
    return shared(p) - 1

TABLE = {"a": 1}
"""
    names = mutate.audit_code_names(text, {"points"})
    assert {"check_x", "_helper"} <= names      # the checker and what only it uses
    assert "shared" not in names and "formula" not in names   # also used by the mathematics
    assert "TABLE" not in names                 # module level is never presumed audit code


def test_squared_projections_are_equivalent_and_the_names_are_projections():
    from derivations.theorems import misalign_sample as ms_mod
    from symbolic.ops import PInv, TruncSVD

    defs = dict(ms_mod.DEFS)
    assert isinstance(defs["Q"].args[0], PInv) and isinstance(defs["Q"].args[1], TruncSVD)
    assert defs["Qperp"] == ms_mod.Id - ms_mod.Q
    ms = mutate.generate(files=("derivations/theorems/misalign_sample.py",))
    sq = [m for m in ms if m.op == "square"]
    proj = [m for m in sq if m.replacement.endswith("* (Qperp) ** 2)")
            or m.replacement.endswith("* (Q) ** 2)")]
    assert proj and all(mutate.equivalent_reason(m) for m in proj)
    other = [m for m in sq if m not in proj]
    assert other and not any(mutate.equivalent_reason(m) for m in other)
    # P is X X^+ wherever a derivation defines it (so P and I - P are projections)
    from derivations import registry
    from derivations.common import X
    from symbolic.ops import PInv as PI

    defined = [dict(der.definitions)["P"] for der in registry().values()
               if "P" in dict(der.definitions)]
    assert defined and all(e == X * PI(X) for e in defined)
    iso = mutate.generate(files=("derivations/theorems/fft_under_iso.py",))
    assert any(m.op == "square" and m.replacement.endswith("* (Id - P) ** 2)")
               and mutate.equivalent_reason(m) for m in iso)


def test_merge_refuses_a_missing_or_foreign_file(tmp_path, capsys):
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    assert main(["mutate", "--merge", str(tmp_path / "none.json"), "--json",
                 str(tmp_path / "m.json")]) == 2
    assert "not a readable results file" in capsys.readouterr().err
    assert main(["mutate", "--merge", str(bad), "--json", str(tmp_path / "m.json")]) == 2
    assert "not a results file" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
