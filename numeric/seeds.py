"""Seeds: every random number of the project derives from a master seed and names.

``stable_seed(master, *names)`` is the one scheme of the audit, the report and the command line
(a CRC-32 of the joined names: stable across runs, processes and platforms, so a derivation's
certificates do not depend on where or in which order it ran).  The sensitivity sweep keeps its
own two, older schemes, documented here beside it because its committed results and resume
journal depend on them: ``point_seed`` (a SHA-256 of the master seed and the point) and
``chunk_seed`` (chunk ``i`` of a point, independent of the batch size).
"""
from __future__ import annotations

import hashlib
import json
import zlib


def stable_seed(*parts) -> int:
    """A seed derived from the master seed and names, stable across runs and platforms."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def point_seed(master: int, point: dict) -> int:
    """The sensitivity sweep's seed of one grid point."""
    blob = json.dumps({"seed": master, "point": point}, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(blob.encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def chunk_seed(seed: int, i: int) -> int:
    """Seed of chunk ``i`` of a sweep point (independent of the batch and of the other chunks)."""
    return (seed * 1000003 + i) & 0x7FFFFFFF
