"""Attribute vectors: directions in latent space that add a property to a decoded image.

Encode two groups of images that differ in one attribute (thin vs thick strokes, digit a vs
digit b), take the mean code of each, and their difference

    v = mean_{x ∈ B} μ(x) − mean_{x ∈ A} μ(x),

where μ(x) is the encoder's mean.  If the attribute is encoded roughly linearly, moving a
code along v adds it: decode(μ(x) + s · v) shows x with "more B" for s > 0 and "more A" for
s < 0 (s = 1 moves a typical A-code to a typical B-code).

Works with any model whose ``encode(x)`` returns a distribution with ``loc`` (or ``mean``) and
whose ``decode(z)`` returns one with ``mean`` (``minivae.models.VAE``, for instance).

Verified by: tests/topics/test_attributes.py
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.engine.tensor import Tensor, no_grad

ROWS_PER_BATCH = 1000  # images encoded or decoded at once: bounds the memory


def encoder_means(model, x) -> np.ndarray:
    """The codes μ(x) = E_q[z | x] of the rows of x, shape (N, z_dim), in the model's dtype.

    Read as ``encode(x).loc`` where the distribution has one, else ``encode(x).mean``.
    Verified by: tests/topics/test_attributes.py::test_codes_are_encoder_means_in_batches
    """
    checks.has_methods(model, ("encode",))
    x = _check_images(x, "x")
    codes = []
    with no_grad():
        for start in range(0, len(x), ROWS_PER_BATCH):
            q = model.encode(x[start:start + ROWS_PER_BATCH])
            code = q.loc if hasattr(q, "loc") else q.mean
            codes.append(code.data if isinstance(code, Tensor) else np.asarray(code))
    return np.concatenate(codes)


def attribute_vector(model, x_a, x_b) -> np.ndarray:
    """v = (1/|B|) Σ_{x ∈ B} μ(x) − (1/|A|) Σ_{x ∈ A} μ(x): from group a towards group b.

    The means are accumulated in float64 and returned in the codes' dtype; shape (z_dim,).
    Verified by: tests/topics/test_attributes.py::test_vector_is_the_difference_of_mean_codes,
    ::test_vector_between_identical_groups_is_zero
    """
    codes_a, codes_b = encoder_means(model, x_a), encoder_means(model, x_b)
    vector = codes_b.mean(axis=0, dtype=np.float64) - codes_a.mean(axis=0, dtype=np.float64)
    return vector.astype(codes_a.dtype)


def apply_attribute(model, x, vector, scales) -> np.ndarray:
    """Decoded means E[x' | z] at z = μ(x) + s · v for each scale s; shape (len(scales), B, x_dim).

    Scale 0 gives the reconstruction from the posterior mean.
    Verified by: tests/topics/test_attributes.py::test_apply_attribute_decodes_the_moved_codes,
    ::test_thick_minus_thin_vector_adds_ink, ::test_scale_zero_is_the_reconstruction
    """
    checks.has_methods(model, ("encode", "decode"))
    codes = encoder_means(model, x)  # (B, d)
    vector, scales = _check_vector(vector, codes.shape[1:]), _check_scales(scales)
    moved = codes[None] + (scales[:, None, None] * vector).astype(codes.dtype)  # (S, B, d)
    flat = moved.reshape(-1, codes.shape[1])
    with no_grad():
        decoded = [model.decode(Tensor(flat[start:start + ROWS_PER_BATCH])).mean.data
                   for start in range(0, len(flat), ROWS_PER_BATCH)]
    return np.concatenate(decoded).reshape(len(scales), len(codes), -1)


def _check_vector(vector, code_shape: tuple) -> np.ndarray:
    vector = np.asarray(vector)
    checks.shape(vector.shape == code_shape, "vector", f"{code_shape} (the code size)",
                 vector.shape)
    checks.finite(vector, "vector")
    return vector


def _check_scales(scales) -> np.ndarray:
    scales = np.asarray(scales, dtype=np.float64)
    if scales.ndim != 1 or scales.size == 0 or not np.all(np.isfinite(scales)):
        raise ValueError(f"scales must be a non-empty 1-D sequence of finite numbers, got "
                         f"{scales!r}")
    return scales


def ink_mass(x) -> np.ndarray:
    """Σ_i x_i: the total ink of each image (row), shape (N,), summed in float64.

    Verified by: tests/topics/test_attributes.py::test_ink_groups_are_the_extremes_of_ink_mass
    """
    return _check_images(x, "x").sum(axis=1, dtype=np.float64)


def ink_groups(x, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(thin, thick): the ⌊fraction · N⌋ rows of x with the least and with the most total ink.

    Ties are broken by position (a stable sort), so the split is deterministic.
    Verified by: tests/topics/test_attributes.py::test_ink_groups_are_the_extremes_of_ink_mass
    """
    x, fraction = _check_images(x, "x"), checks.real(fraction, "fraction", 0.0, 0.5, low_open=True)
    size = int(fraction * len(x))
    checks.require(size >= 1, "fraction", f"≥ 1/{len(x)} (less leaves an empty group)", fraction)
    order = np.argsort(ink_mass(x), kind="stable")
    return x[order[:size]], x[order[-size:]]


def label_groups(x, labels, a, b) -> tuple[np.ndarray, np.ndarray]:
    """(rows of x labelled a, rows of x labelled b).

    Verified by: tests/topics/test_attributes.py::test_label_groups_select_by_label
    """
    x = _check_images(x, "x")
    labels = _check_labels(labels, len(x), a, b)
    groups = []
    for name, label in (("a", a), ("b", b)):
        rows = x[labels == label]
        if len(rows) == 0:
            raise ValueError(f"no row of x has label {name} = {label!r}")
        groups.append(rows)
    return groups[0], groups[1]


def _check_labels(labels, rows: int, a, b) -> np.ndarray:
    labels = np.asarray(labels)
    checks.shape(labels.shape == (rows,), "labels", f"({rows},) (one per row of x)", labels.shape)
    if a == b:
        raise ValueError(f"a and b must be different labels, got {a!r} twice")
    return labels


def _check_images(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of images, got {type(x).__name__}")
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} must have shape (N, x_dim) with N ≥ 1, got {x.shape}")
    return x
