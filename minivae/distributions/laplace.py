"""The Laplace (double-exponential) distribution on ℝ, sampled by inverting its CDF.

    p(x; μ, b) = exp(−|x − μ|/b) / 2b
    F(x) = ½ e^((x − μ)/b) for x < μ,   1 − ½ e^(−(x − μ)/b) for x ≥ μ
    F⁻¹(v) = μ − b sign(u) log(1 − 2|u|),   u = v − ½

The draw z = F⁻¹(v; μ, b) with v ~ U(0, 1) is differentiable in (μ, b) for fixed v, so it is
a reparameterized sampler.

Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
::test_rsample_matches_scipy_by_ks_test
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import LocationScale, broadcast_to
from minivae.distributions.kl import register_kl
from minivae.engine.ops import absolute, exp_taylor_remainder, where
from minivae.engine.ops.ratios import ratio_excess
from minivae.engine.tensor import Tensor


def standard_laplace_from_uniform(v: np.ndarray) -> np.ndarray:
    """Laplace(0, 1) noise by the inverse CDF: ε = −sign(u) log(1 − 2|u|), u = v − ½, v in [0, 1).

    For v < ½ this is log 2v, for v ≥ ½ it is −log 2(1 − v): the two halves of F⁻¹.  The
    generator returns multiples of its grid step eps/2, so v = 0 (which would give ε = −∞)
    is moved to the middle of its grid cell, eps/4; every other v gives a finite ε.  u = v − ½
    and 1 − 2|u| are exact in floating point, and log1p keeps accuracy near u = 0.

    Verified by:
    tests/distributions/test_inverse_cdf.py::test_noise_is_finite_at_the_ends_of_the_grid
    """
    v = np.where(v == 0, np.finfo(v.dtype).eps / 4, v)
    u = v - 0.5
    return -np.sign(u) * np.log1p(-2 * np.abs(u))


class Laplace(LocationScale):
    """Laplace(loc, scale) for each entry of the broadcast of ``loc`` and ``scale``.

    loc : μ, the median and mean, any real.
    scale : b > 0; the standard deviation is b√2.
    validate_args : check that μ is finite and b positive and finite (ValueError otherwise).
    """

    has_rsample = True

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """Reparameterized inverse-CDF draw:  z = F⁻¹(v; μ, b) = μ + b ε,  v ~ U[0, 1),

        with ε = −sign(v − ½) log(1 − 2|v − ½|) the standard Laplace quantile of v.  The
        gradient flows through F⁻¹: dz/dμ = 1, dz/db = ε.

        Verified by: tests/distributions/test_inverse_cdf.py::test_rsample_matches_scipy_by_ks_test,
        ::test_rsample_gradcheck_with_fixed_noise
        """
        v = checks.generator(rng).random(self.sample_shape(shape), dtype=self.dtype)
        return self.loc + self.scale * standard_laplace_from_uniform(v)

    def log_prob(self, x) -> Tensor:
        """log p(x) = −log 2b − |x − μ|/b  (−∞ at x = ±∞; the support is all of ℝ).

        Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy
        """
        return -(2.0 * self.scale).log() - absolute(self._value(x) - self.loc) / self.scale

    def entropy(self) -> Tensor:
        """H = log 2b + E|x − μ|/b = log 2b + 1, since |x − μ| ~ Exp(1/b) has mean b.

        Verified by: tests/distributions/test_inverse_cdf.py::test_entropy_matches_scipy
        """
        return broadcast_to(1.0 + (2.0 * self.scale).log(), self.batch_shape)

    @property
    def mean(self) -> Tensor:
        """E[x] = μ (the density is symmetric about μ).

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self) -> Tensor:
        """Var[x] = E[(x − μ)²] = 2b² (the second moment of Exp(1/b) on each side).

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return broadcast_to(2.0 * self.scale * self.scale, self.batch_shape)


@register_kl(Laplace, Laplace)
def kl_laplace_laplace(p: Laplace, q: Laplace) -> Tensor:
    """KL(p ‖ q) = log(b_q/b_p) + |μ_p − μ_q|/b_q + (b_p/b_q) e^(−|μ_p − μ_q|/b_p) − 1.

    Derivation: E_p[log p] = −1 − log 2b_p (the entropy above) and
    E_p[log q] = −log 2b_q − E_p|x − μ_q|/b_q.  With x = μ_p + y, y ~ Laplace(0, b_p) and
    d = μ_p − μ_q,  E|y + d| = |d| + b_p e^(−|d|/b_p)  (integrate each side of y = −d).

    Computed as a sum of two terms that are each ≥ 0, with r = b_p/b_q and a = |d|/b_p:

        KL = r (e^(−a) − 1 + a) + (r − 1 − log r),

    the second by ``ratio_excess`` (from b_p and b_q: r itself can overflow).  The first, for
    a < 1, is r times ``exp_taylor_remainder`` (where e^(−a) − 1 + a cancels to a²/2), and 0
    where r overflows (the second is +∞ there): the product b_p (e^(−a) − 1 + a) divided by
    b_q afterwards would be subnormal for b_p = 1e-16, a = 1e-149, and lose its digits.  From
    a = 1 on it is (|d| − b_p (1 − e^(−a)))/b_q, at most |d|/b_q, which stays finite when a
    overflows.  Halves of |d| and b_p keep |d| itself from overflowing.  Nothing cancels when
    p ≈ q, and KL(p ‖ p) is exactly 0.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo, ::test_kl_is_nonnegative_and_zero_on_the_diagonal,
    ::test_kl_is_accurate_near_the_diagonal, ::test_kl_gradients,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range,
    ::test_named_examples
    """
    half_distance = absolute(0.5 * p.loc - 0.5 * q.loc)  # |d|/2, exact
    a = 2.0 * (half_distance / p.scale)
    with np.errstate(over="ignore", under="ignore"):
        r = p.scale / q.scale
    close, finite = a.data < 1.0, np.isfinite(r.data)
    a_close, a_far = where(close, a, 0.0), where(close, 1.0, a)
    near_term = where(finite, where(finite, r, 0.0) * exp_taylor_remainder(-a_close), 0.0)
    far_term = 2.0 * ((half_distance - 0.5 * (p.scale * (1.0 - (-a_far).exp()))) / q.scale)
    return where(close, near_term, far_term) + ratio_excess(p.scale, q.scale)
