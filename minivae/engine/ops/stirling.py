"""The Stirling gap g(z) = log Γ(z) − (z log z − z) and its Bregman divergence: how the KLs of
the gamma family stay exact where log Γ of huge concentrations would cancel.  Its increments,
and those of its Bregman divergence when both points move, are in ``stirling_increments``.

Verified by: tests/engine/ops/test_special.py
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.elementwise import exp_taylor_remainder
from minivae.engine.ops.operands import as_tensor, binary_operands
from minivae.engine.ops.ratios import log1p_tangent_gap
from minivae.engine.ops.shape import where
from minivae.engine.ops.special import (
    DIGAMMA_COEFFS,
    HALF_LOG_TWO_PI,
    LOG_GAMMA_COEFFS,
    SHIFT,
    digamma,
    lgamma,
)
from minivae.engine.tensor import Tensor

# -- the Stirling gap and its Bregman divergence -----------------------------------------------
#
# g(z) = log Γ(z) − (z log z − z) is what is left of log Γ after its leading growth; by Stirling
# g(z) = ½ log(2π/z) + S(z) with S the series of step 2 (S(z) ≈ 1/(12z)), so g is of the size
# of log z where log Γ is of the size of z log z.  The KLs of the gamma family (Gamma, Beta,
# Dirichlet) are written with the Bregman divergence of g,
#
#     B(b; a) = g(b) − g(a) − (b − a) g′(a) ≥ 0      (g is convex: g″ = ψ′ − 1/z > 0),
#
# plus terms in z log z − z, which are handled as ratios (``ratios.generalized_kl``): the
# huge parts of log Γ never meet, so nothing of size a log a cancels.

NEAR_RATIO = 0.5  # |b − a| ≤ a/2: B(b; a) is small there and is computed without cancellation
STIRLING_NEAR_FROM = 2 * SHIFT  # near the diagonal, the series serves a ≥ 20 (then b ≥ 10)


def _horner(coeffs, w):
    """Σₖ coeffs[k] wᵏ by Horner's rule, for an ndarray or a Tensor w."""
    total = coeffs[-1]
    for c in coeffs[-2::-1]:
        total = c + w * total
    return total


def stirling_gap(z: Tensor) -> Tensor:
    """g(z) = log Γ(z) − z log z + z = ½ log(2π/z) + S(z)  (the series for z ≥ 10, log Γ below).

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    z = as_tensor(z)
    big = z.data >= SHIFT
    z_big, z_small = where(big, z, float(SHIFT)), where(big, 1.0, z)
    inverse = 1.0 / z_big
    series = inverse * _horner(LOG_GAMMA_COEFFS, inverse * inverse)
    return where(big, HALF_LOG_TWO_PI - 0.5 * z_big.log() + series,
                 lgamma(z_small) - z_small * z_small.log() + z_small)


def stirling_gap_slope(z: Tensor) -> Tensor:
    """g′(z) = ψ(z) − log z = −1/(2z) − Σₖ B₂ₖ/(2k z²ᵏ)  (the series for z ≥ 10, ψ below); < 0.

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    z = as_tensor(z)
    big = z.data >= SHIFT
    z_big, z_small = where(big, z, float(SHIFT)), where(big, 1.0, z)
    inverse = 1.0 / z_big
    inverse_square = inverse * inverse
    return where(big, -0.5 * inverse - inverse_square * _horner(DIGAMMA_COEFFS, inverse_square),
                 digamma(z_small) - z_small.log())


def _x_log_x_gap(x: Tensor) -> Tensor:
    """(1 + x) log(1 + x) − x = x² − (1 + x)(x − log(1 + x)) ≥ 0 for |x| ≤ ½ (the second form
    loses at most one bit there; the first would cancel to x²/2)."""
    return x * x - (1.0 + x) * log1p_tangent_gap(x)


def _stirling_bregman_near(a: Tensor, x: Tensor) -> Tensor:
    """B(a (1 + x); a) for a ≥ 10, |x| ≤ ½, from g = ½ log(2π/z) + Σₖ cₖ z^(−mₖ), mₖ = 2k − 1:

        B = ½ (x − log(1 + x)) + Σₖ cₖ a^(−mₖ) [(1 + x)^(−mₖ) − 1 + mₖ x],

    each bracket the Bregman divergence of z^(−m) at a, divided by a^(−m), computed as the sum
    of two terms ≥ 0: (1 + x)^(−m) − 1 + m x = (eʸ − 1 − y) + m (x − log(1 + x)), y = −m log(1 + x).
    """
    log_one_plus_x = x.log1p()
    tangent_gap = log1p_tangent_gap(x)
    total = 0.5 * tangent_gap
    inverse = 1.0 / a
    power = inverse
    for k, c in enumerate(LOG_GAMMA_COEFFS):
        m = 2 * k + 1
        total = total + c * power * (exp_taylor_remainder(-m * log_one_plus_x) + m * tangent_gap)
        power = power * inverse * inverse
    return total


def stirling_gap_bregman(b, a, difference=None) -> Tensor:
    """B(b; a) = g(b) − g(a) − (b − a) g′(a) ≥ 0 for a, b > 0, g the ``stirling_gap``;
    0 only at b = a.  The Bregman divergence of log Γ is this plus a [(1 + x) log(1 + x) − x],
    x = (b − a)/a.

    Three forms, entry by entry:
    * |b − a| ≤ a/2 and a ≥ 20: the series of ``_stirling_bregman_near``;
    * |b − a| ≤ a/2 and a < 20: shifted up by ten with log Γ(z) = log Γ(z + 10) − Σₖ log(z + k),
      whose Bregman divergences are t − log(1 + t) with t = (b − a)/(a + k):
          B(b; a) = Σₖ₌₀⁹ [tₖ − log(1 + tₖ)] + (a + 10) φ(t₁₀) − a φ(t₀) + B(b + 10; a + 10),
      φ(t) = (1 + t) log(1 + t) − t; the one negative term is at most 40 times smaller than
      the sum (g″(a)/ψ′(a) ≥ 1/40 for a ≤ 20);
    * otherwise the definition, whose terms are then at most a small multiple of B.
    ``difference`` is b − a where it is known more exactly than from the rounded b and a.

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    b, a = binary_operands(b, a)
    difference = b - a if difference is None else as_tensor(difference, b)
    with np.errstate(over="ignore", under="ignore"):
        near = np.abs(b.data - a.data) <= NEAR_RATIO * a.data
    by_series = near & (a.data >= STIRLING_NEAR_FROM)
    shifted = near & ~by_series

    a_s = where(by_series, a, float(STIRLING_NEAR_FROM))
    series = _stirling_bregman_near(a_s, where(by_series, difference, 0.0) / a_s)

    a_h, h = where(shifted, a, 1.0), where(shifted, difference, 0.0)
    ladder = sum(log1p_tangent_gap(h / (a_h + k)) for k in range(SHIFT))
    top = a_h + SHIFT
    shifted_value = (ladder + top * _x_log_x_gap(h / top) - a_h * _x_log_x_gap(h / a_h)
                     + _stirling_bregman_near(top, h / top))

    a_f, b_f = where(near, 1.0, a), where(near, 1.0, b)
    direct = stirling_gap(b_f) - stirling_gap(a_f) - (b_f - a_f) * stirling_gap_slope(a_f)
    return where(by_series, series, where(shifted, shifted_value, direct))


def stirling_gap_curvature(z: Tensor) -> Tensor:
    """g″(z) = ψ′(z) − 1/z = 1/(2z²) + Σₖ 2k dₖ z^(−2k−1)  (the series for z ≥ 10), and below
    g″(z) = g″(z + 10) + 1/(z + 10) − 1/z + Σₖ₌₀⁹ 1/(z + k)² (the shift); > 0.

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    z = as_tensor(z)
    big = z.data >= SHIFT
    z_big, z_small = where(big, z, float(SHIFT)), where(big, 1.0, z)

    def series(z: Tensor) -> Tensor:
        inverse = 1.0 / z
        total, power = 0.5 * inverse * inverse, inverse * inverse * inverse
        for k, d in enumerate(DIGAMMA_COEFFS):
            total = total + (2 * k + 2) * d * power
            power = power * inverse * inverse
        return total

    top = z_small + SHIFT
    shifted = (series(top) + 1.0 / top - 1.0 / z_small
               + sum(1.0 / (z_small + k) / (z_small + k) for k in range(SHIFT)))
    return where(big, series(z_big), shifted)
