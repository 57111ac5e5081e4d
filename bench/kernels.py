"""Each fused kernel on each available backend, timed against the NumPy composition it replaces.

Part 1, per kernel: the median time per call (float32, the shapes of one training step of the
784-400-20 VAE at batch 128) through ``minivae.kernels`` (argument checks included) with the
backend set to "python", "numba" and "c", next to the whole-array NumPy composition of the same
work, the fastest marked.  The Python loops run once, and only on the kernels under 200,000
elements (they take about a microsecond per element).

Part 2, per call site: forward and backward through the engine (or one optimizer step) with the
kernel on numba, on C, and composed (``kernels.composed()``: the readable lines the call site
runs instead).  Where numba's kernel is faster than the composition, ``"auto"`` without the C
backend runs it there: the last column must agree with ``kernels.AUTO_FUSED["numba"]``.

    python bench/kernels.py [--repeats 21]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from minivae import kernels
from minivae.distributions.bernoulli import BernoulliLogits
from minivae.distributions.diagonal_normal import DiagonalNormal
from minivae.engine.tensor import Tensor
from minivae.models import VAE
from minivae.nn import Linear
from minivae.optim import SGD, Adam

B, D, H, Z, PARAMS = 128, 784, 400, 20, 652_824  # the 784-400-20 VAE at batch 128
PYTHON_LIMIT = 200_000  # elements: above this the Python loops take seconds per call


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


# -- the compositions the call sites run with the kernels off (as NumPy, no engine) ----------
def bernoulli_composed(logits, x, grad):
    a = np.exp(-np.abs(logits))
    grad[...] = x - np.where(logits >= 0, 1 / (1 + a), a / (1 + a))
    return (x * logits - (np.maximum(logits, 0) + np.log1p(a))).sum(axis=1)


def bias_act_backward_composed(y, grad_y):
    grad_h = grad_y * (1 - y * y)
    return grad_h, grad_h.sum(axis=0)


def reparameterize_kl_composed(loc, log_var, eps):
    std = np.exp(0.5 * log_var)
    return loc + std * eps, 0.5 * (loc * loc + std * std - 1 - log_var).sum(axis=1), std


def reparameterize_kl_backward_composed(loc, eps, std, grad_z, grad_kl):
    grad_loc = grad_z + grad_kl[:, None] * loc
    return grad_loc, 0.5 * grad_z * eps * std + 0.5 * grad_kl[:, None] * (std * std - 1)


def adam_composed(theta, g, m, v, lr, beta1, beta2, eps, t):  # optim.Adam's lines
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    theta -= lr * m_hat / (np.sqrt(v_hat) + eps)


def sgd_composed(theta, g, b, lr, momentum, first_step):  # optim.SGD's lines
    b[...] = g if first_step else momentum * b + g
    theta -= lr * b


def logsumexp_composed(a):
    top = a.max(axis=1, keepdims=True)
    return np.log(np.exp(a - top).sum(axis=1)) + top[:, 0]


def cases(rng):
    """(kernel, arguments, NumPy composition, element count) for each kernel."""
    f32 = np.float32
    logits = rng.standard_normal((B, D), dtype=f32) * 3
    x = (rng.random((B, D)) < 0.2).astype(f32)
    grad_out = np.empty_like(logits)
    h = rng.standard_normal((B, H), dtype=f32)
    bias = rng.standard_normal(H, dtype=f32)
    y = np.tanh(h)
    loc, log_var, eps = (rng.standard_normal((B, Z), dtype=f32) for _ in range(3))
    std = np.exp(0.5 * log_var)
    flat = [rng.standard_normal(PARAMS, dtype=f32) for _ in range(3)] + [
        np.abs(rng.standard_normal(PARAMS, dtype=f32))]
    weights = rng.standard_normal((B, 5000), dtype=f32)
    a, b = rng.standard_normal((256, 256), dtype=f32), rng.standard_normal((256, 256), dtype=f32)
    adam = (*flat, 1e-3, 0.9, 0.999, 1e-8, 10)
    return [
        ("bernoulli_log_prob", (logits, x, grad_out), bernoulli_composed, B * D),
        ("bias_act_forward", (h, bias, "tanh"), lambda h, b, _: np.tanh(h + b), B * H),
        ("bias_act_backward", (y, h, "tanh"), lambda y, g, _: bias_act_backward_composed(y, g),
         B * H),
        ("reparameterize_kl_forward", (loc, log_var, eps), reparameterize_kl_composed, B * Z),
        ("reparameterize_kl_backward", (loc, eps, std, loc, loc[:, 0].copy()),
         reparameterize_kl_backward_composed, B * Z),
        ("adam_step", adam, adam_composed, PARAMS),
        ("sgd_step", (*flat[:3], 1e-3, 0.9, False), sgd_composed, PARAMS),
        ("logsumexp_rows", (weights,), logsumexp_composed, weights.size),
        ("matmul_naive", (a, b), lambda a, b: a @ b, 256**3),
        ("matmul_blocked", (a, b), lambda a, b: a @ b, 256**3),
    ]


def call_sites(rng):
    """(family, one forward + backward or optimizer step at its call site) for each family."""
    f32 = np.float32
    logits = rng.standard_normal((B, D), dtype=f32) * 3
    x = (rng.random((B, D)) < 0.2).astype(f32)
    loc, log_var = (rng.standard_normal((B, Z), dtype=f32) for _ in range(2))
    layer, h = Linear(H, H, rng), Tensor(rng.standard_normal((B, H), dtype=f32))

    def bernoulli():
        l = Tensor(logits, requires_grad=True)
        BernoulliLogits(l).log_prob(x).sum().backward()

    def reparameterize_kl():
        mu, lv = Tensor(loc, requires_grad=True), Tensor(log_var, requires_grad=True)
        z, kl = DiagonalNormal(mu, lv).rsample_and_kl(np.random.default_rng(0))
        ((z * z).sum() + kl.sum()).backward()

    model = VAE(D, (H,), Z, rng=rng)  # 652,824 parameters in one flat buffer
    (-model.elbo(x, rng).mean()).backward()
    adam, sgd = Adam(model.parameters()), SGD(model.parameters(), momentum=0.9)
    return [
        ("bias_act", lambda: layer.forward(h, "tanh").sum().backward()),
        ("bernoulli_log_prob", bernoulli),
        ("reparameterize_kl", reparameterize_kl),
        ("adam_step", adam.step),
        ("sgd_step", sgd.step),
    ]


def main(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    # Free one large array first, as a training process soon does: glibc's malloc then keeps
    # later temporaries on the heap instead of giving each one over 128 KiB a fresh mmap (and
    # its page faults), which would double the time of the NumPy compositions.
    scratch = np.empty(1 << 22)
    del scratch
    backends = kernels.available_backends()
    print(f"backends: {', '.join(backends)}; load average {os.getloadavg()[0]:.2f}; "
          f"float32; median of {args.repeats} calls (python: one call)")
    columns = [*backends, "numpy"]
    print(f"{'kernel':28s}" + "".join(f"{name + ' µs':>13s}" for name in columns)
          + "   fastest")
    results = {}
    for name, call_args, composition, elements in cases(rng):
        row = {}
        for backend in backends:
            if backend == "python" and elements > PYTHON_LIMIT:
                continue
            kernels.set_backend(backend)
            kernel = getattr(kernels, name)
            repeats = 1 if backend == "python" else args.repeats
            if name == "matmul_naive" and backend != "python":
                repeats = 3  # 20 ms a call
            row[backend] = median_seconds(lambda k=kernel, a=call_args: k(*a), repeats)
        row["numpy"] = median_seconds(lambda f=composition, a=call_args: f(*a), args.repeats)
        kernels.set_backend("auto")
        print(f"{name:28s}"
              + "".join(f"{1e6 * row[c]:13.1f}" if c in row else f"{'—':>13s}" for c in columns)
              + f"   {min(row, key=row.get)}")
        results[name] = row
    print("numpy = the whole-array composition (BLAS a @ b for the matmuls)")

    compiled = [b for b in ("numba", "c") if b in backends]
    print(f"\n{'call site, forward + backward':28s}"
          + "".join(f"{name + ' µs':>13s}" for name in [*compiled, "composed"])
          + "   numba faster  in AUTO_FUSED['numba']")
    for family, step in call_sites(rng):
        row = {}
        for backend in compiled:
            kernels.set_backend(backend)
            row[backend] = median_seconds(step, args.repeats)
        kernels.set_backend("auto")
        with kernels.composed():
            row["composed"] = median_seconds(step, args.repeats)
        faster = "" if "numba" not in row else ("yes" if row["numba"] < row["composed"] else "no")
        listed = "yes" if family in kernels.AUTO_FUSED["numba"] else "no"
        print(f"{family:28s}" + "".join(f"{1e6 * t:13.1f}" for t in row.values())
              + f"   {faster:12s}  {listed}")
        results[family] = row
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return results


if __name__ == "__main__":
    main(parse_args())
