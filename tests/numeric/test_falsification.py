"""numeric.falsification: paired design, intervals, verdicts, both directions, outputs."""
import csv
import io
import json
import math

import pytest
import torch

from numeric import falsification as fz
from numeric.device import generator
from numeric.errors import InputError


def _cell(**kw):
    c = dict(d=16, k=16, n=48, s=2, x=3.0, r=2, sigma=1.0)
    c.update(kw)
    return c


def test_paired_same_data_and_deterministic():
    c = _cell()
    a = fz.paired_risks(c, 50, generator(3))
    b = fz.paired_risks(c, 50, generator(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])     # same seed, same numbers
    # paired: at r = min(d, k) LoRA's truncation is the identity, so it equals FFT seed by seed
    lo, ff = fz.paired_risks(_cell(r=16), 30, generator(4))
    assert torch.allclose(lo, ff, rtol=1e-9)
    row = fz.summarize_cell(_cell(r=16), lo, ff)
    assert row["verdict"].startswith("identical") and row["frac_fft_better"] == 0


def test_low_rank_shift_lora_wins_and_high_rank_fft_wins():
    """Both directions of the experiment are reachable: the test can find FFT better."""
    low = fz.summarize_cell(_cell(), *fz.paired_risks(_cell(), 80, generator(5)))
    assert low["verdict"] == "LoRA better" and low["ci_high"] < 0 and low["frac_fft_better"] < 0.05
    hi_c = _cell(s=12, x=4.0, r=1)
    high = fz.summarize_cell(hi_c, *fz.paired_risks(hi_c, 80, generator(6)))
    assert high["verdict"] == "FFT better" and high["ci_low"] > 0 and high["frac_fft_better"] > 0.95
    # the sharp prediction names the same winner in both
    assert low["predicted_winner"] == "LoRA" and high["predicted_winner"] == "FFT"


def test_interval_arithmetic():
    c = _cell()
    lo = torch.tensor([3.0, 5.0, 4.0, 6.0])
    ff = torch.tensor([4.0, 4.0, 4.0, 4.0])
    row = fz.summarize_cell(c, lo, ff)
    diff = lo - ff
    se = float(diff.std(unbiased=True)) / 2
    assert row["mean_diff"] == pytest.approx(0.5) and row["se_diff"] == pytest.approx(se)
    assert row["ci_low"] == pytest.approx(0.5 - fz.Z95 * se)
    assert row["frac_fft_better"] == 0.5 and row["verdict"] == "no significant difference"
    w = fz._wilson(2, 4)
    assert w[0] < 0.5 < w[1] and fz._wilson(0, 10)[0] == 0.0


def test_cell_validation():
    for bad in (_cell(n=17), _cell(n=15), _cell(s=17), _cell(r=0), _cell(sigma=0.0)):
        with pytest.raises(InputError):
            fz.paired_risks(bad, 10, generator(0))
    with pytest.raises(InputError):
        fz.run("nonexistent")


def test_run_writes_json_and_csv(tmp_path):
    grid = fz.Grid(d=12, k=12, sigma=1.0, ratios=(0.5, 3.0), xs=(3.0,), ranks_s=(2, 8),
                   ranks_r=(1, 2), seeds=30)
    res = fz.run(grid, seed=1, device="cpu")
    assert len(res["rows"]) == 8 and res["summary"]["cells"] == 8
    assert sum(res["summary"]["by_verdict"].values()) == 8
    pj, pc = fz.write(res, tmp_path)
    back = json.loads(pj.read_text())
    assert back["rows"][0]["seeds"] == 30
    rows = list(csv.DictReader(io.StringIO(pc.read_text())))
    assert len(rows) == 8 and {"frac_fft_better", "ci_low", "ci_high", "verdict"} <= set(rows[0])
    assert math.isfinite(float(rows[0]["mean_diff"]))
    again = fz.run(grid, seed=1, device="cpu")
    assert again["rows"] == res["rows"]
