"""``lora-audit spectra``: singular-value spectra of real weight differences (referee, minor 2).

    lora-audit spectra BASE TUNED [--noise S] [--ranks 1,2,4,...] [--out DIR] ...
    lora-audit spectra --adapter DIR [...]

BASE and TUNED are checkpoints (a ``.safetensors`` file, a sharded folder with its index JSON,
or a PyTorch state dict); ``--adapter`` names a LoRA adapter folder in the PEFT layout.  Layers
are read and analysed one at a time (``numeric.checkpoints``, ``numeric.spectra``).  Writes into
``--out`` (default ``out/spectra``): ``spectra.csv`` (one row per layer), ``spectra-sv.csv``
(the top singular values per layer), ``spectra.json`` (provenance, options, summary, every
layer), and the figures ``spectra-sv.pdf`` and ``spectra-ranks.pdf``.  Exit status: 0 done,
2 bad input (a missing file, mismatched tensors, NaN/inf weights, an adapter without config).
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from numeric.errors import InputError


def _ranks(text: str) -> tuple:
    try:
        vals = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise InputError(f"--ranks expects comma-separated positive integers, got {text!r}") from None
    return vals


def run_spectra(base=None, tuned=None, adapter=None, opts=None, out_dir=None, progress=None,
                figures=True) -> dict:
    """Read, analyse and write; returns ``{"summary", "layers", "files"}`` (JSON-able)."""
    from numeric import checkpoints as ck
    from numeric import spectra as sp
    from numeric.device import describe
    from numeric.io import check_dir_writable, write_json_atomic, write_text_atomic
    from numeric.provenance import provenance

    opts = opts or sp.SpectraOptions()
    if adapter is not None and (base is not None or tuned is not None):
        raise InputError("give either BASE TUNED or --adapter DIR, not both")
    if adapter is None and (base is None or tuned is None):
        raise InputError("spectra needs BASE and TUNED checkpoints, or --adapter DIR")
    out = check_dir_writable(out_dir, "--out") if out_dir is not None else None
    if adapter is not None:
        pairs, skipped, acfg = ck.read_adapter(adapter)
        source = {"adapter": str(adapter), "r": acfg.get("r"), "lora_alpha": acfg.get("lora_alpha"),
                  "use_rslora": bool(acfg.get("use_rslora"))}
    else:
        pairs, skipped = ck.pair_checkpoints(base, tuned)
        source = {"base": str(base), "tuned": str(tuned)}
    if not pairs:
        raise InputError(f"no 2-D tensors to analyse ({skipped.get('not_2d', 0)} non-2-D skipped)")
    import torch

    layers = sp.analyse_pairs(pairs, opts, progress=progress)
    summary = sp.summarize(layers, skipped, opts)
    records = [x.as_dict() for x in layers]
    result = {"provenance": provenance(torch.device(opts.device), config={
                  "noise": opts.noise, "ranks": list(opts.ranks), "exact_max": opts.exact_max,
                  "q": opts.q, "niter": opts.niter, "seed": opts.seed}),
              "source": source, "summary": summary, "layers": records,
              "device": describe(torch.device(opts.device))}
    files = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        rows = [x.row() for x in layers]
        cols = list(dict.fromkeys(c for r in rows for c in r))
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        write_text_atomic(out / "spectra.csv", buf.getvalue())
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["layer", "index", "singular_value"])
        for x in layers:
            for i, s in enumerate(x.sv, start=1):
                w.writerow([x.name, i, repr(s)])
        write_text_atomic(out / "spectra-sv.csv", buf.getvalue())
        files = {"csv": out / "spectra.csv", "sv_csv": out / "spectra-sv.csv",
                 "json": out / "spectra.json"}
        if figures:
            from reports.spectra_figures import make_figures

            files.update(make_figures(records, out))
        result["files"] = {k: str(v) for k, v in files.items()}
        write_json_atomic(out / "spectra.json", result)
    else:
        result["files"] = {}
    return result


def print_summary(res: dict, out=None) -> None:
    out = out or sys.stdout
    s = res["summary"]

    def f(v, spec=".3g"):
        return "n/a" if v is None else format(v, spec)

    print(f"{'layer':<40} {'shape':>11} {'method':>9} {'||dW||_F':>10} {'stable':>7} "
          f"{'entropy':>7} {'r90':>5} {'r99':>5} {'GD':>4} {'keep':>4}", file=out)
    for x in res["layers"]:
        shape = "x".join(str(v) for v in x["shape"])
        print(f"{x['name'][-40:]:<40} {shape:>11} {x['method'][:9]:>9} {f(x['fro']):>10} "
              f"{f(x['stable_rank']):>7} {f(x['effective_rank']):>7} {f(x['rank90'], 'd'):>5} "
              f"{f(x['rank99'], 'd'):>5} {f(x['gd_rank'], 'd'):>4} {f(x['keep_rank'], 'd'):>4}",
              file=out)
    sk = s["skipped"]
    n_skip = sk.get("not_2d", sk.get("not_lora", 0))
    print(f"\n{s['layers']} layers analysed ({', '.join(f'{v} {k}' for k, v in s['methods'].items())}),"
          f" {n_skip} tensors skipped (not 2-D or not LoRA factors), {s['zero_layers']} unchanged",
          file=out)
    cap = ", ".join(f"r={r}: {f(v, '.1%') if v is not None else 'n/a'}"
                    for r, v in s["captured_energy"].items())
    print(f"energy of the shift captured by rank r (all layers): {cap}", file=out)
    print(f"median stable rank {f(s['median_stable_rank'])}, entropy rank "
          f"{f(s['median_effective_rank'])}, Gavish-Donoho rank {f(s['median_gd_rank'])} "
          f"(max {f(s['max_gd_rank'], 'd') if s['max_gd_rank'] is not None else 'n/a'})", file=out)
    if s["noise"] is not None:
        print(f"keep-threshold rank at noise {s['noise']:g}: median {f(s['median_keep_rank'])}; "
              f"differs from Gavish-Donoho in {len(s['disagreements'])} layer(s)"
              + (f": {', '.join(s['disagreements'][:6])}" if s["disagreements"] else ""), file=out)
    for name, path in res.get("files", {}).items():
        print(f"  wrote {path}", file=out)


def cmd_spectra(args) -> int:
    from numeric.device import resolve
    from numeric.spectra import SpectraOptions

    from .sensitivity import ProgressBar

    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {args.seed}")
    device = resolve(args.device)
    opts = SpectraOptions(noise=args.noise, ranks=_ranks(args.ranks), exact_max=args.exact_max,
                          q=args.q, niter=args.niter, seed=args.seed or 0, device=str(device))
    if len(args.checkpoints) not in (0, 2):
        raise InputError(f"spectra takes BASE and TUNED (two paths), got {len(args.checkpoints)}")
    base, tuned = (args.checkpoints + [None, None])[:2] if args.checkpoints else (None, None)
    bar = ProgressBar("layers")
    res = run_spectra(base, tuned, args.adapter, opts, Path(args.out) if args.out else
                      Path("out") / "spectra", progress=bar, figures=not args.no_figures)
    if args.json:
        from numeric.io import dumps

        print(dumps(res))
    else:
        print_summary(res)
    return 0


def cmd_practical(args) -> int:
    from numeric import practical as pr

    from .sensitivity import ProgressBar

    if args.seed is not None and args.seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {args.seed}")
    cfg = pr.QUICK if args.quick else pr.PracticalConfig()
    changes = {"seed": args.seed or 0}
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    cfg = type(cfg)(**{**cfg.__dict__, **changes})
    from numeric.io import check_dir_writable, write_json_atomic

    out = check_dir_writable(args.out or Path("out") / "practical", "--out")
    res = pr.run(cfg, out / "checkpoints", progress=ProgressBar("fits"))
    spec = run_spectra(out / "checkpoints" / "base.safetensors",
                       out / "checkpoints" / "fft-seed0.safetensors", out_dir=out / "spectra",
                       opts=None, progress=None, figures=True)
    res["spectra_files"] = spec["files"]
    write_json_atomic(out / "practical.json", res)
    print(f"{'method':<12} {'test error':>10} {'SE':>8}")
    for t in res["table"]:
        print(f"{t['method']:<12} {t['test_error']:>10.4f} {t['se']:>8.4f}")
    print(f"best LoRA rank {res['best_lora_rank']} (within 2 SE: "
          f"{', '.join(map(str, res['ranks_within_2se_of_best']))}); FFT vs best LoRA: "
          f"{res['verdict_fft_vs_lora']}; Gavish-Donoho rank of the FFT shift (max over layers) "
          f"{res['suggested_rank_gd_max']}")
    print(f"  wrote {out / 'practical.json'}, checkpoints in {out / 'checkpoints'}, spectra in "
          f"{out / 'spectra'}")
    return 0


def register_practical(subparsers) -> None:
    q = subparsers.add_parser(
        "practical", help="pretrain, fine-tune by FFT and LoRA on a bundled real data set, spectra",
        description="The practical task (numeric/practical.py): scikit-learn's digits, FFT and "
                    "LoRA over ranks and seeds, checkpoints as safetensors/PEFT adapters, then "
                    "`spectra` of the FFT shift. Writes practical.json, checkpoints/, spectra/.")
    q.add_argument("--quick", action="store_true", help="CI-sized (seconds)")
    q.add_argument("--seeds", type=int, default=None, help="seeds (default 5; quick 3)")
    q.add_argument("--seed", type=int, default=None, help="master seed")
    q.add_argument("--out", metavar="DIR", help="output folder (default out/practical)")
    q.set_defaults(func=cmd_practical)


def register(subparsers) -> None:
    q = subparsers.add_parser(
        "spectra", help="singular-value spectra and effective ranks of real weight differences",
        description=__doc__.split("\n\n")[0] + " Layers are streamed one at a time; see README.")
    q.add_argument("checkpoints", nargs="*", metavar="BASE TUNED",
                   help="pretrained and fine-tuned checkpoints (.safetensors, sharded folder, .pt/.bin)")
    q.add_argument("--adapter", metavar="DIR", help="a LoRA adapter folder (PEFT layout)")
    q.add_argument("--noise", type=float, default=None,
                   help="noise level per entry: also report the keep-threshold rank of the sharp asymptotics")
    q.add_argument("--ranks", default="1,2,4,8,16,32,64",
                   help="LoRA ranks at which to report the captured energy")
    q.add_argument("--exact-max", type=int, default=4096,
                   help="exact SVD when min(rows, cols) <= this, randomized top-q otherwise")
    q.add_argument("--q", type=int, default=256, help="singular values of the randomized SVD")
    q.add_argument("--niter", type=int, default=4, help="power iterations of the randomized SVD")
    q.add_argument("--seed", type=int, default=None, help="seed of the randomized sketch")
    q.add_argument("--out", metavar="DIR", help="output folder (default out/spectra)")
    q.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.add_argument("--no-figures", action="store_true", help="skip the PDF figures")
    q.set_defaults(func=cmd_spectra)
    register_practical(subparsers)


__all__ = ["register", "register_practical", "run_spectra", "print_summary"]
