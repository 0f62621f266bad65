"""Hostile input: every bad command line exits 2 with one clear line, no traceback, and writes
nothing; user files survive every command that names their folder.

The fuzz cases are generated from a fixed seed (deterministic) over the kinds of bad input a
new user produces: unknown names, unreadable or empty values, values outside their domain or
outside float64's comfortable range, ill-conditioned covariances, sizes that cannot fit in
memory, and output paths that are files, unwritable, or someone else's folders.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from derivations.cli import main


def _snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def _bad_param_cases(rng: random.Random) -> list[list[str]]:
    ders = ["fft_over", "fft_under_iso", "lora_decomp_over", "lora_sharp_over", "lora_bound_over",
            "misalign_first_order", "fft_under_general"]
    sets = []
    for _ in range(8):
        sets.append(f"{rng.choice(['bogus', 'D', 'rank', 'noise', 'sv'])}{rng.randint(0, 99)}=1")
    for name in ("d", "k", "n", "r", "seed"):
        sets += [f"{name}={rng.choice(['x', '1.5', '', '1e3', 'nan', '--1'])}",
                 f"{name}={-rng.randint(1, 10 ** 6)}"]
    for name in ("sigma", "cov_angle", "coupling"):
        sets.append(f"{name}={rng.choice(['abc', '', 'nan', 'inf', '-inf'])}")
    for name in ("shift_sv", "cov_eigs", "fit_eigs"):
        sets += [f"{name}=", f"{name}=1,,2", f"{name}=,1", f"{name}=1,", f"{name}=a,b",
                 f"{name}=2*0", f"{name}=1*x"]
    for e in (31, 50, 200, 308):                     # overflow when squared
        sets.append(f"shift_sv=1e{e}")
        sets.append(f"sigma=1e{e}")
    for e in (31, 100, 320):                         # underflow when squared
        sets.append(f"sigma=1e-{e}")
    for _ in range(4):                               # ill-conditioned but positive covariances
        sets.append(f"cov_eigs=1e-{rng.randint(13, 29)},1,1,1,1,1")
    sets += ["cov_eigs=1,1,1,1,1,-1", "cov_eigs=1,2", "fit_eigs=1,1,1,1,1,0",
             "sigma=0", "sigma=-1", f"r={rng.randint(7, 99)}", "shift_sv=1,1,1,1,1,1,1",
             "shift_sv=-1"]
    cases = []
    for s in sets:
        der = rng.choice(ders)
        cmd = rng.choice(["evaluate", "simulate"])
        argv = [cmd, der, "--set", s]
        if cmd == "simulate":
            argv += ["--trials", "10"]
        cases.append(argv)
    for _ in range(6):                               # sizes that cannot fit
        d = rng.randint(10 ** 6, 10 ** 8)
        cases.append(["evaluate", rng.choice(ders[2:]), "--set", f"d={d}", f"n={2 * d}"])
        cases.append(["simulate", "fft_over", "--set", f"d={d}", f"n={2 * d}", "--trials", "10"])
    cases += [["simulate", "fft_over", "--trials", str(10 ** rng.randint(9, 18))] for _ in range(3)]
    cases += [["simulate", "fft_over", "--trials", "1e15"], ["simulate", "fft_over", "--trials", "-5"],
              ["evaluate", "no_such_derivation"], ["audit", "no_such_derivation"],
              ["audit", "--seed", "-4", "fft_over"]]
    return cases


def _bad_sweep_cases(rng: random.Random) -> list[list[str]]:
    out = [["sensitivity", "--set", s] for s in (
        "base.d=10000000", "base.d=x", "run.trials=1000000000000", "run.trials=1",
        "nosuch.key=1", "base.nosuch=1", "base.d=", "exact.s_values=[1,,2]",
        f"base.k={-rng.randint(1, 100)}", "run.batch=0", "tail.families=[\"nope\"]",
        "exact.n_over_d=[1.0]", "misalignment.angles_deg=[91]")]
    out.append(["sensitivity", "--config", "does-not-exist.toml"])
    return out


def _path_cases(root: Path) -> list[list[str]]:
    user = root / "user"
    f = user / "notes.txt"
    return [["report", "--out", "."], ["report", "--out", ""], ["report", "--out", str(user)],
            ["report", "--out", str(f)], ["report", "--out", str(f / "sub")],
            ["report", "--out", "/proc/no/such"], ["report", "--cache-dir", str(user)],
            ["report", "--cache-dir", str(f / "c")], ["audit", "fft_over", "--json", str(user)],
            ["audit", "fft_over", "--json", str(f / "x.json")],
            ["audit", "fft_over", "--json", "/proc/x.json"],
            ["sensitivity", "--quick", "--out", str(f)], ["sensitivity", "--quick", "--out", str(user)],
            ["sensitivity", "--quick", "--out", "/proc/no"], ["report", "--only", "nope"]]


def _user_tree(root: Path) -> None:
    user = root / "user"
    (user / "deep").mkdir(parents=True)
    (user / "notes.txt").write_text("my notes\n")
    (user / "deep" / "thesis.tex").write_text("\\documentclass{article}\n")
    (root / "keep.txt").write_text("keep me\n")


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzzed_bad_input_exits_2_with_one_line_and_writes_nothing(seed, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    _user_tree(tmp_path)
    rng = random.Random(seed)
    cases = _bad_param_cases(rng) + _bad_sweep_cases(rng) + _path_cases(tmp_path)
    assert len(cases) >= 90
    before = _snapshot(tmp_path)
    for argv in cases:
        try:
            status = main(argv)
        except SystemExit as exc:         # argparse's own refusals (e.g. --trials 1e15)
            status = exc.code
        err = capsys.readouterr().err
        assert status == 2, (argv, status, err)
        assert "Traceback" not in err, (argv, err)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("usage:")
                 and not ln.startswith(" ")]
        assert len(lines) == 1 and "error" in lines[0], (argv, err)
        assert _snapshot(tmp_path) == before, (argv, "wrote or changed files")


def test_report_never_deletes_a_folder_it_did_not_make(tmp_path, monkeypatch, capsys):
    from reports.build import REPORT_MARKER

    monkeypatch.chdir(tmp_path)
    _user_tree(tmp_path)
    before = _snapshot(tmp_path)
    for out in (".", "", str(tmp_path), str(tmp_path / "user"), str(Path.home())):
        assert main(["report", "--quick", "--no-pdf", "--out", out]) == 2
        assert "error" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "user" / REPORT_MARKER).exists()


def test_corrupt_journal_is_set_aside_not_a_traceback(tmp_path, capsys):
    from numeric.sensitivity import JOURNAL, load_journal

    j = tmp_path / JOURNAL
    j.write_bytes(bytes(random.Random(3).randrange(256) for _ in range(4096)))
    done, bad = load_journal(j)
    assert done == {} and bad >= 1
    assert not j.exists() and (tmp_path / f"{JOURNAL}.corrupt-1").is_file()
    assert "set aside" in capsys.readouterr().err


def test_memory_chunk_never_depends_on_the_machine(monkeypatch):
    from numeric import memory

    sizes = [(6, 3, 24), (200, 100, 4000), (800, 100, 200), (3000, 50, 6000)]
    monkeypatch.setenv("LORA_AUDIT_MEMORY_BYTES", str(1 << 40))
    big = [memory.check_simulation(*s, trials=5000) for s in sizes]
    monkeypatch.setenv("LORA_AUDIT_MEMORY_BYTES", str(1 << 34))
    small = [memory.check_simulation(*s, trials=5000) for s in sizes]
    assert big == small and big[0] == memory.MAX_CHUNK
    monkeypatch.setenv("LORA_AUDIT_MEMORY_BYTES", str(1 << 20))
    from numeric.errors import InputError

    with pytest.raises(InputError, match="LORA_AUDIT_MEMORY_BYTES"):
        memory.check_simulation(200, 100, 4000, trials=10)
