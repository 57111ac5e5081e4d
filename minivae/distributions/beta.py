"""The Beta distribution on [0, 1]: the two-category Dirichlet.

    p(x) = x^(α − 1) (1 − x)^(β − 1) / B(α, β),   B(α, β) = Γ(α) Γ(β) / Γ(α + β)

If (x, 1 − x) ~ Dir(α, β) then x ~ Beta(α, β), which is how ``rsample`` draws: x = g₁/(g₁ + g₂)
with g₁ ~ Gamma(α, 1), g₂ ~ Gamma(β, 1), differentiated implicitly through each gamma.

Verified by: tests/distributions/test_beta.py::test_samplers_match_scipy_by_ks,
::test_rsample_gradient_is_unbiased
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters, require_log_gamma_finite
from minivae.distributions.dirichlet import simplex_kl, simplex_rsample
from minivae.distributions.gamma import log_power
from minivae.distributions.kl import register_kl
from minivae.engine.ops import stack, where
from minivae.engine.ops.special import digamma, lgamma
from minivae.engine.tensor import Tensor


def log_beta(a: Tensor, b: Tensor) -> Tensor:
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b).

    Verified by: tests/distributions/test_beta.py::test_log_prob_matches_scipy
    """
    return lgamma(a) + lgamma(b) - lgamma(a + b)


class Beta(Distribution):
    """Beta(α, β) with concentration1 = α > 0 (the weight of x) and concentration0 = β > 0.

    log_prob is −∞ outside [0, 1].  At x = 0 it is the limit of x^(α − 1) (+∞, log β, or −∞
    for α <, =, > 1: B(1, β) = 1/β) and at x = 1 likewise with β.  ``sample`` is NumPy's
    ``Generator.beta``; ``rsample`` normalizes two implicitly differentiated gammas.
    """

    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args: bool = True):
        self.concentration1, self.concentration0 = as_parameters(
            concentration1=concentration1, concentration0=concentration0)
        if validate_args:
            for name, value in (("concentration1", self.concentration1),
                                ("concentration0", self.concentration0)):
                checks.positive(value, name)
                require_log_gamma_finite(value, name)
        shape = np.broadcast_shapes(self.concentration1.shape, self.concentration0.shape)
        super().__init__(shape, (), self.concentration1.dtype)

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """NumPy's Beta sampler (no gradient).

        Verified by: tests/distributions/test_beta.py::test_samplers_match_scipy_by_ks
        """
        draws = checks.generator(rng).beta(self.concentration1.data, self.concentration0.data,
                                    size=self.sample_shape(shape))
        return Tensor(draws.astype(self.dtype))

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """x = g₁/(g₁ + g₂), the first coordinate of a Dir(α, β) draw (``simplex_rsample``).

        Verified by: tests/distributions/test_beta.py::test_rsample_gradient_is_unbiased
        """
        zeros = Tensor(np.zeros(self.batch_shape, dtype=self.dtype))  # broadcasts α and β
        pair = stack([self.concentration1 + zeros, self.concentration0 + zeros], axis=-1)
        return simplex_rsample(rng, pair, shape)[..., 0]

    def log_prob(self, x) -> Tensor:
        """log p(x) = (α − 1) log x + (β − 1) log1p(−x) − log B(α, β).

        Verified by: tests/distributions/test_beta.py::test_log_prob_matches_scipy,
        ::test_log_prob_at_the_edges
        """
        x = self._value(x)
        outside = (x.data < 0) | (x.data > 1)
        x = where(outside, 0.5, x)
        alpha, beta = self.concentration1, self.concentration0
        density = (log_power(x, alpha - 1) + log_power(x, beta - 1, complement=True)
                   - log_beta(alpha, beta))
        return where(outside, -np.inf, density)

    def entropy(self) -> Tensor:
        """H = log B(α, β) − (α − 1) ψ(α) − (β − 1) ψ(β) + (α + β − 2) ψ(α + β).

        Verified by: tests/distributions/test_beta.py::test_entropy_mean_variance_match_scipy
        """
        alpha, beta = self.concentration1, self.concentration0
        return (log_beta(alpha, beta) - (alpha - 1) * digamma(alpha)
                - (beta - 1) * digamma(beta) + (alpha + beta - 2) * digamma(alpha + beta))

    @property
    def mean(self) -> Tensor:
        """E[x] = α/(α + β).

        Verified by: tests/distributions/test_beta.py::test_entropy_mean_variance_match_scipy
        """
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def variance(self) -> Tensor:
        """Var[x] = αβ / ((α + β)² (α + β + 1)) = m (1 − m)/(α + β + 1),  m = α/(α + β).

        The second form never squares α + β, so it does not overflow for huge concentrations.
        Verified by: tests/distributions/test_beta.py::test_entropy_mean_variance_match_scipy
        """
        alpha, beta = self.concentration1, self.concentration0
        total = alpha + beta
        return (alpha / total) * (beta / total) / (total + 1)


@register_kl(Beta, Beta)
def kl_beta_beta(p: Beta, q: Beta) -> Tensor:
    """KL(Beta(a₁, a₀) ‖ Beta(b₁, b₀)) = log B(b₁, b₀) − log B(a₁, a₀) + (a₁ − b₁) ψ(a₁)
                                        + (a₀ − b₀) ψ(a₀) + (b₁ − a₁ + b₀ − a₀) ψ(a₁ + a₀),

    from E[log x] = ψ(a₁) − ψ(a₁ + a₀) and E[log(1 − x)] = ψ(a₀) − ψ(a₁ + a₀): the Dirichlet
    KL over the pairs (a₁, a₀) and (b₁, b₀), evaluated by ``simplex_kl`` without cancellation.

    Verified by: tests/distributions/test_beta.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    def pairs(d: Beta) -> Tensor:
        zeros = Tensor(np.zeros(d.batch_shape, dtype=d.dtype))  # broadcasts the two
        return stack([d.concentration1 + zeros, d.concentration0 + zeros], axis=-1)

    return simplex_kl(pairs(p), pairs(q))
