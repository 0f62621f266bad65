import json

import pytest

from derivations.cli import main


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"fft_over"} <= {r["id"] for r in rows}
    assert all(r["kind"] in ("exact", "asymptotic", "bound") for r in rows)


@pytest.mark.parametrize("argv,needle", [
    (["evaluate", "fft_over", "--set", "d=4", "n=5"], "n > d + 1"),
    (["evaluate", "fft_over", "--set", "r=9"], "r must satisfy"),
    (["evaluate", "fft_over", "--set", "d=4", "cov_eigs=1,2,-1,3"], "positive definite"),
    (["evaluate", "fft_over", "--set", "cov_eigs=1,2"], "d = 6 eigenvalues"),
    (["evaluate", "fft_over", "--set", "bogus=1"], "unknown parameter 'bogus'"),
    (["evaluate", "fft_over", "--set", "d=four"], "d must be an integer"),
    (["evaluate", "no_such_theorem"], "unknown derivation"),
    (["simulate", "fft_over", "--trials", "1"], "--trials"),
])
def test_bad_input_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_audit_json_and_exit_code(tmp_path, capsys):
    out = tmp_path / "a.json"
    assert main(["audit", "fft_over", "--quick", "--device", "cpu", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["verdict"] == "pass"
    der = data["derivations"][0]
    assert der["steps"] and all(s["certificates"] for s in der["steps"])
    assert "git_revision" in data["provenance"]


def test_simulate_is_reproducible(capsys):
    args = ["simulate", "fft_over", "--set", "d=3", "n=10", "--trials", "500", "--seed", "7", "--json"]
    main(args)
    a = json.loads(capsys.readouterr().out)
    main(args)
    b = json.loads(capsys.readouterr().out)
    assert a["mean"] == b["mean"] and a["se"] == b["se"]


@pytest.mark.parametrize("argv,needle", [
    (["audit", "fft_over", "--quick", "--seed", "-1"], "seed must be a non-negative"),
    (["evaluate", "fft_over", "--set", "seed=-3"], "seed must be a non-negative"),
    (["simulate", "fft_over", "--seed", "-2", "--trials", "10"], "non-negative"),
    (["evaluate", "fft_over", "--set", "d=4", "d=5"], "set twice"),
])
def test_more_bad_input_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_repeated_set_flags_accumulate(capsys):
    assert main(["evaluate", "fft_over", "--set", "d=4", "n=20", "--set", "k=1", "shift_sv=1",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["params"]["d"] == 4 and res["params"]["k"] == 1
    assert res["value"] == pytest.approx(4 / 15)
