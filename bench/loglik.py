"""log p(x) by importance sampling (k draws per test image): minivae against PyTorch eager.

The same estimator on both sides, with the same model weights (minivae's, copied into an
equivalent ``nn.Sequential`` pair) on the same binary test images:

    log p̂(x) = log (1/k) Σ_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x),   se = sd(w) / (√k mean(w))

minivae runs ``importance_sampling_log_likelihood`` as ``python -m minivae evaluate`` does
(batches of 100 images under the adaptive BLAS thread policy, draws ``--chunk`` at a time);
PyTorch runs the same batches and chunks under ``torch.no_grad()``, keeps the (k, B) log-weights
and takes ``torch.logsumexp`` over them.  Columns alternate, each repeat swapping which goes
first; the script prints median seconds, the ratio minivae / PyTorch, the mean log p̂ of each
with the standard error of that mean (from the per-image standard errors: the two sides draw
different noise, so they agree within these, not to rounding), the load average at start and
end and the thread counts.  Before timing, a model check gives both sides the same ε and prints
the largest difference of their log-weights.

    python bench/loglik.py --dataset mnist --data-root ../shared/data/mnist --n 1000 --k 5000
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
from minivae.io.resume import load_model
from minivae.models import VAE
from minivae.objectives.iwae import log_importance_weights
from minivae.objectives.likelihood import ROWS_PER_CHUNK, importance_sampling_log_likelihood
from minivae.train import load_binary_split, scored_test_images

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vae_vs_torch import (  # noqa: E402
    _torch_linears,
    build_torch_vae,
    load_average,
    optional_torch,
)

BATCH = 100  # images per encoder pass, as ``python -m minivae evaluate``


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist-5k", choices=["mnist-5k", "mnist"])
    parser.add_argument("--data-root", default=None, help="MNIST IDX folder (--dataset mnist)")
    parser.add_argument("--n", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--k", type=int, default=5000, help="importance samples per image")
    parser.add_argument("--chunk", type=int, default=None,
                        help=f"draws per chunk (default {ROWS_PER_CHUNK // BATCH}: "
                             f"{ROWS_PER_CHUNK} rows through the decoder at a time)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", default=None,
                        help="a trained run's checkpoint.npz (default: random 784-400-20 tanh)")
    parser.add_argument("--without-torch", action="store_true", help="minivae's column only")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's own count)")
    return parser.parse_args(argv)


def torch_copy(torch, model):
    """``model``'s encoder and decoder as PyTorch modules holding the same weights."""
    config = TrainConfig(hidden=model.hidden, z_dim=model.z_dim,
                         activation=model.encoder.activation, leaky_slope=model.encoder.slope)
    encoder, decoder = build_torch_vae(torch, config, model.x_dim)
    with torch.no_grad():
        for layer, linear in zip(model.encoder.layers + model.decoder.layers,
                                 _torch_linears(encoder, decoder), strict=True):
            linear.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))  # (out, in)
            linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    return encoder, decoder


def torch_log_weights(torch, encoder, decoder, x, eps):
    """log p(x, z) − log q(z|x) for z = μ + σ ε, ε of shape (c, B, d): (c, B)."""
    z_dim = eps.shape[-1]
    h = encoder(x)
    mu, log_var = h[:, :z_dim], h[:, z_dim:]
    sigma = torch.exp(0.5 * log_var)
    z = mu + sigma * eps
    logits = decoder(z.reshape(-1, z_dim)).reshape(*z.shape[:-1], x.shape[-1])
    log_p_x_given_z = (x * logits - torch.nn.functional.softplus(logits)).sum(dim=-1)
    log_p_z = -0.5 * (z * z + math.log(2 * math.pi)).sum(dim=-1)
    log_q_z = (-0.5 * (eps * eps + math.log(2 * math.pi)) - torch.log(sigma)).sum(dim=-1)
    return log_p_x_given_z + log_p_z - log_q_z


def torch_log_likelihood(torch, encoder, decoder, x: np.ndarray, k: int, chunk: int, seed: int):
    """(log p̂, se) per image, PyTorch eager: batches of ``BATCH``, ``chunk`` draws at a time,
    then logsumexp over the k log-weights (float64 for the last step, as minivae's)."""
    generator = torch.Generator().manual_seed(seed)
    estimates, errors = [], []
    with torch.no_grad():
        for start in range(0, len(x), BATCH):
            xb = torch.from_numpy(x[start:start + BATCH])
            z_dim = encoder[-1].out_features // 2
            log_w = torch.cat([
                torch_log_weights(torch, encoder, decoder, xb, torch.randn(
                    (min(chunk, k - done), len(xb), z_dim), generator=generator))
                for done in range(0, k, chunk)]).double()
            estimates.append(torch.logsumexp(log_w, dim=0) - math.log(k))
            w = torch.exp(log_w - log_w.max(dim=0).values)
            errors.append(w.std(dim=0) / (math.sqrt(k) * w.mean(dim=0)))
    return torch.cat(estimates).numpy(), torch.cat(errors).numpy()


def check_models_agree(torch, model, encoder, decoder, x: np.ndarray) -> float:
    """Largest |Δ log w| between the two sides given the same ε (8 draws of 5 images)."""
    x = x[:5]
    # minivae draws ε as float64 normals from the Generator, cast to float32: the same here
    eps = np.random.default_rng(7).standard_normal((8, len(x), model.z_dim)).astype(np.float32)
    from minivae.engine.tensor import no_grad

    with no_grad():
        ours = log_importance_weights(model, x, 8, np.random.default_rng(7)).data
    with torch.no_grad():
        theirs = torch_log_weights(torch, encoder, decoder, torch.from_numpy(x),
                                   torch.from_numpy(eps)).numpy()
    return float(np.abs(ours - theirs).max())


def mean_with_error(estimates, errors) -> tuple[float, float]:
    """The mean of the per-image estimates and its standard error from their own errors."""
    return float(np.mean(estimates)), float(np.sqrt(np.sum(np.square(errors))) / len(errors))


def main(args: argparse.Namespace) -> dict:
    torch = optional_torch(args.without_torch, args.torch_threads)
    if args.checkpoint:
        model, config = load_model(args.checkpoint)
        binarize = config.binarize
    else:
        model, binarize = VAE(784, hidden=(400,), z_dim=20, rng=np.random.default_rng(0)), "dynamic"
    config = TrainConfig(dataset=args.dataset, data_root=args.data_root, max_test=args.n)
    x = scored_test_images(model, load_binary_split(config, "test"), binarize)
    chunk = args.chunk or max(1, ROWS_PER_CHUNK // BATCH)
    print(f"{len(x)} images of {args.dataset} (test), k = {args.k}, chunk {chunk} draws "
          f"({chunk * BATCH} decoder rows), batches of {BATCH}; model "
          f"{model.x_dim}-{'-'.join(map(str, model.hidden))}-{model.z_dim} "
          f"{model.encoder.activation} {model.dtype}; load average at start {load_average()}; "
          f"cores {threads.cores()}; minivae BLAS threads: "
          f"{threads.explicit_threads() or 'adaptive'}"
          + (f"; torch {torch.__version__}, {torch.get_num_threads()} threads" if torch else ""))
    columns = {"minivae": lambda seed: importance_sampling_log_likelihood(
        model, x, args.k, np.random.default_rng(seed), chunk=chunk, batch_size=BATCH)}
    if torch is not None:
        encoder, decoder = torch_copy(torch, model)
        print(f"model check: largest |Δ log w| with the same ε: "
              f"{check_models_agree(torch, model, encoder, decoder, x):.2e} nats")
        columns["pytorch"] = lambda seed: torch_log_likelihood(torch, encoder, decoder, x,
                                                               args.k, chunk, seed)
    seconds = {name: [] for name in columns}
    results = {}
    names = list(columns)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            start = time.perf_counter()
            results[name] = columns[name](repeat)
            seconds[name].append(time.perf_counter() - start)
            print(f"  repeat {repeat} {name}: {seconds[name][-1]:.2f} s", flush=True)
    row = {"load_end": load_average(), "minivae_threads": threads.POLICY.label,
           "minivae_trials": [n for n, _ in threads.POLICY.history]}
    for name in names:
        row[f"{name}_s"] = statistics.median(seconds[name])
        row[name] = mean_with_error(*results[name])
        print(f"{name}: {row[f'{name}_s']:.2f} s median (runs "
              f"{', '.join(f'{t:.2f}' for t in seconds[name])}); mean log p̂ "
              f"{row[name][0]:.3f} ± {row[name][1]:.3f} nats")
    if torch is not None:
        row["ratio"] = row["minivae_s"] / row["pytorch_s"]
        difference = row["minivae"][0] - row["pytorch"][0]
        combined = math.hypot(row["minivae"][1], row["pytorch"][1])
        print(f"minivae / PyTorch: {row['ratio']:.2f}; estimates differ by {difference:+.3f} "
              f"nats = {difference / combined:+.1f} combined standard errors")
    print(f"load average at end {row['load_end']}; minivae's BLAS threads at the end: "
          f"{row['minivae_threads']}, the adaptive policy's choices in turn "
          f"{row['minivae_trials']}")
    return row


if __name__ == "__main__":
    main(parse_args())
