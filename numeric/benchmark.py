"""Benchmarks (a script that prints figures; never run as a timed unit test).

    python3 -m numeric.benchmark [--device auto|cpu|cuda] [--repeat N]

Prints, for the machine it runs on: high-precision evaluation time of a typical matrix step at
50 and 100 digits, and Monte Carlo throughput (data sets per second) of the batched FFT and LoRA
estimators at several sizes on the chosen device.
"""
from __future__ import annotations

import argparse
import time

import mpmath as mp
import numpy as np
import sympy as sp


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_hp(repeat):
    from numeric import evaluate as ev
    from numeric import instances
    from numeric.params import make_params
    from symbolic.ops import Frob2
    from symbolic.registry import sym

    X, S, Sigma = sym("X"), sym("S"), sym("Sigma")
    expr = Frob2(X.T * S.I * Sigma ** sp.Rational(1, 2))
    rows = []
    for dps in (50, 100):
        for d, n in ((4, 12), (8, 24)):
            p = make_params(d=d, n=n, k=3, cov_eigs=tuple(range(1, d + 1)))

            def run():
                with mp.workdps(dps):
                    inst = instances.mp_instance(p)
                    env = dict(inst)
                    env.update(instances.draw_mp(["X"], inst, np.random.default_rng(0)))
                    env["S"] = env["X"] * env["X"].T
                    ev.evaluate(expr, env, ev.MpBackend())

            rows.append((dps, d, n, _best(run, repeat)))
    print("high precision: instance + ||X^T S^-1 Sigma^1/2||_F^2")
    for dps, d, n, t in rows:
        print(f"  dps={dps:<4} d={d:<3} n={n:<3} {1000 * t:8.1f} ms")


def bench_mc(device, repeat):
    import torch

    from numeric import estimators
    from numeric.device import describe, generator, resolve
    from numeric.instances import torch_instance
    from numeric.params import make_params

    dev = resolve(device)
    print(f"Monte Carlo throughput on {describe(dev)} (float64)")
    for d, k, n, batch in ((8, 4, 32, 4000), (50, 20, 200, 500), (200, 100, 800, 50), (800, 100, 200, 20)):
        p = make_params(d=d, k=k, n=n, r=2, shift_sv=(3.0, 2.0))
        inst = torch_instance(p, dev)
        gen = generator(0)
        for name, fit in (("fft", estimators.fft), ("lora r=2", lambda X, R: estimators.lora(X, R, 2))):
            def run():
                X, R = estimators.sample_data(inst, batch, gen, dev)
                estimators.excess_risk(fit(X, R), inst["Delta"], inst["SigmaHalf"]).sum().item()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
            t = _best(run, repeat)
            print(f"  d={d:<4} k={k:<4} n={n:<4} {name:<9} {batch / t:10.0f} data sets/s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    bench_hp(args.repeat)
    bench_mc(args.device, args.repeat)


if __name__ == "__main__":
    main()
