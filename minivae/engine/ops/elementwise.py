"""Element-wise primitives: out = f(x) applied entry by entry, VJP = g · f'(x).

Where a stable form exists it is used: softplus(x) = log(1 + eˣ) is computed as
``logaddexp(0, x)`` (finite for |x| up to 1e4 and beyond), and sigmoid from the same identity,
σ(x) = exp(−softplus(−x)), so neither overflows.

``cast`` changes a Tensor's float dtype (its gradient comes back in the original one), for
formulas evaluated in float64 whatever their inputs.  Two compositions close the module: |x| and
eˣ − 1 − x (computed without cancellation), which the KL divergences of the Laplace, Gumbel and
uniform distributions are written with.

Verified by: tests/engine/ops/test_elementwise.py::test_unary_op_gradients,
::test_softplus_and_sigmoid_are_stable_for_large_inputs
"""
from __future__ import annotations

import math

import numpy as np

from minivae.engine.ops.operands import as_tensor
from minivae.engine.ops.shape import where
from minivae.engine.tensor import Tensor

# Below |x| = 0.5 the series x²/2! + … + x¹⁵/15! has relative truncation error < 1e-17, while
# eˣ − 1 − x computed directly would lose about log10(2/x²) digits to cancellation; from 0.5 on
# the direct difference loses less than one digit.
SERIES_BELOW = 0.5
SERIES_COEFFS = [1.0 / math.factorial(k) for k in range(2, 16)]  # multiply x², x³, …, x¹⁵


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


def cast(x, dtype) -> Tensor:
    """x in the float dtype ``dtype`` (rounded, or ±∞ beyond its range); the gradient comes
    back in x's own dtype.  For formulas evaluated in float64 whatever their inputs' dtype.

    Verified by: tests/engine/ops/test_ratios.py::test_cast_rounds_and_keeps_the_gradient_dtype
    """
    x, dtype = as_tensor(x), np.dtype(dtype)
    if x.dtype == dtype:
        return x
    with np.errstate(over="ignore"):
        out = x.data.astype(dtype)
    return Tensor.from_op(out, (x,), lambda g: (g.astype(x.dtype),), "cast")


def absolute(x: Tensor) -> Tensor:
    """|x| with d|x|/dx = sign(x) (the subgradient +1 is taken at x = 0).

    Verified by: tests/engine/ops/test_elementwise.py::test_helpers_match_numpy
    """
    return where(x.data >= 0, x, -x)


def exp_taylor_remainder(x: Tensor) -> Tensor:
    """eˣ − 1 − x ≥ 0, the exponential minus its tangent line at 0; d/dx = eˣ − 1.

    For |x| < 0.5 the Taylor series Σₖ₌₂¹⁵ xᵏ/k! (in Horner form) replaces the direct
    difference, whose terms cancel to leave x²/2.  Each branch sees its own entries and a
    stand-in 0 elsewhere, so the gradient of the unused one (zero) cannot turn into NaN, even
    where x is so large that its powers would overflow; x = +∞ gives +∞.

    Verified by: tests/engine/ops/test_elementwise.py::test_helpers_match_numpy
    """
    x = as_tensor(x)
    near = np.abs(x.data) < SERIES_BELOW
    infinite = x.data == np.inf  # the limit +∞, where eˣ − x would be ∞ − ∞
    small, far = where(near, x, 0.0), where(near | infinite, 0.0, x)
    series = SERIES_COEFFS[-1]
    for c in SERIES_COEFFS[-2::-1]:
        series = c + small * series
    return where(near, small * small * series, where(infinite, np.inf, far.exp() - 1.0 - far))
