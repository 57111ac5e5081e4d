"""Element-wise primitives: out = f(x) applied entry by entry, VJP = g · f'(x).

Where a stable form exists it is used: softplus(x) = log(1 + eˣ) is computed as
``logaddexp(0, x)`` (finite for |x| up to 1e4 and beyond), and sigmoid from the same identity,
σ(x) = exp(−softplus(−x)), so neither overflows.

Verified by: tests/test_ops_gradients.py::test_unary_op_gradients,
tests/test_ops_values.py::test_softplus_and_sigmoid_are_stable_for_large_inputs
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.operands import as_tensor
from minivae.engine.tensor import Tensor


def exp(x) -> Tensor:
    """eˣ;  d/dx = eˣ (the output itself)."""
    x = as_tensor(x)
    out = np.exp(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g * out,), "exp")


def log(x) -> Tensor:
    """log x;  d/dx = 1/x."""
    x = as_tensor(x)
    return Tensor.from_op(np.log(x.data), (x,), lambda g: (g / x.data,), "log")


def log1p(x) -> Tensor:
    """log(1 + x), accurate for small x;  d/dx = 1/(1 + x)."""
    x = as_tensor(x)
    return Tensor.from_op(np.log1p(x.data), (x,), lambda g: (g / (1 + x.data),), "log1p")


def sqrt(x) -> Tensor:
    """√x;  d/dx = 1/(2√x)."""
    x = as_tensor(x)
    out = np.sqrt(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g / (2 * out),), "sqrt")


def tanh(x) -> Tensor:
    """tanh x;  d/dx = 1 − tanh² x."""
    x = as_tensor(x)
    out = np.tanh(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g * (1 - out * out),), "tanh")


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1/(1 + e⁻ˣ) = exp(−softplus(−x)): no overflow for any finite x."""
    return np.exp(-np.logaddexp(0, -x))


def sigmoid(x) -> Tensor:
    """σ(x) = 1/(1 + e⁻ˣ);  d/dx = σ(x)(1 − σ(x))."""
    x = as_tensor(x)
    out = stable_sigmoid(x.data)
    return Tensor.from_op(out, (x,), lambda g: (g * out * (1 - out),), "sigmoid")


def relu(x) -> Tensor:
    """max(x, 0);  d/dx = 1 where x > 0, else 0 (the subgradient 0 is taken at x = 0)."""
    x = as_tensor(x)
    positive = x.data > 0
    return Tensor.from_op(np.maximum(x.data, 0), (x,), lambda g: (g * positive,), "relu")


def leaky_relu(x, slope: float = 0.01) -> Tensor:
    """x for x > 0, slope · x otherwise;  d/dx = 1 or slope."""
    x = as_tensor(x)
    factor = np.where(x.data > 0, 1, slope).astype(x.dtype)
    return Tensor.from_op(x.data * factor, (x,), lambda g: (g * factor,), "leaky_relu")


def softplus(x) -> Tensor:
    """log(1 + eˣ) = logaddexp(0, x);  d/dx = σ(x)."""
    x = as_tensor(x)

    def vjp(g):
        return (g * stable_sigmoid(x.data),)

    return Tensor.from_op(np.logaddexp(0, x.data), (x,), vjp, "softplus")
