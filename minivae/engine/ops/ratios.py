"""Logarithms of ratios and the excess functions built on them, exact over the whole float range.

Closed-form KL divergences are sums of terms such as

    ρ − 1 − log ρ,      x log(x/y) − x + y,      (x − y)/s,

each ≥ 0 or a plain quotient.  Written the textbook way they fail at the ends of the float
range: a ratio a/b overflows to ∞ (then ∞ − ∞ = NaN) or underflows to 0 (then log 0 = −∞),
x − y overflows for x and y of opposite signs beyond half the largest float, and near ρ = 1
the terms cancel to leave a result of order (ρ − 1)² from numbers of order 1.  The functions
here take the numbers a ratio is made of, not the ratio, and choose entry by entry the form
that is accurate to a few units in the last place there:

* near ρ = 1 (½ ≤ a/b ≤ 2): t = (a − b)/b is exact to rounding (a − b is exact there, by
  Sterbenz's lemma), log(a/b) = log1p(t), and t − log(1 + t) comes from its Taylor series
  where it is small;
* a/b a normal float: the direct form, whose terms are at most a small multiple of the result;
* a/b beyond the float range: log(a/b) = log a − log b, finite for every pair of positive
  floats; there |log(a/b)| > 708, so the rounding of the two logarithms is relatively small.

Each function is one node of the graph with its derivative written out (d/da log(a/b) = 1/a,
and so on): the chain rule through the branches would form intermediates such as the slope
of log at an overflowed ratio, or differences of two huge partial derivatives that cancel,
where the derivative itself is an ordinary number.

Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
::test_gradients_match_mpmath
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.operands import as_tensor, binary_operands, unbroadcast
from minivae.engine.tensor import Tensor

# x − log(1 + x) = Σₖ₌₂ (−1)ᵏ xᵏ/k for |x| < 1.  Below |x| = 0.1 the terms up to x¹⁷ leave a
# relative truncation error below 1e-17; above it the direct difference loses < 1 digit.
LOG1P_SERIES_BELOW = 0.1
LOG1P_GAP_COEFFS = [(-1.0) ** k / k for k in range(2, 18)]  # multiply x², x³, …, x¹⁷
# eˣ − 1 − x = Σₖ₌₂ xᵏ/k!: below |x| = 0.5 the terms up to x¹⁵ leave < 1e-17 relative
EXP_SERIES_BELOW = 0.5
EXP_GAP_COEFFS = [1.0 / np.prod(np.arange(1.0, k + 1)) for k in range(2, 16)]
# Within this much of log(largest float) eˣ is near overflow (x > 699.8 in float64, 78.7 in
# float32); x eˡ is then formed as exp(l + log x).
EXP_OVERFLOW_MARGIN = 10.0


def _quiet():
    """Every branch is evaluated on every entry and the unused ones are discarded."""
    return np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore")


def _normal(ratio: np.ndarray) -> np.ndarray:
    """Where ``ratio`` is a positive normal float: neither overflowed nor underflowed."""
    finfo = np.finfo(ratio.dtype)
    return (ratio >= finfo.tiny) & (ratio <= finfo.max)


def _near(ratio: np.ndarray) -> np.ndarray:
    return (ratio >= 0.5) & (ratio <= 2.0)


def _series(coeffs, x: np.ndarray) -> np.ndarray:
    total = np.full_like(x, coeffs[-1])
    for c in coeffs[-2::-1]:
        total = c + x * total
    return x * x * total


def log1p_gap_array(x: np.ndarray) -> np.ndarray:
    """x − log(1 + x) ≥ 0 for x > −1: the Taylor series for |x| < 0.1, else the difference.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath
    """
    with _quiet():
        near = np.abs(x) < LOG1P_SERIES_BELOW
        value = np.where(near, _series(LOG1P_GAP_COEFFS, np.where(near, x, 0)), x - np.log1p(x))
    return np.where(x == np.inf, np.inf, value)


def exp_gap_array(x: np.ndarray) -> np.ndarray:
    """eˣ − 1 − x ≥ 0: the Taylor series for |x| < 0.5, else the difference.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath
    """
    with _quiet():
        near = np.abs(x) < EXP_SERIES_BELOW
        value = np.where(near, _series(EXP_GAP_COEFFS, np.where(near, x, 0)), np.expm1(x) - x)
    return np.where(x == np.inf, np.inf, value)


def log_ratio_array(a: np.ndarray, b: np.ndarray, difference=None) -> np.ndarray:
    """log(a/b) for a, b > 0 by the three forms of the module doc (``difference``: a − b).

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath
    """
    with _quiet():
        ratio = a / b
        gap = a - b if difference is None else difference
        return np.where(_near(ratio), np.log1p(gap / b),
                        np.where(_normal(ratio), np.log(ratio), np.log(a) - np.log(b)))


def log1p_tangent_gap(x) -> Tensor:
    """x − log(1 + x) ≥ 0 for x > −1 (log(1 + x) lies below its tangent line at 0);
    d/dx = x/(1 + x).

    For |x| < 0.1 the Taylor series Σₖ₌₂¹⁷ (−1)ᵏ xᵏ/k in Horner form replaces the difference,
    which would cancel to x²/2 from numbers of size x.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    x = as_tensor(x)
    value = log1p_gap_array(x.data).astype(x.dtype, copy=False)
    with _quiet():
        slope = x.data / (1 + x.data)
    return Tensor.from_op(value, (x,), lambda g: (g * slope,), "log1p_tangent_gap")


def _gradients(g: np.ndarray, parents, slopes) -> tuple:
    """g times each parent's slope, summed back to the parent's shape."""
    with _quiet():
        return tuple(unbroadcast((g * slope).astype(parent.dtype, copy=False), parent.shape)
                     if parent.requires_grad else None for parent, slope in zip(parents, slopes))


def log_ratio(a, b, difference=None) -> Tensor:
    """log(a/b) for a, b > 0, accurate for every pair of positive floats;
    d/da = 1/a, d/db = −1/b.

    log1p((a − b)/b) where ½ ≤ a/b ≤ 2 (relative accuracy where log(a/b) ≈ 0), log(a/b) where
    the quotient is a normal float, and log a − log b where it over- or underflows.
    ``difference`` is a − b where it is known more exactly than from the rounded a and b
    (a sum of exact differences, say); only its value is used.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    a, b = binary_operands(a, b)
    gap = None if difference is None else as_tensor(difference, a).data
    value = log_ratio_array(a.data, b.data, gap).astype(a.dtype, copy=False)
    return Tensor.from_op(value, (a, b),
                          lambda g: _gradients(g, (a, b), (1 / a.data, -1 / b.data)), "log_ratio")


def log_product(a, b) -> Tensor:
    """log(a b) for a, b > 0, accurate for every pair of positive floats: log(a b) where the
    product is a normal float, log a + log b where it over- or underflows;
    d/da = 1/a, d/db = 1/b.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    a, b = binary_operands(a, b)
    with _quiet():
        product = a.data * b.data
        value = np.where(_normal(product), np.log(product), np.log(a.data) + np.log(b.data))
    return Tensor.from_op(value.astype(a.dtype, copy=False), (a, b),
                          lambda g: _gradients(g, (a, b), (1 / a.data, 1 / b.data)),
                          "log_product")


def log_ratio_of_ratios(a, b, c, d, difference_cd=None) -> Tensor:
    """log((a/b)/(c/d)) for positive a, b, c, d (``difference_cd``: c − d if known more
    exactly than from the rounded c and d, as in ``log_ratio``);
    d/da = 1/a, d/db = −1/b, d/dc = −1/c, d/dd = 1/d.

    Where both quotients lie in [½, 2], the difference of their ``log_ratio``s, each exact
    to rounding relative to its own small size, so that near a/b = c/d = 1 the result keeps
    its relative accuracy; where both are other normal floats, ``log_ratio`` of the two
    quotients, whose rounding (two units in the last place) is then the smaller error when
    the logarithms cancel; where one over- or underflows, the difference of the
    ``log_ratio``s if the other lies in [½, 2], and else, with x = mₓ 2^(eₓ) (mₓ in [½, 1)),

        log((m_a/m_b)/(m_c/m_d)) + (e_a − e_b − e_c + e_d) log 2,

    whose terms are of the size of the result: the two ``log_ratio``s, each beyond 708 in
    size, would leave their rounding (1e-13) in a result such as log((1/1e299)/(1e-8/1e300))
    = 20.7.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    a, b = binary_operands(a, b)
    c, d = binary_operands(c, d)
    gap = None if difference_cd is None else as_tensor(difference_cd, c).data
    with _quiet():
        first, second = a.data / b.data, c.data / d.data
        quotients = _normal(first) & _normal(second) & ~(_near(first) & _near(second))
        one_near = _near(first) | _near(second)
        (m_a, e_a), (m_b, e_b), (m_c, e_c), (m_d, e_d) = (np.frexp(x) for x in (a.data, b.data,
                                                                               c.data, d.data))
        by_exponents = (log_ratio_array(m_a, m_b) - log_ratio_array(m_c, m_d)
                        + ((e_a - e_b) - (e_c - e_d)) * np.log(2.0))
        value = np.where(quotients, log_ratio_array(first, second),
                         np.where(one_near, log_ratio_array(a.data, b.data)
                                  - log_ratio_array(c.data, d.data, gap), by_exponents))
    parents = (a, b, c, d)
    return Tensor.from_op(value.astype(a.dtype, copy=False), parents,
                          lambda g: _gradients(g, parents, (1 / a.data, -1 / b.data,
                                                            -1 / c.data, 1 / d.data)),
                          "log_ratio_of_ratios")


def ratio_excess(a, b, power: int = 1) -> Tensor:
    """ρ − 1 − log ρ ≥ 0 for ρ = (a/b)ᵖ, p = ``power`` ∈ {1, 2}, a, b > 0; it is 0 only at a = b.
    d/da = p (ρ − 1)/a, d/db = −p (ρ − 1)/b.

    Near ρ = 1 (½ ≤ a/b ≤ 2), with t = (a − b)/b:
        (1 + t)ᵖ − 1 − p log(1 + t) = p (t − log(1 + t)) + (t² for p = 2),
    a sum of terms ≥ 0.  Elsewhere the direct (a/b)ᵖ − 1 − p log(a/b) with ``log_ratio``: where
    (a/b)ᵖ overflows, so does the result (+∞); where it underflows, −1 − p log(a/b) remains.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power!r}")
    a, b = binary_operands(a, b)
    with _quiet():
        ratio = a.data / b.data
        near = _near(ratio)
        t = np.where(near, (a.data - b.data) / b.data, 0)
        close = power * log1p_gap_array(t) + (t * t if power == 2 else 0)
        far = ratio**power - 1 - power * log_ratio_array(a.data, b.data)
        value = np.where(near, close, far)
        excess = np.where(near, t * (2 + t) if power == 2 else t, ratio**power - 1)  # ρ − 1
    return Tensor.from_op(value.astype(a.dtype, copy=False), (a, b),
                          lambda g: _gradients(g, (a, b), (power * (excess / a.data),
                                                           -power * (excess / b.data))),
                          "ratio_excess")


def generalized_kl(x, log_y, log_ratio=None, log_x=None) -> Tensor:
    """x log(x/y) − x + y = x (eˡ − 1 − l) ≥ 0 for x > 0 and y = eˡ x > 0 given by its
    logarithm; 0 only at y = x.  d/dx = −l, d/d(log y) = y − x.

    The KL divergence between two Poisson laws of means x and y, and between positive measures
    of masses x and y.  ``log_ratio`` is l = log(y/x) and ``log_x`` is log x where they are
    known more exactly than from log y − log x and the rounded x (only their values are
    used; the gradient flows through x and log y).  Forms:
    * l ≤ log(largest float) − 10 and x a normal float: x (eˡ − 1 − l) with eˡ − 1 − l from its
      Taylor series where |l| < 0.5 (where the difference would cancel to l²/2);
    * else, where eˡ would overflow though x eˡ = y need not, or x has underflowed:
      y − x (1 + l) with y = exp(log y).
    Writing y through its logarithm lets y stand for a product that is no float (y = αp βq/βp
    in the Gamma KL) and keeps the two partial derivatives apart: d/dx = −l is small where
    x and y are close, whatever their size.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    x, log_y = binary_operands(x, log_y)
    dtype, finfo = x.dtype, np.finfo(x.dtype)
    with _quiet():
        log_x_value = np.log(x.data) if log_x is None else as_tensor(log_x, x).data
        l = log_y.data - log_x_value if log_ratio is None else as_tensor(log_ratio, x).data
        l = np.broadcast_to(l, np.broadcast_shapes(x.shape, log_y.shape))
        direct = (l <= np.log(finfo.max) - EXP_OVERFLOW_MARGIN) & (x.data >= finfo.tiny)
        value = np.where(direct, x.data * exp_gap_array(l), np.exp(log_y.data) - x.data * (1 + l))
        value = np.where(l == np.inf, np.inf, value)
        y_minus_x = np.where(direct, x.data * np.expm1(l), np.exp(log_y.data) - x.data)
    return Tensor.from_op(value.astype(dtype, copy=False), (x, log_y),
                          lambda g: _gradients(g, (x, log_y), (-l, y_minus_x)), "generalized_kl")


def scaled_difference(x, y, scale) -> Tensor:
    """(x − y)/s, finite wherever the quotient is.

    x − y overflows for x and y of opposite signs beyond half the largest float, so the halves
    are subtracted: 2 ((x/2 − y/2)/s).  Halving is exact for normal floats, so the value is
    the correctly rounded (x − y)/s everywhere else.

    Verified by: tests/engine/ops/test_ratios.py::test_values_match_mpmath,
    ::test_gradients_match_mpmath
    """
    x, y = binary_operands(x, y)
    return 2.0 * ((0.5 * x - 0.5 * y) / as_tensor(scale, x))
