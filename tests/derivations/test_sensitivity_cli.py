"""``lora-audit sensitivity``: bad input exits 2 naming the key; a run writes CSV/JSON/PDF and a
rerun resumes; the progress bar goes to stderr."""
import io
import json

import pytest

from derivations.cli import main
from derivations.commands.sensitivity import ProgressBar

TINY = ["base.d=12", "base.k=6", "base.s=2", "run.trials=50", "exact.s_values=[1,3]",
        "exact.n_over_d=[0.5,3]", "tail.alphas=[1.0]", "tail.n_over_d=[3]", "snr.enabled=false",
        "misalignment.angles_deg=[0,45]", "misalignment.head=2"]


@pytest.mark.parametrize("argv, named", [
    (["--set", "base.dd=3"], "base.dd"),
    (["--set", "base.d=x"], "base.d"),
    (["--set", "run.trials=1"], "run.trials"),
    (["--set", "exact.n_over_d=[1]"], "exact.n_over_d"),
])
def test_bad_settings_exit_2_naming_the_key(argv, named, capsys, tmp_path):
    assert main(["sensitivity", "--quick", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert "error" in err and named in err
    assert not (tmp_path / "points.jsonl").exists()


def test_bad_config_file_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[tail]\nfamilies = [\"power\", \"gauss\"]\n")
    assert main(["sensitivity", "--config", str(cfg), "--out", str(tmp_path)]) == 2
    assert "tail.families" in capsys.readouterr().err


def test_print_config_round_trips(tmp_path, capsys):
    assert main(["sensitivity", "--quick", "--seed", "5", "--print-config"]) == 0
    text = capsys.readouterr().out
    (tmp_path / "c.toml").write_text(text)
    from numeric.sensitivity import config as sc

    cfg = sc.load(tmp_path / "c.toml", quick=True)
    assert cfg["run"]["seed"] == 5


def test_run_writes_results_and_figures_then_resumes(tmp_path, capsys):
    out = tmp_path / "sens"
    argv = ["sensitivity", "--quick", "--out", str(out), "--device", "cpu", "--seed", "3",
            "--set", *TINY]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "points" in captured.err                       # progress on stderr
    assert "computed, 0 reused" in captured.out
    for name in ("results.json", "results.csv", "points.csv", "config.toml", "points.jsonl",
                 "sensitivity-phase.pdf", "sensitivity-rank-curves.pdf",
                 "sensitivity-optimal-rank.pdf", "sensitivity-axes.pdf"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "sensitivity-phase.pdf").read_bytes()[:4] == b"%PDF"
    data = json.loads((out / "results.json").read_text())
    assert data["provenance"]["seed"] == 3 and data["provenance"]["device"] == "cpu"
    first = data["rows"]
    # resume: nothing recomputed, same numbers
    assert main(argv + ["--no-figures"]) == 0
    assert "(0 computed" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["rows"] == first


def test_progress_bar_plain_text():
    buf = io.StringIO()
    bar = ProgressBar(stream=buf)
    for i in range(1, 21):
        bar(i, 20, f"p{i}", reused=i < 5)
    lines = buf.getvalue().splitlines()
    assert lines[-1].startswith("  [100%] 20/20 points")
    assert 5 <= len(lines) <= 12                          # about one line per 10 %, not per point
