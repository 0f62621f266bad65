"""The sensitivity configuration: one schema, defaults, TOML files, --set, refusal of bad input."""
import pytest

from numeric.sensitivity import config as sc
from numeric.errors import InputError


def test_defaults_are_valid_and_the_example_file_spells_them_out():
    full, quick = sc.load(), sc.load(quick=True)
    assert full != quick
    assert sc.load(sc.EXAMPLE_CONFIG) == full
    # every schema key has a meaning and a default in both columns
    for dotted, f, q, rng, meaning in sc.describe():
        assert meaning and f is not None and q is not None, dotted


def test_toml_round_trip(tmp_path):
    cfg = sc.load(sets=["base.d=20", "exact.s_values=[1,3]", "tail.families=exp"], quick=True)
    path = tmp_path / "c.toml"
    path.write_text(sc.to_toml(cfg, comments=True))
    assert sc.load(path, quick=True) == cfg
    assert cfg["base"]["d"] == 20 and cfg["exact"]["s_values"] == [1, 3]
    assert cfg["tail"]["families"] == ["exp"]


@pytest.mark.parametrize("item, expected", [
    ("exact.s_values=1,2,4", [1, 2, 4]),
    ("exact.s_values=3", [3]),
    ("tail.alphas=[0.5, 2]", [0.5, 2.0]),
    ("run.pred_rel_tol=0.2", 0.2),
    ("phase.rank_rule=best", "best"),
    ("exact.enabled=false", False),
])
def test_set_values_are_read_as_toml(item, expected):
    sec, rest = item.split(".", 1)
    key = rest.split("=", 1)[0]
    assert sc.load(sets=[item], quick=True)[sec][key] == expected


@pytest.mark.parametrize("item, named", [
    ("base.dd=3", "base.dd"),                       # unknown key
    ("basis.d=3", "[basis]"),                       # unknown section
    ("d=3", "SECTION.KEY"),                         # no section
    ("base.d=1.5", "base.d"),                       # wrong type
    ("base.d=true", "base.d"),                      # bool is not an int
    ("exact.s_values=[1, \"a\"]", "exact.s_values"),
    ("tail.families=[\"gauss\"]", "tail.families"),  # not an allowed value
    ("run.trials=1", "run.trials"),                 # range
    ("run.pred_rel_tol=1.5", "run.pred_rel_tol"),
    ("misalignment.angles_deg=[100]", "misalignment.angles_deg"),
    ("exact.s_values=[99]", "exact.s_values"),      # > min(k, d)
    ("exact.n_over_d=[1.0]", "exact.n_over_d"),     # n = d: FFT risk infinite
    ("tail.alphas=[]", "tail.alphas"),              # empty list
    ("base.r_max=999", "base.r_max"),
    ("misalignment.head=40", "misalignment.head"),
])
def test_bad_values_are_refused_naming_the_key(item, named):
    with pytest.raises(InputError) as exc:
        sc.load(sets=[item], quick=True)
    assert named in str(exc.value)


def test_n_just_past_d_is_refused(tmp_path):
    d = sc.load(quick=True)["base"]["d"]
    with pytest.raises(InputError, match="snr.n_over_d"):
        sc.load(sets=[f"snr.n_over_d=[{(d + 1) / d}]"], quick=True)


def test_bad_files_are_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[base]\nd = 20\nwidth = 3\n")
    with pytest.raises(InputError, match="base.width"):
        sc.load(bad)
    bad.write_text("[base\nd = 20\n")
    with pytest.raises(InputError, match="not valid TOML"):
        sc.load(bad)
    with pytest.raises(InputError, match="cannot read"):
        sc.load(tmp_path / "missing.toml")
    bad.write_text("[exact]\nenabled = false\n[tail]\nenabled = false\n[snr]\nenabled = false\n"
                   "[misalignment]\nenabled = false\n")
    with pytest.raises(InputError, match="every axis is disabled"):
        sc.load(bad)
