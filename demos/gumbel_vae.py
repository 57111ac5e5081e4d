"""Demo: a VAE with categorical latents, trained through the Gumbel-softmax relaxation.

Each digit is encoded as N one-hot vectors of K classes (by default 20 variables of 10 classes:
at most 20 log₂ 10 ≈ 66 bits).  Training decodes the relaxed codes softmax((l + G)/τ) while τ
is annealed, τ(e) = max(τ_min, τ₀ e^{−rate·e}) after epoch e; the test numbers are those of the
discrete model itself: the ELBO with exact one-hot draws c ~ q(c|x), and an importance-sampled
estimate of log p(x) with k draws.

Writes recon.png (test digits and their argmax-code reconstructions), samples.png (digits from
uniformly drawn codes), temperature.png (the schedule) and curve.png, and prints a table.

    python demos/gumbel_vae.py --out runs/gumbel_vae
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.special import logsumexp

from minivae import checks, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.engine.tensor import no_grad
from minivae.io.plots import output_folder, save_curve, save_image_grid, save_reconstructions
from minivae.models.categorical_vae import CategoricalVAE
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.train import TEST_BINARIZATION_SEED  # the same binary test set as `train`


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gumbel_vae", help="output folder for the pictures")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[400])
    parser.add_argument("--n-latents", type=int, default=20)
    parser.add_argument("--n-classes", type=int, default=10)
    parser.add_argument("--tau0", type=float, default=1.0)
    parser.add_argument("--tau-min", type=float, default=0.5)
    parser.add_argument("--anneal-rate", type=float, default=0.05, help="per epoch")
    parser.add_argument("--straight-through", action="store_true")
    parser.add_argument("--k", type=int, default=100, help="importance samples for log p(x)")
    parser.add_argument("--max-train", type=int, default=None, help="use N random training images")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def mean_in_batches(function, x: np.ndarray, batch_size: int = 500) -> float:
    """Mean over the rows of x of a per-example function, evaluated in batches."""
    with no_grad():
        values = [np.asarray(function(x[i:i + batch_size]), np.float64)
                  for i in range(0, len(x), batch_size)]
    return float(np.concatenate(values).mean())


def main(args: argparse.Namespace) -> dict:
    model_rng, data_rng, noise_rng = np.random.default_rng(args.seed).spawn(3)
    train_pixels = load_dataset(args.dataset, "train", root=args.data_root).pixels(np.float32)
    # a random subset (the files may be sorted by class); x[:0] or x[:-10] would not be one
    if checks.positive_int(args.max_train, "--max-train", optional=True):
        train_pixels = train_pixels[data_rng.permutation(len(train_pixels))[:args.max_train]]
    test_pixels = load_dataset(args.dataset, "test", root=args.data_root).pixels(np.float32)
    test_x = binarize_dynamic(test_pixels, np.random.default_rng(TEST_BINARIZATION_SEED))
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder

    model = CategoricalVAE(train_pixels.shape[1], hidden=tuple(args.hidden),
                           n_latents=args.n_latents, n_classes=args.n_classes, rng=model_rng,
                           tau0=args.tau0, tau_min=args.tau_min, anneal_rate=args.anneal_rate,
                           straight_through=args.straight_through)
    optimizer = Adam(model.parameters(), lr=args.lr)
    history = {"epoch": [], "temperature": [], "train_objective": [], "test_elbo": []}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        total, seen, temperature = 0.0, 0, model.temperature
        batches = minibatches(binarize_dynamic(train_pixels, data_rng), args.batch_size, data_rng)
        for x in threads.adaptive(batches):  # BLAS threads measured (minivae.threads)
            objective = model.objective(x, noise_rng)
            optimizer.zero_grad()
            (-objective.mean()).backward()
            optimizer.step()
            total, seen = total + float(objective.data.sum(dtype=np.float64)), seen + len(x)
        model.on_epoch_end(epoch)
        test_elbo = mean_in_batches(lambda b: model.elbo(b, noise_rng).data, test_x)
        for key, value in (("epoch", epoch), ("temperature", temperature),
                           ("train_objective", total / seen), ("test_elbo", test_elbo)):
            history[key].append(value)
        if not args.quiet:
            print(f"epoch {epoch:3d}  τ {temperature:.3f}  train relaxed objective "
                  f"{total / seen:8.2f}  test ELBO {test_elbo:8.2f}", flush=True)
    seconds = time.perf_counter() - start

    def log_px(batch):
        return logsumexp(model.log_importance_weights(batch, args.k, noise_rng), axis=0) \
            - np.log(args.k)
    history["test_log_px"] = mean_in_batches(log_px, test_x, batch_size=100)
    history["seconds"] = seconds

    shown = test_x[np.linspace(0, len(test_x) - 1, 20).astype(int)]  # spread over the classes
    save_reconstructions(out / "recon.png", shown, model.reconstruct(shown), n=20,
                         title="test digits and their reconstructions from the most probable "
                               "codes")
    save_image_grid(out / "samples.png", model.sample(100, np.random.default_rng(args.seed)),
                    ncols=10, title=f"decoded from codes c_n ~ Uniform({args.n_classes}), "
                                    f"n = 1..{args.n_latents}")
    save_curve(out / "temperature.png", history["epoch"], {"τ": history["temperature"]},
               ylabel="temperature τ during the epoch",
               title=f"τ = max({args.tau_min}, {args.tau0}·exp(−{args.anneal_rate}·(epoch − 1)))")
    save_curve(out / "curve.png", history["epoch"],
               {"train relaxed objective": history["train_objective"],
                "test ELBO (exact one-hot codes)": history["test_elbo"]},
               title=f"categorical VAE, N = {args.n_latents}, K = {args.n_classes}")

    print(f"\ncategorical VAE on {args.dataset}: N = {args.n_latents} variables of "
          f"K = {args.n_classes} classes, hidden {tuple(args.hidden)}, "
          f"{'straight-through' if args.straight_through else 'relaxed'} codes")
    print(f"{'epoch':>5}  {'τ':>6}  {'train objective':>15}  {'test ELBO':>9}")
    last = len(history["epoch"]) - 1
    for i in sorted({0, last // 4, last // 2, 3 * last // 4, last}):
        print(f"{history['epoch'][i]:5d}  {history['temperature'][i]:6.3f}  "
              f"{history['train_objective'][i]:15.2f}  {history['test_elbo'][i]:9.2f}")
    print(f"test log p(x) ≈ {history['test_log_px']:.2f} nats (importance sampling, "
          f"k = {args.k}); training took {seconds:.0f} s")
    for name, what in (("recon.png", "test digits and their argmax-code reconstructions"),
                       ("samples.png", "digits from uniformly drawn codes"),
                       ("temperature.png", "the annealing schedule"),
                       ("curve.png", "objective per epoch")):
        print(f"  {(out / name).resolve()}  — {what}")
    return history


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
