"""Demo: the course notes' MNIST VAE, its loss per epoch next to the notebook's printed one.

The network of the notes (seed 004, "1B-VAE"): 784-400-400-200 with LeakyReLU(0.2) hidden
layers, Bernoulli decoder, the KL in closed form, batch 100, Adam 1e-3, 15 epochs, training
pixels rounded to 0/1 (``--binarize round``).  The notebook prints, each epoch,

    overall_loss / (batch_idx · batch_size),   overall_loss = Σ over the epoch's batches of
                                                Σ over the batch of −ELBO,

with batch_idx the last index of ``enumerate``, 599 for 600 batches: the sum over 60,000 images
divided by 59,900, i.e. the mean −ELBO per image times N / ((⌈N/B⌉ − 1) B) = 600/599, averaged
while the weights move through the epoch.  minivae's ``train_elbo`` is that mean (per image,
during the epoch), so the plot multiplies it by the same factor.

Either reads a finished run (``--run FOLDER`` with its metrics.json), such as the full one

    python -m minivae train --dataset mnist --data-root DATA --hidden 400 400 --z-dim 200 \\
        --activation leaky_relu --leaky-slope 0.2 --batch-size 100 --lr 1e-3 --epochs 15 \\
        --binarize round --threads 1 --out runs/seed004_mnist
    python demos/seed004_vae.py --run runs/seed004_mnist --out runs/seed004_vae

or trains that network itself on ``--dataset`` (default: the embedded 4,500 digits, under a
minute; fewer steps per epoch than the notes' 600, so its curve is higher).  Writes
loss_curve.png to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.data import load_dataset
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.train import TrainConfig, train

# "Epoch k complete! Average Loss: ..." of the notes' training cell, epochs 1 to 15
NOTES_LOSS = [171.54891246152442, 119.5578116685361, 104.07018823690525, 97.83490304478819,
              94.52309987674771, 92.00130045844637, 90.20876027917623, 88.88070362224802,
              87.72827453307596, 86.67465288012573, 85.87502073768782, 85.26220632206021,
              84.707846565565, 84.18755778674092, 83.77216710467968]
NOTES_TRAIN_IMAGES, NOTES_BATCH = 60_000, 100


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/seed004_vae", help="output folder for the picture")
    parser.add_argument("--run", help="a finished run's folder, whose metrics.json is plotted "
                                      "(default: train the notes' network here)")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--max-train", type=int, help="use only the first N training images")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def notes_normalization(n_images: int, batch_size: int) -> float:
    """The factor N / ((⌈N/B⌉ − 1) B) by which the notebook's printed average exceeds the mean
    per image: it divides the epoch's sum by the last batch index times B."""
    last_index = math.ceil(n_images / batch_size) - 1
    return n_images / (last_index * batch_size)


def notes_config(args: argparse.Namespace, out: Path) -> TrainConfig:
    return TrainConfig(dataset=args.dataset, data_root=args.data_root, epochs=args.epochs,
                       batch_size=NOTES_BATCH, lr=1e-3, z_dim=200, hidden=(400, 400),
                       activation="leaky_relu", leaky_slope=0.2, binarize="round",
                       max_train=args.max_train, seed=args.seed, out=str(out / "run"))


def read_metrics(folder) -> dict:
    path = Path(folder) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(2, "--run must be the folder of a finished `python -m minivae "
                                   "train` run: no metrics.json in it", str(path))
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if "train_elbo" not in metrics:
        raise ValueError(f"--run {folder}: its metrics.json has no train_elbo (a run trained "
                         f"on the ELBO is needed)")
    return metrics


def training_images(metrics: dict) -> int:
    """The number of training images of the run (all of the dataset's unless max_train)."""
    config = metrics["config"]
    full = {"mnist": 60_000, "fashion-mnist": 60_000, "mnist-5k": 4_500}[config["dataset"]]
    return min(config["max_train"] or full, full)


def plot(path: Path, metrics: dict) -> Path:
    config, epochs = metrics["config"], np.array(metrics["epoch"])
    factor = notes_normalization(training_images(metrics), config["batch_size"])
    ours = -np.array(metrics["train_elbo"]) * factor
    figure = new_figure(1100, 460)
    axes = figure.add_subplot(1, 2, 1)
    axes.plot(range(1, len(NOTES_LOSS) + 1), NOTES_LOSS, marker="o", color="black",
              label="notes (PyTorch), as printed")
    axes.plot(epochs, ours, marker="s", color="tab:red",
              label=f"minivae: −train ELBO × {factor:.5f}")
    axes.plot(epochs, -np.array(metrics["test_elbo"]), linestyle="--", color="tab:red",
              label="minivae: −test ELBO (per image, end of epoch)")
    axes.set_xlabel("epoch")
    axes.set_ylabel("average loss in the notes' normalization (nats)")
    axes.set_title(f"784-400-400-200 LeakyReLU(0.2) VAE on {config['dataset']}, "
                   f"binarize {config.get('binarize', 'dynamic')}")
    axes.legend()
    axes = figure.add_subplot(1, 2, 2)
    shared = min(len(NOTES_LOSS), len(ours))
    axes.bar(np.arange(1, shared + 1), ours[:shared] - np.array(NOTES_LOSS[:shared]),
             color="tab:red")
    axes.axhline(0, color="black", linewidth=1)
    axes.set_xlabel("epoch")
    axes.set_ylabel("minivae − notes (nats)")
    axes.set_title(f"difference; last epoch: minivae {ours[shared - 1]:.2f}, notes "
                   f"{NOTES_LOSS[shared - 1]:.2f}")
    return save_png(figure, path, tight_layout=True)


def main(args: argparse.Namespace) -> dict:
    checks.positive_int(args.epochs, "--epochs")
    checks.positive_int(args.max_train, "--max-train", optional=True)
    if args.run is not None:
        metrics, out = read_metrics(args.run), output_folder(args.out)
    else:  # missing data is reported before any folder is made
        load_dataset(args.dataset, "train", root=args.data_root)
        out = output_folder(args.out)
        metrics = train(notes_config(args, out), progress=not args.quiet)
    path = plot(out / "loss_curve.png", metrics)
    factor = notes_normalization(training_images(metrics), metrics["config"]["batch_size"])
    print(f"{'epoch':>5}  {'notes':>8}  {'minivae':>8}  (−train ELBO × {factor:.5f})")
    for epoch, elbo in zip(metrics["epoch"], metrics["train_elbo"]):
        notes = f"{NOTES_LOSS[epoch - 1]:8.2f}" if epoch <= len(NOTES_LOSS) else " " * 8
        print(f"{epoch:5d}  {notes}  {-elbo * factor:8.2f}")
    print(f"Picture: {path.resolve()}")
    return metrics


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
