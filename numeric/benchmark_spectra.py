"""Benchmark of ``lora-audit spectra``: layers per second for a square shift, exact and randomized.

    python3 -m numeric.benchmark_spectra [--size 4096] [--q 256] [--repeat 1]

Prints, for one ``size x size`` float64 weight difference (rank-64 signal plus noise), the wall
time and layers/s of the exact path (all singular values) and of the randomized top-q path
(``torch.svd_lowrank``, 4 power iterations), the randomized bracket width, and the peak memory
that the layer needs (the tensor plus LAPACK's workspace, measured as the process's peak RSS
growth).  Figures, not a test: the README quotes them with the machine they were taken on.
"""
from __future__ import annotations

import argparse
import resource
import time


def main(argv=None) -> int:
    import torch

    from numeric.spectra import SpectraOptions, analyse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--q", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    n = args.size
    g = torch.Generator().manual_seed(0)
    u = torch.linalg.qr(torch.randn(n, 64, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(n, 64, generator=g, dtype=torch.float64))[0]
    dw = u @ torch.diag(torch.linspace(50, 5, 64, dtype=torch.float64)) @ v.T \
        + 0.01 * torch.randn(n, n, generator=g, dtype=torch.float64)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"spectra benchmark: {n} x {n} float64 shift, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for label, opts in (("exact", SpectraOptions(exact_max=n)),
                        (f"randomized q={args.q}", SpectraOptions(exact_max=n - 1, q=args.q))):
        t0 = time.perf_counter()
        for _ in range(args.repeat):
            res = analyse("w", (n, n), "difference", dw, opts)
        dt = (time.perf_counter() - t0) / args.repeat
        extra = f", bracket width {res.error_bound:.3g}" if res.error_bound else ""
        print(f"  {label:<16} {dt:8.2f} s/layer  {1 / dt:8.3f} layers/s  (GD rank "
              f"{res.gd_rank}, 90% energy rank {res.rank90}{extra})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"  peak RSS growth during the layers: {(peak - rss0) / 1024:.0f} MiB "
          f"(the layer itself: {dw.numel() * 8 / 2 ** 20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
