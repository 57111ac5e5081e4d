"""Reductions: sum, mean, max and the stable log-sum-exp, each with its VJP.

A reduction's VJP spreads ``g`` back over the reduced axes: ``expand`` re-inserts those axes
(size 1) so that ``g`` broadcasts against the input.

Verified by: tests/test_ops_gradients.py::test_reduction_gradients,
tests/test_ops_values.py::test_logsumexp_is_stable
"""
from __future__ import annotations

import numpy as np

from minivae.ops._common import as_tensor, normalize_axes
from minivae.tensor import Tensor


def _expand(g: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """Give ``g`` back the reduced axes as size-1 axes, so it broadcasts against the input."""
    return g if keepdims else np.expand_dims(g, axes)


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Σ over ``axis``;  each input entry receives the upstream gradient of its sum."""
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim)

    def vjp(g):
        return (np.broadcast_to(_expand(g, axes, keepdims), x.shape),)

    return Tensor.from_op(x.data.sum(axis=axes, keepdims=keepdims), (x,), vjp, "sum")


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Σ / n over ``axis``;  each entry receives g / n."""
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim)
    n = int(np.prod([x.shape[a] for a in axes]))

    def vjp(g):
        return (np.broadcast_to(_expand(g, axes, keepdims) / n, x.shape),)

    return Tensor.from_op(x.data.mean(axis=axes, keepdims=keepdims), (x,), vjp, "mean")


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """max over ``axis``;  the gradient goes to the maximizing entries (split evenly on ties)."""
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim)
    out = x.data.max(axis=axes, keepdims=True)

    def vjp(g):
        is_max = x.data == out
        share = is_max / is_max.sum(axis=axes, keepdims=True)
        return ((_expand(g, axes, keepdims) * share).astype(x.dtype, copy=False),)

    result = out if keepdims else np.squeeze(out, axis=axes)
    return Tensor.from_op(result, (x,), vjp, "max")


def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """log Σ exp(x) over ``axis``, computed as m + log Σ exp(x − m) with m = max x.

    Math: d/dx_i log Σ_j e^{x_j} = e^{x_i} / Σ_j e^{x_j} = softmax(x)_i.
    Shifting by m keeps every exponent ≤ 0, so nothing overflows; if all entries are −∞ the
    result is −∞ (and the gradient zero) rather than NaN.
    """
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim)
    m = x.data.max(axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    shifted = np.exp(x.data - m)
    total = shifted.sum(axis=axes, keepdims=True)
    with np.errstate(divide="ignore"):
        out = np.log(total) + m

    def vjp(g):
        with np.errstate(invalid="ignore", divide="ignore"):
            softmax = np.where(total > 0, shifted / total, 0).astype(x.dtype, copy=False)
        return (_expand(g, axes, keepdims) * softmax,)

    result = out if keepdims else np.squeeze(out, axis=axes)
    return Tensor.from_op(result, (x,), vjp, "logsumexp")
