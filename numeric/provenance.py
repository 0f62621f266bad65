"""Provenance of a run: code version, git revision, library versions, device, precision."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("sympy", "numpy", "mpmath", "torch", "jinja2", "matplotlib")


def project_version() -> str:
    try:
        return metadata.version("lora-fft-audit")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "absent"
    out["python"] = platform.python_version()
    return out


def provenance(device=None, **extra) -> dict:
    info = {
        "project_version": project_version(),
        "git_revision": git_revision(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "libraries": library_versions(),
        "machine": f"{platform.system()} {platform.machine()}",
    }
    if device is not None:
        from .device import describe

        info["device"] = describe(device)
    info.update(extra)
    return info
