"""Demo: Iris with one Gaussian and with a three-component Gaussian mixture (EM), side by side.

The lecture's motivating example: the three species overlap in one blob that a single
Gaussian covers badly, while a mixture p(x) = Σ_c π_c N(x; μ_c, Σ_c) fitted without labels
finds the species in its latent c: the posterior p(c | x) predicts the flower type.  Both are
maximum-likelihood fits on two thirds of the flowers (every third one is held out); printed:
log-likelihood per point on both parts, AIC and BIC, and the species accuracy of
argmax_c p(c | x) under the best one-to-one matching of components to species.  Writes
iris_mixture.png to ``--out``: the flowers by species with the single Gaussian, by component
with the mixture's ellipses, new flowers drawn by ancestral sampling (c ~ Cat(π), then
x ~ N(μ_c, Σ_c)), and the confusion matrix.  The pictures show petal length and width, two of
the four measurements; the ellipses are the 2σ contours of the fits' marginals there.

Without scikit-learn installed (it ships Iris), a synthetic three-cluster set replaces it.

    python demos/iris_mixture.py --out runs/iris_mixture
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import demo_parser, run_reporting_errors
from minivae.topics.clustering import (
    clustering_accuracy,
    confusion_matrix,
    match_clusters_to_labels,
)
from minivae.topics.gaussian_fits import (
    fit_gaussian,
    fit_gaussian_mixture,
    gaussian_log_likelihood,
    information_criteria,
    parameter_count,
)

SHOWN = (2, 3)  # petal length, petal width (cm)
CIRCLE = np.stack([np.cos(np.linspace(0, 2 * np.pi, 100)), np.sin(np.linspace(0, 2 * np.pi, 100))])


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/iris_mixture", help="output folder")
    parser.add_argument("--K", type=int, default=3, help="mixture components")
    parser.add_argument("--restarts", type=int, default=10, help="EM starts (k-means++)")
    parser.add_argument("--ridge", type=float, default=1e-3,
                        help="ε added to every component variance: the data are rounded to "
                             "0.1 cm (rounding variance 0.1²/12 ≈ 8e-4); at 1e-6 EM's best run "
                             "collapses a component onto a flat set of rounded points")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def ellipse(mean, covariance) -> np.ndarray:
    index = np.ix_(SHOWN, SHOWN)
    return mean[list(SHOWN)][:, None] + 2 * np.linalg.cholesky(covariance[index]) @ CIRCLE


def draw(path: Path, X, labels, names, single, mixture, clusters, samples, confusion, summary
         ) -> Path:
    figure = new_figure(1500, 1000)
    a, b = SHOWN
    panels = [("species (the labels EM never sees), one Gaussian's 2σ", labels),
              ("argmax p(c | x), coloured by matched species; components' 2σ", clusters),
              ("ancestral samples: c ~ Cat(π), x ~ N(μ_c, Σ_c)", samples[1])]
    for index, (title, colour) in enumerate(panels):
        axes = figure.add_subplot(2, 2, index + 1)
        points = samples[0] if index == 2 else X
        axes.scatter(points[:, a], points[:, b], c=colour, cmap="tab10", vmin=0, vmax=9, s=12)
        if index == 0:
            axes.plot(*ellipse(*single), color="k")
        else:
            for mean, covariance in zip(mixture.means, mixture.covariances):
                axes.plot(*ellipse(mean, covariance), color="k", linewidth=1)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("petal length (cm)")
        axes.set_ylabel("petal width (cm)")
    axes = figure.add_subplot(2, 2, 4)
    shown = confusion[:, :len(names)]
    axes.imshow(shown, cmap="Blues")
    for (i, j), count in np.ndenumerate(shown):
        axes.text(j, i, str(count), ha="center", va="center",
                  color="white" if count > shown.max() / 2 else "black")
    axes.set_xticks(range(len(names)), names)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("species of the matched component")
    axes.set_ylabel("true species")
    axes.set_title(summary, fontsize=9)
    figure.subplots_adjust(hspace=0.35, wspace=0.25)
    return save_png(figure, path)


def main(args: argparse.Namespace) -> dict:
    checks.int_at_least(args.K, "--K"), checks.int_at_least(args.restarts, "--restarts")
    checks.positive(args.ridge, "--ridge", number=True)
    from cavi_gmm import load_data  # Iris from scikit-learn, or the synthetic fallback

    rng = np.random.default_rng(args.seed)
    X, labels, names = load_data(rng)
    held_out = np.arange(len(X)) % 3 == 2
    train, test = X[~held_out], X[held_out]
    single = fit_gaussian(train)
    mixture = fit_gaussian_mixture(train, args.K, rng, n_init=args.restarts, ridge=args.ridge)
    out = output_folder(args.out)
    rows = {}
    for name, parameters, scores in (
            ("one Gaussian", parameter_count(X.shape[1], 1),
             lambda points: gaussian_log_likelihood(points, *single)),
            (f"mixture, K = {args.K}", parameter_count(X.shape[1], args.K),
             mixture.log_likelihood)):
        train_ll, test_ll = scores(train).mean(), scores(test).mean()
        aic, bic = information_criteria(scores(train).sum(), parameters, len(train))
        rows[name] = dict(parameters=parameters, train=train_ll, test=test_ll, aic=aic, bic=bic)
    print(f"{'model':<16} {'params':>6} {'log p / point, train':>21} {'held out':>9} "
          f"{'AIC':>8} {'BIC':>8}")
    for name, r in rows.items():
        print(f"{name:<16} {r['parameters']:>6} {r['train']:>21.4f} {r['test']:>9.4f} "
              f"{r['aic']:>8.1f} {r['bic']:>8.1f}")
    clusters = mixture.responsibilities(X).argmax(axis=1)
    accuracy = clustering_accuracy(labels, clusters)
    held_accuracy = clustering_accuracy(labels[held_out], clusters[held_out])
    confusion, _ = confusion_matrix(labels, clusters)
    print(f"species accuracy of argmax p(c|x) (components matched to species): {accuracy:.4f} "
          f"on all {len(X)}, {held_accuracy:.4f} on the {held_out.sum()} held out")
    print("confusion (rows: species; columns: matched component):")
    for name, row in zip(names, confusion):
        print(f"  {name:<12} " + " ".join(f"{count:4d}" for count in row))
    species_of = match_clusters_to_labels(labels, clusters)  # colours: the matched species
    as_species = np.vectorize(lambda c: species_of.get(int(c), len(names)))
    samples = mixture.sample(len(X), rng)
    samples, shown_clusters = (samples[0], as_species(samples[1])), as_species(clusters)
    summary = "\n".join(
        f"{name}: held-out log p = {r['test']:.3f}/point, BIC {r['bic']:.0f}"
        for name, r in rows.items()) + f"\nspecies accuracy {accuracy:.3f}"
    path = draw(out / "iris_mixture.png", X, labels, names, single, mixture, shown_clusters,
                samples, confusion, summary)
    print(path)
    return {"rows": rows, "accuracy": accuracy, "clusters": clusters, "confusion": confusion,
            "single": single, "mixture": mixture, "X": X, "labels": labels, "train": train,
            "test": test, "path": path}


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
