"""reports.cache hashes module sources as imported, not as the file reads later (issue 14)."""
from __future__ import annotations

import importlib
import sys

import pytest

from reports import cache


@pytest.fixture
def tmp_project(tmp_path, monkeypatch):
    """A throw-away project package ``zzcachepkg`` with one module, importable and hashed."""
    pkg = tmp_path / "zzcachepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "mod.py").write_text("VALUE = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cache, "PROJECT_PACKAGES", (*cache.PROJECT_PACKAGES, "zzcachepkg"))
    monkeypatch.setattr(cache, "_LOADED_SOURCES", {})
    cache._direct_imports.cache_clear()
    yield pkg
    cache._direct_imports.cache_clear()
    for name in ("zzcachepkg.mod", "zzcachepkg"):
        sys.modules.pop(name, None)


def test_a_source_edited_after_import_keeps_the_imported_text(tmp_project):
    mod = importlib.import_module("zzcachepkg.mod")
    assert cache.snapshot_loaded() >= 1                 # registration time: recorded once
    before = cache.source_hashes(["zzcachepkg.mod"])
    (tmp_project / "mod.py").write_text("VALUE = 2\n", encoding="utf-8")   # edited mid-build
    assert mod.VALUE == 1                                # the code that runs is the old one
    assert cache.module_source("zzcachepkg.mod") == "VALUE = 1\n"
    assert cache.source_hashes(["zzcachepkg.mod"]) == before
    # control: the file on disk did change, so a key read from disk would have moved
    assert cache._read("zzcachepkg.mod") == "VALUE = 2\n"
    assert cache._sha(cache._read("zzcachepkg.mod"))[:16] != before["zzcachepkg.mod"]


def test_a_new_process_hashes_the_new_text(tmp_project):
    importlib.import_module("zzcachepkg.mod")
    cache.snapshot_loaded()
    old = cache.source_hashes(["zzcachepkg.mod"])
    (tmp_project / "mod.py").write_text("VALUE = 2\n", encoding="utf-8")
    cache._LOADED_SOURCES.clear()                      # what a later build (new process) sees
    sys.modules.pop("zzcachepkg.mod")
    importlib.invalidate_caches()
    importlib.import_module("zzcachepkg.mod")
    assert cache.source_hashes(["zzcachepkg.mod"]) != old


def test_a_module_first_met_unimported_is_read_once(tmp_project):
    assert "zzcachepkg.mod" not in sys.modules
    first = cache.module_source("zzcachepkg.mod")
    (tmp_project / "mod.py").write_text("VALUE = 3\n", encoding="utf-8")
    assert cache.module_source("zzcachepkg.mod") == first == "VALUE = 1\n"


def test_derivation_key_covers_the_imported_module_source(monkeypatch):
    """The derivation's own module is hashed from the imported text as well (not only from
    ``Derivation.source_text``, which reads the file): a stale build's key differs from the key
    the next build computes for the edited file."""
    from derivations import get
    from derivations.config import make_config
    from numeric.device import resolve

    der = get("fft_over")
    cfg, dev = make_config(quick=True, device="cpu"), resolve("cpu")
    cache.snapshot_loaded()
    _, ing = cache.derivation_key(der, cfg, dev)
    own = der.module.__name__
    assert ing["dependencies"][own] == cache._sha(cache.module_source(own))[:16]
    k_run, _ = cache.derivation_key(der, cfg, dev)
    # the file on disk edited during this build: source_text reads it, the snapshot does not
    monkeypatch.setattr(der, "source_text", lambda: "# edited\n" + type(der).source_text(der))
    k_stale, _ = cache.derivation_key(der, cfg, dev)
    monkeypatch.setitem(cache._LOADED_SOURCES, own, der.source_text())
    k_next, _ = cache.derivation_key(der, cfg, dev)     # the next build imports the edited file
    assert len({k_run, k_stale, k_next}) == 3
