"""``lora-audit`` (and ``python3 -m derivations.cli``): the entry point of the command line,
whose commands live in ``derivations.commands`` (one module per command)."""
from __future__ import annotations

import sys

from .commands import build_parser, main  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
