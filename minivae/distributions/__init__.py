"""Probability distributions with reparameterized samplers, and closed-form KL divergences.

Names and parameters follow torch.distributions.  Every distribution has ``sample``,
``log_prob``, ``entropy``, ``mean`` and ``variance``; the reparameterizable ones have
``rsample``.  ``kl_divergence(p, q)`` and ``cross_entropy(p, q)`` dispatch on the pair of
types (see ``kl.py``).
"""
from minivae.distributions.base import Distribution, Independent
from minivae.distributions.kl import (
    cross_entropy,
    kl_divergence,
    register_cross_entropy,
    register_kl,
)

__all__ = [
    "Distribution", "Independent",
    "kl_divergence", "cross_entropy", "register_kl", "register_cross_entropy",
]
