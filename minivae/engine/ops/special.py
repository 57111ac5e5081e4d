"""Special functions of the positive half-line: log Γ(x), ψ(x) = d/dx log Γ(x) and ψ′(x).

Each is evaluated in two steps, both vectorized over arrays.

1. Shift up.  Every x below ``SHIFT`` (= 10) is moved to z = x + 10 by the recurrence
   Γ(x + 1) = x Γ(x), applied ten times:

       log Γ(x) = log Γ(x + 10) − log(x (x + 1) ⋯ (x + 9))
       ψ(x)     = ψ(x + 10)     − Σₖ₌₀⁹ 1/(x + k)
       ψ′(x)    = ψ′(x + 10)    + Σₖ₌₀⁹ 1/(x + k)²

2. Asymptotic series at z ≥ 10 (Stirling's series and its derivatives, with the Bernoulli
   numbers B₂ = 1/6, B₄ = −1/30, B₆ = 1/42, …, B₁₆ = −3617/510):

       log Γ(z) = (z − ½) log z − z + ½ log 2π + Σₖ₌₁⁸ B₂ₖ / (2k(2k − 1) z²ᵏ⁻¹)
       ψ(z)     = log z − 1/(2z) − Σₖ₌₁⁸ B₂ₖ / (2k z²ᵏ)
       ψ′(z)    = 1/z + 1/(2z²) + Σₖ₌₁⁸ B₂ₖ / z²ᵏ⁺¹

   At z = 10 the first omitted term (k = 9) is below 1e-17 relative to each function, so the
   error left is rounding.  The sums run in Horner form in 1/z², which cannot overflow.

The array helpers compute in float64 and return the input's dtype (float32 stays float32);
they return NaN where x ≤ 0 or x is NaN, and the limits at x = +∞.  The Tensor ops raise a
ValueError for x ≤ 0 or NaN instead, since a NaN there would only surface much later.

Verified by: tests/engine/ops/test_special.py::test_log_gamma_matches_scipy,
::test_digamma_matches_scipy,
::test_trigamma_matches_scipy
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.engine.ops.operands import as_tensor
from minivae.engine.tensor import Tensor

SHIFT = 10  # below this the series is not yet accurate to rounding, so x is shifted up first

# B₂ₖ for k = 1 … 8, as exact fractions written out in float64
BERNOULLI = np.array([1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510])
_K = np.arange(1, len(BERNOULLI) + 1)
LOG_GAMMA_COEFFS = BERNOULLI / (2 * _K * (2 * _K - 1))  # multiply z^-(2k−1)
DIGAMMA_COEFFS = BERNOULLI / (2 * _K)  # multiply z^-2k
TRIGAMMA_COEFFS = BERNOULLI  # multiply z^-(2k+1)
HALF_LOG_TWO_PI = 0.5 * np.log(2 * np.pi)


def _in_powers_of_inverse_square(coeffs: np.ndarray, inverse_square: np.ndarray) -> np.ndarray:
    """Σₖ coeffs[k−1] · w^(k−1) with w = 1/z², by Horner's rule."""
    total = np.zeros_like(inverse_square)
    for c in coeffs[::-1]:
        total = total * inverse_square + c
    return total


def _prepare(x) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """(x in float64 with bad entries replaced by 1, the shifted z, mask of shifted, dtype)."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    x64 = x.astype(np.float64)
    # NaN, ±inf and x ≤ 0 are set aside (as 1) so no warning is raised; _finish puts them back
    x64 = np.where((x64 > 0) & np.isfinite(x64), x64, 1.0)
    shifted = x64 < SHIFT
    return x64, np.where(shifted, x64 + SHIFT, x64), shifted, dtype


def _over_the_shift(term, x64: np.ndarray, shifted: np.ndarray, product: bool = False
                    ) -> np.ndarray:
    """Σₖ₌₀⁹ term(x + k) (Πₖ₌₀⁹ with ``product``) where x is shifted, the empty sum (product)
    elsewhere: the correction that step 1 of the module doc subtracts or adds.

    Unshifted entries use the base 1, so no term over- or underflows where it is not used.
    """
    base = np.where(shifted, x64, 1.0)
    empty = 1.0 if product else 0.0
    total = np.full_like(x64, empty)
    for k in range(SHIFT):
        factor = np.where(shifted, term(base + k), empty)
        total = total * factor if product else total + factor
    return total


def _finish(result: np.ndarray, x, dtype, at_infinity: float) -> np.ndarray:
    x = np.asarray(x)
    result = np.where(x > 0, np.where(x == np.inf, at_infinity, result), np.nan)
    return result.astype(dtype, copy=False)


def log_gamma_array(x) -> np.ndarray:
    """log Γ(x) for x > 0 (NaN elsewhere), by the shift and Stirling series in the module doc.

    The shift's product x (x + 1) ⋯ (x + 9) stays below 20¹⁰ ≈ 1e13, so its one logarithm is
    exact to rounding; a base of 1 keeps unshifted entries from overflowing the product.

    Verified by: tests/engine/ops/test_special.py::test_log_gamma_matches_scipy,
    ::test_recurrences_hold
    """
    x64, z, shifted, dtype = _prepare(x)
    product = _over_the_shift(lambda y: y, x64, shifted, product=True)  # x (x + 1) ⋯ (x + 9)
    inverse = 1.0 / z
    series = inverse * _in_powers_of_inverse_square(LOG_GAMMA_COEFFS, inverse * inverse)
    at_z = (z - 0.5) * np.log(z) - z + HALF_LOG_TWO_PI + series
    return _finish(at_z - np.log(product), x, dtype, at_infinity=np.inf)


def digamma_array(x) -> np.ndarray:
    """ψ(x) = d/dx log Γ(x) for x > 0 (NaN elsewhere), by the shift and series in the module doc.

    Verified by: tests/engine/ops/test_special.py::test_digamma_matches_scipy,
    ::test_recurrences_hold
    """
    x64, z, shifted, dtype = _prepare(x)
    reciprocal_sum = _over_the_shift(lambda y: 1.0 / y, x64, shifted)  # Σₖ 1/(x + k)
    inverse = 1.0 / z
    inverse_square = inverse * inverse
    series = inverse_square * _in_powers_of_inverse_square(DIGAMMA_COEFFS, inverse_square)
    at_z = np.log(z) - 0.5 * inverse - series
    return _finish(at_z - reciprocal_sum, x, dtype, at_infinity=np.inf)


def trigamma_array(x) -> np.ndarray:
    """ψ′(x) = d²/dx² log Γ(x) for x > 0 (NaN elsewhere), by the shift and series above.

    Verified by: tests/engine/ops/test_special.py::test_trigamma_matches_scipy,
    ::test_recurrences_hold
    """
    x64, z, shifted, dtype = _prepare(x)
    square_sum = _over_the_shift(lambda y: 1.0 / y**2, x64, shifted)  # Σₖ 1/(x + k)²
    inverse = 1.0 / z
    inverse_square = inverse * inverse
    series = inverse * inverse_square * _in_powers_of_inverse_square(TRIGAMMA_COEFFS,
                                                                     inverse_square)
    at_z = inverse + 0.5 * inverse_square + series
    return _finish(at_z + square_sum, x, dtype, at_infinity=0.0)


def _positive_operand(x, op: str) -> Tensor:
    x = as_tensor(x)
    checks.require(x.data > 0, "x", f"> 0 for {op}(x) (defined here on the positive half-line)",
                   x)  # NaN fails the comparison too
    return x


def _times_slope(g: np.ndarray, x: np.ndarray, trigamma: bool) -> np.ndarray:
    """g ψ(x) (or g ψ′(x) with ``trigamma``), finite wherever the product is.

    Below x = 1 the pole is split off, ψ(x) = ψ(x + 1) − 1/x and ψ′(x) = ψ′(x + 1) + 1/x²,
    and applied as divisions, g/x and (g/x)/x: for x < 1e-154 ψ′(x) itself overflows while
    g ψ′(x) need not (g = 1e-35, say, as in a Bregman divergence near a tiny x)."""
    function = trigamma_array if trigamma else digamma_array
    small = x < 1
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        shifted = np.where(small, x + 1, 1.0)
        pole = g / x / x if trigamma else -g / x
        split = g * function(shifted) + pole
        return np.where(small, split, g * function(x)).astype(g.dtype, copy=False)


def lgamma(x) -> Tensor:
    """log Γ(x) for x > 0;  d/dx log Γ(x) = ψ(x), so the VJP is g · ψ(x).

    Verified by: tests/engine/ops/test_special.py::test_lgamma_and_digamma_gradients,
    ::test_gamma_pole_in_the_gradients
    """
    x = _positive_operand(x, "lgamma")
    return Tensor.from_op(log_gamma_array(x.data), (x,),
                          lambda g: (_times_slope(g, x.data, trigamma=False),), "lgamma")


def digamma(x) -> Tensor:
    """ψ(x) = d/dx log Γ(x) for x > 0;  d/dx ψ(x) = ψ′(x), so the VJP is g · ψ′(x).

    Verified by: tests/engine/ops/test_special.py::test_lgamma_and_digamma_gradients,
    ::test_gamma_pole_in_the_gradients
    """
    x = _positive_operand(x, "digamma")
    return Tensor.from_op(digamma_array(x.data), (x,),
                          lambda g: (_times_slope(g, x.data, trigamma=True),), "digamma")
