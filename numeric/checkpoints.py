"""Read weight matrices from the checkpoint formats people have, one tensor at a time.

Formats (recognised from the path, never from a training library at run time):

* a ``.safetensors`` file (read lazily with ``safetensors.safe_open``: only the tensor asked for
  is read from disk);
* a sharded folder: ``*.safetensors.index.json`` (or ``pytorch_model.bin.index.json``) with its
  ``weight_map`` from tensor name to shard file, each shard opened lazily;
* a PyTorch state dict (``.pt``, ``.pth``, ``.bin``) through ``torch.load(weights_only=True,
  mmap=True)``: no code is unpickled, and the zip format is memory-mapped, so a tensor is paged
  in only when it is used (old non-zip files are read whole; ``mmap`` needs the zip format);
* a folder holding exactly one ``model.safetensors``/``pytorch_model.bin`` (a saved model).

A LoRA adapter in the PEFT layout (``adapter_config.json`` beside ``adapter_model.safetensors``
or ``adapter_model.bin``) is read by ``read_adapter``: per adapted module, the factors ``A``
(``r x in``) and ``B`` (``out x r``) and the scaling ``lora_alpha / r`` (``lora_alpha / sqrt(r)``
with ``use_rslora``), with ``rank_pattern``/``alpha_pattern`` overrides; ``dW = scaling * B @ A``.

Every problem is an ``InputError`` naming the file and the tensor (the command line exits 2).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import InputError

INDEX_SUFFIXES = (".safetensors.index.json", ".bin.index.json", ".pt.index.json")
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")


def _need_safetensors():
    try:
        from safetensors import safe_open
    except ImportError:                                   # pragma: no cover - a declared dependency
        raise InputError("reading .safetensors needs the safetensors package: "
                         "python3 -m pip install -e '.[spectra]'") from None
    return safe_open


class Checkpoint:
    """Names, shapes and lazily loaded tensors of one checkpoint (file, folder or state dict)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{path}: no such file or folder")
        self._where: dict[str, Path] = {}          # tensor name -> file holding it
        self._shapes: dict[str, tuple] = {}
        self._state: dict[Path, dict] = {}          # loaded (memory-mapped) state dicts
        self._open: dict[Path, object] = {}         # open safetensors handles
        for f in self._files():
            self._scan(f)
        if not self._shapes:
            raise InputError(f"{path}: holds no tensors")

    # ------------------------------------------------------------------ layout
    def _files(self) -> list[Path]:
        p = self.path
        if p.is_file():
            if p.name.endswith(INDEX_SUFFIXES):
                return self._from_index(p)
            return [p]
        indexes = sorted(f for f in p.iterdir() if f.name.endswith(INDEX_SUFFIXES))
        if len(indexes) > 1:
            raise InputError(f"{p}: several index files ({', '.join(f.name for f in indexes)}); "
                             "name the one to read")
        if indexes:
            return self._from_index(indexes[0])
        singles = [p / n for n in SINGLE_FILES if (p / n).is_file()]
        if singles:
            return singles[:1]
        st = sorted(f for f in p.iterdir() if f.suffix == ".safetensors")
        if len(st) == 1:
            return st
        if (p / "adapter_config.json").is_file():
            raise InputError(f"{p}: is a LoRA adapter folder; use `lora-audit spectra --adapter {p}`")
        raise InputError(f"{p}: no checkpoint found (expected a .safetensors file, a sharded folder "
                         "with its *.index.json, or a PyTorch state dict)")

    def _from_index(self, index: Path) -> list[Path]:
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
            wmap = data["weight_map"]
            if not isinstance(wmap, dict):
                raise TypeError
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{index}: not a valid shard index (expected JSON with a "
                             "'weight_map' from tensor names to shard files)") from None
        files = []
        for name, shard in wmap.items():
            f = index.parent / str(shard)
            if not f.is_file():
                raise InputError(f"{index}: tensor {name!r} is in shard {shard!r}, which is missing")
            self._where[name] = f
            if f not in files:
                files.append(f)
        return files

    def _scan(self, f: Path) -> None:
        declared = {n for n, w in self._where.items() if w == f}
        if f.suffix == ".safetensors":
            safe_open = _need_safetensors()
            try:
                h = safe_open(str(f), framework="pt")
                names = list(h.keys())
                shapes = {n: tuple(h.get_slice(n).get_shape()) for n in names}
            except Exception as exc:  # noqa: BLE001 -- safetensors raises its own error types
                raise InputError(f"{f}: not a readable safetensors file ({exc})") from None
            self._open[f] = h
        elif f.suffix in STATE_DICT_SUFFIXES:
            sd = self._load_state_dict(f)
            names = list(sd)
            shapes = {n: tuple(sd[n].shape) for n in names}
        else:
            raise InputError(f"{f}: unknown checkpoint format (use .safetensors, .pt/.pth/.bin, or "
                             "a sharded folder with its index JSON)")
        if declared and not declared <= set(names):
            missing = sorted(declared - set(names))
            raise InputError(f"{f}: the index places {len(missing)} tensor(s) here that it does "
                             f"not hold: {', '.join(missing[:5])}")
        for n in names:
            if n in self._shapes and self._where.get(n) not in (None, f):
                raise InputError(f"{self.path}: tensor {n!r} appears in two shards")
            self._where[n] = f
            self._shapes[n] = shapes[n]

    def _load_state_dict(self, f: Path) -> dict:
        import torch

        try:
            try:
                sd = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:                 # a legacy (non-zip) file cannot be mapped
                sd = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 -- pickle/zip errors of every kind
            raise InputError(f"{f}: not a PyTorch state dict readable with weights_only=True "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise InputError(f"{f}: holds a {type(sd).__name__}, not a state dict of tensors")
        tensors = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
        self._state[f] = tensors
        return tensors

    # ------------------------------------------------------------------ access
    def names(self) -> list[str]:
        return list(self._shapes)

    def shape(self, name: str) -> tuple:
        return self._shapes[name]

    def tensor(self, name: str):
        """The tensor, read now (float64 on the CPU), refused if it holds NaN or inf."""
        import torch

        f = self._where[name]
        t = self._open[f].get_tensor(name) if f in self._open else self._state[f][name]
        t = t.to(dtype=torch.float64)
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise InputError(f"{f}: tensor {name!r} holds {bad} NaN/inf value(s)")
        return t


@dataclass(frozen=True)
class Pair:
    """A weight difference to analyse: its name, stored shape and a loader of ``dW``."""

    name: str
    shape: tuple
    load: object          # () -> 2-D float64 tensor, or (B, A, scaling) for an adapter
    kind: str             # "difference" | "adapter"


def pair_checkpoints(base, tuned) -> tuple[list[Pair], dict]:
    """The 2-D tensors common to BASE and TUNED, as differences; counts of what was skipped.

    Names present on one side only, and shapes that differ, are refused (listed)."""
    b, t = Checkpoint(base), Checkpoint(tuned)
    only_b = sorted(set(b.names()) - set(t.names()))
    only_t = sorted(set(t.names()) - set(b.names()))
    if only_b or only_t:
        parts = []
        if only_b:
            parts.append(f"only in BASE ({len(only_b)}): {', '.join(only_b[:8])}"
                         + (" ..." if len(only_b) > 8 else ""))
        if only_t:
            parts.append(f"only in TUNED ({len(only_t)}): {', '.join(only_t[:8])}"
                         + (" ..." if len(only_t) > 8 else ""))
        raise InputError("BASE and TUNED hold different tensors: " + "; ".join(parts))
    wrong = [f"{n} {b.shape(n)} vs {t.shape(n)}" for n in b.names() if b.shape(n) != t.shape(n)]
    if wrong:
        raise InputError(f"{len(wrong)} tensor(s) differ in shape between BASE and TUNED: "
                         + "; ".join(wrong[:8]) + (" ..." if len(wrong) > 8 else ""))
    pairs, skipped = [], {"not_2d": 0, "names_not_2d": []}
    for n in b.names():
        shape = b.shape(n)
        if len(shape) != 2:
            skipped["not_2d"] += 1
            skipped["names_not_2d"].append(n)
            continue
        pairs.append(Pair(n, shape, (lambda n=n: t.tensor(n) - b.tensor(n)), "difference"))
    return pairs, skipped


# --------------------------------------------------------------------------------- adapters
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<which>lora_A|lora_B)(?:\.(?P<adapter>[^.]+))?\.weight$")
_EMB_KEY = re.compile(r"^(?P<module>.+)\.(?P<which>lora_embedding_A|lora_embedding_B)(?:\.(?P<adapter>[^.]+))?$")


def _adapter_config(folder: Path) -> dict:
    cfg_path = folder / "adapter_config.json"
    if not cfg_path.is_file():
        raise InputError(f"{folder}: a LoRA adapter needs its adapter_config.json (not found)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{cfg_path}: expected a JSON object")
    ptype = str(cfg.get("peft_type", "LORA")).upper()
    if ptype != "LORA":
        raise InputError(f"{cfg_path}: peft_type {ptype!r} is not LoRA (B @ A); not supported")
    if cfg.get("use_dora"):
        raise InputError(f"{cfg_path}: a DoRA adapter rescales the weight by a magnitude vector, so "
                         "its shift is not B @ A alone; not supported")
    for key in ("r", "lora_alpha"):
        v = cfg.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise InputError(f"{cfg_path}: {key} must be a positive number, got {v!r}")
    return cfg


def _pattern(patterns: dict, module: str, default):
    """PEFT's ``rank_pattern``/``alpha_pattern``: the key matching the module's name (a suffix
    match, or a regular expression), the last match wins; else the default."""
    value = default
    for key, v in (patterns or {}).items():
        if module == key or module.endswith("." + key) or re.fullmatch(f".*\\.{key}", module):
            value = v
    return value


def scaling_of(cfg: dict, module: str) -> tuple[int, float]:
    """``(r, scaling)`` of one module: ``lora_alpha / r``, or ``lora_alpha / sqrt(r)`` (rsLoRA)."""
    r = _pattern(cfg.get("rank_pattern"), module, cfg["r"])
    alpha = _pattern(cfg.get("alpha_pattern"), module, cfg["lora_alpha"])
    return int(r), float(alpha) / (math.sqrt(r) if cfg.get("use_rslora") else r)


def read_adapter(folder) -> tuple[list[Pair], dict, dict]:
    """Pairs ``(B, A, scaling)`` per adapted module, the skip counts, and the adapter config."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: an adapter is a folder (adapter_config.json + "
                         "adapter_model.safetensors)")
    cfg = _adapter_config(folder)
    files = [folder / n for n in ("adapter_model.safetensors", "adapter_model.bin")
             if (folder / n).is_file()]
    if not files:
        raise InputError(f"{folder}: no adapter_model.safetensors or adapter_model.bin")
    ck = Checkpoint(files[0])
    parts: dict[str, dict] = {}
    skipped = {"not_lora": 0, "names_not_lora": []}
    for n in ck.names():
        m = _LORA_KEY.match(n) or _EMB_KEY.match(n)
        if not m:
            skipped["not_lora"] += 1
            skipped["names_not_lora"].append(n)
            continue
        parts.setdefault(m.group("module"), {})[m.group("which")] = n
    pairs = []
    fan_in_fan_out = bool(cfg.get("fan_in_fan_out"))
    for module, p in sorted(parts.items()):
        emb = "lora_embedding_A" in p or "lora_embedding_B" in p
        a_key, b_key = ("lora_embedding_A", "lora_embedding_B") if emb else ("lora_A", "lora_B")
        if a_key not in p or b_key not in p:
            raise InputError(f"{files[0]}: module {module!r} has {', '.join(sorted(p))} but not "
                             "both LoRA factors A and B")
        sa, sb = ck.shape(p[a_key]), ck.shape(p[b_key])
        if len(sa) != 2 or len(sb) != 2 or sb[1] != sa[0]:
            raise InputError(f"{files[0]}: module {module!r}: factors of shapes B {sb}, A {sa} "
                             "do not multiply (need B: out x r, A: r x in)")
        r, scale = scaling_of(cfg, module)
        shape = (sb[0], sa[1])
        if emb or fan_in_fan_out:              # stored transposed (embeddings, GPT-2 Conv1D)
            shape = (sa[1], sb[0])
        pairs.append(Pair(module, shape,
                          (lambda a=p[a_key], b=p[b_key], s=scale: (ck.tensor(b), ck.tensor(a), s)),
                          "adapter"))
    if not pairs:
        raise InputError(f"{files[0]}: no LoRA factors (lora_A/lora_B) found")
    return pairs, skipped, cfg


def iter_loaded(pairs) -> Iterator[tuple[Pair, object]]:
    """Each pair with its data, loaded only when reached (one layer in memory at a time)."""
    for p in pairs:
        yield p, p.load()
