"""The training loop's per-epoch redraw of every binary training image, two ways, side by side.

Dynamic binarization (``minivae.data.binarize_dynamic``) draws b = [u < p] for every pixel of
the training set once per epoch: 47 million pixels for MNIST.  Two forms, interleaved:

* **fresh**: the plain NumPy form, ``(rng.random(p.shape) < p).astype(p.dtype)``, a new array
  every epoch while the last epoch's is still held (as the loop holds it until the new one is
  made);
* **minivae**: ``binarize_dynamic(p, rng, out=last)``, the comparison written into last epoch's
  array (what ``minivae.train`` runs).

Part 1 times the redraw alone, ``--epochs`` times per form.  Part 2 (``--train-epochs E`` > 0)
times whole training epochs of ``minivae.train`` (the 784-200-200-50 VAE of Burda et al., batch
100, one BLAS thread) with each form in turn, ``--rounds`` runs each: the redraw alone
understates what it costs inside the loop, where its fresh 190 MB meets the memory the steps
use.  Both parts check that the forms drew the same images (part 2: the same test ELBOs).

    python bench/binarize.py [--data-root ../shared/data/mnist] [--epochs 10] [--n 60000]
        [--train-epochs 4 --rounds 2]

Without ``--data-root`` the pixels are uniform draws of MNIST's training-set shape (part 2
needs ``--data-root``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from unittest import mock

import numpy as np

from minivae import threads
from minivae.config import TrainConfig
from minivae.data import binarize_dynamic, load_dataset
from minivae.train import train


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="MNIST's folder (default: uniform "
                                                          "pixels of its shape)")
    parser.add_argument("--epochs", type=int, default=10, help="redraws timed per form")
    parser.add_argument("--n", type=int, default=60_000, help="images (default: MNIST's "
                                                               "60,000 training images)")
    parser.add_argument("--train-epochs", type=int, default=0,
                        help="training epochs per run in part 2 (0: no part 2)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per form in part 2")
    return parser.parse_args(argv)


def fresh_draw(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(pixels.shape, dtype=pixels.dtype) < pixels).astype(pixels.dtype)


def main(args: argparse.Namespace) -> dict:
    if args.data_root is None:
        pixels = np.random.default_rng(0).random((args.n, 784), dtype=np.float32)
    else:
        pixels = load_dataset("mnist", "train", args.data_root).pixels(np.float32)[:args.n]
    print(f"{pixels.shape[0]:,} × {pixels.shape[1]} float32 pixels; load average "
          f"{os.getloadavg()[0]:.2f}")
    held = {"fresh": fresh_draw(pixels, np.random.default_rng(1)),
            "minivae": binarize_dynamic(pixels, np.random.default_rng(1))}
    times = {"fresh": [], "minivae": []}
    rngs = {name: np.random.default_rng(2) for name in times}
    for _ in range(args.epochs):  # interleaved, so a change of load hits both forms alike
        for name in times:
            start = time.perf_counter()
            if name == "fresh":
                held[name] = fresh_draw(pixels, rngs[name])
            else:
                held[name] = binarize_dynamic(pixels, rngs[name], out=held[name])
            times[name].append(time.perf_counter() - start)
    assert np.array_equal(held["fresh"], held["minivae"]), "the two forms drew differently"
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:8s} median {medians[name]:.3f} s per redraw "
              f"(min {min(values):.3f}, max {max(values):.3f})")
    print(f"minivae / fresh: {medians['minivae'] / medians['fresh']:.2f}")
    if args.train_epochs > 0:
        medians.update(training_epochs(args))
    return medians


def fresh_binarize(pixels, rng, out=None):
    """binarize_dynamic as it was: ``out`` ignored, a fresh array every call."""
    return fresh_draw(pixels, rng)


def training_epochs(args) -> dict:
    """Median seconds of a training epoch (the first of each run left out: it warms up)
    with each form of the redraw, runs interleaved."""
    threads.set_num_threads(1)
    seconds, elbos = {"epoch, fresh": [], "epoch, minivae": []}, {}
    for _ in range(args.rounds):
        for name in seconds:
            with tempfile.TemporaryDirectory() as out:
                config = TrainConfig(dataset="mnist", data_root=args.data_root,
                                     max_train=args.n, hidden=(200, 200), z_dim=50,
                                     batch_size=100, epochs=args.train_epochs, out=out,
                                     adam_eps=1e-4)
                if name == "epoch, fresh":
                    with mock.patch("minivae.train.binarize_dynamic", fresh_binarize):
                        metrics = train(config, progress=False)
                else:
                    metrics = train(config, progress=False)
            seconds[name] += metrics["seconds"][1:]
            elbos.setdefault(name, metrics["test_elbo"])
    assert elbos["epoch, fresh"] == elbos["epoch, minivae"], "the two forms trained differently"
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        runs = ', '.join(f'{t:.2f}' for t in values)
        print(f"{name:15s} median {medians[name]:.2f} s (epochs {runs})")
    print(f"training epoch, minivae / fresh: "
          f"{medians['epoch, minivae'] / medians['epoch, fresh']:.2f}")
    return medians


if __name__ == "__main__":
    main(parse_args())
