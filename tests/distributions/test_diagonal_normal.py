"""q(z|x) = N(μ, diag σ²), the encoder's Gaussian: log-density against scipy, the KL to
N(0, I) against Monte Carlo and the registry, the reparameterized draw, and log-variances of
±50."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import minivae
from minivae import Tensor
from minivae.distributions import (
    DiagonalNormal,
    Independent,
    Normal,
    kl_divergence,
    standard_normal_log_prob,
)
from tests.distributions.helpers import DTYPES, assert_finite, leaf


def random_normal(seed, shape=(4, 3)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.uniform(-3, 2, shape)


@given(seed=st.integers(0, 2**16))
def test_diagonal_normal_log_prob_matches_scipy(seed):
    loc, log_var = random_normal(seed)
    z = np.random.default_rng(seed + 1).standard_normal(loc.shape) * 2
    q = DiagonalNormal(Tensor(loc), Tensor(log_var))
    expected = stats.norm.logpdf(z, loc, np.exp(0.5 * log_var)).sum(axis=-1)
    np.testing.assert_allclose(q.log_prob(z).data, expected, rtol=1e-12)
    np.testing.assert_allclose(standard_normal_log_prob(Tensor(z)).data,
                               stats.norm.logpdf(z).sum(axis=-1), rtol=1e-12)


@given(seed=st.integers(0, 2**16))
def test_kl_matches_monte_carlo(seed):
    """KL(q‖p) = E_q[log q(z) − log p(z)]: Monte Carlo agrees within 5 standard errors."""
    loc, log_var = random_normal(seed, (3,))
    q = DiagonalNormal(Tensor(loc), Tensor(log_var))
    n = 20_000
    eps = np.random.default_rng(seed).standard_normal((n, 3))
    z = loc + np.exp(0.5 * log_var) * eps
    log_ratio = (stats.norm.logpdf(z, loc, np.exp(0.5 * log_var)).sum(-1)
                 - stats.norm.logpdf(z).sum(-1))
    standard_error = log_ratio.std(ddof=1) / np.sqrt(n)
    assert abs(q.kl_to_standard_normal().item() - log_ratio.mean()) < 5 * standard_error + 1e-12


def test_kl_is_zero_only_at_the_prior_and_positive_elsewhere():
    zero = DiagonalNormal(Tensor(np.zeros(4)), Tensor(np.zeros(4)))
    assert zero.kl_to_standard_normal().item() == 0.0
    loc, log_var = random_normal(0, (50, 4))
    assert np.all(DiagonalNormal(Tensor(loc), Tensor(log_var)).kl_to_standard_normal().data > 0)


def test_rsample_is_reparameterized():
    """z = μ + σ ε: dz/dμ = 1 and dz/d(log σ²) = ½ σ ε, for the ε that was drawn."""
    loc, log_var = random_normal(3, (5,))
    mu = Tensor(loc, requires_grad=True)
    lv = Tensor(log_var, requires_grad=True)
    z = DiagonalNormal(mu, lv).rsample(np.random.default_rng(7))
    eps = np.random.default_rng(7).standard_normal(5)
    np.testing.assert_allclose(z.data, loc + np.exp(0.5 * log_var) * eps)
    z.sum().backward()
    np.testing.assert_allclose(mu.grad, np.ones(5))
    np.testing.assert_allclose(lv.grad, 0.5 * np.exp(0.5 * log_var) * eps)
    assert minivae.gradcheck(
        lambda m, v: DiagonalNormal(m, v).rsample(np.random.default_rng(7)), loc, log_var)


def test_rsample_keeps_float32():
    q = DiagonalNormal(Tensor(np.zeros(3, np.float32)), Tensor(np.zeros(3, np.float32)))
    assert q.rsample(np.random.default_rng(0)).dtype == np.float32


def test_densities_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        DiagonalNormal(Tensor(np.zeros(3)), Tensor(np.zeros(4)))


def test_fused_rsample_and_kl_equal_separate_methods():
    loc, log_var = random_normal(11, (5, 3))
    mus = [Tensor(loc, requires_grad=True) for _ in range(2)]
    lvs = [Tensor(log_var, requires_grad=True) for _ in range(2)]
    weights = np.random.default_rng(1).standard_normal((5, 3))

    q = DiagonalNormal(mus[0], lvs[0])
    z, kl = q.rsample_and_kl(np.random.default_rng(7))
    ((z * weights).sum() + kl.sum()).backward()

    q = DiagonalNormal(mus[1], lvs[1])
    z2, kl2 = q.rsample(np.random.default_rng(7)), q.kl_to_standard_normal()
    ((z2 * weights).sum() + kl2.sum()).backward()

    np.testing.assert_allclose(z.data, z2.data, rtol=1e-12)
    np.testing.assert_allclose(kl.data, kl2.data, rtol=1e-12)
    np.testing.assert_allclose(mus[0].grad, mus[1].grad, rtol=1e-12)
    np.testing.assert_allclose(lvs[0].grad, lvs[1].grad, rtol=1e-12)


def test_kl_agrees_with_the_registry():
    """The VAE's log-variance KL is the registered Normal ‖ Normal KL, value and gradient."""
    loc, log_var = random_normal(5, (4, 3))
    grads = []
    for use_registry in (False, True):
        mu, lv = Tensor(loc, requires_grad=True), Tensor(log_var, requires_grad=True)
        q = DiagonalNormal(mu, lv)
        prior = Independent(Normal(np.zeros((4, 3)), np.ones((4, 3))), 1)
        kl = minivae.kl_divergence(q, prior) if use_registry else q.kl_to_standard_normal()
        kl.sum().backward()
        grads.append((kl.data, mu.grad, lv.grad))
    for ours, registry in zip(*grads):
        np.testing.assert_allclose(ours, registry, rtol=1e-12, atol=1e-12)


# -- at extreme log-variances ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_var", [50.0, -50.0])
def test_diagonal_normal_at_extreme_log_variance(dtype, log_var):
    mu, lv = leaf([[0.3, -1.0, 2.0]], dtype), leaf([[log_var] * 3], dtype)
    q = DiagonalNormal(mu, lv)
    z, kl = q.rsample_and_kl(np.random.default_rng(1))
    assert z.dtype == kl.dtype == dtype
    # KL = ½ Σ (μ² + σ² − 1 − log σ²): at log σ² = 50 σ² dominates, at −50 the −log σ² term
    expected = 0.5 * np.sum(np.array([0.09, 1.0, 4.0]) + np.exp(log_var) - 1 - log_var)
    np.testing.assert_allclose(kl.data, [expected], rtol=1e-5)
    prior = DiagonalNormal(Tensor(np.zeros((1, 3), dtype)), Tensor(np.zeros((1, 3), dtype)))
    total = (z.sum() + kl.sum() + q.log_prob(z).sum() + q.entropy().sum()
             + kl_divergence(q, prior).sum() + q.rsample(np.random.default_rng(2)).sum())
    assert_finite(total.data)
    total.backward()
    assert_finite(mu.grad, lv.grad)
