"""Result cache for the report: per-derivation audit results and per-section compute results.

An entry is stored under a key that hashes everything its result depends on:

* the source of the derivation's module (``Derivation.source_text()``) or the section's module
  and template, plus the source of every project module they import, transitively (found by
  reading their import statements, including imports inside functions), plus the checker
  plug-ins and the audit engine (checkers are looked up by name, not imported) and the report's
  own computing modules (``reports.sweep``);
* the audit configuration (``AuditConfig.as_dict()``, seed included), the resolved device;
* the versions of the numerical libraries and of Python.

Module sources are hashed as this process imported them (``snapshot_loaded``), not as the
files read later: a module edited on disk during a build is hashed with the text that ran, so
the result of the old code is never stored under the new code's key.

A stale entry can therefore never be found: any change gives a different key.  ``--fresh``
ignores the cache (and overwrites it).  Entries are written atomically; entries of the same item
under an older key are removed when a new one is written.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import json
import shutil
from functools import lru_cache
from pathlib import Path

from numeric.io import dumps, write_text_atomic

PROJECT_PACKAGES = ("symbolic", "numeric", "derivations", "reports")
CACHE_FORMAT = 1
# modules every derivation result depends on even though it does not import them
ENGINE_MODULES = ("derivations.core", "derivations.audit", "derivations.checkers",
                  "derivations.config", "reports.sweep")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


# Source text of every project module as it was when this process imported it, keyed by module
# name.  The cache key must describe the code that *runs*, and a module runs the source it was
# imported from: a file edited on disk while a build is under way (after the sections and
# derivations were imported, before their keys are computed) must not lend its new text to a
# result computed by the old code.  Filled by ``snapshot_loaded()`` (called when the build has
# imported its derivations and sections) and, for a module first met later, when it is first read.
_LOADED_SOURCES: dict[str, str] = {}


def _read(name: str) -> str:
    path = module_file(name)
    if path is None:
        raise ImportError(f"cannot find the source of module {name!r}")
    return path.read_text(encoding="utf-8")


def _imported_file(mod) -> str | None:
    spec = getattr(mod, "__spec__", None)
    origin = getattr(spec, "origin", None) or getattr(mod, "__file__", None)
    return origin if origin and str(origin).endswith(".py") else None


def snapshot_loaded() -> int:
    """Record the source of every imported project module not recorded yet; returns how many.

    Read from the file each module was imported from (``module.__spec__.origin``), once per
    process: later edits of that file do not change what this process hashes for it."""
    import sys

    n = 0
    for name, mod in list(sys.modules.items()):
        if name in _LOADED_SOURCES or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        origin = _imported_file(mod)
        if origin is None:
            continue
        try:
            _LOADED_SOURCES[name] = Path(origin).read_text(encoding="utf-8")
        except OSError:
            continue
        n += 1
    return n


def module_source(name: str) -> str:
    """The source of project module ``name`` as this process runs it (see ``_LOADED_SOURCES``).

    A module not imported yet is read from disk now and that text is kept, so every key this
    process computes uses one text per module."""
    text = _LOADED_SOURCES.get(name)
    if text is None:
        snapshot_loaded()                   # imported since the last snapshot: record it now
        text = _LOADED_SOURCES.get(name)
    if text is None:
        text = _LOADED_SOURCES.setdefault(name, _read(name))
    return text


def _resolve(node, current: str, is_pkg: bool) -> list[str]:
    out = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            parts = current.split(".")
            base = parts if is_pkg else parts[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            prefix = ".".join(base)
            mod = f"{prefix}.{node.module}" if node.module else prefix
        else:
            mod = node.module or ""
        out = [mod] + [f"{mod}.{a.name}" for a in node.names]   # "from pkg import submodule"
    return [m for m in out if m.split(".")[0] in PROJECT_PACKAGES]


@lru_cache(maxsize=None)
def _direct_imports(name: str) -> tuple:
    path = module_file(name)
    if path is None:
        return ()
    tree = ast.parse(module_source(name))
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for mod in _resolve(node, name, is_pkg):
                if module_file(mod) is not None:
                    found.add(mod)
    return tuple(sorted(found))


def project_dependencies(*names: str) -> list[str]:
    """The given modules and every project module they import, transitively (sorted)."""
    seen: set[str] = set()
    todo = [n for n in names if module_file(n) is not None]
    missing = [n for n in names if module_file(n) is None]
    if missing:
        raise ImportError(f"unknown module(s) in sources: {', '.join(missing)}")
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        for i in range(1, len(parts)):                 # parent packages run on import too
            parent = ".".join(parts[:i])
            if parent not in seen and module_file(parent) is not None:
                todo.append(parent)
        todo.extend(m for m in _direct_imports(name) if m not in seen)
    return sorted(seen)


def plugin_modules() -> list[str]:
    """Every checker module (a derivation's result depends on the checkers it ran)."""
    from derivations import checkers

    return checkers.modules()


def source_hashes(names) -> dict:
    return {n: _sha(module_source(n))[:16] for n in names}


def environment_key(cfg, device) -> dict:
    from numeric.device import describe
    from numeric.provenance import library_versions

    from derivations.formal import coq_version

    return {"config": cfg.as_dict(), "device": describe(device), "libraries": library_versions(),
            "coqc": coq_version(), "format": CACHE_FORMAT}


def derivation_key(der, cfg, device) -> tuple[str, dict]:
    """(hash, ingredients) of a derivation's audit result."""
    own = der.module.__name__ if der.module is not None else None
    extra_sources = tuple(der.extra.sources)
    deps = project_dependencies(*( [own] if own else []), *ENGINE_MODULES, *plugin_modules(),
                                *extra_sources)
    # ``own`` stays among the dependencies: ``own_source`` is what ``Derivation.source_text``
    # reads (from disk), the dependency hash is the text this process imported.
    ingredients = {
        "kind": "derivation",
        "id": der.id,
        "own_source": _sha(der.source_text()),
        "dependencies": source_hashes(deps),
        "report_sweep": repr(der.extra.report_sweep),
        **environment_key(cfg, device),
    }
    return _sha(json.dumps(ingredients, sort_keys=True, default=str)), ingredients


def section_key(sec, cfg, device, derivation_keys: dict, template_dirs,
                inputs: dict | None = None) -> tuple[str, dict]:
    """(hash, ingredients) of a section's compute result.

    ``derivation_keys`` maps derivation module names to their keys: a section whose sources name
    a derivation module also depends on that derivation's audit result."""
    own = sec.module.__name__ if sec.module is not None else None
    deps = project_dependencies(*([own] if own else []), *sec.sources)
    template_text = None
    for base in template_dirs:
        path = Path(base) / sec.template
        if path.is_file():
            template_text = path.read_text(encoding="utf-8")
            break
    ingredients = {
        "kind": "section",
        "id": sec.id,
        "dependencies": source_hashes(deps),
        "template": _sha(template_text or f"missing {sec.template}"),
        "derivations": {m: derivation_keys[m] for m in sorted(set(deps) & set(derivation_keys))},
        **environment_key(cfg, device),
    }
    if inputs:                       # user inputs a section reads (e.g. named checkpoints)
        ingredients["inputs"] = inputs
    return _sha(json.dumps(ingredients, sort_keys=True, default=str)), ingredients


def file_fingerprint(*paths) -> list:
    """Path, size and modification time of every file under ``paths`` (a cache ingredient)."""
    out = []
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            st = f.stat()
            out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


# The Cache Directory Tagging Specification's tag (backup tools skip such folders); a named
# --cache-dir must be new, empty or carry it, since the cache removes outdated entries.
CACHEDIR_TAG = "CACHEDIR.TAG"
CACHEDIR_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"


def check_cache_dir(path) -> Path:
    """Refuse (``InputError``, before any work) a ``--cache-dir`` we cannot or must not use."""
    from numeric.errors import InputError
    from numeric.io import check_dir_writable

    p = check_dir_writable(path, "--cache-dir")
    if p.is_dir() and any(p.iterdir()) and not _is_cache(p):
        raise InputError(f"--cache-dir {path}: the folder exists, is not empty and is not a cache "
                         f"of this tool (no {CACHEDIR_TAG} in it); name a new or empty folder")
    return p


def _is_cache(root: Path) -> bool:
    tag = root / CACHEDIR_TAG
    try:
        return tag.is_file() and tag.read_text(encoding="utf-8").startswith(CACHEDIR_SIGNATURE)
    except (OSError, UnicodeDecodeError):
        return False


class ResultCache:
    """Directory layout: ``<root>/<kind>/<item-id>-<key16>/{result.json, files/...}``."""

    def __init__(self, root: Path | str, enabled: bool = True):
        self.root = Path(root)
        self.enabled = enabled

    def _tag(self) -> None:
        if not _is_cache(self.root):
            write_text_atomic(self.root / CACHEDIR_TAG,
                              f"{CACHEDIR_SIGNATURE}\n# lora-audit result cache; safe to delete.\n")

    def _dir(self, kind: str, item: str, key: str) -> Path:
        return self.root / kind / f"{item}-{key[:24]}"

    def load(self, kind: str, item: str, key: str, files_to: Path | None = None):
        """The stored result (restoring its files into ``files_to``), or ``None``."""
        if not self.enabled:
            return None
        entry = self._dir(kind, item, key)
        path = entry / "result.json"
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if stored.get("key") != key:
            return None
        if files_to is not None:
            for name in stored.get("files", []):
                src = entry / "files" / name
                if not src.is_file():
                    return None                       # incomplete entry: recompute
            for name in stored.get("files", []):
                shutil.copy2(entry / "files" / name, Path(files_to) / name)
        return stored["result"]

    def store(self, kind: str, item: str, key: str, result, ingredients: dict,
              files=()) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._tag()
        entry = self._dir(kind, item, key)
        tmp = entry.with_name(entry.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / "files").mkdir(parents=True)
        for f in files:
            shutil.copy2(f, tmp / "files" / Path(f).name)
        write_text_atomic(tmp / "result.json",
                          dumps({"key": key, "ingredients": ingredients, "result": result,
                                 "files": [Path(f).name for f in files]}))
        for old in (self.root / kind).glob(f"{item}-*"):   # older keys of the same item
            if old != tmp and old.name[len(item) + 1:].isalnum() and len(old.name) == len(entry.name):
                shutil.rmtree(old, ignore_errors=True)
        if entry.exists():
            shutil.rmtree(entry)
        tmp.rename(entry)
