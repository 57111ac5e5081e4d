"""Demo: a VQ-VAE on binarized digits, with the codebook trained by gradient and by EMA.

Each digit becomes n_codes symbols from a codebook of K vectors (by default 20 symbols of 64:
at most 20 log₂ 64 = 120 bits).  Two models are trained with the same settings: one whose
codebook is learned by the gradient of ‖sg[z_e] − e‖², one whose codebook follows exponential
moving averages of the encoder outputs assigned to it.  For each, the printed table gives the
test reconstruction −log p(x | z_q) in nats, the ELBO under a uniform prior over codes
(−reconstruction − n_codes log K), the perplexity exp(H) of codebook use on the test set, and
the number of dead codewords (never picked by a test image).

Training choices (each is a flag): β = 0.25 and γ = 0.99 as in the paper; ReLU hidden units
(with tanh, on these binarized digits, every image kept mapping to the same codewords for
epochs); dead codewords are restarted after every epoch (``restart_dead``, --no-restart-dead
turns it off): each codeword no training vector picked is moved onto a random encoder output.

Writes recon_<variant>.png (test digits and reconstructions), samples_<variant>.png (uniformly
drawn codes decoded: poor on purpose, there is no learned prior), usage.png (how often each
codeword is used) and curve.png, and prints a table.

    python demos/vqvae.py --out runs/vqvae
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from minivae import checks, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.engine.tensor import no_grad
from minivae.io.plots import (
    new_figure,
    output_folder,
    save_curve,
    save_image_grid,
    save_png,
    save_reconstructions,
)
from minivae.models.vqvae import VQVAE
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.train import TEST_BINARIZATION_SEED  # the same binary test set as `train`

VARIANTS = {"gradient": ("gradient codebook", False), "ema": ("EMA codebook", True)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vqvae", help="output folder for the pictures")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[400])
    parser.add_argument("--activation", default="relu",
                        choices=("relu", "tanh", "leaky_relu", "sigmoid", "softplus"))
    parser.add_argument("--n-codes", type=int, default=20)
    parser.add_argument("--codebook-size", type=int, default=64)
    parser.add_argument("--code-dim", type=int, default=8)
    parser.add_argument("--beta", type=float, default=0.25, help="commitment weight β")
    parser.add_argument("--decay", type=float, default=0.99, help="EMA decay γ")
    parser.add_argument("--restart-dead", action=argparse.BooleanOptionalAction, default=True,
                        help="after each epoch, move unused codewords onto encoder outputs")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-train", type=int, default=None, help="use N random training images")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def mean_reconstruction(model: VQVAE, x: np.ndarray, batch_size: int = 500) -> float:
    """Mean −log p(x | z_q) over the rows of x, in nats."""
    with no_grad():
        values = [model.loss_terms(x[i:i + batch_size])["reconstruction"].data
                  for i in range(0, len(x), batch_size)]
    return float(np.concatenate(values).astype(np.float64).mean())


def train_variant(args, ema: bool, train_pixels, test_x, seed_sequence, log) -> tuple:
    model_rng, data_rng = (np.random.default_rng(s) for s in seed_sequence.spawn(2))
    model = VQVAE(train_pixels.shape[1], hidden=tuple(args.hidden), activation=args.activation,
                  n_codes=args.n_codes, codebook_size=args.codebook_size, code_dim=args.code_dim,
                  beta=args.beta, ema=ema, decay=args.decay, restart_dead=args.restart_dead,
                  rng=model_rng)
    optimizer = Adam(model.parameters(), lr=args.lr)
    history = {"epoch": [], "train_loss": [], "test_reconstruction": []}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        total, seen = 0.0, 0
        batches = minibatches(binarize_dynamic(train_pixels, data_rng), args.batch_size, data_rng)
        for x in threads.adaptive(batches):  # BLAS threads measured (minivae.threads)
            objective = model.objective(x)
            optimizer.zero_grad()
            (-objective.mean()).backward()
            optimizer.step()
            total, seen = total - float(objective.data.sum(dtype=np.float64)), seen + len(x)
        model.on_epoch_end(epoch)
        reconstruction = mean_reconstruction(model, test_x)
        counts, usage = model.codebook_usage(test_x)
        for key, value in (("epoch", epoch), ("train_loss", total / seen),
                           ("test_reconstruction", reconstruction)):
            history[key].append(value)
        log(f"  epoch {epoch:3d}  train loss {total / seen:8.2f}  test −log p(x|z_q) "
            f"{reconstruction:8.2f}  perplexity {usage:6.2f}  dead {np.sum(counts == 0):3d}")
    history["seconds"] = time.perf_counter() - start
    return model, history


def save_usage(path: Path, usages: dict, codebook_size: int) -> Path:
    """One bar chart per variant: each codeword's share of the test symbols, most used first."""
    figure = new_figure(640, 260 * len(usages))
    for row, (name, (counts, value)) in enumerate(usages.items()):
        axes = figure.add_subplot(len(usages), 1, row + 1)
        shares = np.sort(counts)[::-1] / counts.sum()
        axes.bar(np.arange(codebook_size), shares, width=1.0, color="tab:blue")
        axes.axhline(1 / codebook_size, color="black", linestyle="--", linewidth=1,
                     label="uniform use 1/K")
        axes.set_title(f"{name}: perplexity {value:.1f} of K = {codebook_size}, "
                       f"{np.sum(counts == 0)} dead", fontsize=10)
        axes.set_xlabel("codewords, most used first")
        axes.set_ylabel("share of test symbols")
        axes.set_xlim(-0.5, codebook_size - 0.5)
        axes.legend(fontsize=8)
    return save_png(figure, path, tight_layout=True)


def main(args: argparse.Namespace) -> list[dict]:
    log = (lambda message: None) if args.quiet else (lambda message: print(message, flush=True))
    subset_rng = np.random.default_rng(args.seed)
    train_pixels = load_dataset(args.dataset, "train", root=args.data_root).pixels(np.float32)
    # a random subset (the files may be sorted by class); x[:0] or x[:-10] would not be one
    if checks.positive_int(args.max_train, "--max-train", optional=True):
        train_pixels = train_pixels[subset_rng.permutation(len(train_pixels))[:args.max_train]]
    test_pixels = load_dataset(args.dataset, "test", root=args.data_root).pixels(np.float32)
    test_x = binarize_dynamic(test_pixels, np.random.default_rng(TEST_BINARIZATION_SEED))
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder
    shown = test_x[np.linspace(0, len(test_x) - 1, 20).astype(int)]  # spread over the classes

    results, usages, curves = [], {}, {}
    for tag in args.variants:
        name, ema = VARIANTS[tag]
        log(f"{name}:")
        # the same seed for every variant: identical initial networks and minibatch order
        model, history = train_variant(args, ema, train_pixels, test_x,
                                       np.random.SeedSequence(args.seed), log)
        counts, value = model.codebook_usage(test_x)
        reconstruction = history["test_reconstruction"][-1]
        results.append({"name": name, "test_reconstruction": reconstruction,
                        "elbo": -reconstruction - args.n_codes * math.log(args.codebook_size),
                        "perplexity": value, "dead": int(np.sum(counts == 0)),
                        "seconds": history["seconds"], "history": history})
        usages[name] = (counts, value)
        curves[f"{name}: test −log p(x|z_q)"] = history["test_reconstruction"]
        curves[f"{name}: train loss"] = history["train_loss"]
        save_reconstructions(out / f"recon_{tag}.png", shown, model.reconstruct(shown), n=20,
                             title=f"{name}: test digits and their reconstructions from z_q(x)")
        save_image_grid(out / f"samples_{tag}.png",
                        model.sample(100, np.random.default_rng(args.seed)), ncols=10,
                        title=f"{name}: uniformly drawn codes (no learned prior)")
    save_usage(out / "usage.png", usages, args.codebook_size)
    epochs = results[0]["history"]["epoch"]
    save_curve(out / "curve.png", epochs, curves, ylabel="nats per image",
               title=f"VQ-VAE, {args.n_codes} symbols of K = {args.codebook_size}")

    print(f"\nVQ-VAE on {args.dataset}: {args.n_codes} symbols per image from K = "
          f"{args.codebook_size} codewords of dimension {args.code_dim}, hidden "
          f"{tuple(args.hidden)} {args.activation}, β = {args.beta}, γ = {args.decay} (EMA), "
          f"{args.epochs} epochs"
          f"{', dead codewords restarted each epoch' if args.restart_dead else ''}")
    print(f"{'codebook':<18}  {'test −log p(x|z_q)':>18}  {'ELBO (uniform prior)':>20}  "
          f"{'perplexity':>10}  {'dead':>4}  {'seconds':>7}")
    for r in results:
        print(f"{r['name']:<18}  {r['test_reconstruction']:18.2f}  {r['elbo']:20.2f}  "
              f"{r['perplexity']:10.2f}  {r['dead']:4d}  {r['seconds']:7.0f}")
    for pattern, what in (("recon_*.png", "test digits and their reconstructions"),
                          ("samples_*.png", "uniformly drawn codes, decoded"),
                          ("usage.png", "codebook usage"), ("curve.png", "loss per epoch")):
        print(f"  {(out / pattern).resolve()}  — {what}")
    return results


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
