"""Seconds per training epoch on the IWAE bound L_k: minivae against PyTorch eager, alternating.

The model of Burda, Grosse & Salakhutdinov (2016) with one stochastic layer: a Bernoulli VAE
784-200-200-50, tanh, float32, trained on L_k (k = 50 by default) with Adam 1e-3:

    L̂_k = logsumexp_i(log p(x, z_i) − log q(z_i|x)) − log k,   z_i = μ + σ ⊙ ε_i,

the loss −mean L̂_k over a batch (20 images by default, as in the paper).  minivae's step is
``minivae.objectives.iwae.iwae_bound`` under the adaptive BLAS thread policy, as ``python -m
minivae train --objective iwae --k 50 --hidden 200 200 --z-dim 50`` runs it; PyTorch's is the
same formula with ``torch.logsumexp`` (its default thread count).  Both see the same binary
images in the same batch order.  Each repeat runs one epoch of each, the order swapped every
repeat; the script prints the median seconds, the ratio minivae / PyTorch, the mean training
bound of each epoch (the two should be close), the load average at start and end, and the
thread counts.  Before timing, a model check gives both sides the same weights and ε and
prints the difference of their bounds and gradients.

    python bench/iwae_epoch.py --data-root ../shared/data/mnist --n 60000 --repeats 3
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

from minivae import threads
from minivae.config import TrainConfig
from minivae.data import minibatches
from minivae.models import VAE
from minivae.objectives.iwae import iwae_bound
from minivae.optim import Adam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from epoch import training_images  # noqa: E402
from vae_vs_torch import (  # noqa: E402
    _torch_linears,
    build_torch_vae,
    load_average,
    optional_torch,
)

HIDDEN, Z_DIM = (200, 200), 50


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=50, help="importance samples of L_k")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--n", type=int, default=60_000, help="training images per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", default=None, help="MNIST IDX folder (else random data)")
    parser.add_argument("--without-torch", action="store_true", help="minivae's column only")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's own count)")
    return parser.parse_args(argv)


def new_model(seed: int) -> VAE:
    return VAE(784, hidden=HIDDEN, z_dim=Z_DIM, activation="tanh", rng=np.random.default_rng(seed))


def minivae_epoch(x: np.ndarray, args, seed: int) -> tuple[float, float]:
    """(seconds, mean training bound) of one epoch."""
    model, rng = new_model(seed), np.random.default_rng(seed)
    optimizer = Adam(model.parameters(), lr=1e-3)
    total = 0.0
    start = time.perf_counter()
    for batch in threads.adaptive(minibatches(x, args.batch_size, rng)):
        bound = iwae_bound(model, batch, args.k, rng)
        loss = -bound.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(bound.data.sum(dtype=np.float64))
    return time.perf_counter() - start, total / len(x)


def torch_iwae_bound(torch, encoder, decoder, x, k: int, eps=None):
    """L̂_k per example, the formula of ``iwae_bound``: (B,)."""
    h = encoder(x)
    mu, log_var = h[:, :Z_DIM], h[:, Z_DIM:]
    if eps is None:
        eps = torch.randn((k, *mu.shape))
    z = mu + torch.exp(0.5 * log_var) * eps  # (k, B, d)
    logits = decoder(z.reshape(-1, Z_DIM)).reshape(k, *x.shape)
    log_p_x_given_z = (x * logits - torch.nn.functional.softplus(logits)).sum(dim=-1)
    log_p_z = -0.5 * (z * z + math.log(2 * math.pi)).sum(dim=-1)
    log_q_z = -0.5 * (eps * eps + math.log(2 * math.pi) + log_var).sum(dim=-1)
    return torch.logsumexp(log_p_x_given_z + log_p_z - log_q_z, dim=0) - math.log(k)


def torch_model(torch, seed: int, model: VAE | None = None):
    config = TrainConfig(hidden=HIDDEN, z_dim=Z_DIM, activation="tanh")
    torch.manual_seed(seed)
    encoder, decoder = build_torch_vae(torch, config, 784)
    if model is not None:  # minivae's weights; nn.Linear stores W as (out, in)
        with torch.no_grad():
            for layer, linear in zip(model.encoder.layers + model.decoder.layers,
                                     _torch_linears(encoder, decoder), strict=True):
                linear.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
                linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    return encoder, decoder


def torch_epoch(torch, x: np.ndarray, args, seed: int) -> tuple[float, float]:
    encoder, decoder = torch_model(torch, seed)
    params = [p for module in (encoder, decoder) for p in module.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    total = 0.0
    start = time.perf_counter()
    for batch in minibatches(x, args.batch_size, np.random.default_rng(seed)):
        bound = torch_iwae_bound(torch, encoder, decoder, torch.from_numpy(batch), args.k)
        loss = -bound.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(bound.detach().sum())
    return time.perf_counter() - start, total / len(x)


def check_models_agree(torch, x: np.ndarray, k: int) -> tuple[float, float]:
    """(largest |Δ L̂_k|, largest gradient difference relative to that parameter's largest
    entry) with the same weights and ε."""
    model = new_model(0)
    encoder, decoder = torch_model(torch, 0, model)
    bound = iwae_bound(model, x, k, np.random.default_rng(3))
    (-bound.mean()).backward()
    eps = np.random.default_rng(3).standard_normal((k, len(x), Z_DIM)).astype(np.float32)
    theirs = torch_iwae_bound(torch, encoder, decoder, torch.from_numpy(x), k,
                              torch.from_numpy(eps))
    (-theirs.mean()).backward()
    worst = 0.0
    for layer, linear in zip(model.encoder.layers + model.decoder.layers,
                             _torch_linears(encoder, decoder), strict=True):
        for ours, their in ((layer.weight.grad.T, linear.weight.grad),
                            (layer.bias.grad, linear.bias.grad)):
            their = their.numpy()
            worst = max(worst, float(np.abs(ours - their).max() / np.abs(their).max()))
    return float(np.abs(bound.data - theirs.detach().numpy()).max()), worst


def main(args: argparse.Namespace) -> dict:
    torch = optional_torch(args.without_torch, args.torch_threads)
    x = training_images(args)
    print(f"IWAE L_{args.k}, 784-{'-'.join(map(str, HIDDEN))}-{Z_DIM} tanh float32, batch "
          f"{args.batch_size}, {len(x)} images ({'MNIST' if args.data_root else 'random'}); "
          f"load average at start {load_average()}; cores {threads.cores()}; minivae BLAS "
          f"threads {threads.explicit_threads() or 'adaptive'}"
          + (f"; torch {torch.__version__}, {torch.get_num_threads()} threads" if torch else ""))
    if torch is not None:
        difference, gradient = check_models_agree(torch, x[:20], args.k)
        print(f"model check (same weights and ε): |Δ L̂_k| ≤ {difference:.2e} nats, gradients "
              f"differ by ≤ {gradient:.1e} of their largest entry")
    columns = {"minivae": lambda seed: minivae_epoch(x, args, seed)}
    if torch is not None:
        columns["pytorch"] = lambda seed: torch_epoch(torch, x, args, seed)
    minivae_epoch(x[:40 * args.batch_size], args, 0)  # warm up: kernels, BLAS threads
    runs = {name: [] for name in columns}
    names = list(columns)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            runs[name].append(columns[name](repeat))
            print(f"  repeat {repeat} {name}: {runs[name][-1][0]:.2f} s, mean training "
                  f"L_{args.k} {runs[name][-1][1]:.2f}", flush=True)
    row = {"load_end": load_average(), "minivae_threads": threads.POLICY.label}
    for name in names:
        row[f"{name}_s"] = statistics.median(t for t, _ in runs[name])
        print(f"{name}: {row[f'{name}_s']:.2f} s median (runs "
              f"{', '.join(f'{t:.2f}' for t, _ in runs[name])})")
    if torch is not None:
        row["ratio"] = row["minivae_s"] / row["pytorch_s"]
        print(f"minivae / PyTorch: {row['ratio']:.2f}")
    print(f"load average at end {row['load_end']}; minivae's BLAS threads at the end: "
          f"{row['minivae_threads']}, the adaptive policy's choices in turn "
          f"{[n for n, _ in threads.POLICY.history]}")
    return row


if __name__ == "__main__":
    main(parse_args())
