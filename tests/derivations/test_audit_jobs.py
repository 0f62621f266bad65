"""``audit --jobs N``: derivations audited in local processes give the serial numbers, bit for
bit (seeds derive from the master seed and the derivation id; each child keeps the parent's
torch thread count), in the order asked for."""
import json

import pytest

from derivations import get
from derivations.audit import LAST_CHILD_CPU, audit_in_processes, without_timings
from derivations.cli import main


@pytest.mark.slow
def test_processes_give_the_serial_results_bitwise(quick_cfg, audit_cache):
    ids = ["mc_samplers_over", "fft_over", "mc_samplers_under"]
    par = audit_in_processes([get(i) for i in ids], quick_cfg, jobs=2)
    assert [r.id for r in par] == ids
    assert LAST_CHILD_CPU["processes"] == 2 and LAST_CHILD_CPU["seconds"] > 0
    for i, r in zip(ids, par):
        serial = audit_cache(i)
        # json round trip: floats compared by their exact repr, NaN-safe
        assert json.dumps(without_timings(r), sort_keys=True) == \
            json.dumps(without_timings(serial), sort_keys=True), i


def test_bad_jobs_is_refused(capsys):
    assert main(["audit", "--quick", "--jobs", "0", "fft_over"]) == 2
    assert "--jobs" in capsys.readouterr().err


def test_without_timings_drops_only_the_seconds():
    a = {"id": "x", "seconds": 1.0, "steps": [{"verdict": "pass", "seconds": 2.0}]}
    b = {"id": "x", "seconds": 9.0, "steps": [{"verdict": "pass", "seconds": 0.1}]}
    assert without_timings(a) == without_timings(b) == {"id": "x", "steps": [{"verdict": "pass"}]}
    c = {"id": "x", "seconds": 1.0, "steps": [{"verdict": "fail", "seconds": 2.0}]}
    assert without_timings(a) != without_timings(c)      # anything else still counts


def test_default_jobs_is_one_per_usable_core_at_most_one_per_derivation(monkeypatch):
    import os

    from derivations.commands import audit as cli

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert cli.default_jobs(20) == 3
    assert cli.default_jobs(2) == 2 and cli.default_jobs(1) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert cli.default_jobs(20) == 1


def test_a_failing_task_stops_the_other_processes_at_once():
    """One task fails while another would run for ten minutes: the error comes back at once
    (the other child is terminated, not waited for).  The bound is 5 minutes, far from both
    the failing task's milliseconds and the sleeper's 10 minutes, so load cannot decide it."""
    import time
    from types import SimpleNamespace

    from derivations.audit import map_in_processes

    # ``eval`` pickles by name; each "derivation id" is the expression its child evaluates
    sleeper = SimpleNamespace(id="__import__('time').sleep(600)", steps=[1, 2], controls=[])
    failing = SimpleNamespace(id="1 / 0", steps=[], controls=[])
    t0 = time.monotonic()
    with pytest.raises(ZeroDivisionError):
        map_in_processes(eval, [sleeper, failing], jobs=2)
    assert time.monotonic() - t0 < 300
