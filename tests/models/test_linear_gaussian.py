"""The linear-Gaussian model: marginal, posterior and joint against independent formulas."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from minivae import gradcheck
from minivae.models import LinearGaussian


def random_model(seed: int, x_dim: int = 5, z_dim: int = 2):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((x_dim, z_dim))
    b = rng.standard_normal(x_dim)
    sigma = rng.uniform(0.3, 1.5)
    return W, b, sigma, rng


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), x_dim=st.integers(1, 6), z_dim=st.integers(1, 4))
def test_log_marginal_matches_scipy(seed, x_dim, z_dim):
    W, b, sigma, rng = random_model(seed, x_dim, z_dim)
    model = LinearGaussian(W, b, sigma)
    x, _ = model.sample(7, rng)
    expected = stats.multivariate_normal(b, W @ W.T + sigma**2 * np.eye(x_dim)).logpdf(x)
    np.testing.assert_allclose(model.log_marginal(x).data, np.reshape(expected, 7), rtol=1e-10)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), z_dim=st.integers(1, 4))
def test_posterior_is_bayes_rule(seed, z_dim):
    """p(z|x) = p(x, z) / p(x) for every z, and its moments are the textbook ones."""
    W, b, sigma, rng = random_model(seed, 5, z_dim)
    model = LinearGaussian(W, b, sigma)
    x, _ = model.sample(3, rng)
    posterior = model.posterior(x)
    S = np.linalg.inv(np.eye(z_dim) + W.T @ W / sigma**2)  # the test may use an inverse
    covariance = np.broadcast_to(posterior.covariance_matrix.data, (3, z_dim, z_dim))
    np.testing.assert_allclose(covariance, np.broadcast_to(S, (3, z_dim, z_dim)), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(posterior.loc.data, (x - b) @ W @ S / sigma**2, rtol=1e-9,
                               atol=1e-12)
    z = rng.standard_normal((4, 3, z_dim))
    np.testing.assert_allclose(posterior.log_prob(z).data,
                               model.log_joint(x, z).data - model.log_marginal(x).data,
                               rtol=1e-10, atol=1e-10)


def test_log_joint_matches_scipy():
    W, b, sigma, rng = random_model(3)
    model = LinearGaussian(W, b, sigma)
    x, z = model.sample(4, rng)
    expected = (stats.multivariate_normal(np.zeros(2)).logpdf(z)
                + stats.norm(z @ W.T + b, sigma).logpdf(x).sum(axis=-1))
    np.testing.assert_allclose(model.log_joint(x, z).data, expected, rtol=1e-12)


def test_gradients_flow_to_the_parameters():
    W, b, sigma, rng = random_model(5, 4, 2)
    x, _ = LinearGaussian(W, b, sigma).sample(3, rng)
    assert gradcheck(lambda W, b, s: LinearGaussian(W, b, s).log_marginal(x), W, b, sigma)
    assert gradcheck(lambda W: LinearGaussian(W, b, sigma).posterior(x).loc, W)


def test_encode_uses_the_given_encoder():
    W, b, sigma, rng = random_model(1)
    exact = LinearGaussian(W, b, sigma)
    x, _ = exact.sample(2, rng)
    assert exact.encode(x).loc.shape == (2, 2)
    approximate = LinearGaussian(W, b, sigma, encoder=lambda x: exact.posterior(np.zeros_like(x)))
    np.testing.assert_allclose(approximate.encode(x).loc.data,
                               exact.posterior(np.zeros_like(x)).loc.data)
    assert not np.allclose(approximate.encode(x).loc.data, exact.encode(x).loc.data)


def test_bad_arguments():
    W, b, sigma, _ = random_model(0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        LinearGaussian(W, b, -1.0)
    with pytest.raises(ValueError, match="b must have shape"):
        LinearGaussian(W, b[:3], sigma)
    with pytest.raises(ValueError, match="W must have shape"):
        LinearGaussian(W[0], b, sigma)
    with pytest.raises(ValueError, match="x must have shape"):
        LinearGaussian(W, b, sigma).log_marginal(np.zeros((2, 4)))
    with pytest.raises(TypeError, match="encoder must be callable"):
        LinearGaussian(W, b, sigma, encoder=3)
