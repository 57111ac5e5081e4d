"""Element-wise primitives: out = f(x) applied entry by entry, VJP = g · f'(x).

Where a stable form exists it is used: softplus(x) = log(1 + eˣ) is computed as
``logaddexp(0, x)`` (finite for |x| up to 1e4 and beyond), and sigmoid from the same identity,
σ(x) = exp(−softplus(−x)), so neither overflows.

Two compositions close the module: |x| and eˣ − 1 − x (computed without cancellation), which
the KL divergences of the Laplace, Gumbel and uniform distributions are written with.

Verified by: tests/engine/ops/test_elementwise.py::test_unary_op_gradients,
::test_softplus_and_sigmoid_are_stable_for_large_inputs
"""
from __future__ import annotations

import math

import numpy as np

from minivae.engine.ops.operands import as_tensor
from minivae.engine.ops.shape import where
from minivae.engine.tensor import Tensor

# Below |x| = 0.1 the series x²/2! + … + x⁸/8! has relative truncation error < 6e-13, while
# eˣ − 1 − x computed directly would lose about log10(2/x²) digits to cancellation.
SERIES_BELOW = 0.1
SERIES_COEFFS = [1.0 / math.factorial(k) for k in range(2, 9)]  # multiply x², x³, …, x⁸


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


def absolute(x: Tensor) -> Tensor:
    """|x| with d|x|/dx = sign(x) (the subgradient +1 is taken at x = 0).

    Verified by: tests/engine/ops/test_elementwise.py::test_helpers_match_numpy
    """
    return where(x.data >= 0, x, -x)


def exp_taylor_remainder(x: Tensor) -> Tensor:
    """eˣ − 1 − x ≥ 0, the exponential minus its tangent line at 0; d/dx = eˣ − 1.

    For |x| < 0.1 the Taylor series Σₖ₌₂⁸ xᵏ/k! (in Horner form) replaces the direct
    difference, whose terms cancel to leave x²/2.  Both branches are finite, so the gradient
    of the unused one (zero) cannot turn into NaN.

    Verified by: tests/engine/ops/test_elementwise.py::test_helpers_match_numpy
    """
    series = SERIES_COEFFS[-1]
    for c in SERIES_COEFFS[-2::-1]:
        series = c + x * series
    return where(np.abs(x.data) < SERIES_BELOW, x * x * series, x.exp() - 1.0 - x)
