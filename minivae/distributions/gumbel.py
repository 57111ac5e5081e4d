"""The Gumbel (type-I extreme value) distribution on ℝ, sampled by inverting its CDF.

    p(x; μ, β) = exp(−y − e^(−y)) / β,   y = (x − μ)/β
    F(x) = exp(−e^(−y)),                 F⁻¹(u) = μ − β log(−log u)

The maximum of many independent draws with exponential-type tails is, after shifting and
scaling, approximately Gumbel; adding standard Gumbel noise to logits and taking the argmax
samples a categorical distribution (the Gumbel-max trick).  The draw
z = F⁻¹(u; μ, β) with u ~ U(0, 1) is differentiable in (μ, β) for fixed u: a reparameterized
sampler.

Two facts carry the formulas below, for the standard Gumbel G (μ = 0, β = 1):
e^(−G) ~ Exp(1), since P(e^(−G) > t) = P(G < −log t) = e^(−t); hence
E[e^(−sG)] = E[Eˢ] = Γ(1 + s) for E ~ Exp(1), and E[G] = −Γ′(1) = γ (Euler's constant).

Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
::test_rsample_matches_scipy_by_ks_test
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import LocationScale, broadcast_to
from minivae.distributions.kl import register_kl
from minivae.engine.ops import exp_taylor_remainder, where
from minivae.engine.ops.ratios import log_ratio, scaled_difference
from minivae.engine.ops.special import lgamma
from minivae.engine.tensor import Tensor

EULER_GAMMA = 0.5772156649015329  # γ = −Γ′(1) = −ψ(1)

# ζ(k) for k = 2 … 10: π-powers for even k, decimal values for odd k (checked against scipy
# in the tests).  They are the Taylor coefficients of log Γ at 1:
#     log Γ(1 + x) = −γx + Σₖ₌₂^∞ (−1)ᵏ ζ(k) xᵏ / k,   |x| < 1.
ZETA = {2: math.pi**2 / 6, 3: 1.2020569031595942, 4: math.pi**4 / 90,
        5: 1.0369277551433699, 6: math.pi**6 / 945, 7: 1.0083492773819228,
        8: math.pi**8 / 9450, 9: 1.0020083928260822, 10: math.pi**10 / 93555}
# For |x| < 0.05 the first omitted term, ζ(11) x¹¹/11, is below 5e-16; beyond it log Γ's
# own absolute error (a few 1e-15) is small next to the result (> 2e-3).
SERIES_BELOW = 0.05


def _log_gamma_series(x: Tensor) -> Tensor:
    """log Γ(1 + x) + γx = Σₖ₌₂¹⁰ (−1)ᵏ ζ(k) xᵏ/k, for |x| < 0.05 (see ``SERIES_BELOW``)."""
    series = ZETA[10] / 10
    for k in range(9, 1, -1):
        series = (-1) ** k * ZETA[k] / k + x * series
    return x * x * series


def log_gamma_plus_euler_line(r: Tensor, r_minus_one=None) -> Tensor:
    """log Γ(r) + γ(r − 1) = Σₖ₌₂ (−1)ᵏ ζ(k) (r − 1)ᵏ/k ≥ 0 for r > 0; it is 0 only at r = 1.

    This is log Γ minus its tangent line at r = 1: log Γ is convex on r > 0, and its value
    and slope there are 0 and ψ(1) = −γ.  ``lgamma`` gets log Γ near 1 as a difference of
    numbers near 15, so its absolute error there is a few 1e-15, too much for a result of
    order (r − 1)²; for |r − 1| < 0.05 the series is used instead, in ``r_minus_one`` where
    r − 1 is known more exactly than from the rounded r (a ratio r = a/b, whose rounding
    is ε where r − 1 = (a − b)/b may be far smaller).

    Verified by: tests/engine/ops/test_elementwise.py::test_helpers_match_numpy,
    tests/distributions/test_kl_float_range.py::test_named_examples
    """
    x = r - 1.0 if r_minus_one is None else r_minus_one
    near = np.abs(x.data) < SERIES_BELOW
    r_far = where(near, 2.0, r)
    return where(near, _log_gamma_series(where(near, x, 0.0)),
                 lgamma(r_far) + EULER_GAMMA * (r_far - 1.0))


def standard_gumbel_from_uniform(u: np.ndarray) -> np.ndarray:
    """Gumbel(0, 1) noise by the inverse CDF:  ε = −log(−log u),  u in [0, 1).

    The generator returns multiples of its grid step eps/2; u = 0 (which would give −∞) is
    moved to the middle of its grid cell, eps/4.  The largest u, 1 − eps/2, gives a finite
    ε ≈ −log(eps/2) because log u is exact to rounding near 1.

    Verified by:
    tests/distributions/test_inverse_cdf.py::test_noise_is_finite_at_the_ends_of_the_grid
    """
    u = np.where(u == 0, np.finfo(u.dtype).eps / 4, u)
    return -np.log(-np.log(u))


class Gumbel(LocationScale):
    """Gumbel(loc, scale) for each entry of the broadcast of ``loc`` and ``scale``.

    loc : μ, the mode, any real.
    scale : β > 0.
    validate_args : check that μ is finite and β positive and finite (ValueError otherwise).
    """

    has_rsample = True

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """Reparameterized inverse-CDF draw:  z = F⁻¹(u; μ, β) = μ − β log(−log u),  u ~ U(0, 1).

        The gradient flows through F⁻¹: dz/dμ = 1, dz/dβ = −log(−log u).

        Verified by: tests/distributions/test_inverse_cdf.py::test_rsample_matches_scipy_by_ks_test,
        ::test_rsample_gradcheck_with_fixed_noise
        """
        u = checks.generator(rng).random(self.sample_shape(shape), dtype=self.dtype)
        return self.loc + self.scale * standard_gumbel_from_uniform(u)

    def log_prob(self, x) -> Tensor:
        """log p(x) = −y − e^(−y) − log β,  y = (x − μ)/β  (−∞ at x = ±∞).

        Where y = −∞ (x = −∞, or (x − μ)/β overflowing) the two terms would give ∞ − ∞; the
        value there is its limit −∞, and x is replaced by μ inside the formula, so no
        infinite y (and no NaN) reaches the value or the gradient.
        Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
        ::test_log_prob_outside_the_support_is_minus_infinity
        """
        x = self._value(x)
        with np.errstate(over="ignore", invalid="ignore"):
            at_minus_infinity = (x.data - self.loc.data) / self.scale.data == -np.inf
        x = where(at_minus_infinity, self.loc, x)
        y = (x - self.loc) / self.scale
        return where(at_minus_infinity, -np.inf, -y - (-y).exp() - self.scale.log())

    def entropy(self) -> Tensor:
        """H = log β + E[y + e^(−y)] = log β + γ + 1  (E[y] = γ, E[e^(−y)] = Γ(2) = 1).

        Verified by: tests/distributions/test_inverse_cdf.py::test_entropy_matches_scipy
        """
        return broadcast_to(self.scale.log() + (EULER_GAMMA + 1.0), self.batch_shape)

    @property
    def mean(self) -> Tensor:
        """E[x] = μ + βγ.

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return broadcast_to(self.loc + EULER_GAMMA * self.scale, self.batch_shape)

    @property
    def variance(self) -> Tensor:
        """Var[x] = β² Var[G] = β² (log Γ)″(1) = β² ζ(2) = π²β²/6.

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return broadcast_to((math.pi**2 / 6) * self.scale * self.scale, self.batch_shape)


@register_kl(Gumbel, Gumbel)
def kl_gumbel_gumbel(p: Gumbel, q: Gumbel) -> Tensor:
    """KL(p ‖ q) = log(β_q/β_p) + (μ_p − μ_q)/β_q + γ(r − 1) + e^((μ_q − μ_p)/β_q) Γ(1 + r) − 1,

    with r = β_p/β_q.  Derivation: write x = μ_p + β_p G under p.  Then
    −log q(x) = log β_q + (x − μ_q)/β_q + e^(−(x − μ_q)/β_q), and by the facts in the module
    docstring E[x] = μ_p + β_p γ and E[e^(−(x − μ_q)/β_q)] = e^((μ_q − μ_p)/β_q) Γ(1 + r), so

        −E_p[log q] = log β_q + (μ_p + β_p γ − μ_q)/β_q + e^((μ_q − μ_p)/β_q) Γ(1 + r).

    Subtracting H(p) = log β_p + γ + 1 gives the formula.  With c = (μ_q − μ_p)/β_q +
    log Γ(1 + r), write e^c − 1 = (e^c − 1 − c) + c; the linear terms cancel and, by
    log Γ(1 + r) = log Γ(r) + log r, what is left is a sum of two terms, each ≥ 0:

        KL = (e^c − 1 − c) + (log Γ(r) + γ(r − 1)).

    Both are computed without cancellation (``exp_taylor_remainder`` and
    ``log_gamma_plus_euler_line``), and both are exactly 0 at p = q.  Below r = 0.05 the
    second is the series of log Γ(1 + r) minus log r and γ (log Γ(r) = log Γ(1 + r) − log r,
    with log r from the scales, so r may underflow); where it overflows (r ≳ 1e305, or r
    itself beyond the float range) the KL is +∞, and c, whose log Γ(1 + r) would be +∞ too,
    is not formed there.  Near r = 1, r − 1 enters both terms as (β_p − β_q)/β_q (β_p − β_q is
    exact there), not from the rounded r, whose rounding would be as large as a KL of order
    (r − 1)² allows (Gumbel(1, 1) ‖ Gumbel(1, 1.000001) was off by 3e-11).  Γ enters through
    log Γ only, so the gradient flows through ψ.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo, ::test_kl_is_nonnegative_and_zero_on_the_diagonal,
    ::test_kl_is_accurate_near_the_diagonal, ::test_kl_gradients,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range,
    ::test_named_examples
    """
    with np.errstate(over="ignore", under="ignore"):
        r = p.scale / q.scale
    log_r = log_ratio(p.scale, q.scale)
    small, within = r.data < SERIES_BELOW, np.isfinite(r.data)
    near = (r.data >= 0.5) & (r.data <= 2.0)  # there β_p − β_q is exact (Sterbenz)
    r_minus_one = where(near, where(near, p.scale - q.scale, 0.0) / q.scale, r - 1.0)
    r_small, r_big = where(small, r, 0.0), where(small | ~within, 1.0, r)
    step_big = where(small | ~within, 0.0, r_minus_one)
    series = _log_gamma_series(r_small)  # log Γ(1 + r) + γr
    tangent_gap = where(small, series - EULER_GAMMA - log_r,
                        log_gamma_plus_euler_line(r_big, step_big))
    finite = within & np.isfinite(tangent_gap.data)
    gap, step = where(finite, tangent_gap, 0.0), where(finite, r_minus_one, 0.0)
    # log Γ(1 + r) = log Γ(r) + log r, from the tangent gap so that it is exactly 0 at r = 1
    log_gamma_one_plus_r = where(small, series - EULER_GAMMA * r_small,
                                 gap - EULER_GAMMA * step + log_r)
    c = scaled_difference(q.loc, p.loc, q.scale) + log_gamma_one_plus_r
    return where(finite, exp_taylor_remainder(c) + gap, np.inf)
