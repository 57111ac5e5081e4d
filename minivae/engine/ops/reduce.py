"""Reductions: sum, mean, max and the stable log-sum-exp, each with its VJP.

A reduction's VJP spreads ``g`` back over the reduced axes: ``expand`` re-inserts those axes
(size 1) so that ``g`` broadcasts against the input.

Verified by: tests/engine/ops/test_reduce.py::test_reduction_gradients,
::test_logsumexp_is_stable
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.operands import as_tensor, normalize_axes
from minivae.engine.tensor import Tensor


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
    _require_entries(x, axes, "mean")
    n = int(np.prod([x.shape[a] for a in axes]))

    def vjp(g):
        return (np.broadcast_to(_expand(g, axes, keepdims) / n, x.shape),)

    return Tensor.from_op(x.data.mean(axis=axes, keepdims=keepdims), (x,), vjp, "mean")


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """max over ``axis``;  the gradient goes to the maximizing entries (split evenly on ties)."""
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim)
    _require_entries(x, axes, "max")
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
    Shifting by m keeps every exponent ≤ 0, so nothing overflows.  At the edges of the
    extended reals the value and the gradient are the limits, never NaN:

    * entries equal to +∞: the value is +∞ and the softmax mass is shared equally by the k
      infinite entries (weight 1/k each, 0 elsewhere) — the limit of softmax as those entries
      grow together, and a subgradient of the convex function logsumexp;
    * all entries −∞: the value is −∞ (log of an empty sum) and the gradient is 0;
    * −∞ entries next to finite ones get weight 0, exactly e^{−∞} / Σ.

    NaN entries propagate to their slice's value and gradient.  Reducing over zero entries
    raises ValueError (there is no maximum to shift by).

    Verified by:
    tests/engine/ops/test_reduce.py::test_logsumexp_infinite_entries_share_the_gradient,
    ::test_logsumexp_is_stable
    """
    x = as_tensor(x)
    axes = normalize_axes(axis, x.ndim)
    _require_entries(x, axes, "logsumexp")
    m = x.data.max(axis=axes, keepdims=True)
    top_is_inf = m == np.inf
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = np.exp(x.data - m)
    total = shifted.sum(axis=axes, keepdims=True)
    with np.errstate(divide="ignore"):
        out = np.log(total) + m

    def vjp(g):
        with np.errstate(invalid="ignore", divide="ignore"):
            softmax = np.where(total > 0, shifted / total, 0).astype(x.dtype, copy=False)
        if top_is_inf.any():  # slices holding +∞: the infinite entries share the mass
            is_inf = x.data == np.inf
            share = is_inf / np.maximum(is_inf.sum(axis=axes, keepdims=True), 1)
            softmax = np.where(top_is_inf, share, softmax).astype(x.dtype, copy=False)
        return (_expand(g, axes, keepdims) * softmax,)

    result = out if keepdims else np.squeeze(out, axis=axes)
    return Tensor.from_op(result, (x,), vjp, "logsumexp")


def _require_entries(x: Tensor, axes: tuple, op: str) -> None:
    """A mean, max or log-sum-exp over zero entries has no value: say so instead of NaN."""
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"x must have at least one entry along axis {axes} for {op}, "
                         f"got shape {x.shape}")
