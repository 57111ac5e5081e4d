"""Every pair of families with a closed-form KL has one registered, and the rest raise.

The values themselves are checked in each family's test file; here the registry's coverage is:
a finite, non-negative value for each supported pair, +∞ where p's support is not inside q's,
NotImplementedError for an unregistered pair, and a direct cross-entropy for the families that
have one.
"""
from __future__ import annotations

import numpy as np
import pytest

from minivae.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Dirichlet,
    Exponential,
    Gamma,
    Gumbel,
    Independent,
    Laplace,
    MultivariateNormal,
    Normal,
    Poisson,
    Uniform,
    cross_entropy,
    kl_divergence,
)
from minivae.distributions.kl import _CROSS_ENTROPY, _lookup

L = np.array([[1.0, 0.0], [0.3, 0.8]])
EXAMPLES = {
    "Normal": (lambda: Normal(0.3, 1.2), lambda: Normal(-0.2, 0.7)),
    "MVN": (lambda: MultivariateNormal(np.array([0.1, 0.2]), L),
            lambda: MultivariateNormal(np.zeros(2), 1.5 * np.eye(2))),
    "diagonal": (lambda: Independent(Normal(np.array([0.1, 0.2]), np.array([1.0, 0.5])), 1),
                 lambda: Independent(Normal(np.zeros(2), np.ones(2)), 1)),
    "Bernoulli": (lambda: Bernoulli(logits=0.4), lambda: Bernoulli(probs=0.7)),
    "Categorical": (lambda: Categorical(probs=np.array([0.2, 0.3, 0.5])),
                    lambda: Categorical(logits=np.array([0.0, 1.0, -1.0]))),
    "Poisson": (lambda: Poisson(2.0), lambda: Poisson(3.5)),
    "Exponential": (lambda: Exponential(1.5), lambda: Exponential(0.5)),
    "Gamma": (lambda: Gamma(2.0, 1.5), lambda: Gamma(3.0, 0.5)),
    "Beta": (lambda: Beta(2.0, 3.0), lambda: Beta(1.5, 1.5)),
    "Dirichlet": (lambda: Dirichlet(np.array([1.0, 2.0, 3.0])),
                  lambda: Dirichlet(np.array([2.0, 2.0, 2.0]))),
    "Laplace": (lambda: Laplace(0.0, 1.0), lambda: Laplace(1.0, 2.0)),
    "Uniform": (lambda: Uniform(0.2, 0.5), lambda: Uniform(0.0, 1.0)),
    "Gumbel": (lambda: Gumbel(0.0, 1.0), lambda: Gumbel(0.5, 2.0)),
}


FINITE_PAIRS = [(name, name) for name in EXAMPLES] + [
    ("diagonal", "MVN"), ("MVN", "diagonal"), ("Exponential", "Gamma"), ("Gamma", "Exponential"),
]


@pytest.mark.parametrize("p_name, q_name", FINITE_PAIRS)
def test_every_required_pair_has_a_closed_form(p_name, q_name):
    p, q = EXAMPLES[p_name][0](), EXAMPLES[q_name][1]()
    kl = kl_divergence(p, q).data
    assert np.all(np.isfinite(kl)) and np.all(kl > 0)
    np.testing.assert_allclose(kl_divergence(p, p).data, 0.0, atol=1e-12)


@pytest.mark.parametrize("p_name", ["Normal", "Laplace", "Gumbel", "Exponential"])
def test_unbounded_support_against_uniform_is_infinite(p_name):
    assert np.all(kl_divergence(EXAMPLES[p_name][0](), Uniform(0.0, 1.0)).data == np.inf)


def test_unregistered_pair_names_both_types():
    with pytest.raises(NotImplementedError, match="Beta ‖ Gamma"):
        kl_divergence(Beta(2.0, 3.0), Gamma(2.0, 1.0))


@pytest.mark.parametrize("name", ["Normal", "MVN", "Bernoulli", "Categorical"])
def test_cross_entropy_has_a_direct_closed_form(name):
    p, q = EXAMPLES[name][0](), EXAMPLES[name][1]()
    assert _lookup(_CROSS_ENTROPY, p, q) is not None
    np.testing.assert_allclose(cross_entropy(p, q).data,
                               (p.entropy() + kl_divergence(p, q)).data, rtol=1e-12)
