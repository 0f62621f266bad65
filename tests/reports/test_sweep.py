"""Direct tests of reports/sweep.py (formula-vs-simulation sweeps for the figures) on a toy
derivation whose simulation is the formula plus unit Gaussian noise."""
from types import SimpleNamespace

import pytest
import torch

from derivations.core import Hooks
from numeric.device import randn
from numeric.errors import InputError
from reports.sweep import run_sweep, sweep_spec

BASE = {"d": 4, "k": 2, "n": 12, "r": 1, "sigma": 1.0, "shift_sv": [1.0]}


def toy(formula=lambda p: p.n / 2, shift=0.0, hole=None, **spec):
    def validate(p):
        if p.n < 10 or p.n == hole:
            raise InputError("n must be >= 10 (and not the hole)")

    def simulate(p, trials, gen, device):
        return p.n / 2 + shift + randn((trials,), gen, device)

    return SimpleNamespace(id="toy", extra=Hooks(report_sweep={"param": "n", "values": [10, 14],
                                                               "base": BASE, **spec}),
                           validate=validate, simulate=simulate, formula=formula)


CFG = SimpleNamespace(seed=3, mc_trials=4000)


def test_points_curve_and_agreement():
    res = run_sweep(toy(), CFG, torch.device("cpu"))
    assert [p["n"] for p in res["points"]] == [10, 14]
    assert [c["n"] for c in res["curve"]] == list(range(10, 15))     # int parameter: every n
    for p in res["points"]:
        assert p["trials"] == 4000 and p["se"] == pytest.approx(1 / 4000 ** 0.5, rel=0.1)
        assert abs(p["z"]) < 4.5
    assert res["max_abs_z"] == max(abs(p["z"]) for p in res["points"])


def test_same_seed_same_numbers_other_seed_others():
    a = run_sweep(toy(), CFG, torch.device("cpu"))
    assert run_sweep(toy(), CFG, torch.device("cpu")) == a
    b = run_sweep(toy(), SimpleNamespace(seed=4, mc_trials=4000), torch.device("cpu"))
    assert b["points"][0]["mean"] != a["points"][0]["mean"]


def test_a_wrong_formula_shows_as_a_large_z():
    """Negative control: a simulation off by 0.5 (8 SE at 4000 trials) is flagged."""
    res = run_sweep(toy(shift=0.5), CFG, torch.device("cpu"))
    assert res["max_abs_z"] > 5


def test_the_curve_skips_points_outside_the_domain_and_a_point_outside_is_an_error():
    res = run_sweep(toy(hole=11, trials=500), CFG, torch.device("cpu"))
    assert [c["n"] for c in res["curve"]] == [10, 12, 13, 14] and res["trials"] == 500
    res = run_sweep(toy(param="sigma", values=[1.0, 2.0]), CFG, torch.device("cpu"))
    assert len(res["curve"]) == 100                  # a float parameter: 100 points
    with pytest.raises(InputError, match="n must be >= 10"):
        run_sweep(toy(values=[8, 12]), CFG, torch.device("cpu"))


def test_no_hook_no_sweep_and_bad_hooks_refused():
    assert sweep_spec(SimpleNamespace(id="x", extra=Hooks())) is None
    for spec, what in (({"param": "n"}, "must be a dict"),
                       ({"param": "zz", "values": [1, 2], "base": BASE}, "not a Params field"),
                       ({"param": "n", "values": [10], "base": BASE}, "at least two")):
        with pytest.raises(InputError, match=what):
            sweep_spec(SimpleNamespace(id="x", extra=Hooks(report_sweep=spec)))
