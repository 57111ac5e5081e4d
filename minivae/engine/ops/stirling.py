"""The Stirling gap g(z) = log Γ(z) − (z log z − z) and its Bregman divergence: how the KLs of
the gamma family stay exact where log Γ of huge concentrations would cancel.

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


def _expm1(x: Tensor) -> Tensor:
    """eˣ − 1 to full relative accuracy near 0, as (eˣ − 1 − x) + x."""
    return exp_taylor_remainder(x) + x


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


def stirling_gap_increments(x, c) -> tuple[Tensor, Tensor, Tensor]:
    """The increments of g, g′ and g″ (g the ``stirling_gap``) from x to x + c, for x > 0,
    c ≥ 0: (g(x + c) − g(x), g′(x + c) − g′(x), g″(x + c) − g″(x)).

    The differences are formed term by term, so that a small c gives a small, accurate
    increment (g is of size log x, its increment of size c/x), and none of g′, g″ at a tiny x
    (1/x, 1/x², which overflow below 1e-154) is formed by itself:
    * x ≥ 10, from the series, with l = log(1 + c/x) and e^(−m l) − 1 = (1 + c/x)^(−m) − 1:
          Δg = −l/2 + Σₖ cₖ x^(−mₖ) (e^(−mₖ l) − 1),
          Δg′ = c/(2x (x + c)) − Σₖ dₖ x^(−2k) (e^(−2k l) − 1)      (dₖ = B₂ₖ/2k),
          Δg″ = (e^(−2l) − 1)/(2x²) + Σₖ 2k dₖ x^(−2k−1) (e^(−(2k+1) l) − 1);
    * x < 10, shifted to X = x + 10 (g(z) = g(z + 10) + (z + 10) log(z + 10) − z log z − 10
      − Σₖ log(z + k), and its derivatives):
          Δg = Δg(X) + c log(1 + 10/x) + (X + c) log(1 + c/X) − (x + c) log(1 + c/x)
               − Σₖ₌₀⁹ log(1 + c/(x + k)),
          Δg′ = Δg′(X) + log(1 + c/X) − log(1 + c/x) + Σₖ₌₀⁹ c/((x + k)(x + k + c)),
          Δg″ = Δg″(X) − c/(X (X + c)) + c/(x (x + c))
                − Σₖ₌₀⁹ c (2(x + k) + c)/((x + k)² (x + k + c)²),
      each product of small factors formed as successive quotients (x⁴ underflows for
      x < 1e-77).
    Both are identities for every c ≥ 0, used as they are for Δg′ and Δg″ (where the poles
    1/x and 1/x² must not be formed alone); Δg for c > x/2 is the plain difference of g.

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    x, c = binary_operands(x, c)
    by_series = x.data >= SHIFT

    def series(x: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_step = (c / x).log1p()
        inverse = 1.0 / x
        value, slope = -0.5 * log_step, 0.5 * c / x / (x + c)
        curvature = 0.5 * inverse * inverse * _expm1(-2.0 * log_step)
        power = inverse
        for k, (a, d) in enumerate(zip(LOG_GAMMA_COEFFS, DIGAMMA_COEFFS)):
            value = value + a * power * _expm1(-(2 * k + 1) * log_step)
            power = power * inverse
            slope = slope - d * power * _expm1(-(2 * k + 2) * log_step)
            power = power * inverse
            curvature = curvature + (2 * k + 2) * d * power * _expm1(-(2 * k + 3) * log_step)
        return value, slope, curvature

    x_s, c_s = where(by_series, x, float(SHIFT)), where(by_series, c, 0.0)
    from_series = series(x_s, c_s)

    x_h, c_h = where(by_series, 1.0, x), where(by_series, 0.0, c)
    top = x_h + SHIFT
    top_value, top_slope, top_curvature = series(top, c_h)
    ladder = [x_h + k for k in range(SHIFT)]
    from_shift = (
        top_value + c_h * (SHIFT / x_h).log1p() + (top + c_h) * (c_h / top).log1p()
        - (x_h + c_h) * (c_h / x_h).log1p() - sum((c_h / rung).log1p() for rung in ladder),
        top_slope + (c_h / top).log1p() - (c_h / x_h).log1p()
        + sum(c_h / rung / (rung + c_h) for rung in ladder),
        top_curvature - c_h / top / (top + c_h) + c_h / x_h / (x_h + c_h)
        - sum((c_h / rung) * ((2.0 * rung + c_h) / rung) / (rung + c_h) / (rung + c_h)
              for rung in ladder))

    value, slope, curvature = (where(by_series, a, b) for a, b in zip(from_series, from_shift))
    # far from x the log terms of the shifted Δg cancel (c log(1 + 10/x) against (x + c) log(1 +
    # c/x), both of size c log c), while g itself, of size log x, does not
    far = c.data > NEAR_RATIO * x.data
    x_f, c_f = where(far, x, 1.0), where(far, c, 1.0)
    return where(far, stirling_gap(x_f + c_f) - stirling_gap(x_f), value), slope, curvature


# Gauss–Legendre nodes and weights on [0, 1], the weights times (1 − s): for the integral
# ∫₀¹ (1 − s) f(s) ds, exact for polynomials f of degree ≤ 10
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(6)
QUADRATURE_NODES = (_NODES + 1) / 2
QUADRATURE_WEIGHTS = _WEIGHTS / 2 * (1 - QUADRATURE_NODES)
QUADRATURE_BELOW = 0.05  # |b − a| ≤ a/20: the error of the rule is then below (1/20)¹² ≈ 4e-16


def _slope_step(start: Tensor, end: Tensor, h: Tensor) -> Tensor:
    """g′(end) − g′(start) for start, end > 0, h = end − start (of either sign)."""
    up = h.data >= 0
    sign = np.where(up, 1, -1).astype(h.dtype)
    return sign * stirling_gap_increments(where(up, start, end), where(up, h, -h))[1]


def _shifted_bregman(b: Tensor, a: Tensor, c: Tensor) -> Tensor:
    """B_H(b; a) for H(x) = g(x + c) − g(x): B(b + c; a + c) − B(b; a) when both move by c.

    Near the diagonal (|b − a| ≤ a/20) B_H = (b − a)² ∫₀¹ (1 − s) H″(a + s(b − a)) ds by the
    quadrature above, with H″ = Δg″ accurate for any small c; elsewhere the definition
    H(b) − H(a) − (b − a) H′(a) from the increments, which then cancels by at most 400 times.
    """
    h = b - a
    with np.errstate(over="ignore", under="ignore"):
        by_rule = np.abs(h.data) <= QUADRATURE_BELOW * a.data
    a_q, h_q, c_q = where(by_rule, a, 1.0), where(by_rule, h, 0.0), where(by_rule, c, 0.0)
    rule = sum(w * stirling_gap_increments(a_q + s * h_q, c_q)[2]
               for s, w in zip(QUADRATURE_NODES, QUADRATURE_WEIGHTS)) * h_q * h_q
    a_d, b_d, c_d = where(by_rule, 1.0, a), where(by_rule, 1.0, b), where(by_rule, 0.0, c)
    step_b = stirling_gap_increments(b_d, c_d)[0]
    step_a, slope_step_a, _ = stirling_gap_increments(a_d, c_d)
    return where(by_rule, rule, step_b - step_a - (b_d - a_d) * slope_step_a)


def stirling_gap_bregman_increment(b, a, v, u, difference_vu=None
                                   ) -> tuple[Tensor, np.ndarray]:
    """B(b + v; a + u) − B(b; a) for the ``stirling_gap_bregman`` B, a, b > 0, u, v ≥ 0, and
    the sum of the magnitudes of the terms it is formed from (its rounding error is a few
    units in the last place of that).  With H(x) = g(x + u) − g(x):

        B(b + v; a + u) − B(b; a) = B(b + v; b + u) + (v − u)[g′(b + u) − g′(a + u)] + B_H(b; a),

    where u and v are small next to a and b each term is of the size of the result, not of
    the size of B (``difference_vu``: v − u, if known more exactly than from u and v).

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    b, a = binary_operands(b, a)
    v, u = binary_operands(v, u)
    difference_vu = v - u if difference_vu is None else as_tensor(difference_vu, v)
    terms = [stirling_gap_bregman(b + v, b + u, difference_vu),
             difference_vu * _slope_step(a + u, b + u, b - a),
             _shifted_bregman(b, a, u)]
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = sum(np.abs(term.data) for term in terms)
    return terms[0] + terms[1] + terms[2], magnitude
