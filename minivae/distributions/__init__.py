"""Probability distributions with reparameterized samplers, and closed-form KL divergences.

Names and parameters follow torch.distributions.  Every distribution has ``sample``,
``log_prob``, ``entropy``, ``mean`` and ``variance``; the reparameterizable ones have
``rsample``.  A diagonal Gaussian over the last axis is ``Independent(Normal(loc, scale), 1)``;
``DiagonalNormal`` (the encoder's q(z|x), in log-variance) and ``BernoulliLogits`` (the
decoder's pixels) are the two a Bernoulli VAE trains with.
``kl_divergence(p, q)`` and ``cross_entropy(p, q)`` dispatch on the pair of types (``kl.py``);
each family's module registers its closed forms, so all of them are imported here.
"""
from minivae.distributions.base import Distribution, Independent
from minivae.distributions.bernoulli import Bernoulli, BernoulliLogits
from minivae.distributions.beta import Beta
from minivae.distributions.categorical import Categorical
from minivae.distributions.diagonal_normal import DiagonalNormal, standard_normal_log_prob
from minivae.distributions.dirichlet import Dirichlet
from minivae.distributions.exponential import Exponential
from minivae.distributions.gamma import Gamma
from minivae.distributions.gumbel import Gumbel
from minivae.distributions.kl import (
    cross_entropy,
    kl_divergence,
    register_cross_entropy,
    register_kl,
)
from minivae.distributions.laplace import Laplace
from minivae.distributions.mixture import GaussianMixture
from minivae.distributions.multivariate_normal import (
    MultivariateNormal,
    scale_tril_from_unconstrained,
)
from minivae.distributions.normal import Normal
from minivae.distributions.poisson import Poisson
from minivae.distributions.relaxed import RelaxedOneHotCategorical, straight_through
from minivae.distributions.uniform import Uniform

__all__ = [
    "Distribution", "Independent",
    "Normal", "DiagonalNormal", "standard_normal_log_prob",
    "MultivariateNormal", "scale_tril_from_unconstrained",
    "Bernoulli", "BernoulliLogits", "Categorical", "Poisson",
    "Exponential", "Gamma", "Beta", "Dirichlet", "Laplace", "Uniform", "Gumbel",
    "RelaxedOneHotCategorical", "straight_through", "GaussianMixture",
    "kl_divergence", "cross_entropy", "register_kl", "register_cross_entropy",
]
