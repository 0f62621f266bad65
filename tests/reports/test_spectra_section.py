"""The spectra report section: the practical task always, named checkpoints when given."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("sklearn")
safetensors = pytest.importorskip("safetensors.torch")


def test_report_spectra_section_with_named_checkpoints(tmp_path, monkeypatch):
    from numeric import practical as pr
    from reports.build import ReportOptions, build_report

    monkeypatch.setattr(pr, "QUICK", pr.PracticalConfig(hidden=8, n_down=60, ranks=(1, 2),
                                                        seeds=2, steps_pre=40, steps=20))
    g = torch.Generator().manual_seed(0)
    base = {"w.weight": torch.randn(12, 9, generator=g, dtype=torch.float64)}
    shift = torch.linalg.qr(torch.randn(12, 2, generator=g, dtype=torch.float64))[0] @ \
        torch.diag(torch.tensor([4.0, 1.0], dtype=torch.float64)) @ \
        torch.linalg.qr(torch.randn(9, 2, generator=g, dtype=torch.float64))[0].T
    safetensors.save_file(base, str(tmp_path / "b.safetensors"))
    safetensors.save_file({"w.weight": base["w.weight"] + shift}, str(tmp_path / "t.safetensors"))
    res = build_report(ReportOptions(out=tmp_path / "rep", quick=True, device="cpu",
                                     only=("spectra",), compile=False,
                                     spectra=(str(tmp_path / "b.safetensors"),
                                              str(tmp_path / "t.safetensors"))),
                       progress=lambda m: None)
    assert res.sections == {"spectra": "computed"}
    data = json.loads((res.out / "report-data.json").read_text())
    text = json.dumps(data)
    assert "spectra-user-layers.csv" in text and "w.weight" in text
    tex = (res.out / "report.tex").read_text()
    assert "The checkpoints named for this report" in tex and "Gavish" in tex
    assert (res.out / "spectra-test-error.pdf").is_file()


def test_report_refuses_bad_checkpoints_before_any_work(tmp_path):
    from numeric.errors import InputError
    from reports.build import ReportOptions, build_report

    with pytest.raises(InputError, match="no such file"):
        build_report(ReportOptions(out=tmp_path / "rep", quick=True, only=("spectra",),
                                   spectra=(str(tmp_path / "x.pt"), str(tmp_path / "y.pt"))))
    assert not (tmp_path / "rep").exists()
