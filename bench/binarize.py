"""The training loop's per-epoch redraw of every binary training image, two ways, side by side.

Dynamic binarization (``minivae.data.binarize_dynamic``) draws b = [u < p] for every pixel of
the training set once per epoch: 47 million pixels for MNIST.  Timed here, interleaved, over
``--epochs`` redraws each:

* **fresh**: the plain NumPy form, ``(rng.random(p.shape) < p).astype(p.dtype)``, a new array
  every epoch while the last epoch's is still held (as the loop holds it until the new one is
  made);
* **minivae**: ``binarize_dynamic(p, rng, out=last)``, the comparison written into last epoch's
  array (what ``minivae.train`` runs).

    python bench/binarize.py [--data-root ../shared/data/mnist] [--epochs 10] [--n 60000]

Without ``--data-root`` the pixels are uniform draws of MNIST's training-set shape.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from minivae.data import binarize_dynamic, load_dataset


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="MNIST's folder (default: uniform "
                                                          "pixels of its shape)")
    parser.add_argument("--epochs", type=int, default=10, help="redraws timed per form")
    parser.add_argument("--n", type=int, default=60_000, help="images (default: MNIST's "
                                                               "60,000 training images)")
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
    return medians


if __name__ == "__main__":
    main(parse_args())
