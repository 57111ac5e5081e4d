"""What a training run reads: its images, and what each step hands the objective besides them.

``train`` (minivae/train.py) asks the model's class for its training data
(``ImageModel.training_data``) and walks it the same way for every model:

* ``train_pixels`` and ``test_pixels``: the images of the run;
* ``batches(train_x, batch_size, rng)``: each minibatch x of an epoch with the keyword
  arguments the model's ``objective(x, rng, **extra)`` takes besides it: none for a model that
  learns from the images alone, labelled pairs for the semi-supervised M2;
* ``scores(model, test_x)``: fractions recorded per epoch besides the test bound, by name
  (``score_names``), printed as percentages;
* ``generators``: the random streams it draws from, run state saved in every checkpoint;
* ``validation_pixels``: the ``config.validation`` training images held out (never trained
  on) to be scored every epoch, or None (``hold_out``).

``TrainingData`` is the images alone; ``LabelledTrainingData`` keeps ``config.labels`` labels.

Verified by: tests/io/test_resume.py::test_interrupted_and_resumed_run_equals_uninterrupted,
tests/models/test_semi_supervised.py::test_labels_are_balanced_and_checked
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from minivae import checks
from minivae.data import load_dataset, minibatches
from minivae.engine.tensor import no_grad


def load_binary_split(config, split: str) -> np.ndarray:
    """Pixel intensities in [0, 1] of the first ``max_train`` (or ``max_test``) images of one
    split, (N, D) in the configured dtype."""
    return load_split(config, split)[0]


def load_split(config, split: str, rng: np.random.Generator | None = None):
    """(pixels (N, D) in the configured dtype, labels (N,) int64) of one split: its first
    ``max_train`` (or ``max_test``) images, or that many drawn at random by ``rng`` (in the
    order of the split) when it is given, since a split may be sorted by class."""
    field = "max_train" if split == "train" else "max_test"
    limit = checks.positive_int(getattr(config, field), field, optional=True)  # x[:0] is all
    data = load_dataset(config.dataset, split, root=config.data_root)
    pixels = data.pixels(config.dtype)
    if limit is not None and limit > len(pixels):
        raise ValueError(f"{field} must be at most the {len(pixels)} images of the {split} "
                         f"split of {config.dataset}, got {limit}")
    if limit is None or rng is None:
        return pixels[:limit], data.labels[:limit]
    rows = np.sort(rng.permutation(len(pixels))[:limit])
    return pixels[rows], data.labels[rows]


def validation_generator(seed: int) -> np.random.Generator:
    """The stream that picks a run's validation images: the sixth spawned from its seed (the
    first five are ``minivae.train.run_generators``'), so holding images out draws nothing
    from the others and leaves the rest of the run's randomness as it was."""
    return np.random.default_rng(seed).spawn(6)[5]


def hold_out(config, pixels: np.ndarray, labels: np.ndarray):
    """(training pixels, their labels, validation pixels): ``config.validation`` images drawn
    at random by the seed's ``validation_generator`` out of the training images (the embedded
    splits are sorted by class, so the last N would be of one class), the others kept in
    their order; with no validation, the images as they are and None.  ValueError naming
    ``validation`` unless at least one training image is left."""
    n = config.validation
    if n is None:
        return pixels, labels, None
    checks.require(n < len(pixels), "validation", f"fewer than the {len(pixels)} training "
                   f"images, so that some are left to train on", n)
    held = np.zeros(len(pixels), dtype=bool)
    held[validation_generator(config.seed).permutation(len(pixels))[:n]] = True
    return pixels[~held], labels[~held], pixels[held]


class TrainingData:
    """The images alone: the first ``max_train`` training and ``max_test`` test images (less
    the ``validation`` ones held out); a step hands the objective its minibatch and nothing
    else."""

    def __init__(self, config, rng: np.random.Generator):
        pixels, labels = load_split(config, "train")
        self.train_pixels, _, self.validation_pixels = hold_out(config, pixels, labels)
        self.test_pixels = load_binary_split(config, "test")
        self.generators: dict[str, np.random.Generator] = {}  # none drawn from
        self.score_names: tuple[str, ...] = ()

    def batches(self, train_x: np.ndarray, batch_size: int,
                rng: np.random.Generator) -> Iterator[tuple[np.ndarray, dict]]:
        """One epoch of shuffled minibatches of ``train_x``, each with no extra arguments."""
        for x in minibatches(train_x, batch_size, rng):
            yield x, {}

    def scores(self, model, test_x: np.ndarray) -> dict[str, float]:
        """Nothing besides the test bound."""
        return {}


class LabelledTrainingData(TrainingData):
    """Images of which ``config.labels`` keep their labels, N_l / K of each of the model's
    ``n_classes`` K classes, drawn by ``rng``; with ``max_train`` or ``max_test`` the images
    of that split are a random subset too (the embedded splits are sorted by class: their
    first images hold few classes, too few to label or to score a classifier on).

    Each minibatch of B images (the unlabelled stream: every training image, its label hidden)
    is paired with B labelled pairs drawn with replacement by ``rng``, from this epoch's
    binarization; the objective gets them as ``x_labelled``, ``y_labelled`` and the share
    ``labelled_fraction`` = N_l / N of the training images that are labelled: an epoch draws
    each labelled pair N / N_l times, and M2 weights the labelled terms by N_l / N so that the
    epoch is its objective J^α in expectation.  Scored per
    epoch by the test classification error.
    """

    def __init__(self, config, rng: np.random.Generator, n_classes: int):
        self.train_pixels, self.train_labels, self.validation_pixels = hold_out(
            config, *load_split(config, "train", rng))  # the labelled images are trained on
        self.test_pixels, self.test_labels = load_split(config, "test", rng)
        self.labelled = choose_labelled(self.train_labels, config.labels, n_classes, rng)
        self.labelled_fraction = len(self.labelled) / len(self.train_pixels)
        self.rng = rng
        self.generators = {"labels": rng}  # which pairs meet which batch: resumed with the run
        self.score_names = ("test_error",)

    def batches(self, train_x: np.ndarray, batch_size: int,
                rng: np.random.Generator) -> Iterator[tuple[np.ndarray, dict]]:
        for x in minibatches(train_x, batch_size, rng):
            rows = self.labelled[self.rng.integers(0, len(self.labelled), len(x))]
            yield x, {"x_labelled": train_x[rows], "y_labelled": self.train_labels[rows],
                      "labelled_fraction": self.labelled_fraction}

    def scores(self, model, test_x: np.ndarray) -> dict[str, float]:
        return {"test_error": classification_error(model, test_x, self.test_labels)}


def choose_labelled(labels: np.ndarray, n: int, n_classes: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Indices of the n training images that keep their labels: n / K of each of the K
    classes, drawn without replacement by ``rng``; sorted.  ValueError naming ``labels`` when
    n is not a multiple of K or a class has fewer than n / K images."""
    checks.require(n % n_classes == 0, "labels", f"a multiple of the {n_classes} classes, so "
                   f"that each class has as many labelled images", n)
    per_class = n // n_classes
    counts = np.bincount(labels, minlength=n_classes)
    checks.require(counts >= per_class, "labels", f"at most {n_classes} × the images of the "
                   f"rarest class ({counts.min()} among the {len(labels)} training images)", n)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
              for c in range(n_classes)]
    return np.sort(np.concatenate(chosen))


def class_entropy(model, x: np.ndarray, batch_size: int = 1000) -> float:
    """The classifier's mean uncertainty over the rows of x, in nats:

        mean_x H(q(y | x)) = −mean_x Σ_y q(y | x) log q(y | x),

    log K for a classifier with no opinion (uniform over K classes), 0 for one that is sure.
    A semi-supervised model whose decoder ignores y sees its unlabelled bound's H(q(y | x))
    pull this towards log K, away from the labels.

    Verified by: tests/models/test_semi_supervised.py::test_class_entropy_is_scipys
    """
    checks.has_methods(model, ("class_log_probs",))
    total = 0.0
    with no_grad():
        for i in range(0, len(x), batch_size):
            log_q = model.class_log_probs(x[i:i + batch_size]).data.astype(np.float64)
            total -= float((np.exp(log_q) * log_q).sum())
    return total / len(x)


def classification_error(model, x: np.ndarray, labels: np.ndarray,
                         batch_size: int = 1000) -> float:
    """The fraction of the rows of x whose predicted class is not their label."""
    wrong = sum(int((model.predict(x[i:i + batch_size]) != labels[i:i + batch_size]).sum())
                for i in range(0, len(x), batch_size))
    return wrong / len(x)
