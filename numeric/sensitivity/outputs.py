"""The sweep's files: ``results.json``, ``results.csv``, ``points.csv``, ``config.toml``."""
from __future__ import annotations

from pathlib import Path

from . import config as sconf


CSV_COLUMNS = ("axis", "label", "family", "s", "alpha", "stable_rank", "entropy_rank", "d", "k",
               "n", "n_over_d", "regime", "sigma", "snr", "theta_deg", "eps", "r", "lora_mean",
               "lora_se", "fft_mean", "fft_se", "diff_mean", "diff_se", "gap_best_mean",
               "gap_best_se", "ratio_sim", "lora_pred", "fft_pred", "ratio_pred",
               "pred_rel_err", "pred_z", "pred_agree", "kept_spikes", "kept_noise", "seed", "key")


def to_csv(rows, columns=CSV_COLUMNS) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({c: ("" if row.get(c) is None else
                        repr(row[c]) if isinstance(row[c], float) else row[c]) for c in columns})
    return buf.getvalue()


def write_outputs(summary: dict, sweep: dict, cfg: dict, out_dir, device) -> dict:
    """``results.json`` (provenance + everything), ``results.csv`` (one row per point and rank),
    ``points.csv`` (one row per point), ``config.toml``; all written atomically."""
    from ..io import write_json_atomic, write_text_atomic
    from ..provenance import provenance

    out_dir = Path(out_dir)
    prov = provenance(device, seed=cfg["run"]["seed"], trials=cfg["run"]["trials"],
                      code_version=sweep["code_version"], predictor=sweep["predictor"],
                      point_seeds="sha256(master seed, point parameters)",
                      points_computed=sweep["computed"], points_reused=sweep["reused"])
    data = {"provenance": prov, "config": cfg, **summary}
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv",
             "points_csv": out_dir / "points.csv", "config": out_dir / "config.toml"}
    write_json_atomic(files["json"], data)
    write_text_atomic(files["csv"], to_csv(summary["rows"]))
    pcols = ([c for c in summary["points"][0] if c not in ("key", "by_rule")] + ["key"]
             if summary["points"] else [])
    write_text_atomic(files["points_csv"], to_csv(summary["points"], pcols))
    write_text_atomic(files["config"], sconf.to_toml(cfg))
    return files
