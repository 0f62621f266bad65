"""The sensitivity sweep and the audit on Dask (a 2-worker LocalCluster on 127.0.0.1): the
serial numbers bitwise, a killed worker loses nothing, an unreachable scheduler exits 2, an
interrupted distributed sweep resumes, and without Dask the flags exit 2 with the install line."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

distributed = pytest.importorskip("distributed")

from numeric import distributed as dist  # noqa: E402
from numeric import sensitivity as sens  # noqa: E402
from numeric.sensitivity import config as sconf  # noqa: E402
from numeric.errors import InputError  # noqa: E402

SETS = ["tail.enabled=false", "snr.enabled=false", "misalignment.enabled=false",
        "exact.s_values=[1,2]", "exact.n_over_d=[0.5,2.0]", "run.trials=24", "run.batch=24"]


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # hooks below, by value
    with dist.cluster(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def cfg():
    return sconf.load(None, SETS, quick=True)


def _strip(records: dict) -> dict:
    return {k: {f: v for f, v in r["result"].items() if f != "seconds"} for k, r in records.items()}


@pytest.fixture(scope="module")
def serial(cfg, tmp_path_factory):
    return sens.run_sweep(cfg, tmp_path_factory.mktemp("serial"), "cpu")


def test_distributed_sweep_gives_the_serial_numbers(client, cfg, serial, tmp_path):
    seen = []
    res = sens.run_sweep(cfg, tmp_path, "cpu", client=client,
                         progress=lambda d, t, label, reused: seen.append((d, t)))
    assert res["computed"] == serial["computed"] == len(serial["records"]) == 4
    assert _strip(res["records"]) == _strip(serial["records"])          # bitwise
    assert seen[-1] == (4, 4) and len(seen) == 4
    assert len((tmp_path / sens.JOURNAL).read_text().splitlines()) == 4


def _crash_once(point, seed, run, device, predictor):
    """Kill this worker's process the first time any point reaches it."""
    marker = os.environ["LORA_AUDIT_TEST_MARKER"]
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
    except FileExistsError:
        pass
    return sens.compute_point(point, seed, run, device, predictor)


def test_a_killed_worker_loses_nothing(client, cfg, serial, tmp_path):
    marker = tmp_path / "killed"
    client.run(lambda m: os.environ.__setitem__("LORA_AUDIT_TEST_MARKER", m), str(marker))
    os.environ["LORA_AUDIT_TEST_MARKER"] = str(marker)
    try:
        res = sens.run_sweep(cfg, tmp_path / "out", "cpu", client=client, compute=_crash_once)
    finally:
        del os.environ["LORA_AUDIT_TEST_MARKER"]
    assert marker.exists()                                   # a worker really died
    assert _strip(res["records"]) == _strip(serial["records"])
    deadline = time.time() + 30                              # the nanny restarts it
    while len(client.scheduler_info()["workers"]) < 2 and time.time() < deadline:
        time.sleep(0.2)


def _fail_on_s2(point, seed, run, device, predictor):
    if point["shape"].get("s") == 2:
        raise RuntimeError("interrupted")
    return sens.compute_point(point, seed, run, device, predictor)


def test_interrupted_distributed_sweep_resumes(client, cfg, serial, tmp_path):
    with pytest.raises(RuntimeError, match="interrupted"):
        sens.run_sweep(cfg, tmp_path, "cpu", client=client, compute=_fail_on_s2)
    journal = tmp_path / sens.JOURNAL       # absent when the failing point came back first
    kept = len(journal.read_text().splitlines()) if journal.exists() else 0
    assert 0 <= kept < 4
    res = sens.run_sweep(cfg, tmp_path, "cpu")                # resumed serially
    assert res["reused"] == kept and res["computed"] == 4 - kept
    assert _strip(res["records"]) == _strip(serial["records"])


def test_distributed_audit_gives_the_serial_certificates(client):
    from derivations.audit import without_timings
    from derivations.audit import run_audit
    from derivations.config import make_config

    cfg = make_config(quick=True, device="cpu")
    ids = ["fft_over", "fft_under_iso"]
    a = run_audit(ids, cfg, progress=None)
    b = run_audit(ids, cfg, progress=None, client=client)

    assert without_timings(a.derivations) == without_timings(b.derivations)
    assert a.verdict == b.verdict == "pass"


def test_unreachable_scheduler_exits_2_naming_it_within_the_timeout(capsys, tmp_path, monkeypatch):
    from derivations.cli import main

    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["sensitivity", "--quick", "--scheduler", "tcp://127.0.0.1:9", "--timeout", "2",
                 "--out", "unused-out"]) == 2
    assert time.perf_counter() - t0 < 60
    err = capsys.readouterr().err
    assert "tcp://127.0.0.1:9" in err and "cannot reach" in err
    assert not (tmp_path / "unused-out").exists()             # nothing written


def test_flags_without_dask_exit_2_with_the_install_command(monkeypatch, capsys):
    from derivations.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)     # import distributed -> ImportError
    assert main(["audit", "fft_over", "--quick", "--workers", "2"]) == 2
    assert dist.INSTALL in capsys.readouterr().err
    with pytest.raises(InputError, match="not both"):
        dist.check_request(2, "tcp://x:1")
    with pytest.raises(InputError, match=r"\[1, 256\]"):
        dist.check_request(0, None)
