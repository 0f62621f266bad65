"""What the commands share: progress lines on stderr and number formatting."""
from __future__ import annotations

import math
import sys


def _progress(msg: str) -> None:
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _fmt(x, digits=6):
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)
