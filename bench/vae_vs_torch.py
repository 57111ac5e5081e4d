"""Train the same VAE in minivae and in PyTorch, one after the other in one process, and compare.

Both sides: a Bernoulli VAE 784-400-20 with tanh (encoder Linear(784, 400) → tanh →
Linear(400, 40), whose first 20 columns are μ and last 20 are log σ²; decoder Linear(20, 400) →
tanh → Linear(400, 784) logits), initialized like PyTorch's ``nn.Linear``, trained with Adam
(lr 1e-3, PyTorch defaults otherwise) on minibatches of 128, one reparameterized sample per
example, float32.  The data protocol is minivae.train's: the training pixels are binarized afresh
every epoch; the test pixels are binarized once with ``TEST_BINARIZATION_SEED``, and both sides
score that same binary test set with the mean single-sample ELBO.  The PyTorch side draws its
binarizations and batch orders from the same NumPy stream that minivae.train uses for a given
seed, so both see identical data; weights and ε come from ``torch.manual_seed(seed)``.

Before training, a shared-weights check copies minivae's initial weights into the PyTorch model,
feeds both the same ε, and prints the largest difference in per-example ELBO and in gradients.

Usage::

    python bench/vae_vs_torch.py --dataset mnist --data-root /path/to/mnist --epochs 10 \
        --seeds 0 1 2 [--max-train N] [--max-test N] [--out DIR]

Without PyTorch (``pip install -e ".[bench]"``) only the minivae half runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minivae.data import binarize_dynamic, minibatches
from minivae.io.json_text import write_json
from minivae.models import VAE
from minivae.train import TEST_BINARIZATION_SEED, TrainConfig, load_binary_split, train

INSTALL_HINT = 'pip install -e ".[bench]"'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the same VAE in minivae and in PyTorch and compare test ELBOs.")
    parser.add_argument("--dataset", default="mnist",
                        help="mnist, fashion-mnist or mnist-5k (default: mnist)")
    parser.add_argument("--data-root", default=None,
                        help="directory with the IDX files (directly or in DATA_ROOT/<dataset>/)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-train", type=int, default=None,
                        help="use only the first N training images (quick runs)")
    parser.add_argument("--max-test", type=int, default=None,
                        help="use only the first N test images (quick runs)")
    parser.add_argument("--out", default=None,
                        help="directory for minivae's runs and bench.json (default: a temporary "
                             "directory, deleted at the end)")
    return parser.parse_args(argv)


def import_torch():
    """The torch module, or None (with a line saying so) when it is not installed."""
    try:
        import torch
    except ImportError:
        print(f"PyTorch is not installed: the PyTorch half is skipped. Install it with: "
              f"{INSTALL_HINT}")
        return None
    return torch


def build_torch_vae(torch, config: TrainConfig, x_dim: int):
    """Encoder and decoder as ``nn.Sequential``s mirroring minivae's VAE (default init)."""
    nn = torch.nn
    activations = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid,
                   "softplus": nn.Softplus,
                   "leaky_relu": lambda: nn.LeakyReLU(config.leaky_slope)}
    if config.activation not in activations:
        raise ValueError(f"config.activation must be one of {sorted(activations)}, "
                         f"got {config.activation!r}")

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activations[config.activation]())
        return nn.Sequential(*layers)

    encoder = mlp([x_dim, *config.hidden, 2 * config.z_dim])
    decoder = mlp([config.z_dim, *reversed(config.hidden), x_dim])
    return encoder, decoder


def torch_elbo(torch, encoder, decoder, x, z_dim: int, eps=None):
    """Per-example single-sample ELBO of shape (B,), the same formula as ``VAE.elbo``.

    Math: Σ_i [x_i l_i − softplus(l_i)] − ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²),
    with (μ, log σ²) = encoder(x), z = μ + σ ⊙ ε, ε ~ N(0, I), l = decoder(z).
    Verified by: ``check_models_agree`` (run by ``main`` before training), which compares it
    with minivae's ``VAE.elbo`` under shared weights and ε.
    """
    h = encoder(x)
    mu, log_var = h[:, :z_dim], h[:, z_dim:]
    if eps is None:
        eps = torch.randn_like(mu)
    z = mu + torch.exp(0.5 * log_var) * eps
    logits = decoder(z)
    log_p_x_given_z = (x * logits - torch.nn.functional.softplus(logits)).sum(dim=-1)
    kl = 0.5 * (mu * mu + torch.exp(log_var) - 1.0 - log_var).sum(dim=-1)
    return log_p_x_given_z - kl


def _torch_linears(encoder, decoder) -> list:
    return [m for seq in (encoder, decoder) for m in seq if hasattr(m, "weight")]


def check_models_agree(torch, config: TrainConfig, x: np.ndarray) -> dict:
    """Copy minivae's initial weights into the PyTorch model; compare ELBO and gradients.

    Both sides get the same ε (minivae draws it from a Generator; the same draws are handed to
    PyTorch).  Returns the largest absolute per-example ELBO difference (nats) and the largest
    gradient difference relative to the largest gradient entry of that parameter.
    """
    model = VAE(x.shape[1], hidden=config.hidden, z_dim=config.z_dim,
                activation=config.activation, rng=np.random.default_rng(0), dtype=np.float32)
    encoder, decoder = build_torch_vae(torch, config, x.shape[1])
    ours = model.encoder.layers + model.decoder.layers
    theirs = _torch_linears(encoder, decoder)
    with torch.no_grad():
        for layer, linear in zip(ours, theirs, strict=True):
            # minivae computes x W with W of shape (in, out); nn.Linear stores (out, in).
            linear.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))

    eps_seed = 7
    elbo = model.elbo(x, np.random.default_rng(eps_seed))
    model.zero_grad()
    (-elbo.mean()).backward()
    eps = np.random.default_rng(eps_seed).standard_normal((len(x), config.z_dim))
    torch_value = torch_elbo(torch, encoder, decoder, torch.from_numpy(x), config.z_dim,
                             eps=torch.from_numpy(eps.astype(np.float32)))
    (-torch_value.mean()).backward()

    elbo_diff = float(np.max(np.abs(elbo.data - torch_value.detach().numpy())))
    grad_diff = 0.0
    for layer, linear in zip(ours, theirs):
        for ours_grad, theirs_grad in ((layer.weight.grad, linear.weight.grad.numpy().T),
                                       (layer.bias.grad, linear.bias.grad.numpy())):
            scale = float(np.max(np.abs(theirs_grad))) or 1.0
            grad_diff = max(grad_diff, float(np.max(np.abs(ours_grad - theirs_grad))) / scale)
    return {"max_abs_elbo_diff": elbo_diff, "max_rel_grad_diff": grad_diff,
            "mean_elbo": float(np.mean(elbo.data))}


def train_torch(torch, config: TrainConfig, progress_label: str = "") -> dict:
    """Train the PyTorch twin under minivae.train's data protocol; metrics like ``train``'s."""
    train_pixels = load_binary_split(config, "train")
    test_pixels = load_binary_split(config, "test")
    test_x = torch.from_numpy(
        binarize_dynamic(test_pixels, np.random.default_rng(TEST_BINARIZATION_SEED)))
    # The same stream minivae.train uses for binarizations and batch orders (spawn index 1).
    _, data_rng, _ = np.random.default_rng(config.seed).spawn(3)

    torch.manual_seed(config.seed)
    encoder, decoder = build_torch_vae(torch, config, train_pixels.shape[1])
    params = [p for module in (encoder, decoder) for p in module.parameters()]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    metrics = {"epoch": [], "train_elbo": [], "test_elbo": [], "seconds": []}

    for epoch in range(1, config.epochs + 1):
        start, elbo_sum, seen = time.perf_counter(), 0.0, 0
        train_x = binarize_dynamic(train_pixels, data_rng)
        for x in minibatches(train_x, config.batch_size, data_rng):
            elbo = torch_elbo(torch, encoder, decoder, torch.from_numpy(x), config.z_dim)
            loss = -elbo.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            elbo_sum += float(elbo.detach().double().sum())
            seen += len(x)
        seconds = time.perf_counter() - start
        test_elbo = 0.0
        with torch.no_grad():
            for first in range(0, len(test_x), 1000):
                batch = test_x[first:first + 1000]
                value = torch_elbo(torch, encoder, decoder, batch, config.z_dim)
                test_elbo += float(value.double().sum())
        for key, value in (("epoch", epoch), ("train_elbo", elbo_sum / seen),
                           ("test_elbo", test_elbo / len(test_x)), ("seconds", seconds)):
            metrics[key].append(value)
        print(f"  {progress_label}PyTorch epoch {epoch:3d}: test ELBO "
              f"{metrics['test_elbo'][-1]:9.3f}  ({seconds:.1f} s)", flush=True)
    return metrics


def numpy_blas() -> str:
    """The BLAS NumPy was built with, e.g. 'scipy-openblas 0.3.31' (or 'unknown')."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except (KeyError, TypeError, ValueError):
        return "unknown"


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def optional_torch(without_torch: bool, threads: int | None):
    """The torch module (with ``threads`` intra-op threads when given), or None when it is not
    wanted or not installed, saying so."""
    if without_torch:
        return None
    try:
        import torch
    except ImportError:
        print('PyTorch is not installed (pip install -e ".[bench]"): minivae only')
        return None
    if threads:
        torch.set_num_threads(threads)
    return torch


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0.0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def fmt(values, width: int = 9, digits: int = 3) -> str:
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean:{width}.{digits}f}"
    return f"{mean:{width}.{digits}f} ± {std:.{digits}f}"


def print_table(title: str, runs: list[dict], with_torch: bool) -> None:
    """One row per epoch; with several runs, each cell is mean ± sd across them."""
    print(title)
    header = f"{'epoch':>5}  {'minivae test ELBO':>20}  {'minivae s':>14}"
    if with_torch:
        header += f"  {'PyTorch test ELBO':>20}  {'PyTorch s':>14}  {'diff (nats)':>16}"
    print(header)
    for i, epoch in enumerate(runs[0]["minivae"]["epoch"]):
        ours = [run["minivae"] for run in runs]
        row = (f"{epoch:5d}  {fmt([m['test_elbo'][i] for m in ours], 20 if len(runs) == 1 else 11)}"
               f"  {fmt([m['seconds'][i] for m in ours], 14 if len(runs) == 1 else 7, 2)}")
        if with_torch:
            theirs = [run["torch"] for run in runs]
            diffs = [a["test_elbo"][i] - b["test_elbo"][i] for a, b in zip(ours, theirs)]
            row += (f"  {fmt([m['test_elbo'][i] for m in theirs], 20 if len(runs) == 1 else 11)}"
                    f"  {fmt([m['seconds'][i] for m in theirs], 14 if len(runs) == 1 else 7, 2)}"
                    f"  {fmt(diffs, 16 if len(runs) == 1 else 7)}")
        print(row)
    print()


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; print the tables and the final line; return the results."""
    args = parse_args(argv)
    torch = import_torch()
    seeds = list(dict.fromkeys(args.seeds))
    temp_dir = None
    if args.out is None:
        temp_dir = tempfile.TemporaryDirectory(prefix="minivae-bench-")
        out = Path(temp_dir.name)
    else:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)

    environment = {"python": platform.python_version(), "numpy": np.__version__,
                   "numpy_blas": numpy_blas(), "cpu_count": os.cpu_count(),
                   "platform": platform.platform(),
                   "torch": torch.__version__ if torch else None,
                   # Left at PyTorch's default (one thread per physical core as it counts them).
                   "torch_threads": torch.get_num_threads() if torch else None}
    print("environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()))
    # Timings share the CPU with whatever else runs; the load average says how busy it was.
    results_load = {"load_average_start": load_average()}
    print(f"load average at start: {results_load['load_average_start']}")
    print(f"command: {' '.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}")

    results = {"environment": environment, "args": vars(args), "runs": [], **results_load}
    try:
        base = TrainConfig(dataset=args.dataset, epochs=args.epochs, data_root=args.data_root,
                           max_train=args.max_train, max_test=args.max_test)
        if torch:
            test_pixels = load_binary_split(base, "test")[:128]
            check = check_models_agree(
                torch, base, binarize_dynamic(test_pixels, np.random.default_rng(0)))
            results["model_check"] = check
            print(f"model check (shared weights and ε, {len(test_pixels)} test digits, "
                  f"ELBO ≈ {check['mean_elbo']:.1f}): max |ELBO difference| "
                  f"{check['max_abs_elbo_diff']:.2e} nats, max relative gradient difference "
                  f"{check['max_rel_grad_diff']:.2e}")
        print()

        for seed in seeds:
            config = dataclasses.replace(base, seed=seed, out=str(out / f"minivae-seed{seed}"))
            print(f"seed {seed}: minivae", flush=True)
            ours = train(config, progress=False)
            for epoch, value, seconds in zip(ours["epoch"], ours["test_elbo"], ours["seconds"]):
                print(f"  minivae epoch {epoch:3d}: test ELBO {value:9.3f}  ({seconds:.1f} s)",
                      flush=True)
            run = {"seed": seed, "minivae": {k: ours[k] for k in
                                             ("epoch", "train_elbo", "test_elbo", "seconds")}}
            if torch:
                print(f"seed {seed}: PyTorch", flush=True)
                run["torch"] = train_torch(torch, config)
            results["runs"].append(run)
            print()
            print_table(f"seed {seed}", [run], torch is not None)
            if args.out is not None:
                write_json(out / "bench.json", results)

        runs = results["runs"]
        if len(runs) > 1:
            print_table(f"mean ± sd over seeds {' '.join(map(str, seeds))}", runs,
                        torch is not None)
        results["load_average_end"] = load_average()
        summarize(results, seeds, torch is not None)
        print(f"load average at end: {results['load_average_end']}")
        if args.out is not None:
            write_json(out / "bench.json", results)
            print(f"results written to {out / 'bench.json'}")
    finally:
        if temp_dir is not None:
            temp_dir.cleanup()
    return results


def summarize(results: dict, seeds: list[int], with_torch: bool) -> None:
    """The final lines: last-epoch test ELBOs, their difference, and seconds per epoch."""
    runs = results["runs"]
    ours_final = [run["minivae"]["test_elbo"][-1] for run in runs]
    ours_seconds = [float(np.mean(run["minivae"]["seconds"])) for run in runs]
    seed_text = " ".join(map(str, seeds))
    summary = {"minivae_final": mean_std(ours_final),
               "minivae_seconds_per_epoch": mean_std(ours_seconds)}
    if not with_torch:
        print(f"final test ELBO: minivae {fmt(ours_final, 0)}, PyTorch skipped (not installed; "
              f"{INSTALL_HINT}) (seeds {seed_text})")
        print(f"seconds per epoch: minivae {fmt(ours_seconds, 0, 2)}")
        results["summary"] = summary
        return
    theirs_final = [run["torch"]["test_elbo"][-1] for run in runs]
    theirs_seconds = [float(np.mean(run["torch"]["seconds"])) for run in runs]
    diffs = [a - b for a, b in zip(ours_final, theirs_final)]
    ratios = [a / b for a, b in zip(ours_seconds, theirs_seconds)]
    summary.update({"torch_final": mean_std(theirs_final), "difference": mean_std(diffs),
                    "torch_seconds_per_epoch": mean_std(theirs_seconds),
                    "time_ratio": mean_std(ratios)})
    results["summary"] = summary
    spread = " (mean ± sd over seeds)" if len(runs) > 1 else ""
    print(f"final test ELBO: minivae {fmt(ours_final, 0)}, PyTorch {fmt(theirs_final, 0)}, "
          f"difference minivae − PyTorch {fmt(diffs, 0)} nats (seeds {seed_text}){spread}")
    print(f"seconds per epoch: minivae {fmt(ours_seconds, 0, 2)}, PyTorch "
          f"{fmt(theirs_seconds, 0, 2)}, ratio minivae/PyTorch {fmt(ratios, 0, 2)}")


if __name__ == "__main__":
    main()
