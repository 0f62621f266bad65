"""Keys and the journal: a point's seed and key (functions of its parameters, never of its
position), and ``points.jsonl``, one fsync'd JSON line per finished point."""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from ..seeds import point_seed  # noqa: F401 -- the sweep's seed scheme, used via this module

JOURNAL = "points.jsonl"


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def point_key(point: dict, run: dict, predictor_name: str, version: str) -> str:
    blob = _canon({"point": point, "run": run, "predictor": predictor_name, "code": version})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _repair(path: Path) -> int:
    """Cut a torn last line (a crash mid-write); returns the bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data) - keep


def load_journal(path) -> tuple[dict, int]:
    """``{key: record}`` of the complete lines, and the number of unreadable lines skipped.

    A line that is not UTF-8 JSON with a ``key`` (a corrupt or foreign file) is skipped and
    counted, never a crash; a journal with no readable line at all is set aside as
    ``points.jsonl.corrupt-N`` (kept for inspection) and the sweep starts over.
    """
    path = Path(path)
    out, bad = {}, 0
    if not path.exists():
        return out, 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
            out[rec["key"]] = rec
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            bad += 1
    if bad and not out:
        i = 1
        while path.with_name(f"{path.name}.corrupt-{i}").exists():
            i += 1
        aside = path.with_name(f"{path.name}.corrupt-{i}")
        os.rename(path, aside)
        print(f"lora-audit: {path} is not a journal of this tool ({bad} unreadable lines); set "
              f"aside as {aside.name}, starting over", file=sys.stderr)
    return out, bad


def append_record(path, record: dict) -> None:
    """One line, one ``write``, then ``fsync``: a finished point is either fully there or absent."""
    line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
