"""Atomic file output: write to a temporary file beside the target, then rename into place."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return _jsonable(obj.item())
    return obj


def dumps(obj) -> str:
    return json.dumps(_jsonable(obj), indent=2, sort_keys=False, default=str)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; results are for others to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path, obj) -> None:
    write_text_atomic(path, dumps(obj) + "\n")


# ------------------------------------------------------------------- paths checked up front
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def _probe_writable(folder: Path, what: str, shown: str) -> None:
    """Create and remove a file in ``folder``: the only test that also holds for root, for
    read-only file systems and for pseudo file systems such as /proc."""
    try:
        st = os.stat(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".lora-audit-probe-")
        os.close(fd)
        os.unlink(tmp)
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))   # leave no trace of the probe
    except OSError as exc:
        from .errors import InputError

        raise InputError(f"{what} {shown}: cannot write in {folder} "
                         f"({exc.strerror or type(exc).__name__})") from None


def check_dir_writable(path, what: str) -> Path:
    """Refuse (``InputError``) a folder that cannot be created or written, before any work.

    Nothing is created: the nearest existing ancestor must be a folder we can write in, and no
    component of the path may be an existing file.
    """
    from .errors import InputError

    shown = str(path)
    if str(path).strip() == "":
        raise InputError(f"{what}: an empty path is not a folder name")
    p = Path(path).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {shown}: exists and is not a folder")
    anc = _nearest_existing(p)
    if not anc.is_dir():
        raise InputError(f"{what} {shown}: {anc} is a file, so no folder can be made below it")
    _probe_writable(anc, what, shown)
    return p


def check_file_writable(path, what: str) -> Path:
    """Refuse (``InputError``) an output file path that cannot be written, before any work."""
    from .errors import InputError

    shown = str(path)
    if str(path).strip() == "":
        raise InputError(f"{what}: an empty path is not a file name")
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        raise InputError(f"{what} {shown}: is a folder, not a file")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(f"{what} {shown}: the file exists and is not writable")
    anc = _nearest_existing(p.parent)
    if not anc.is_dir():
        raise InputError(f"{what} {shown}: {anc} is a file, so no file can be made below it")
    _probe_writable(anc, what, shown)
    return p
