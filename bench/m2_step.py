"""M2's training step with its encoder run two ways on the K classes of each unlabelled image.

The bound U(x) of an unlabelled image runs the encoder q(z | x, y) once per class y.  Two forms
of its first layer, interleaved in one process:

* **concatenated**: the readable form, the encoder on the K · B rows [x_b, e_y]
  (``SemiSupervisedVAE._encode_one_hot`` on x repeated K times);
* **minivae**: x W_x computed once per image and W_y[y] + b added per class
  (``SemiSupervisedVAE._encode_every_class``, what ``train --model m2`` runs).

Each form trains its own copy of the same model (Kingma et al.'s 784-500-50 softplus network,
100 labels, batches of B unlabelled images with B labelled ones, Adam) for ``--steps`` steps
per round on the same minibatches and noise; the objective of the first step must agree to
float32 rounding.  Medians of the per-round times, and their ratio.

    python bench/m2_step.py [--data-root ../shared/data/mnist] [--steps 20] [--rounds 3]
        [--threads 1]

Without ``--data-root`` the images are uniform binary draws of MNIST's shape.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from minivae import threads
from minivae.data import binarize_dynamic, load_dataset
from minivae.engine.tensor import Tensor
from minivae.models import SemiSupervisedVAE
from minivae.optim import Adam


class ConcatenatedEncoder(SemiSupervisedVAE):
    """M2 whose every-class encoder is the readable one: x repeated K times, [x, e_y] encoded."""

    def _encode_every_class(self, x: Tensor):
        every_class = np.repeat(np.arange(self.n_classes), x.shape[0])
        return self._encode_one_hot(Tensor(np.tile(x.data, (self.n_classes, 1))),
                                    self.one_hot(every_class))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="MNIST's folder (default: uniform "
                                                          "binary pixels)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per form")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    return parser.parse_args(argv)


def images(args, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if args.data_root is None:
        return (rng.random((n, 784)) < 0.2).astype(np.float32)
    pixels = load_dataset("mnist", "train", args.data_root).pixels(np.float32)[:n]
    return binarize_dynamic(pixels, rng)


def run_steps(model, optimizer, x, labelled, labels, steps, batch, seed) -> list[float]:
    """``steps`` training steps on the same minibatches and noise for a given seed; the mean
    objective of each."""
    rng, values = np.random.default_rng(seed), []
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        pick = rng.integers(0, len(labelled), batch)
        value = model.objective(x[rows], rng, x_labelled=labelled[pick], y_labelled=labels[pick],
                                labelled_fraction=len(labelled) / len(x)).mean()
        optimizer.zero_grad()
        (-value).backward()
        optimizer.step()
        values.append(float(value.data))
    return values


def main(args: argparse.Namespace) -> dict:
    threads.set_num_threads(args.threads)
    x = images(args, args.steps * args.batch_size)
    labelled, labels = x[:100], np.arange(100) % 10  # the bench times steps, not learning
    forms = {"concatenated": ConcatenatedEncoder, "minivae": SemiSupervisedVAE}
    models = {name: cls(784, hidden=(500,), z_dim=50, activation="softplus",
                        rng=np.random.default_rng(1)) for name, cls in forms.items()}
    optimizers = {name: Adam(model.parameters(), lr=1e-3) for name, model in models.items()}
    print(f"M2, 784-500-50 softplus, batches of {args.batch_size} + {args.batch_size} labelled, "
          f"{args.threads} BLAS thread(s); load average {os.getloadavg()[0]:.2f}")
    times, first = {name: [] for name in forms}, {}
    for round_ in range(args.rounds):  # interleaved, so a change of load hits both forms alike
        for name in forms:
            start = time.perf_counter()
            values = run_steps(models[name], optimizers[name], x, labelled, labels, args.steps,
                               args.batch_size, seed=round_)
            times[name].append((time.perf_counter() - start) / args.steps)
            first.setdefault(name, values[0])
    agree = abs(first["minivae"] - first["concatenated"]) <= 1e-4 * abs(first["concatenated"])
    assert agree, f"the two forms disagree: {first}"
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:13s} median {1000 * medians[name]:7.1f} ms per step (rounds: "
              f"{', '.join(f'{1000 * t:.1f}' for t in values)})")
    print(f"first objective: {first['concatenated']:.4f} (concatenated), "
          f"{first['minivae']:.4f} (minivae)")
    print(f"minivae / concatenated: {medians['minivae'] / medians['concatenated']:.2f}")
    return medians


if __name__ == "__main__":
    main(parse_args())
