"""Benchmarks (a script that prints figures; never run as a timed unit test).

    python3 -m numeric.benchmark [--device auto|cpu|cuda] [--repeat N] [--no-pipeline]

Prints, for the machine it runs on:

1. high-precision evaluation time of a typical matrix step at 50 and 100 digits;
2. Monte Carlo throughput (data sets per second, FFT + LoRA excess risk at r = 4), side by side
   in one run: a per-trial numpy reference loop (contained below: draw X and E, ``eigh`` of
   ``S``, ``svd`` of ``R X^T S^{-1/2}``, as a researcher would write it; BLAS limited to one
   thread), the project's raw batched engine (``estimators.simulate_risk``) and the exact fast
   samplers (``numeric.samplers``), with the ratio fast / loop, at (d, k, n) = (100, 50, 400) and
   (100, 50, 4000) overdetermined and (800, 100, 200) underdetermined; CPU seconds per data set
   are printed beside the wall-clock rate (the wall clock is inflated on a shared machine);
3. peak memory (resident set) of the largest default simulation (the report's convergence study
   at d = 816, k = 1224, n = 2448), measured in a fresh process;
4. wall and CPU time of ``audit --quick`` (default ``--jobs``, and ``--jobs 1``), the full audit and a first full report (fresh cache,
   default sensitivity sweep) -- each in a fresh process, output in a temporary folder; skipped
   with ``--no-pipeline`` (they take minutes).
"""
from __future__ import annotations

import argparse
import re
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


def numpy_loop(d, k, n, r, trials, seed=0):
    """The reference: one data set at a time in numpy -- draw, fit FFT and LoRA, exact risks
    (``Sigma = I``; shift of rank 3).  Returns the mean FFT and LoRA risks."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((k, k)))[0][:, :3]
    v = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :3]
    delta = (u * np.array([3.0, 2.0, 1.0])) @ v.T
    tot_f = tot_l = 0.0
    for _ in range(trials):
        X = rng.standard_normal((d, n))
        R = delta @ X + rng.standard_normal((k, n))
        if n >= d:
            w, V = np.linalg.eigh(X @ X.T)
            Sih = (V / np.sqrt(w)) @ V.T
            M = R @ X.T @ Sih
            F = M @ Sih
            uu, ss, vt = np.linalg.svd(M, full_matrices=False)
            L = ((uu[:, :r] * ss[:r]) @ vt[:r]) @ Sih
        else:
            Xp = np.linalg.pinv(X)
            F = R @ Xp
            uu, ss, vt = np.linalg.svd(R, full_matrices=False)
            L = ((uu[:, :r] * ss[:r]) @ vt[:r]) @ Xp
        tot_f += float(np.sum((F - delta) ** 2))
        tot_l += float(np.sum((L - delta) ** 2))
    return tot_f / trials, tot_l / trials


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _blas_one_thread():
    """A fresh context limiting numpy's BLAS to one thread (a ``threadpool_limits`` object
    applies its limit once, when created), and a note saying whether it could."""
    try:
        from threadpoolctl import threadpool_limits

        return (lambda: threadpool_limits(1)), "numpy BLAS limited to 1 thread"
    except ImportError:                                         # pragma: no cover
        import contextlib

        return contextlib.nullcontext, "numpy BLAS threads NOT limited (no threadpoolctl)"


SIZES = ((100, 50, 400), (100, 50, 4000), (800, 100, 200))
TARGETS = {(100, 50, 400): 10.0, (100, 50, 4000): 50.0}


def bench_mc(device, repeat):
    import torch

    from numeric import samplers
    from numeric.device import describe, generator, resolve
    from numeric.device import single_thread
    from numeric.params import make_params

    dev = resolve(device)
    limit, note = _blas_one_thread()
    print(f"Monte Carlo throughput, FFT + LoRA (r = 4) excess risk per data set; torch on "
          f"{describe(dev)} (1 CPU thread), {note}")
    print(f"  {'(d, k, n)':<16} {'numpy loop':>20} {'project raw':>20} {'project fast':>20}"
          f" {'fast/loop':>10} {'target':>7}")
    rows = []
    for d, k, n in SIZES:
        p = make_params(d=d, k=k, n=n, r=4, shift_sv=(3.0, 2.0, 1.0), seed=0)
        t_loop = max(40, int(60 * 100 * 400 / (d * n)))           # >= 40: a stable rate
        with limit():
            numpy_loop(d, k, n, 4, 2)                                   # warm-up
            _, w_loop, c_loop = _timed(lambda: numpy_loop(d, k, n, 4, t_loop))
        t_raw = max(10, t_loop // 2)
        with single_thread(dev), torch.no_grad():
            _, w_raw, c_raw = _timed(lambda: samplers.simulate_ranks(
                p, t_raw, generator(1), dev, path="raw", ranks=[4]))
        t_fast = max(4000, 20 * t_loop)           # >= about a second: fixed costs amortised
        samplers.simulate_ranks(p, 8, generator(3), dev, path="fast", ranks=[4])  # warm-up
        best = None
        for _ in range(max(1, repeat)):
            _, w, c = _timed(lambda: samplers.simulate_ranks(p, t_fast, generator(2), dev,
                                                             path="fast", ranks=[4]))
            best = (w, c) if best is None or c < best[1] else best
        w_fast, c_fast = best
        if dev.type == "cuda":
            torch.cuda.synchronize()
        # rates per CPU second (robust to the machine's load) and per wall second
        cell = lambda t, w, c: f"{t / c:7.0f}/s cpu {t / w:6.0f}/s"  # noqa: E731
        ratio = (t_fast / c_fast) / (t_loop / c_loop)
        target = TARGETS.get((d, k, n))
        print(f"  {str((d, k, n)):<16} {cell(t_loop, w_loop, c_loop):>20} "
              f"{cell(t_raw, w_raw, c_raw):>20} {cell(t_fast, w_fast, c_fast):>20} "
              f"{ratio:9.1f}x {('>= %gx' % target) if target else '':>7}")
        rows.append({"dims": (d, k, n), "ratio": ratio, "target": target})
    print("  (x/s cpu: data sets per CPU second of this process; x/s: per wall-clock second, "
          "inflated when the machine is shared)")
    return rows


def bench_breakdown(device, repeat):
    """Where the reduced sampler's time goes at (100, 50, 400): drawing the statistics, the
    risks, and inside the risks the one 50 x 50 ``eigh`` (per data set, CPU seconds)."""
    import torch

    from numeric import samplers
    from numeric.device import generator, resolve, single_thread
    from numeric.instances import torch_instance
    from numeric.params import make_params

    dev = resolve(device)
    p = make_params(d=100, k=50, n=400, r=4, shift_sv=(3.0, 2.0, 1.0), seed=0)
    setup = samplers.fast_setup(torch_instance(p, dev), "over")
    b, gen = samplers.fast_chunk(p, setup), generator(7)
    with single_thread(dev), torch.no_grad():
        stats = samplers.draw_stats(setup, b, gen, dev)
        Af = setup["Bs"] @ stats["L11"] + stats["G1"]
        gram = Af @ Af.transpose(-1, -2) + stats["P"]

        def best(fn):
            fn()
            out = []
            for _ in range(max(3, repeat)):
                _, _, c = _timed(fn)
                out.append(c)
            return 1000 * min(out) / b
        t_draw = best(lambda: samplers.draw_stats(setup, b, gen, dev))
        t_risk = best(lambda: samplers.risks(setup, stats))
        t_eigh = best(lambda: torch.linalg.eigh(gram))
    print(f"reduced sampler at (100, 50, 400), form {setup['form']}, {b} data sets per block "
          f"(ms of CPU per data set): statistics {t_draw:.3f}, risks {t_risk:.3f} of which the "
          f"50 x 50 eigh {t_eigh:.3f}; total {t_draw + t_risk:.3f}")


def bench_memory():
    """Peak resident memory of the largest default simulation, in a fresh process."""
    import subprocess
    import sys

    code = ("import resource, torch; from numeric import samplers; "
            "from numeric.device import generator; "
            "from derivations.theorems.lora_sharp import _conv_params; "
            "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4; "
            "base = rss(); p = _conv_params('over', 34, 0); "
            "samplers.simulate_ranks(p, 4, generator(0), 'cpu', ranks=[6]); "
            # VmHWM, not ru_maxrss: the latter survives exec and can report the forking
            # parent's size (this benchmark's own, after the throughput runs)
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
            "print(p.d, p.k, p.n, base, int(hwm[0].split()[1]) if hwm else "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    d, k, n, base, peak = (int(v) for v in out.stdout.split())
    print(f"peak memory, largest default point (convergence study, d = {d}, k = {k}, n = {n}, "
          f"fast sampler, {samplers_chunk(d, k, n)} data set(s) per block): {peak / 1024:.0f} MB "
          f"peak resident, {base / 1024:.0f} MB resident before the simulation (torch and the "
          f"project imported)")


def samplers_chunk(d, k, n):
    from numeric import samplers
    from numeric.params import make_params

    return samplers.fast_chunk(make_params(d=d, k=k, n=n, r=1, shift_sv=(1.0,)))


PIPELINE = (("audit --quick (default --jobs: one per core)", ["-m", "derivations.cli", "audit",
                                                              "--quick"], 20),
            ("  ... --jobs 1", ["-m", "derivations.cli", "audit", "--quick", "--jobs", "1"], 20),
            ("audit (full, default --jobs)", ["-m", "derivations.cli", "audit"], 90),
            ("first full report", ["-m", "derivations.cli", "report", "--fresh", "--out", "{tmp}/report",
                                   "--cache-dir", "{tmp}/cache"], 180))


def bench_pipeline():
    """Wall and CPU time (children) of the audit and a first full report, fresh processes."""
    import resource
    import subprocess
    import sys
    import tempfile

    print("pipeline (fresh processes, outputs in a temporary folder; wall clock inflated on a "
          "shared machine, CPU = user + system of the child)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, target in PIPELINE:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            w0 = time.perf_counter()
            res = subprocess.run([sys.executable] + [a.format(tmp=tmp) for a in args],
                                 capture_output=True, text=True)
            wall = time.perf_counter() - w0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            # the audit's local worker processes fork from a fork server, not from the child:
            # it reports their CPU on stderr
            m = re.search(r"local processes, CPU in them ([0-9.]+) s", res.stderr)
            if m:
                cpu += float(m.group(1))
            status = "ok" if res.returncode == 0 else f"exit {res.returncode}"
            print(f"  {name:<46} wall {wall:7.1f} s   cpu {cpu:7.1f} s   target <= {target} s "
                  f"({status})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-pipeline", action="store_true",
                    help="skip the audit and report timings (minutes)")
    args = ap.parse_args(argv)
    bench_hp(args.repeat)
    bench_mc(args.device, args.repeat)
    bench_breakdown(args.device, args.repeat)
    bench_memory()
    if not args.no_pipeline:
        bench_pipeline()


if __name__ == "__main__":
    main()
