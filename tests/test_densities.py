"""The densities behind the VAE, checked against scipy and Monte Carlo."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import special, stats

import minivae
from minivae.distributions import (
    BernoulliLogits,
    DiagonalNormal,
    Independent,
    Normal,
    standard_normal_log_prob,
)
from minivae.engine.tensor import Tensor


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


@given(seed=st.integers(0, 2**16), soft=st.booleans())
def test_bernoulli_log_prob_matches_direct_formula(seed, soft):
    rng = np.random.default_rng(seed)
    logits = rng.uniform(-15, 15, (3, 6))
    x = rng.random((3, 6)) if soft else (rng.random((3, 6)) < 0.5).astype(float)
    p = special.expit(logits)
    expected = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(-1)
    density = BernoulliLogits(Tensor(logits), soft_targets=soft)
    np.testing.assert_allclose(density.log_prob(x).data, expected, rtol=1e-9, atol=1e-9)
    if soft:  # grey levels are refused unless asked for, on the fused and the general path
        for shape in ((3, 6), (1, 3, 6)):
            with pytest.raises(ValueError, match="soft_targets=True"):
                BernoulliLogits(Tensor(logits.reshape(shape))).log_prob(x.reshape(shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_log_prob_is_finite_for_huge_logits(dtype):
    logits = Tensor(np.array([[1e4, -1e4, 1e4, -1e4]], dtype), requires_grad=True)
    x = np.array([[1, 0, 0, 1]], dtype)
    log_p = BernoulliLogits(logits).log_prob(x)
    # Right answers cost nothing; each wrong one costs |logit| nats.
    np.testing.assert_allclose(log_p.data, [-2e4])
    log_p.sum().backward()
    assert np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(logits.grad, x - special.expit(logits.data.astype(float)))


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


def test_bernoulli_fused_and_general_paths_agree():
    rng = np.random.default_rng(3)
    logits = rng.uniform(-20, 20, (2, 3, 5))
    x = (rng.random((2, 3, 5)) < 0.5).astype(float)
    general = BernoulliLogits(Tensor(logits)).log_prob(x).data  # 3-D: the general path
    fused_rows = BernoulliLogits(Tensor(logits.reshape(6, 5))).log_prob(x.reshape(6, 5)).data
    np.testing.assert_allclose(general.reshape(6), fused_rows, rtol=1e-12)
