"""Increments of the Stirling gap g (``stirling.stirling_gap``) and of its Bregman divergence
when both of its points move: how the Dirichlet KL stays exact when one category holds nearly
all of the concentration (``dirichlet.simplex_kl``).

Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.elementwise import exp_taylor_remainder
from minivae.engine.ops.operands import as_tensor, binary_operands
from minivae.engine.ops.shape import where
from minivae.engine.ops.special import DIGAMMA_COEFFS, LOG_GAMMA_COEFFS, SHIFT
from minivae.engine.ops.stirling import (
    NEAR_RATIO,
    stirling_gap,
    stirling_gap_bregman,
    stirling_gap_slope,
)
from minivae.engine.tensor import Tensor


def _expm1(x: Tensor) -> Tensor:
    """eˣ − 1 to full relative accuracy near 0, as (eˣ − 1 − x) + x."""
    return exp_taylor_remainder(x) + x


def _series_value_and_slope(x: Tensor, c: Tensor, s=1.0) -> tuple[Tensor, Tensor]:
    """Δg and s Δg′ from x ≥ 10 to x + c by the series (see ``stirling_gap_increments``), the
    second as (s/x) times a bounded sum."""
    log_step = (c / x).log1p()
    inverse = 1.0 / x
    value, slope = -0.5 * log_step, 0.5 * (c / (x + c))
    power = inverse
    for k, (a, d) in enumerate(zip(LOG_GAMMA_COEFFS, DIGAMMA_COEFFS)):
        value = value + a * power * _expm1(-(2 * k + 1) * log_step)
        slope = slope - d * power * _expm1(-(2 * k + 2) * log_step)
        power = power * inverse * inverse
    return value, (s * inverse) * slope


def _series_curvature(x: Tensor, c: Tensor, s: Tensor) -> Tensor:
    """s² Δg″ from x ≥ 10 to x + c by the series, as (s/x)² times a bounded sum."""
    log_step = (c / x).log1p()
    inverse = 1.0 / x
    total, power = 0.5 * _expm1(-2.0 * log_step), inverse
    for k, d in enumerate(DIGAMMA_COEFFS):
        total = total + (2 * k + 2) * d * power * _expm1(-(2 * k + 3) * log_step)
        power = power * inverse * inverse
    s_over_x = s * inverse
    return s_over_x * s_over_x * total


def _curvature_step(x: Tensor, c: Tensor, s: Tensor) -> Tensor:
    """s² (g″(x + c) − g″(x)) for x > 0, c ≥ 0, s > 0: every product of the shifted form is
    taken from factors s/r, c/(r + c) ≤ 1 and (2r + c)/(r + c) ≤ 2, so that with s of the size
    of x nothing over- or underflows where g″(x) ≈ 1/x² alone would (x < 1e-154)."""
    by_series = x.data >= SHIFT
    x_s, c_s = where(by_series, x, float(SHIFT)), where(by_series, c, 0.0)
    x_h, c_h = where(by_series, 1.0, x), where(by_series, 0.0, c)
    s_s, s_h = where(by_series, s, 1.0), where(by_series, 1.0, s)
    top = x_h + SHIFT

    def pole(r: Tensor) -> Tensor:  # s² c/(r (r + c))
        return (s_h / r) * (s_h * (c_h / (r + c_h)))

    def square_pole(r: Tensor) -> Tensor:  # s² c (2r + c)/(r² (r + c)²)
        to_r, reach = s_h / r, r + c_h
        return to_r * (to_r * (c_h / reach) * ((2.0 * r + c_h) / reach))

    shifted = (_series_curvature(top, c_h, s_h) - pole(top) + pole(x_h)
               - sum(square_pole(x_h + k) for k in range(SHIFT)))
    return where(by_series, _series_curvature(x_s, c_s, s_s), shifted)


def stirling_gap_increments(x, c, scale=None) -> tuple[Tensor, Tensor, Tensor]:
    """The increments of g, g′ and g″ (g the ``stirling_gap``) from x to x + c, for x > 0,
    c ≥ 0: (g(x + c) − g(x), s (g′(x + c) − g′(x)), s² (g″(x + c) − g″(x))), s = ``scale``
    (default 1; of the size of x, it keeps the last finite where g″ ≈ 1/x² is not, and the
    second a normal float where Δg′ ≈ c/(2x²) is subnormal: c = 1e-210, x = 1e51).

    The differences are formed term by term, so that a small c gives a small, accurate
    increment (g is of size log x, its increment of size c/x), and none of g′, g″ at a tiny x
    (1/x, 1/x², which overflow below 1e-154) is formed by itself:
    * x ≥ 10, from the series, with l = log(1 + c/x) and e^(−m l) − 1 = (1 + c/x)^(−m) − 1:
          Δg = −l/2 + Σₖ cₖ x^(−mₖ) (e^(−mₖ l) − 1),
          s Δg′ = (s/x) [c/(2(x + c)) − Σₖ dₖ x^(1−2k) (e^(−2k l) − 1)]      (dₖ = B₂ₖ/2k),
          s² Δg″ = (s/x)² [(e^(−2l) − 1)/2 + Σₖ 2k dₖ x^(1−2k) (e^(−(2k+1) l) − 1)];
    * x < 10, shifted to X = x + 10 (g(z) = g(z + 10) + (z + 10) log(z + 10) − z log z − 10
      − Σₖ log(z + k), and its derivatives):
          Δg = Δg(X) + c log(1 + 10/x) + (X + c) log(1 + c/X) − (x + c) log(1 + c/x)
               − Σₖ₌₀⁹ log(1 + c/(x + k)),
          Δg′ = Δg′(X) + log(1 + c/X) − log(1 + c/x) + Σₖ₌₀⁹ c/((x + k)(x + k + c)),
          s² Δg″ = s² Δg″(X) − s² c/(X (X + c)) + s² c/(x (x + c))
                   − Σₖ₌₀⁹ s² c (2r + c)/(r² (r + c)²)      (r = x + k),
      each product as one of bounded factors, s² c (2r + c)/(r² (r + c)²) =
      (s/r)·[(s/r)(c/(r + c))((2r + c)/(r + c))] (no c/x, which overflows for c ≫ x).
    Both are identities for every c ≥ 0, used as they are for Δg″.  For c > x/2, Δg and Δg′
    are the plain differences g(x + c) − g(x) and g′(x + c) − g′(x): there the log terms of
    the shifted forms cancel (c log(1 + 10/x) against (x + c) log(1 + c/x), of size c log c)
    or overflow (c/x = 1e309 for c = 1e19, x = 1e-290, then ∞ − ∞), while the plain
    differences lose at most a factor 3 (g′(x + c) − g′(x) ≥ g′(x)/3 in size there).

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    x, c = binary_operands(x, c)
    s = as_tensor(1.0 if scale is None else scale, x)
    by_series = x.data >= SHIFT
    far = c.data > NEAR_RATIO * x.data
    near_series, near_shift = by_series & ~far, ~by_series & ~far

    x_s, c_s = where(near_series, x, float(SHIFT)), where(near_series, c, 0.0)
    series_value, series_slope = _series_value_and_slope(x_s, c_s, where(near_series, s, 1.0))

    x_h, c_h = where(near_shift, x, 1.0), where(near_shift, c, 0.0)
    top = x_h + SHIFT
    top_value, top_slope = _series_value_and_slope(top, c_h)
    ladder = [x_h + k for k in range(SHIFT)]
    shift_value = (top_value + c_h * (SHIFT / x_h).log1p() + (top + c_h) * (c_h / top).log1p()
                   - (x_h + c_h) * (c_h / x_h).log1p() - sum((c_h / r).log1p() for r in ladder))
    shift_slope = (top_slope + (c_h / top).log1p() - (c_h / x_h).log1p()
                   + sum(c_h / r / (r + c_h) for r in ladder))

    x_f, c_f = where(far, x, 1.0), where(far, c, 1.0)
    far_value = stirling_gap(x_f + c_f) - stirling_gap(x_f)
    far_slope = stirling_gap_slope(x_f + c_f) - stirling_gap_slope(x_f)
    value = where(far, far_value, where(by_series, series_value, shift_value))
    slope = where(far, s * far_slope, where(by_series, series_slope, s * shift_slope))
    return value, slope, _curvature_step(x, c, s)


# Gauss–Legendre nodes and weights on [0, 1], the weights times (1 − s): for the integral
# ∫₀¹ (1 − s) f(s) ds, exact for polynomials f of degree ≤ 10.  For f(s) = H″(a + s h) the
# nearest pole is at a + s h = 0; with |h| ≤ a/10 the rule's error is below 4e-16 of the
# integral (checked against mpmath for a from 1e-200 to 1e3 and every c/a from 1e-10 to 1e10;
# at a/5 it is 1e-12, at a/20 below 1e-16).
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(6)
QUADRATURE_NODES = (_NODES + 1) / 2
QUADRATURE_WEIGHTS = _WEIGHTS / 2 * (1 - QUADRATURE_NODES)
QUADRATURE_BELOW = 0.1  # |b − a| ≤ a/10


def _slope_step(start: Tensor, end: Tensor, h: Tensor) -> Tensor:
    """g′(end) − g′(start) for start, end > 0, h = end − start (of either sign)."""
    up = h.data >= 0
    sign = np.where(up, 1, -1).astype(h.dtype)
    return sign * stirling_gap_increments(where(up, start, end), where(up, h, -h))[1]


def _shifted_bregman(b: Tensor, a: Tensor, c: Tensor) -> tuple[Tensor, np.ndarray]:
    """B_H(b; a) for H(x) = g(x + c) − g(x): B(b + c; a + c) − B(b; a) when both move by c;
    and the sum of the magnitudes it is formed from.

    Near the diagonal (|b − a| ≤ a/10) B_H = (b − a)² ∫₀¹ (1 − s) H″(a + s(b − a)) ds by the
    quadrature above, as ((b − a)/a)² times the integral of a² H″ (``stirling_gap_increments``
    with scale a), which stays finite where H″ ≈ 1/a² overflows; elsewhere the definition
    H(b) − H(a) − (b − a) H′(a) from the increments, which then cancels by at most 100 times
    (its terms are the magnitude), (b − a) H′(a) as ((b − a)/s)(s H′(a)) with s = max(a, 1):
    H′ ≈ u/(2a²) is subnormal for a = 1e51, u = 1e-210, and (b − a)/a overflows for a =
    1e-169, b = 1e140.
    """
    h = b - a
    with np.errstate(over="ignore", under="ignore"):
        by_rule = np.abs(h.data) <= QUADRATURE_BELOW * a.data
    a_q, h_q, c_q = where(by_rule, a, 1.0), where(by_rule, h, 0.0), where(by_rule, c, 0.0)
    integral = sum(w * _curvature_step(a_q + s * h_q, c_q, a_q)
                   for s, w in zip(QUADRATURE_NODES, QUADRATURE_WEIGHTS))
    relative_step = h_q / a_q
    rule = relative_step * relative_step * integral
    a_d, b_d, c_d = where(by_rule, 1.0, a), where(by_rule, 1.0, b), where(by_rule, 0.0, c)
    step_b = stirling_gap_increments(b_d, c_d)[0]
    scale = where(a_d.data >= 1.0, a_d, 1.0)
    step_a, slope_step_a, _ = stirling_gap_increments(a_d, c_d, scale)  # s H′(a)
    tangent = ((b_d - a_d) / scale) * slope_step_a
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = np.where(by_rule, np.abs(rule.data), np.abs(step_b.data)
                             + np.abs(step_a.data) + np.abs(tangent.data))
    return where(by_rule, rule, step_b - step_a - tangent), magnitude


def stirling_gap_bregman_increment(b, a, v, u, difference_vu=None
                                   ) -> tuple[Tensor, np.ndarray]:
    """B(b + v; a + u) − B(b; a) for the ``stirling_gap_bregman`` B, a, b > 0, u, v ≥ 0, and
    the sum of the magnitudes of the terms it is formed from, inner terms of a difference
    included (its rounding error is a few units in the last place of that).  With
    H(x) = g(x + u) − g(x):

        B(b + v; a + u) − B(b; a) = B(b + v; b + u) + (v − u)[g′(b + u) − g′(a + u)] + B_H(b; a),

    where u and v are small next to a and b each term is of the size of the result, not of
    the size of B (``difference_vu``: v − u, if known more exactly than from u and v).

    Verified by: tests/engine/ops/test_special.py::test_stirling_gap_and_its_bregman_divergence
    """
    b, a = binary_operands(b, a)
    v, u = binary_operands(v, u)
    difference_vu = v - u if difference_vu is None else as_tensor(difference_vu, v)
    moved = stirling_gap_bregman(b + v, b + u, difference_vu)
    turned = difference_vu * _slope_step(a + u, b + u, b - a)
    shifted, shifted_size = _shifted_bregman(b, a, u)
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = np.abs(moved.data) + np.abs(turned.data) + shifted_size
    return moved + turned + shifted, magnitude
