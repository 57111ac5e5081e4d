"""Demo: classes overlap in a plain VAE's 2-D latent space, and less under a VaDE's mixture prior.

Both models see the same digits, without labels, and have z_dim = 2:
* a VAE, prior N(0, I): the KL term pulls every q(z|x) towards the one same Gaussian, so the
  codes of all digits share one blob around 0 and neighbouring classes run into each other;
* a VaDE, prior Σ_c π_c N(μ_c, σ_c²) (autoencoder pretraining, a GMM fitted to the codes, then
  the VaDE ELBO): each component is a place of its own for a group of digits, and the KL term
  now pulls each q(z|x) towards its own component, away from the others.
The labels are used only to colour the test codes μ̃(x) and to measure the overlap:
k-NN accuracy (test codes labelled by their k nearest training codes; high = classes apart)
and the mean Bhattacharyya coefficient between the Gaussians fitted to each class's test codes
(``minivae.topics.latent_overlap``; 1 = the same blob, 0 = disjoint; unchanged by rescaling).

Writes latent_spaces.png (the two latent spaces side by side) and prints a table.
See docs/derivations.md, "Overlapping latents and why discrete latents help".

    python demos/overlapping_latents.py            # about a minute on 4,500 digits
    python demos/overlapping_latents.py --dataset mnist --epochs 20
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.engine.tensor import no_grad
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.models.vade import VaDE
from minivae.models.vae import VAE
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.topics.clustering import clustering_accuracy
from minivae.topics.latent_overlap import class_overlap, knn_accuracy
from minivae.train import TEST_BINARIZATION_SEED  # the same binary test set as `train`


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/overlapping_latents", help="folder for the picture")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=10,
                        help="VAE epochs, and VaDE epochs after its pretraining")
    parser.add_argument("--pretrain-epochs", type=int, default=5,
                        help="the VaDE's autoencoder epochs before its GMM is fitted")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256])
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--k", type=int, default=10, help="neighbours in the k-NN accuracy")
    parser.add_argument("--max-train", type=int, default=None, help="use N random training images")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def codes(model, x: np.ndarray) -> np.ndarray:
    """The posterior means μ̃(x), in batches, without a graph."""
    with no_grad():
        return np.concatenate([model.encode(x[i:i + 1000]).loc.data
                               for i in range(0, len(x), 1000)])


def train(model, objective, pixels, epochs: int, args, rng, description: str) -> None:
    """Adam on −mean objective(x) over freshly binarized minibatches, ``epochs`` passes."""
    optimizer = Adam(model.parameters(), lr=args.lr)
    for _ in tqdm(range(epochs), desc=description, disable=args.quiet, leave=False):
        for x in threads.adaptive(minibatches(binarize_dynamic(pixels, rng), args.batch_size,
                                              rng)):
            loss = -objective(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def main(args: argparse.Namespace) -> dict:
    checks.positive_int(args.epochs, "--epochs")
    checks.positive_int(args.pretrain_epochs, "--pretrain-epochs")
    checks.int_at_least(args.n_clusters, "--n-clusters", 2)
    vae_rng, vade_rng, data_rng, noise_rng = np.random.default_rng(args.seed).spawn(4)
    train_set = load_dataset(args.dataset, "train", root=args.data_root)
    test_set = load_dataset(args.dataset, "test", root=args.data_root)
    pixels, train_labels = train_set.pixels(np.float32), train_set.labels
    if checks.positive_int(args.max_train, "--max-train", optional=True):
        keep = data_rng.permutation(len(pixels))[:args.max_train]
        pixels, train_labels = pixels[keep], train_labels[keep]
    checks.positive_int(args.k, "--k")
    checks.require(args.k <= len(pixels), "--k", f"at most the {len(pixels)} training images",
                   args.k)
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder
    test_x = binarize_dynamic(test_set.pixels(np.float32),
                              np.random.default_rng(TEST_BINARIZATION_SEED))
    train_x = binarize_dynamic(pixels, data_rng)
    hidden = tuple(args.hidden)

    vae = VAE(pixels.shape[1], hidden=hidden, z_dim=2, rng=vae_rng)
    train(vae, lambda x: vae.objective(x, noise_rng), pixels, args.epochs, args, data_rng,
          "VAE")
    vade = VaDE(pixels.shape[1], hidden=hidden, z_dim=2, n_clusters=args.n_clusters,
                rng=vade_rng)
    train(vade, vade.autoencoder_objective, pixels, args.pretrain_epochs, args, data_rng,
          "VaDE pretraining")
    vade.initialize_prior(codes(vade, train_x), data_rng)
    train(vade, lambda x: vade.objective(x, noise_rng), pixels, args.epochs, args, data_rng,
          "VaDE")

    results = {}
    for name, model in (("VAE", vae), ("VaDE", vade)):
        test_codes = codes(model, test_x)
        results[name] = {
            "codes": test_codes,
            "knn_accuracy": knn_accuracy(codes(model, train_x), train_labels, test_codes,
                                         test_set.labels, args.k),
            "class_overlap": class_overlap(test_codes, test_set.labels),
        }
    results["VaDE"]["clustering_accuracy"] = clustering_accuracy(
        test_set.labels, np.concatenate([vade.predict(test_x[i:i + 1000])
                                         for i in range(0, len(test_x), 1000)]))
    picture = draw(results, test_set.labels, out, args)
    print_table(results, args, picture)
    return {name: {key: value for key, value in result.items() if key != "codes"}
            for name, result in results.items()}


def draw(results: dict, labels: np.ndarray, out: Path, args) -> Path:
    figure = new_figure(1400, 650)
    for i, (name, result) in enumerate(results.items()):
        axes = figure.add_subplot(1, 2, i + 1)
        points = axes.scatter(*result["codes"].T, c=labels, cmap="tab10", s=6, vmin=-0.5,
                              vmax=9.5)
        axes.set_title(f"{name}: test codes μ̃(x) by digit\n{args.k}-NN accuracy "
                       f"{100 * result['knn_accuracy']:.1f}%, mean Bhattacharyya overlap "
                       f"{result['class_overlap']:.3f}", fontsize=10)
        axes.set_xlabel("z₁")
        axes.set_ylabel("z₂")
    figure.colorbar(points, ax=figure.axes, ticks=range(10), label="digit")
    return save_png(figure, out / "latent_spaces.png")


def print_table(results: dict, args, picture: Path) -> None:
    print(f"\nClasses in a 2-D latent space ({args.dataset} test set, prior: N(0, I) for the VAE,"
          f" {args.n_clusters} Gaussians for the VaDE)")
    print(f"| model | {args.k}-NN accuracy | mean Bhattacharyya overlap |")
    print("|-------|---------------|----------------------------|")
    for name, result in results.items():
        print(f"| {name:5s} | {100 * result['knn_accuracy']:12.1f}% | "
              f"{result['class_overlap']:26.3f} |")
    print(f"VaDE clustering accuracy (no labels used): "
          f"{100 * results['VaDE']['clustering_accuracy']:.1f}%")
    print(f"  {picture.resolve()}  — the two latent spaces, coloured by digit")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
