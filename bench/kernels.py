"""Each fused kernel on each available backend, timed against the NumPy reference in one run.

For every kernel the script prints the median time per call (float32, the shapes of one training
step of the 784-400-20 VAE at batch 128) for "numpy" (the reference), "numba" and "c", and the
speed-up over the reference; for the Bernoulli log-likelihood and Adam it also times the naive
NumPy composition a user would write.  The fastest backend per kernel is what
``minivae.kernels.AUTO_TABLE`` should list first.

    python bench/kernels.py [--repeats 21]
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time

import numpy as np

from minivae import kernels

B, D, H, Z, PARAMS = 128, 784, 400, 20, 652_824  # the 784-400-20 VAE at batch 128


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    return parser.parse_args(argv)


def median_seconds(call, repeats: int) -> float:
    call()  # warm up (numba compiles on first use)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def naive_bernoulli(logits, x):
    """What one would write without a fused kernel: value and gradient as separate passes."""
    value = (x * logits - np.logaddexp(0, logits)).sum(axis=1)
    grad = x - 1 / (1 + np.exp(-logits))
    return value, grad


def cases(rng):
    """(kernel name, argument factory) pairs; factories give fresh arrays for in-place kernels."""
    f32 = np.float32
    logits = rng.standard_normal((B, D), dtype=f32) * 3
    x = (rng.random((B, D)) < 0.2).astype(f32)
    grad_out = np.empty_like(logits)
    h = rng.standard_normal((B, H), dtype=f32)
    bias = rng.standard_normal(H, dtype=f32)
    y = np.tanh(h)
    loc, log_var, eps = (rng.standard_normal((B, Z), dtype=f32) for _ in range(3))
    std = np.exp(0.5 * log_var)
    flat = [rng.standard_normal(PARAMS, dtype=f32) for _ in range(4)]
    weights = rng.standard_normal((B, 5000), dtype=f32)
    a, b = rng.standard_normal((256, 256), dtype=f32), rng.standard_normal((256, 256), dtype=f32)
    return [
        ("bernoulli_log_prob", lambda: (logits, x, grad_out)),
        ("bias_act_forward", lambda: (h, bias, "tanh")),
        ("bias_act_backward", lambda: (y, h, "tanh")),
        ("reparameterize_kl_forward", lambda: (loc, log_var, eps)),
        ("reparameterize_kl_backward", lambda: (loc, eps, std, loc, loc[:, 0].copy())),
        ("adam_step", lambda: (flat[0], flat[1], flat[2], np.abs(flat[3]), 1e-3, 0.9, 0.999,
                               1e-8, 10)),
        ("sgd_step", lambda: (flat[0], flat[1], flat[2], 1e-3, 0.9, False)),
        ("logsumexp_rows", lambda: (weights,)),
        ("matmul_naive", lambda: (a, b)),
        ("matmul_blocked", lambda: (a, b)),
    ]


def main(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    backends = {name: importlib.import_module(kernels._MODULES[name])
                for name in kernels.available_backends()}
    print(f"backends: {', '.join(backends)}; load average {os.getloadavg()[0]:.2f}; "
          f"float32; median of {args.repeats} calls")
    header = f"{'kernel':28s}" + "".join(f"{name + ' µs':>12s}" for name in backends)
    print(header + "   speed-up over numpy   fastest")
    results = {}
    for name, make_args in cases(rng):
        row = {}
        for backend, module in backends.items():
            call_args = make_args()
            repeats = 3 if (name == "matmul_naive" and backend != "numpy") else args.repeats
            kernel = getattr(module, name)
            row[backend] = median_seconds(lambda k=kernel, a=call_args: k(*a), repeats)
        speedups = "  ".join(f"{b} {row['numpy'] / t:5.1f}x" for b, t in row.items()
                             if b != "numpy")
        fastest = min(row, key=row.get)
        print(f"{name:28s}" + "".join(f"{1e6 * t:12.1f}" for t in row.values())
              + f"   {speedups:20s}  {fastest}")
        results[name] = row

    print("\nagainst the naive NumPy a user would write:")
    logits = rng.standard_normal((B, D), dtype=np.float32) * 3
    x = (rng.random((B, D)) < 0.2).astype(np.float32)
    naive = median_seconds(lambda: naive_bernoulli(logits, x), args.repeats)
    for backend in backends:
        print(f"  Bernoulli value + gradient: naive {1e6 * naive:.1f} µs, {backend} "
              f"{1e6 * results['bernoulli_log_prob'][backend]:.1f} µs "
              f"({naive / results['bernoulli_log_prob'][backend]:.1f}x)")
    for backend in backends:
        print(f"  Adam over {PARAMS:,} parameters: NumPy chain (reference) "
              f"{1e6 * results['adam_step']['numpy']:.1f} µs, {backend} "
              f"{1e6 * results['adam_step'][backend]:.1f} µs "
              f"({results['adam_step']['numpy'] / results['adam_step'][backend]:.1f}x)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return results


if __name__ == "__main__":
    main(parse_args())
