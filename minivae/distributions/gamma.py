"""The Gamma distribution with shape α and rate β.

    p(x) = βᵅ xᵅ⁻¹ e^(−βx) / Γ(α),   x ≥ 0     (Exponential(λ) is Gamma(1, λ))

``rsample`` is reparameterized implicitly through the CDF (see ``incomplete_gamma.py``).

Verified by: tests/distributions/test_gamma.py::test_log_prob_matches_scipy,
tests/distributions/test_incomplete_gamma.py::test_rsample_gradient_is_unbiased
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters, require_log_gamma_finite
from minivae.distributions.exponential import Exponential
from minivae.distributions.incomplete_gamma import (
    draw_log_standard_gamma,
    regularized_gamma_p,
    standard_gamma_from_log,
)
from minivae.distributions.kl import register_kl
from minivae.engine.ops import log, log1p, where
from minivae.engine.ops.elementwise import cast
from minivae.engine.ops.ratios import generalized_kl, log_ratio, log_ratio_of_ratios
from minivae.engine.ops.special import digamma, lgamma
from minivae.engine.ops.stirling import stirling_gap_bregman
from minivae.engine.tensor import Tensor


def log_power(x: Tensor, exponent: Tensor, complement: bool = False) -> Tensor:
    """log(bᵖ) = p · log b for b = x (or b = 1 − x with ``complement``), b ≥ 0.

    At b = 0 it is the limit of bᵖ: log 0ᵖ = −∞ for p > 0, 0 for p = 0, +∞ for p < 0, with
    gradient 0 there (the function has no finite derivative at the edge).  NaN for b < 0.
    With ``complement``, log(1 − x) is computed as log1p(−x), exact for small x.

    Verified by: tests/distributions/test_gamma.py::test_log_prob_at_the_edge_of_the_support
    """
    base = 1 - x.data if complement else x.data
    positive = base > 0
    safe = where(positive, x, 0.5)  # any point of (0, 1) keeps both logarithms finite
    log_base = log1p(-safe) if complement else log(safe)
    p = exponent.data
    limit = np.where(p > 0, -np.inf, np.where(p < 0, np.inf, 0.0))
    edge = np.where(base == 0, limit, np.nan).astype(x.dtype)
    return where(positive, exponent * log_base, edge)


class Gamma(Distribution):
    """Gamma(α, β) with concentration (shape) α > 0 and rate β > 0; mean α/β.

    log_prob is −∞ for x < 0 and x = +∞; at x = 0 it is the limit (+∞, log β or −∞ for α <, =,
    > 1).  ``sample`` is NumPy's ``Generator.gamma`` (scale = 1/β); ``rsample`` draws
    Gamma(α, 1) in log space and carries the implicit gradient of the module doc.
    """

    has_rsample = True

    def __init__(self, concentration, rate, validate_args: bool = True):
        self.concentration, self.rate = as_parameters(concentration=concentration, rate=rate)
        if validate_args:
            checks.positive(self.concentration, "concentration")
            checks.positive(self.rate, "rate")
            require_log_gamma_finite(self.concentration, "concentration")
        shape = np.broadcast_shapes(self.concentration.shape, self.rate.shape)
        super().__init__(shape, (), self.concentration.dtype)

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """NumPy's Gamma sampler with scale θ = 1/β (no gradient).

        Verified by: tests/distributions/test_gamma.py::test_samplers_match_scipy_by_ks
        """
        draws = checks.generator(rng).gamma(self.concentration.data, 1 / self.rate.data,
                                     size=self.sample_shape(shape))
        return Tensor(draws.astype(self.dtype))

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """z/β with z ~ Gamma(α, 1);  dz/dα = −(∂P/∂α)/f(z) (implicit),  d(z/β)/dβ = −z/β².

        The backward pass sums a series or fraction per draw: < 100 terms up to α = 10, then
        fewer than 10√α.

        Verified by:
        tests/distributions/test_incomplete_gamma.py::test_rsample_gradient_is_unbiased,
        ::test_implicit_derivative_follows_the_inverse_cdf
        """
        log_z = draw_log_standard_gamma(checks.generator(rng), self.concentration.data,
                                        self.sample_shape(shape))
        return standard_gamma_from_log(self.concentration, log_z) / self.rate

    def cdf(self, x) -> Tensor:
        """F(x) = P(α, βx), differentiable in α, β and x.

        Verified by: tests/distributions/test_incomplete_gamma.py::test_cdf_gradcheck
        """
        return regularized_gamma_p(self.concentration, self.rate * self._value(x))

    def log_prob(self, x) -> Tensor:
        """log p(x) = α log β + (α − 1) log x − βx − log Γ(α).

        Verified by: tests/distributions/test_gamma.py::test_log_prob_matches_scipy,
        ::test_log_prob_at_the_edge_of_the_support
        """
        x = self._value(x)
        outside = (x.data < 0) | (x.data == np.inf)
        x = where(outside, 1.0, x)  # keeps inf − inf out of the arithmetic below
        alpha, beta = self.concentration, self.rate
        density = alpha * log(beta) + log_power(x, alpha - 1) - beta * x - lgamma(alpha)
        return where(outside, -np.inf, density)

    def entropy(self) -> Tensor:
        """H = α − log β + log Γ(α) + (1 − α) ψ(α).

        Verified by: tests/distributions/test_gamma.py::test_entropy_mean_variance_match_scipy
        """
        alpha = self.concentration
        return alpha - log(self.rate) + lgamma(alpha) + (1 - alpha) * digamma(alpha)

    @property
    def mean(self) -> Tensor:
        """E[x] = α/β.

        Verified by: tests/distributions/test_gamma.py::test_entropy_mean_variance_match_scipy
        """
        return self.concentration / self.rate

    @property
    def variance(self) -> Tensor:
        """Var[x] = α/β².

        Verified by: tests/distributions/test_gamma.py::test_entropy_mean_variance_match_scipy
        """
        return self.concentration / (self.rate * self.rate)


def gamma_kl(alpha_p: Tensor, rate_p: Tensor, alpha_q: Tensor, rate_q: Tensor) -> Tensor:
    """KL(Gamma(αp, βp) ‖ Gamma(αq, βq))
        = (αp − αq) ψ(αp) − log Γ(αp) + log Γ(αq) + αq (log βp − log βq) + αp (βq − βp)/βp.

    Each term grows like α log α, so for large shapes the textbook form is a difference of
    huge numbers (Gamma(1e15, 1) ‖ Gamma(1e15 + 3, 1) came out 0.0).  Split log Γ = g + (z log z
    − z) with g the ``stirling_gap`` (of size log z), and minimize over the rate ratio: the
    KL is the sum of two terms ≥ 0,

        KL = αq (ρ − 1 − log ρ) + B(αq; αp),    ρ = (αp/αq)(βq/βp),

    where B is the Bregman divergence of g (``stirling_gap_bregman``) and the first is the KL
    between Gamma(αp, βp) and the Gamma of shape αq with the same mean, ``generalized_kl`` of
    αq and αq ρ = αp βq/βp given by its logarithm (``log_ratio_of_ratios`` for log ρ: ρ itself
    may overflow).  At the optimal rate
    (ρ = 1) only B remains; at equal shapes only the first, the Exponential-like rate term.
    Like log Γ and ψ, it is evaluated in float64 and rounded to the parameters' dtype.

    Verified by: tests/distributions/test_gamma.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    dtype = alpha_p.dtype  # evaluated in float64, as log Γ and ψ are, then rounded to dtype
    alpha_p, rate_p, alpha_q, rate_q = (cast(t, np.float64)
                                        for t in (alpha_p, rate_p, alpha_q, rate_q))
    log_rho = log_ratio_of_ratios(rate_q, rate_p, alpha_q, alpha_p)
    log_matching_shape = log_ratio(rate_q, rate_p) + alpha_p.log()  # log(αq ρ) = log(αp βq/βp)
    return cast(generalized_kl(alpha_q, log_matching_shape, log_rho)
                + stirling_gap_bregman(alpha_q, alpha_p), dtype)


def _ones_like(rate: Tensor) -> Tensor:
    return Tensor(np.ones(rate.shape, dtype=rate.dtype))


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p: Gamma, q: Gamma) -> Tensor:
    return gamma_kl(p.concentration, p.rate, q.concentration, q.rate)


@register_kl(Exponential, Gamma)
def _kl_exponential_gamma(p: Exponential, q: Gamma) -> Tensor:
    """Exponential(λ) = Gamma(1, λ), so the Gamma formula applies with αp = 1."""
    return gamma_kl(_ones_like(p.rate), p.rate, q.concentration, q.rate)


@register_kl(Gamma, Exponential)
def _kl_gamma_exponential(p: Gamma, q: Exponential) -> Tensor:
    """Exponential(λ) = Gamma(1, λ), so the Gamma formula applies with αq = 1."""
    return gamma_kl(p.concentration, p.rate, _ones_like(q.rate), q.rate)
