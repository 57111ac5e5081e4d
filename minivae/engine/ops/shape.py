"""Shape primitives: reshape, transpose, indexing, concatenate, stack and where.

None of these changes a value, they only move entries, so each VJP moves ``g`` back.

Verified by: tests/engine/ops/test_shape.py::test_shape_op_gradients
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.operands import as_tensor, binary_operands, unbroadcast
from minivae.engine.tensor import Tensor


def reshape(x, *shape) -> Tensor:
    """The same entries in a new shape;  the VJP reshapes g back."""
    x = as_tensor(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor.from_op(x.data.reshape(shape), (x,), lambda g: (g.reshape(x.shape),), "reshape")


def transpose(x, *axes) -> Tensor:
    """Permute axes (reverse them if none are given);  the VJP applies the inverse permutation."""
    x = as_tensor(x)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    axes = tuple(axes) if axes else tuple(reversed(range(x.ndim)))
    out = x.data.transpose(axes)
    # argsort inverts a permutation only when it is written with non-negative axes
    inverse = tuple(np.argsort([int(a) % x.ndim for a in axes]))
    return Tensor.from_op(out, (x,), lambda g: (g.transpose(inverse),), "transpose")


def _has_array_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (list, np.ndarray, Tensor)) for p in parts)


def getitem(x, index) -> Tensor:
    """x[index] for slices, integers and integer arrays.

    The VJP scatters g into zeros of x's shape; with integer arrays an entry picked twice
    receives both gradients, so the scatter must add (``np.add.at``), not assign.
    """
    x = as_tensor(x)
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    repeated_indices_possible = _has_array_index(index)

    def vjp(g):
        grad = np.zeros_like(x.data)
        if repeated_indices_possible:
            np.add.at(grad, index, g)
        else:
            grad[index] = g
        return (grad,)

    return Tensor.from_op(x.data[index], (x,), vjp, "getitem")


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join along an existing axis;  the VJP splits g at the same boundaries."""
    tensors = _same_dtype(tensors)
    out = np.concatenate([t.data for t in tensors], axis=axis)
    boundaries = np.cumsum([t.shape[axis] for t in tensors])[:-1]

    def vjp(g):
        return tuple(np.split(g, boundaries, axis=axis))

    return Tensor.from_op(out, tuple(tensors), vjp, "concatenate")


def stack(tensors, axis: int = 0) -> Tensor:
    """Join along a new axis;  the VJP takes each slice of g along that axis."""
    tensors = _same_dtype(tensors)
    out = np.stack([t.data for t in tensors], axis=axis)

    def vjp(g):
        return tuple(np.take(g, i, axis=axis) for i in range(len(tensors)))

    return Tensor.from_op(out, tuple(tensors), vjp, "stack")


def where(condition, a, b) -> Tensor:
    """Entries of a where condition holds, else of b;  g flows to the branch that was chosen."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition)
    if condition.dtype != np.bool_:
        raise TypeError(f"condition must be a boolean array, got dtype {condition.dtype}")
    a, b = binary_operands(a, b)

    def vjp(g):
        zero = np.zeros((), dtype=g.dtype)
        return (
            unbroadcast(np.where(condition, g, zero), a.shape),
            unbroadcast(np.where(condition, zero, g), b.shape),
        )

    return Tensor.from_op(np.where(condition, a.data, b.data), (a, b), vjp, "where")


def _same_dtype(tensors) -> list:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("tensors must be a non-empty sequence")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    tensors = [as_tensor(t, like) for t in tensors]
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"all tensors must share one dtype, got {sorted(map(str, dtypes))}")
    return tensors
