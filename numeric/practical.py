"""A practical task run end to end: pretrain, fine-tune by FFT and by LoRA, save, measure spectra.

The paper claims its trade-offs "extend beyond linear regression" on practical tasks; the
referee asks how low-rank real weight differences are.  This experiment needs no download: it
uses scikit-learn's bundled handwritten-digits data (1797 8x8 images, 10 classes).

* **Pretraining task:** classify the digits, on the images as they are (half of the data).
* **Downstream task (related):** the same classes on *mirrored* images (left-right flip) with a
  small training set (``n_down`` images from the other half; the rest is the test set).  The
  features change, the labels do not: a shift that the pretrained network must absorb.
* **Network:** an MLP ``64 -> h -> h -> 10`` (ReLU), all three weight matrices fine-tuned.
* **FFT:** every weight and bias trained from the pretrained values.
* **LoRA of rank r:** ``W = W0 + (alpha / r) B A`` on each weight matrix (``B = 0`` at start,
  ``A`` small random, the usual initialisation), biases frozen, for every ``r`` in ``ranks``.
* Both by full-batch Adam for ``steps`` steps with a fixed learning rate each, over ``seeds``
  seeds (the seed draws the downstream sample, the LoRA initialisation and nothing else: the
  pretrained network is the same for every seed).

Reported: the test error of each method (mean and standard error over seeds), the checkpoints
(``base.safetensors``, ``fft-seed<j>.safetensors``, and each LoRA fit as a PEFT-layout adapter
folder ``lora-r<r>-seed<j>/``), and ``spectra`` of the FFT shift ``W_fft - W0`` per layer, with
the rank it suggests, set against the rank at which LoRA does best.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import InputError


@dataclass(frozen=True)
class PracticalConfig:
    hidden: int = 64          # hidden width h
    n_down: int = 200         # downstream training images
    ranks: tuple = (1, 2, 4, 8, 16, 32)
    seeds: int = 5
    steps_pre: int = 400      # pretraining steps
    steps: int = 300          # fine-tuning steps
    lr_pre: float = 1e-2
    lr_fft: float = 3e-3
    lr_lora: float = 1e-2
    alpha: float = 16.0       # LoRA scaling alpha / r
    seed: int = 0             # master seed (pretraining, splits)

    def __post_init__(self):
        if self.hidden < 2 or self.n_down < 10 or self.seeds < 2 or self.steps < 1:
            raise InputError("practical: need hidden >= 2, n_down >= 10, seeds >= 2, steps >= 1")
        if any(r < 1 or r > self.hidden for r in self.ranks):
            raise InputError(f"practical: LoRA ranks must lie in [1, hidden = {self.hidden}]")


QUICK = PracticalConfig(hidden=32, n_down=150, ranks=(1, 2, 4, 8), seeds=3, steps_pre=250,
                        steps=150)
LAYERS = ("l1.weight", "l2.weight", "l3.weight")


def _need_sklearn():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputError("the practical task needs scikit-learn: "
                         "python3 -m pip install -e '.[practical]'") from None
    return load_digits


def load_data(cfg: PracticalConfig):
    """Standardised images, labels, and the fixed pretraining / downstream split."""
    import numpy as np
    import torch

    x, y = _need_sklearn()(return_X_y=True)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(y))
    pre, down = order[: len(y) // 2], order[len(y) // 2:]
    mirrored = x.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64)
    mu, sd = x[pre].mean(0), x[pre].std(0) + 1e-6     # the pretraining statistics, reused
    f = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float64)  # noqa: E731
    return {"x_pre": f(x[pre]), "y_pre": torch.tensor(y[pre]),
            "x_down": f(mirrored[down]), "y_down": torch.tensor(y[down])}


def _mlp(cfg, gen):
    import torch

    def lin(i, o):
        w = torch.randn(o, i, generator=gen, dtype=torch.float64) * math.sqrt(2.0 / i)
        return w, torch.zeros(o, dtype=torch.float64)

    (w1, b1), (w2, b2), (w3, b3) = lin(64, cfg.hidden), lin(cfg.hidden, cfg.hidden), lin(cfg.hidden, 10)
    return {"l1.weight": w1, "l1.bias": b1, "l2.weight": w2, "l2.bias": b2,
            "l3.weight": w3, "l3.bias": b3}


def forward(p: dict, x):
    import torch

    h = torch.relu(x @ p["l1.weight"].T + p["l1.bias"])
    h = torch.relu(h @ p["l2.weight"].T + p["l2.bias"])
    return h @ p["l3.weight"].T + p["l3.bias"]


def _adam(params: list, loss_fn, steps: int, lr: float):
    import torch

    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    return float(loss_fn().detach())


def error_rate(p, x, y) -> float:
    return float((forward(p, x).argmax(1) != y).double().mean())


def pretrain(cfg: PracticalConfig, data):
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    p = {k: v.requires_grad_(True) for k, v in _mlp(cfg, gen).items()}
    ce = torch.nn.functional.cross_entropy
    _adam(list(p.values()), lambda: ce(forward(p, data["x_pre"]), data["y_pre"]), cfg.steps_pre,
          cfg.lr_pre)
    return {k: v.detach().clone() for k, v in p.items()}


def _split(cfg, data, j):
    import torch

    gen = torch.Generator().manual_seed(cfg.seed * 7919 + 1000 + j)
    idx = torch.randperm(len(data["y_down"]), generator=gen)
    tr, te = idx[: cfg.n_down], idx[cfg.n_down:]
    return (data["x_down"][tr], data["y_down"][tr]), (data["x_down"][te], data["y_down"][te]), gen


def finetune_fft(cfg, base, train):
    import torch

    p = {k: v.clone().requires_grad_(True) for k, v in base.items()}
    ce = torch.nn.functional.cross_entropy
    _adam(list(p.values()), lambda: ce(forward(p, train[0]), train[1]), cfg.steps, cfg.lr_fft)
    return {k: v.detach() for k, v in p.items()}


def finetune_lora(cfg, base, train, r, gen):
    import torch

    factors = {}
    for k in LAYERS:
        out_dim, in_dim = base[k].shape
        a = (torch.randn(r, in_dim, generator=gen, dtype=torch.float64) / math.sqrt(in_dim))
        factors[k] = (torch.zeros(out_dim, r, dtype=torch.float64).requires_grad_(True),
                      a.requires_grad_(True))
    scale = cfg.alpha / r

    def weights():
        return {k: (base[k] + scale * factors[k][0] @ factors[k][1]) if k in factors else base[k]
                for k in base}

    ce = torch.nn.functional.cross_entropy
    params = [t for pair in factors.values() for t in pair]
    _adam(params, lambda: ce(forward(weights(), train[0]), train[1]), cfg.steps, cfg.lr_lora)
    return ({k: v.detach() for k, v in weights().items()},
            {k: (b.detach(), a.detach()) for k, (b, a) in factors.items()}, scale)


def save_adapter(folder: Path, factors: dict, r: int, alpha: float) -> None:
    """A PEFT-layout adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, (b, a) in factors.items():
        module = k.rsplit(".", 1)[0]
        tensors[f"base_model.model.{module}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{module}.lora_B.weight"] = b.contiguous()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": alpha, "use_rslora": False,
        "target_modules": [k.rsplit(".", 1)[0] for k in factors], "lora_dropout": 0.0,
        "bias": "none", "fan_in_fan_out": False}, indent=2))


def _mean_se(vals):
    m = sum(vals) / len(vals)
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var / len(vals))


def run(cfg: PracticalConfig, out_dir, progress=None) -> dict:
    """The whole experiment; writes the checkpoints into ``out_dir``; returns JSON-able results."""
    import torch
    from safetensors.torch import save_file

    from .spectra import SpectraOptions, analyse

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)             # small matrices: one thread is fastest and reproducible
    try:
        data = load_data(cfg)
        base = pretrain(cfg, data)
        save_file({k: v.contiguous() for k, v in base.items()}, str(out_dir / "base.safetensors"))
        pre_err_source = error_rate(base, data["x_pre"], data["y_pre"])
        runs = {"fft": [], **{f"lora-r{r}": [] for r in cfg.ranks}, "pretrained": []}
        shift_spectra = []
        total = cfg.seeds * (2 + len(cfg.ranks))
        done = 0
        for j in range(cfg.seeds):
            train, test, gen = _split(cfg, data, j)
            runs["pretrained"].append(error_rate(base, *test))
            fft = finetune_fft(cfg, base, train)
            runs["fft"].append(error_rate(fft, *test))
            save_file({k: v.contiguous() for k, v in fft.items()},
                      str(out_dir / f"fft-seed{j}.safetensors"))
            done += 2
            if progress:
                progress(done, total, f"seed {j}: FFT", False)
            if j == 0:
                for k in LAYERS:
                    dw = fft[k] - base[k]
                    shift_spectra.append(analyse(k, tuple(dw.shape), "difference", dw,
                                                 SpectraOptions()).as_dict())
            for r in cfg.ranks:
                w, factors, _ = finetune_lora(cfg, base, train, r, gen)
                runs[f"lora-r{r}"].append(error_rate(w, *test))
                if j == 0:
                    save_adapter(out_dir / f"lora-r{r}-seed{j}", factors, r, cfg.alpha)
                done += 1
                if progress:
                    progress(done, total, f"seed {j}: LoRA r={r}", False)
    finally:
        torch.set_num_threads(threads)
    table = []
    for name, vals in runs.items():
        m, se = _mean_se(vals)
        table.append({"method": name, "rank": int(name.split("-r")[1]) if "-r" in name else None,
                      "test_error": m, "se": se, "per_seed": vals})
    lora = [t for t in table if t["rank"] is not None]
    best = min(lora, key=lambda t: t["test_error"])
    fft_row = next(t for t in table if t["method"] == "fft")
    gd = [x["gd_rank"] for x in shift_spectra if x["gd_rank"] is not None]
    r90 = [x["rank90"] for x in shift_spectra if x["rank90"] is not None]
    suggested = max(gd) if gd else None
    nearest = (min(cfg.ranks, key=lambda r: (abs(math.log(r) - math.log(max(suggested, 1))), r))
               if suggested is not None else None)
    # which LoRA ranks are statistically indistinguishable from the best (within 2 SE)?
    near = [t["rank"] for t in lora if t["test_error"] - best["test_error"]
            <= 2 * math.hypot(t["se"], best["se"])]
    diff = fft_row["test_error"] - best["test_error"]
    se_diff = math.hypot(fft_row["se"], best["se"])
    return {
        "config": asdict(cfg), "pretrain_train_error": pre_err_source,
        "table": table, "best_lora_rank": best["rank"], "best_lora_error": best["test_error"],
        "ranks_within_2se_of_best": near, "fft_error": fft_row["test_error"],
        "fft_minus_best_lora": diff, "fft_minus_best_lora_se": se_diff,
        "verdict_fft_vs_lora": ("FFT better" if diff < -2 * se_diff else
                                "LoRA better" if diff > 2 * se_diff else "tie within 2 SE"),
        "shift_spectra": shift_spectra, "suggested_rank_gd_max": suggested,
        "rank90_by_layer": r90, "nearest_rank_tried": nearest,
        "suggested_rank_in_best_set": (nearest in near if nearest is not None else None),
        "files": sorted(p.name for p in out_dir.iterdir()),
    }
