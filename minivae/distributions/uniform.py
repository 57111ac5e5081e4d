"""The continuous uniform distribution U(a, b) on [a, b), and the KL pairs that involve it.

    p(x; a, b) = 1/(b − a) on [a, b),     F(x) = (x − a)/(b − a),     F⁻¹(u) = a + (b − a) u

U(a, b) has bounded support, so KL(p ‖ U) = +∞ for every p with unbounded support (p puts
mass where log U = −∞): Normal, Laplace, Gumbel and Exponential are registered as such.
The other direction, KL(U ‖ q), is finite for those q and has closed forms below.

Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
tests/distributions/test_inverse_cdf_kl.py::test_kl_support_mismatch_is_infinite
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters
from minivae.distributions.exponential import Exponential
from minivae.distributions.gumbel import Gumbel
from minivae.distributions.kl import infinite, register_kl
from minivae.distributions.laplace import Laplace
from minivae.distributions.normal import Normal
from minivae.engine.ops import absolute, exp_taylor_remainder, where
from minivae.engine.ops.ratios import log_product, log_ratio, scaled_difference
from minivae.engine.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


class Uniform(Distribution):
    """U(low, high) for each entry of the broadcast of ``low`` and ``high``.

    low, high : a < b, finite, entry by entry.
    validate_args : check that a and b are finite and a < b (ValueError otherwise).
    """

    has_rsample = True

    def __init__(self, low, high, validate_args: bool = True):
        self.low, self.high = as_parameters(low=low, high=high)
        batch_shape = np.broadcast_shapes(self.low.shape, self.high.shape)
        if validate_args:
            checks.finite(self.low, "low")
            checks.finite(self.high, "high")
            a, b = np.broadcast_arrays(self.low.data, self.high.data)
            bad = ~(a < b)
            if np.any(bad):
                raise ValueError(f"low must be less than high in every entry, got low = "
                                 f"{a[bad][:3]} and high = {b[bad][:3]} where it is not")
        super().__init__(batch_shape, (), self.low.dtype)

    @property
    def width(self) -> Tensor:
        """b − a, the length of the support."""
        return self.high - self.low

    @property
    def half_width(self) -> Tensor:
        """(b − a)/2 = b/2 − a/2: the halves are exact and their difference cannot overflow,
        where b − a does for bounds of opposite signs beyond half the largest float.

        Verified by: tests/distributions/test_kl_float_range.py::test_named_examples
        """
        return 0.5 * self.high - 0.5 * self.low

    def offset_from(self, x) -> Tensor:
        """m − x for the midpoint m = (a + b)/2, as (a/2 − x/2) + (b/2 − x/2): each difference
        is exact where a, b and x are close, so this keeps the digits that rounding m itself
        would lose (on a support one unit in the last place wide, m is not a float), and it
        cannot overflow unless m − x does.

        Verified by:
        tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
        """
        return (0.5 * self.low - 0.5 * x) + (0.5 * self.high - 0.5 * x)

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """Reparameterized inverse-CDF draw:  z = F⁻¹(u; a, b) = a + (b − a) u,  u ~ U[0, 1).

        The gradient flows through F⁻¹: dz/da = 1 − u, dz/db = u.  In exact arithmetic
        z < b; when u is within an ulp of 1, rounding can carry z up to b, and such a draw is
        set to the float just below b (keeping dz/db = 1), so every draw has log_prob > −∞.

        Verified by: tests/distributions/test_inverse_cdf.py::test_rsample_matches_scipy_by_ks_test,
        ::test_rsample_gradcheck_with_fixed_noise,
        ::test_uniform_draws_stay_below_high
        """
        u = checks.generator(rng).random(self.sample_shape(shape), dtype=self.dtype)
        z = self.low + self.width * u
        below_high = self.high + (np.nextafter(self.high.data, -np.inf) - self.high.data)
        return where(z.data < self.high.data, z, below_high)

    def log_prob(self, x) -> Tensor:
        """log p(x) = −log(b − a) for a ≤ x < b; −∞ outside [a, b).

        Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
        ::test_log_prob_outside_the_support_is_minus_infinity
        """
        x = self._value(x)
        inside = (x.data >= self.low.data) & (x.data < self.high.data)
        return where(inside, -self.width.log(), -np.inf)

    def entropy(self) -> Tensor:
        """H = −∫ₐᵇ log(1/(b − a)) dx/(b − a) = log(b − a) = log 2 + log((b − a)/2).

        The second form is finite for every pair of finite bounds (b − a can overflow).
        Verified by: tests/distributions/test_inverse_cdf.py::test_entropy_matches_scipy
        """
        return LOG_2 + self.half_width.log()

    @property
    def mean(self) -> Tensor:
        """E[x] = (a + b)/2.

        Computed as a/2 + b/2, the same number, which cannot overflow.
        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return 0.5 * self.low + 0.5 * self.high

    @property
    def variance(self) -> Tensor:
        """Var[x] = ∫ (x − m)² dx/(b − a) over m ± (b − a)/2 = (b − a)²/12.

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return self.width * self.width / 12.0


@register_kl(Uniform, Uniform)
def kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    """KL(U(a_p, b_p) ‖ U(a_q, b_q)) = log((b_q − a_q)/(b_p − a_p)) if [a_p, b_p) ⊂ [a_q, b_q),
    else +∞ (entry by entry).

    Derivation: where p > 0, log p − log q = log(w_q/w_p) is constant, provided q > 0 there,
    i.e. a_q ≤ a_p and b_p ≤ b_q.  With w_q − w_p = (b_q − b_p) + (a_p − a_q), a sum of two
    differences ≥ 0 that are exact where the bounds are close, KL = log1p((w_q − w_p)/w_p):
    accurate when the supports nearly coincide, where log(w_q/w_p) of the rounded widths would
    not be.  Where w_q > 2 w_p, ``log_ratio`` of the half-widths (w_q/w_p may overflow).  The
    finite branch is computed for every entry, so the gradient stays finite wherever the KL is.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_support_mismatch_is_infinite,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    nested = (q.low.data <= p.low.data) & (p.high.data <= q.high.data)
    half_gap = (0.5 * q.high - 0.5 * p.high) + (0.5 * p.low - 0.5 * q.low)
    relative_gap = half_gap / p.half_width
    close = nested & (relative_gap.data <= 1.0)
    finite = where(close, where(close, relative_gap, 0.0).log1p(),
                   log_ratio(q.half_width, p.half_width))
    return where(nested, finite, np.inf)


@register_kl(Normal, Uniform)
@register_kl(Laplace, Uniform)
@register_kl(Gumbel, Uniform)
@register_kl(Exponential, Uniform)
def kl_unbounded_uniform(p: Distribution, q: Uniform) -> Tensor:
    """KL(p ‖ U(a, b)) = +∞: p > 0 outside [a, b), where log U = −∞.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_support_mismatch_is_infinite
    """
    return infinite(p, q)


@register_kl(Uniform, Normal)
def kl_uniform_normal(p: Uniform, q: Normal) -> Tensor:
    """KL(U(a, b) ‖ N(μ, σ²)) = −log w + ½ log 2π + log σ + (w²/12 + (m − μ)²)/(2σ²),

    with w = b − a and m = (a + b)/2.  Derivation: KL = −H(U) − E_U[log N], H(U) = log w, and
    −E_U[log N] = ½ log 2πσ² + E_U[(x − μ)²]/(2σ²) with E_U[(x − μ)²] = Var + bias² =
    w²/12 + (m − μ)².

    In the half-width h = w/2 (which cannot overflow) and t = h/σ:
        KL = ½ log 2π − log 2 − log t + t²/6 + ½ ((m − μ)/σ)²,
    with log t from ``log_ratio`` (t may over- or underflow) and m − μ from
    ``Uniform.offset_from`` (m itself may round or overflow).  ½ log 2π − log 2 − log t + t²/6
    ≥ 0.177 (its minimum, at t = √3), so the first terms never cancel by more than one digit.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    ::test_kl_gradients,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    t = p.half_width / q.scale
    shift = p.offset_from(q.loc) / q.scale
    return (0.5 * LOG_2PI - LOG_2 - log_ratio(p.half_width, q.scale) + t * t / 6.0
            + 0.5 * shift * shift)


@register_kl(Uniform, Laplace)
def kl_uniform_laplace(p: Uniform, q: Laplace) -> Tensor:
    """KL(U(a, b) ‖ Laplace(μ, s)) = −log w + log 2s + E_U|x − μ|/s,

    E_U|x − μ| = |m − μ| + max(0, δ)²/w,  δ = w/2 − |m − μ|,  w = b − a,  m = (a + b)/2.

    Derivation: for μ outside [a, b], |x − μ| is linear on the support and its mean is
    |m − μ|.  For μ inside, with d₁ = b − μ ≥ d₂ = μ − a (the other case is symmetric),
    E|x − μ| = (d₁² + d₂²)/(2w) = (d₁ − d₂)/2 + d₂²/w, and δ = d₂ is the distance to the
    nearer end.

    In units of s and of the half-width h = w/2, with t = h/s, o = |m − μ|/s and
    o′ = |m − μ|/h (m − μ from ``Uniform.offset_from``, exact where μ is near the support):
        KL = −log t + o + t (1 − o′)²/2   (the last term only where o′ < 1, μ inside),
    a sum whose first two terms alone are ≥ 1 − log 2 > 0 (at o = 0 the third adds t/2).

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    ::test_kl_gradients,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    h = p.half_width
    distance = absolute(p.offset_from(q.loc))
    offset, offset_in_half_widths = distance / q.scale, distance / h
    inside = offset_in_half_widths.data < 1.0
    t_inside = where(inside, h / q.scale, 0.0)
    depth = 1.0 - where(inside, offset_in_half_widths, 1.0)
    return -log_ratio(h, q.scale) + offset + 0.5 * t_inside * depth * depth


@register_kl(Uniform, Gumbel)
def kl_uniform_gumbel(p: Uniform, q: Gumbel) -> Tensor:
    """KL(U(a, b) ‖ Gumbel(μ, β)) = log(β/w) + (m − μ)/β + e^(−(a − μ)/β) (1 − e^(−s))/s,

    with w = b − a, m = (a + b)/2, s = w/β.  Derivation: −log q(x) = log β + y + e^(−y),
    y = (x − μ)/β, E_U[y] = (m − μ)/β and
    E_U[e^(−y)] = (1/w) ∫ₐᵇ e^(−(x − μ)/β) dx = (β/w) (e^(−(a − μ)/β) − e^(−(b − μ)/β)).

    With y_a = (a − μ)/β, (m − μ)/β = y_a + s/2, and G = (1 − e^(−s))/s, write
    e^(−y_a) G = e^c with c = log G − y_a; then, as for the Gumbel ‖ Gumbel KL,

        KL = (e^c − 1 − c) + (1 + log G − log s + s/2),

    the first ≥ 0, the second the minimum over μ (≥ 0.2, at s ≈ 4).  log G = log1p(−(e^(−s)
    − 1 + s)/s) below s = 1 (``exp_taylor_remainder``: accurate for small s), and
    log1p(−e^(−s)) − log s from 1 on; log s comes from the half-width and β
    (``log_ratio``), y_a from ``scaled_difference``, so over- and underflow of s or y_a give
    +∞ or the right finite number, never NaN.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    ::test_kl_gradients,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    t = p.half_width / q.scale  # s/2
    log_s = LOG_2 + log_ratio(p.half_width, q.scale)
    s = 2.0 * t
    small = s.data < 1.0
    positive_small = small & (s.data > 0)  # s = 0 (underflow): G = 1, log G = 0
    s_small, s_large = where(positive_small, s, 1.0), where(small, 1.0, s)
    log_averaged_exp = where(
        small, where(positive_small, (-exp_taylor_remainder(-s_small) / s_small).log1p(), 0.0),
        (-(-s_large).exp()).log1p() - where(small, 0.0, log_s))
    c = log_averaged_exp - scaled_difference(p.low, q.loc, q.scale)
    return exp_taylor_remainder(c) + (1.0 + log_averaged_exp - log_s + t)


@register_kl(Uniform, Exponential)
def kl_uniform_exponential(p: Uniform, q: Exponential) -> Tensor:
    """KL(U(a, b) ‖ Exp(λ)) = −log w − log λ + λ m if a ≥ 0, else +∞ (entry by entry),

    with w = b − a, m = (a + b)/2: −E_U[log λ − λx] = −log λ + λ m minus H(U) = log w.
    For a < 0, U puts mass on x < 0, where the exponential density is 0.

    With m = a + h, h = w/2: KL = λa + (λh − log(2λh)), both terms ≥ 0 (the second ≥
    1 − log 2, at λh = 1); log(λh) comes from ``log_product`` (λh may over- or underflow).

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_support_mismatch_is_infinite,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    h = p.half_width
    finite = q.rate * p.low + (q.rate * h - LOG_2 - log_product(q.rate, h))
    return where(p.low.data >= 0, finite, np.inf)
