"""Demo: classifying digits from 100 labels — M2 and M1+M2 against k-means in a VAE's latent space.

Three ways to use the many unlabelled images (Kingma, Rezende, Mohamed & Welling 2014):

* k-means baseline: train a VAE (M1) on every image without labels, run k-means on the latent
  means μ(x) of the training images, and label each cluster by the majority of the labelled
  images that fall in it (a cluster holding none takes the most common label);
* M2: a VAE whose latent variables are a class y and a style z, trained on the bound L(x, y) of
  the labelled images, the bound U(x) of all the images (the class summed out exactly), and
  α' log q(y | x) on the labelled ones (``minivae.models.SemiSupervisedVAE``, through
  ``python -m minivae train --model m2 --labels N``); it classifies by argmax_y q(y | x);
* M1+M2: the same M2, with a Gaussian decoder p(z₁ | y, z₂), trained on M1's latent codes
  instead of the pixels (``minivae.models.GaussianSemiSupervisedVAE``): the means z₁ = μ(x)
  (``--m1-codes mean``) or draws z₁ ~ q(z₁ | x), fresh every epoch (``sample``), of the
  units M1 uses (``--m1-units active``: Var_x μ(x) > 0.01, as the paper's code keeps), its
  labelled terms weighted as the paper's J^α (``--m1m2-weighting paper``: with "balanced" one
  class takes the digits, docs/RESULTS.md).

All three see the same labelled images (N / 10 of each class, chosen by --seed as the M2 run
chooses them).  Writes test_error.png (test error per epoch of M2 and M1+M2, with the
baseline) and analogies.png (row i: a test digit, then M2's decoder at its style z = μ(x, ŷ)
with each class y in turn), results.json (the numbers of the table and the curves per
epoch, with the arguments) and m1m2.npz (M1+M2 as trained, with M1's units it reads), and
prints a table.  Per M1+M2 epoch it also records the mean
entropy of q(y | z₁) and the test error under the best one-to-one relabelling of the
predicted classes, and the share of test digits in its most used class (``m1_plus_m2``),
which tell a classifier gone vague from one whose classes have turned into clusters under
other names or that puts most digits in a few classes; after the last epoch, the confusion
matrix of the test digits (in results.json; the table names its most frequent mistake).

    python demos/semi_supervised.py --labels 100                   # minutes, on 4,500 digits
    python demos/semi_supervised.py --dataset mnist --epochs 50    # full MNIST, as in the paper
    python demos/semi_supervised.py --dataset mnist --epochs 500 --budget-minutes 20

``--budget-minutes M`` bounds each of the three trainings (M2, the VAE, M1+M2): each ends after
the step (M1+M2: the epoch) that spends M minutes, after at least one epoch;
``--vae-budget-minutes`` gives the VAE its own.  ``--skip-m2`` leaves out M2 on the pixels, so
that M1 and M1+M2 together take a stated budget, e.g. one hour:

    python demos/semi_supervised.py --dataset mnist --epochs 500 --vae-epochs 500 \
        --skip-m2 --vae-budget-minutes 19 --budget-minutes 40

``--m1-checkpoint`` takes M1 from a VAE already trained (a checkpoint.npz of
``python -m minivae train`` or of this demo's vae/ folder), so that M1+M2's options can be
compared on one M1 (``--m1m2-lr`` sets M1+M2's Adam learning rate, 1e-3 by default, and
``--m1m2-lr-schedule`` how it changes over ``--epochs``, as ``train``'s ``--lr-schedule``).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.config import TrainConfig
from minivae.data import binarize_dynamic
from minivae.engine.tensor import no_grad
from minivae.io.checkpoint import save_checkpoint
from minivae.io.json_text import write_json
from minivae.io.plots import output_folder, save_curve, save_image_grid
from minivae.io.resume import load_model
from minivae.models import VAE, GaussianSemiSupervisedVAE
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.schedules import LR_SCHEDULES, learning_rate
from minivae.stopping import Budget
from minivae.topics.active_units import active_units
from minivae.topics.clustering import clustering_accuracy, kmeans_plus_plus
from minivae.train import TEST_BINARIZATION_SEED, run_generators, train, training_data
from minivae.training_data import LabelledTrainingData, class_entropy

PAPER_ERRORS = {"M2": (11.97, 1.71), "M1+M2": (3.33, 0.14)}  # Kingma et al. 2014, Table 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/semi_supervised", help="folder for the runs "
                                                                      "and pictures")
    add_data_arguments(parser)
    parser.add_argument("--labels", type=int, default=100,
                        help="training images that keep their labels (a multiple of 10)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of M2 and of M1+M2's M2")
    parser.add_argument("--vae-epochs", type=int, default=10,
                        help="epochs of the VAE (M1) under k-means and M1+M2")
    parser.add_argument("--hidden", type=int, nargs="+", default=[500])
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--m1-codes", choices=["sample", "mean"], default="sample",
                        help="what M1+M2's M2 is trained on: z₁ drawn from q(z₁ | x) afresh "
                             "every epoch (sample), or the means μ(x) (mean)")
    parser.add_argument("--m1-units", choices=["active", "all"], default="active",
                        help="the units of z₁ that M1+M2's M2 sees: those M1 uses (Burda et "
                             "al.'s active units, Var_x μ(x) > 0.01), or all")
    parser.add_argument("--clusters", type=int, default=10, help="k of the k-means baseline")
    parser.add_argument("--alpha-scale", type=float, default=0.1,
                        help="the 0.1 of the classification weight α = 0.1 · N (Kingma et al.)")
    parser.add_argument("--labelled-weighting", choices=["balanced", "paper"], default="balanced",
                        help="M2's labelled rows as they are (balanced) or scaled by N_l / N so "
                             "that an epoch is the paper's J^α (see SemiSupervisedVAE.objective)")
    parser.add_argument("--m1m2-weighting", choices=["balanced", "paper"], default="paper",
                        help="the same for M1+M2's M2 (balanced makes one class take the digits "
                             "there: docs/RESULTS.md)")
    parser.add_argument("--m1m2-lr", type=float, default=1e-3,
                        help="Adam's learning rate for M1+M2")
    parser.add_argument("--m1m2-lr-schedule", choices=LR_SCHEDULES, default="constant",
                        help="how M1+M2's rate changes over --epochs (cosine: from --m1m2-lr "
                             "towards 0 by the last epoch; minivae/schedules.py)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="wall-clock minutes of each training (default: no limit)")
    parser.add_argument("--vae-budget-minutes", type=float, default=None,
                        help="wall-clock minutes of the VAE (M1) (default: --budget-minutes)")
    parser.add_argument("--m1-checkpoint", default=None,
                        help="a trained VAE's checkpoint.npz to use as M1 instead of training "
                             "one (--vae-epochs and --vae-budget-minutes then do nothing)")
    parser.add_argument("--skip-m2", action="store_true",
                        help="train only M1 (with k-means) and M1+M2, not M2 on the pixels")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, steps: int = 50) -> np.ndarray:
    """Cluster centres (k, d) after Lloyd's iterations from k-means++ seeds."""
    centres = points[kmeans_plus_plus(points, k, rng)].copy()
    for _ in range(steps):
        nearest = nearest_centre(points, centres)
        for c in range(k):
            if np.any(nearest == c):  # an empty cluster keeps its centre
                centres[c] = points[nearest == c].mean(axis=0)
    return centres


def nearest_centre(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((points[:, None, :] - centres) ** 2).sum(-1).argmin(axis=1)


def latent_codes(args, out: Path, train_pixels: np.ndarray,
                 test_pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M1: a VAE trained on every training image without labels (or the one of
    --m1-checkpoint); q(z₁ | x) of the training images (one binarization) as its means μ(x)
    and standard deviations σ(x), and the means of the binarized test images, float32."""
    if args.m1_checkpoint is None:
        budget = (args.budget_minutes if args.vae_budget_minutes is None
                  else args.vae_budget_minutes)
        config = TrainConfig(dataset=args.dataset, data_root=args.data_root,
                             epochs=args.vae_epochs, hidden=tuple(args.hidden),
                             z_dim=args.z_dim, seed=args.seed, budget_minutes=budget,
                             out=str(out / "vae"))
        train(config, progress=not args.quiet)
    vae = load_m1(args.m1_checkpoint or out / "vae" / "checkpoint.npz", train_pixels.shape[1])
    rng = np.random.default_rng(args.seed)
    with no_grad():
        posterior = vae.encode(binarize_dynamic(train_pixels, rng))
        return posterior.loc.data, posterior.scale.data, vae.encode(test_pixels).loc.data


def load_m1(path, x_dim: int) -> VAE:
    """The Bernoulli VAE of a training checkpoint, checked to be one, on images of x_dim."""
    vae, _ = load_model(path)
    if type(vae) is not VAE or vae.x_dim != x_dim:
        raise ValueError(f"--m1-checkpoint: {path} holds a {type(vae).__name__} of "
                         f"{vae.x_dim}-pixel images; M1 is a Bernoulli VAE (train --model vae) "
                         f"of this dataset's {x_dim}-pixel images")
    return vae


def kmeans_baseline(args, data: LabelledTrainingData, codes: np.ndarray,
                    test_codes: np.ndarray) -> float:
    """Test error of k-means on M1's latent means, clusters labelled by majority vote."""
    codes, test_codes = codes.astype(np.float64), test_codes.astype(np.float64)
    labelled, train_labels = data.labelled, data.train_labels
    centres = kmeans(codes, args.clusters, np.random.default_rng(args.seed))
    votes = np.zeros((args.clusters, 10), np.int64)
    np.add.at(votes, (nearest_centre(codes[labelled], centres), train_labels[labelled]), 1)
    fallback = np.bincount(train_labels[labelled], minlength=10).argmax()
    cluster_label = np.where(votes.sum(1) > 0, votes.argmax(1), fallback)
    return float(np.mean(cluster_label[nearest_centre(test_codes, centres)] != data.test_labels))


def m1_plus_m2(args, data: LabelledTrainingData, codes: np.ndarray, code_scales: np.ndarray,
               test_codes: np.ndarray) -> dict[str, list[float]]:
    """M2 with a Gaussian decoder on M1's codes, each step the objective of a minibatch of
    codes and as many labelled codes, as ``train`` steps M2.  The codes are the means μ(x)
    (``--m1-codes mean``) or, drawn afresh every epoch, z₁ = μ(x) + σ(x) ε with ε ~ N(0, I)
    (``sample``, as the paper's code feeds M2); the test digits are classified from μ(x).
    Per epoch, on the test codes: "test_error", "class_entropy" (the mean H(q(y | z₁))),
    "matched_error", the error under the one-to-one relabelling of the predicted classes that
    fits the labels best (one minus ``clustering_accuracy``), and "largest_class", the share
    of the test digits put in the most used class (a tenth when the classes are used evenly);
    "learning_rate", Adam's rate in the epoch (``--m1m2-lr`` under ``--m1m2-lr-schedule``).
    A matched error far below the test error means y has become a clustering of the codes
    whose clusters no longer carry the labels' names."""
    model_rng, data_rng, noise_rng, _, _ = run_generators(args.seed)
    model = GaussianSemiSupervisedVAE(codes.shape[1], hidden=tuple(args.hidden),
                                      z_dim=args.z_dim, rng=model_rng,
                                      alpha_scale=args.alpha_scale,
                                      labelled_weighting=args.m1m2_weighting)
    optimizer = Adam(model.parameters(), lr=args.m1m2_lr)
    curves = {"test_error": [], "class_entropy": [], "matched_error": [], "largest_class": [],
              "learning_rate": []}
    budget = Budget(args.budget_minutes)
    bar = tqdm(range(args.epochs), desc="M1+M2 epochs", disable=args.quiet)
    for epoch in bar:
        if curves["test_error"] and budget.spent():
            break
        optimizer.lr = learning_rate(args.m1m2_lr_schedule, epoch + 1, args.m1m2_lr, args.epochs)
        epoch_codes = codes
        if args.m1_codes == "sample":
            noise = noise_rng.standard_normal(codes.shape, dtype=codes.dtype)
            epoch_codes = codes + code_scales * noise
        for x, extra in data.batches(epoch_codes, 128, data_rng):  # extra: the labelled codes
            loss = -model.objective(x, noise_rng, **extra).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        predicted = np.concatenate([model.predict(test_codes[i:i + 1000])
                                    for i in range(0, len(test_codes), 1000)])
        curves["test_error"].append(float(np.mean(predicted != data.test_labels)))
        curves["matched_error"].append(1 - clustering_accuracy(data.test_labels, predicted))
        curves["class_entropy"].append(class_entropy(model, test_codes))
        curves["largest_class"].append(float(np.bincount(predicted).max() / len(predicted)))
        curves["learning_rate"].append(optimizer.lr)
        bar.set_postfix({name: f"{values[-1]:.3f}" for name, values in curves.items()})
    # after the last epoch: row i, column j counts the test digits i classified as j
    confusion = np.zeros((model.n_classes, model.n_classes), np.int64)
    np.add.at(confusion, (data.test_labels, predicted), 1)
    return {**curves, "confusion": confusion.tolist(), "model": model}


def main(args: argparse.Namespace) -> dict:
    checks.positive_int(args.labels, "--labels"), checks.positive_int(args.clusters, "--clusters")
    checks.positive_int(args.epochs, "--epochs")
    checks.positive(args.m1m2_lr, "--m1m2-lr", number=True)
    checks.positive(args.budget_minutes, "--budget-minutes", number=True, optional=True)
    checks.positive(args.vae_budget_minutes, "--vae-budget-minutes", number=True, optional=True)
    config = TrainConfig(model="m2", labels=args.labels, dataset=args.dataset,
                         data_root=args.data_root, epochs=args.epochs, hidden=tuple(args.hidden),
                         z_dim=args.z_dim, activation="softplus", seed=args.seed,
                         budget_minutes=args.budget_minutes,
                         model_options={"alpha_scale": args.alpha_scale,
                                        "labelled_weighting": args.labelled_weighting})
    try:  # the images and labels of M2's run, the same labelled ones
        data = training_data(config)
    except ValueError as error:
        raise ValueError(f"--{error}") from None  # the message starts with "labels must be"
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder
    test_pixels = binarize_dynamic(data.test_pixels,
                                   np.random.default_rng(TEST_BINARIZATION_SEED))
    start = time.perf_counter()
    m2 = None if args.skip_m2 else train(dataclasses.replace(config, out=str(out / "m2")),
                                         progress=not args.quiet)
    m2_seconds = time.perf_counter() - start
    codes, code_scales, test_codes = latent_codes(args, out, data.train_pixels, test_pixels)
    baseline = kmeans_baseline(args, data, codes, test_codes)
    units = np.ones(codes.shape[1], bool) if args.m1_units == "all" else active_units(codes)
    if not units.any():
        raise ValueError(f"M1 uses none of its {codes.shape[1]} latent units (each Var_x μ(x) "
                         f"≤ 0.01): train it longer (--vae-epochs) or pass --m1-units all")
    m1m2_curves = m1_plus_m2(args, data, codes[:, units], code_scales[:, units],
                             test_codes[:, units])
    m1m2 = m1m2_curves["test_error"]
    # M1's codes of the kept units go in; with M1's checkpoint this scores any image again
    save_checkpoint(out / "m1m2.npz", m1m2_curves["model"].state_dict(),
                    {"m1_units": np.flatnonzero(units).tolist(), "hidden": args.hidden,
                     "z_dim": args.z_dim, "seed": args.seed})
    results = {"m1m2_test_error": m1m2[-1], "m1m2_curve": m1m2,
               "m1m2_class_entropy": m1m2_curves["class_entropy"],
               "m1m2_matched_error": m1m2_curves["matched_error"],
               "m1m2_largest_class": m1m2_curves["largest_class"],
               "m1m2_confusion": m1m2_curves["confusion"],
               "m1m2_learning_rate": m1m2_curves["learning_rate"],
               "m1_units": int(units.sum()),
               "kmeans_test_error": baseline, "m1m2_epochs": len(m1m2),
               "seconds": time.perf_counter() - start}
    if m2 is not None:
        results.update({"m2_test_error": m2["test_error"][-1], "m2_curve": m2["test_error"],
                        "m2_epochs": m2["epoch"][-1], "m2_seconds": m2_seconds})
    write_pictures(out, m2, m1m2, baseline, test_pixels, args)
    write_json(out / "results.json", {"args": vars(args), **results})
    print_table(results, args, out)
    return results


def write_pictures(out: Path, m2: dict | None, m1m2: list, baseline: float,
                   test_pixels: np.ndarray, args) -> None:
    """test_error.png, and analogies.png from M2 on the pixels unless it was skipped (m2 None)."""
    if m2 is None:  # an earlier run's picture in this folder would pass for this run's
        (out / "analogies.png").unlink(missing_ok=True)
    m2_errors = [] if m2 is None else m2["test_error"]
    epochs = max(len(m2_errors), len(m1m2))  # a budget may end one before the other

    def percent(errors):  # NaN after a curve's last epoch: drawn as nothing
        return 100 * np.pad(np.asarray(errors, float), (0, epochs - len(errors)),
                            constant_values=np.nan)

    curves = {} if m2 is None else {"M2": percent(m2_errors)}
    curves.update({"M1+M2": percent(m1m2),
                   f"k-means ({args.clusters}) on VAE means, after training":
                       np.full(epochs, 100 * baseline)})
    save_curve(out / "test_error.png", np.arange(1, epochs + 1), curves,
               ylabel="test error (%)", title=f"{args.labels} labels on {args.dataset}")
    if m2 is None:
        return
    model, _ = load_model(out / "m2" / "checkpoint.npz")
    shown = test_pixels[np.linspace(0, len(test_pixels) - 1, 10).astype(int)]
    predicted = model.predict(shown)
    with no_grad():
        style = model.encode(shown, predicted).loc.data  # z = μ(x, ŷ)
    rows = [np.concatenate([x[None], model.generate(np.arange(10), np.repeat(z[None], 10, 0))])
            for x, z in zip(shown, style)]
    save_image_grid(out / "analogies.png", np.concatenate(rows), ncols=11,
                    title="a test digit, then its style z = μ(x, ŷ) decoded with y = 0 … 9")


def print_table(results: dict, args, out: Path) -> None:
    print(f"\nTest error with {args.labels} labels on {args.dataset}")
    print("| method                                      | test error |")
    print("|---------------------------------------------|------------|")
    for name, (error, spread) in PAPER_ERRORS.items():
        print(f"| {name + ', Kingma et al. (2014), MNIST':43s} | {error:5.2f} ± {spread:.2f}% |")
    print(f"| {'minivae: k-means (' + str(args.clusters) + ') on VAE latent means':43s} | "
          f"{100 * results['kmeans_test_error']:9.2f}% |")
    if "m2_test_error" in results:
        print(f"| {'minivae: M2, ' + str(results['m2_epochs']) + ' epochs':43s} | "
              f"{100 * results['m2_test_error']:9.2f}% |")
    m1m2 = f"minivae: M1+M2, {results['m1m2_epochs']} epochs, {results['m1_units']} units"
    print(f"| {m1m2:43s} | "
          f"{100 * results['m1m2_test_error']:9.2f}% |")
    print(f"| {'  the same, its classes best relabelled':43s} | "
          f"{100 * results['m1m2_matched_error'][-1]:9.2f}% |")
    print(f"| {'  test digits in its most used class':43s} | "
          f"{100 * results['m1m2_largest_class'][-1]:9.2f}% |")
    confusion = np.array(results["m1m2_confusion"])
    np.fill_diagonal(confusion, 0)
    digit, taken_for = np.unravel_index(confusion.argmax(), confusion.shape)
    print(f"M1+M2's most frequent mistake: {confusion[digit, taken_for]} test {digit}s "
          f"classified as {taken_for}s")
    m2_seconds = f" (M2 {results['m2_seconds']:.0f} s)" if "m2_seconds" in results else ""
    print(f"{results['seconds']:.0f} s in all{m2_seconds}")
    pictures = ("test_error.png", "analogies.png") if m2_seconds else ("test_error.png",)
    for name in (*pictures, "results.json", "m1m2.npz"):
        print(f"  {(out / name).resolve()}")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
