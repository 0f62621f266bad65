"""The report's sensitivity section computed directly (quick sweep, seconds): it calls
``numeric.sensitivity.run`` on a folder inside the report's cache, draws its figures itself,
and carries the run's bookkeeping into the template's data; a rerun reuses every point."""
from types import SimpleNamespace

from reports.sections import sensitivity as sec


def test_section_runs_the_sweep_in_its_cache_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "build"
    out.mkdir()
    ctx = SimpleNamespace(quick=True, seed=0, device="cpu", out_dir=out,
                          work_dir=tmp_path / "cache", progress=lambda m: None)
    first = sec.compute(ctx)
    assert first["sweep_dir"] == str(tmp_path / "cache" / "sensitivity-quick")
    assert (tmp_path / "cache" / "sensitivity-quick" / "points.jsonl").is_file()
    assert first["computed"] == first["points"] > 0 and first["reused"] == 0
    assert (out / "sensitivity-results.csv").is_file() and list(out.glob("sensitivity-*.pdf"))
    again = sec.compute(ctx)
    assert again["computed"] == 0 and again["reused"] == first["points"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "cache"]   # nothing in cwd
