"""The exponential distribution Exp(λ) on [0, ∞), sampled by inverting its CDF.

    p(x; λ) = λ e^(−λx) for x ≥ 0,      F(x) = 1 − e^(−λx),      F⁻¹(u) = −log(1 − u)/λ

Inverse-CDF sampling: if u ~ U(0, 1) then F⁻¹(u) has CDF F, because
P(F⁻¹(u) ≤ x) = P(u ≤ F(x)) = F(x) for an increasing F.  The draw z = F⁻¹(u; λ) is a
differentiable function of λ for fixed u, so it is a reparameterized sampler.

Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
::test_rsample_matches_scipy_by_ks_test
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters
from minivae.distributions.kl import register_kl
from minivae.engine.ops import where
from minivae.engine.ops.ratios import ratio_excess
from minivae.engine.tensor import Tensor


def standard_exponential_from_uniform(u: np.ndarray) -> np.ndarray:
    """Exp(1) noise by the inverse CDF:  ε = −log(1 − u) = −log1p(−u)  for u in [0, 1).

    log1p keeps full relative accuracy for small u (where 1 − u would round); u < 1 keeps ε
    finite, and u = 0 gives ε = 0, which is in the support.  The dtype of u is kept.

    Verified by:
    tests/distributions/test_inverse_cdf.py::test_noise_is_finite_at_the_ends_of_the_grid
    """
    return -np.log1p(-u)


class Exponential(Distribution):
    """Exp(rate) for each entry of ``rate``: density λ e^(−λx) on x ≥ 0.

    rate : λ > 0, the inverse of the mean (array, Tensor or number).
    validate_args : check that λ is positive and finite (ValueError otherwise).
    """

    has_rsample = True

    def __init__(self, rate, validate_args: bool = True):
        (self.rate,) = as_parameters(rate=rate)
        if validate_args:
            checks.positive(self.rate, "rate")
        super().__init__(self.rate.shape, (), self.rate.dtype)

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """Reparameterized inverse-CDF draw:  z = F⁻¹(u; λ) = −log(1 − u)/λ = ε/λ,  u ~ U[0, 1).

        The gradient flows through F⁻¹: dz/dλ = −ε/λ² = −z/λ.  u is drawn in [0, 1), so z is
        finite.

        Same law as NumPy's direct sampler ``rng.exponential(1/λ)`` (a ziggurat method):
        ε = −log(1 − u) has survival function P(ε > t) = P(u < 1 − e^(−t)) = e^(−t), the
        Exp(1) law, and ε/λ then has P(ε/λ > t) = e^(−λt), the Exp(λ) law.  The two sequences
        differ draw by draw (different algorithms use the stream differently), not in law.

        Verified by: tests/distributions/test_inverse_cdf.py::test_rsample_matches_scipy_by_ks_test,
        ::test_inverse_cdf_exponential_equals_the_direct_sampler,
        ::test_rsample_gradcheck_with_fixed_noise
        """
        u = checks.generator(rng).random(self.sample_shape(shape), dtype=self.dtype)
        return Tensor(standard_exponential_from_uniform(u)) / self.rate

    def log_prob(self, x) -> Tensor:
        """log p(x) = log λ − λx for x ≥ 0, and −∞ for x < 0 (outside the support).

        Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
        ::test_log_prob_outside_the_support_is_minus_infinity
        """
        x = self._value(x)
        return where(x.data < 0, -np.inf, self.rate.log() - self.rate * x)

    def entropy(self) -> Tensor:
        """H = −E[log λ − λx] = −log λ + λ · (1/λ) = 1 − log λ.

        Verified by: tests/distributions/test_inverse_cdf.py::test_entropy_matches_scipy
        """
        return 1.0 - self.rate.log()

    @property
    def mean(self) -> Tensor:
        """E[x] = 1/λ.

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return 1.0 / self.rate

    @property
    def variance(self) -> Tensor:
        """Var[x] = E[x²] − E[x]² = 2/λ² − 1/λ² = 1/λ².

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return 1.0 / (self.rate * self.rate)


@register_kl(Exponential, Exponential)
def kl_exponential_exponential(p: Exponential, q: Exponential) -> Tensor:
    """KL(Exp(λ_p) ‖ Exp(λ_q)) = log(λ_p/λ_q) + λ_q/λ_p − 1 = r − 1 − log r,  r = λ_q/λ_p.

    Derivation: E_p[log p − log q] = log λ_p − λ_p E_p[x] − log λ_q + λ_q E_p[x] with
    E_p[x] = 1/λ_p.  r − 1 − log r ≥ 0 (log r ≤ r − 1) with equality only at r = 1.
    ``ratio_excess`` takes λ_q and λ_p rather than r, which can overflow (then r − log r is
    ∞ − ∞), and near r = 1 works from t = (λ_q − λ_p)/λ_p, so a small KL stays accurate.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo, ::test_kl_is_nonnegative_and_zero_on_the_diagonal,
    ::test_kl_is_accurate_near_the_diagonal, ::test_kl_gradients,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    return ratio_excess(q.rate, p.rate)
