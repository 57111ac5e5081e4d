"""Helpers shared by the primitives: operands as Tensors of one dtype, axes, and ``unbroadcast``."""
from __future__ import annotations

import numpy as np

from minivae.engine.tensor import Tensor


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """Return ``value`` as a constant Tensor (no gradient).

    Python numbers, NumPy scalars, lists and integer arrays take the dtype of ``like``, as NumPy
    treats Python scalars; a float ndarray keeps its own dtype, so a float64 array meeting a
    float32 tensor is reported by ``binary_operands`` instead of being silently upcast.
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return Tensor(value)
    return Tensor(np.asarray(value, dtype=like.dtype if like is not None else None))


def binary_operands(a, b) -> tuple[Tensor, Tensor]:
    """Both operands as Tensors of one float dtype; mixing float32 and float64 is an error."""
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    a, b = as_tensor(a, like), as_tensor(b, like)
    if a.dtype != b.dtype:
        raise TypeError(
            f"dtype mismatch: {a.dtype} and {b.dtype}; convert one explicitly "
            "(minivae never upcasts float32 silently)"
        )
    return a, b


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % max(ndim, 1))
    return tuple(sorted(set(out)))


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape``, undoing NumPy broadcasting in a VJP.

    If ``x`` of shape ``shape`` was broadcast to ``grad.shape`` in the forward pass, each element
    of ``x`` was used once per copy, so its gradient is the sum over the copies: sum away the
    leading axes that broadcasting prepended, then (keeping dims) the axes where ``x`` had size 1.

    Verified by: tests/engine/ops/test_operands.py::test_unbroadcast_matches_sum_over_copies
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if ones:
        grad = grad.sum(axis=ones, keepdims=True)
    return grad
