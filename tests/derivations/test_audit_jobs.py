"""``audit --jobs N``: derivations audited in local processes give the serial numbers, bit for
bit (seeds derive from the master seed and the derivation id; each child keeps the parent's
torch thread count), in the order asked for."""
import json

import pytest

from derivations import get
from derivations.audit import LAST_CHILD_CPU, audit_in_processes
from derivations.cli import main


def _strip_seconds(x):
    if isinstance(x, dict):
        return {k: _strip_seconds(v) for k, v in x.items() if k != "seconds"}
    if isinstance(x, list):
        return [_strip_seconds(v) for v in x]
    return x


@pytest.mark.slow
def test_processes_give_the_serial_results_bitwise(quick_cfg, audit_cache):
    ids = ["mc_samplers_over", "fft_over", "mc_samplers_under"]
    par = audit_in_processes([get(i) for i in ids], quick_cfg, jobs=2)
    assert [r["id"] for r in par] == ids
    assert LAST_CHILD_CPU["processes"] == 2 and LAST_CHILD_CPU["seconds"] > 0
    for i, r in zip(ids, par):
        serial = audit_cache(i)
        # json round trip: floats compared by their exact repr, NaN-safe
        assert json.dumps(_strip_seconds(r), sort_keys=True) == \
            json.dumps(_strip_seconds(serial), sort_keys=True), i


def test_bad_jobs_is_refused(capsys):
    assert main(["audit", "--quick", "--jobs", "0", "fft_over"]) == 2
    assert "--jobs" in capsys.readouterr().err
