"""The diagonal Gaussian mixture against scipy.stats sums, Bayes' rule and Monte Carlo.

Oracles: scipy.stats.norm / multivariate_normal densities summed directly, the mixture CDF for
a KS test of the sampler (fixed seed), moments within 5 standard errors, central differences.
"""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats
from hypothesis import given, settings

from minivae import Tensor, gradcheck
from minivae.distributions.mixture import GaussianMixture
from tests.distributions.helpers import assert_within_standard_errors, reals

SEED = 4242


def component_log_densities(x, loc, scale):
    """log N(x; μ_c, diag σ_c²) for one point x (d,) and parameters (K, d), by scipy."""
    return np.array([stats.multivariate_normal(loc[c], np.diag(scale[c] ** 2)).logpdf(x)
                     for c in range(len(loc))])


mixtures = st.tuples(reals((2, 3), -3, 3), reals((2, 3, 2), -4, 4), reals((2, 3, 2), 0.2, 3))


@settings(max_examples=25)
@given(parameters=mixtures, x=reals((4, 2, 2), -6, 6))
def test_log_prob_matches_direct_sum(parameters, x):
    logits, loc, scale = parameters
    d = GaussianMixture(logits, loc, scale)
    log_weights = logits - sp.logsumexp(logits, axis=-1, keepdims=True)
    components = d.component_log_prob(x).data
    log_prob = d.log_prob(x).data
    assert components.shape == (4, 2, 3) and log_prob.shape == (4, 2)
    for i in range(4):
        for b in range(2):
            expected = component_log_densities(x[i, b], loc[b], scale[b])
            np.testing.assert_allclose(components[i, b], expected, rtol=1e-10)
            np.testing.assert_allclose(log_prob[i, b], sp.logsumexp(log_weights[b] + expected),
                                       rtol=1e-10)


@settings(max_examples=25)
@given(parameters=mixtures, x=reals((4, 2, 2), -4, 4))
def test_responsibilities_follow_bayes_rule(parameters, x):
    logits, loc, scale = parameters
    weights = sp.softmax(logits, axis=-1)
    r = GaussianMixture(logits, loc, scale).responsibilities(x).data
    np.testing.assert_allclose(r.sum(axis=-1), 1.0, rtol=1e-12)
    for i in range(4):
        for b in range(2):
            joint = weights[b] * np.exp(component_log_densities(x[i, b], loc[b], scale[b]))
            np.testing.assert_allclose(r[i, b], joint / joint.sum(), rtol=1e-8, atol=1e-300)


def test_log_prob_is_finite_far_from_every_component():
    logits, loc, scale = np.array([0.0, 1.0]), np.array([[0.0], [5.0]]), np.array([[0.1], [0.2]])
    d = GaussianMixture(logits, loc, scale)
    x = np.array([[-1e3], [1e3]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        log_prob, r = d.log_prob(x).data, d.responsibilities(x).data
    log_weights = logits - sp.logsumexp(logits)
    expected = [sp.logsumexp(log_weights + stats.norm.logpdf(v, loc[:, 0], scale[:, 0]))
                for v in x[:, 0]]
    assert np.all(np.isfinite(log_prob))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-12)
    # the wider component wins on both sides: its log density falls as −(x − μ)²/(2σ²)
    np.testing.assert_allclose(r, [[0.0, 1.0], [0.0, 1.0]], atol=1e-300)
    assert np.all(d.log_prob(np.array([[np.inf], [-np.inf]])).data == -np.inf)


@settings(max_examples=10)
@given(parameters=mixtures, x=reals((2, 2), -3, 3))
def test_mixture_gradients(parameters, x):
    logits, loc, scale = parameters
    assert gradcheck(lambda a, m, s, v: GaussianMixture(a, m, s).log_prob(v), logits, loc, scale, x)
    assert gradcheck(lambda a, m, s, v: GaussianMixture(a, m, s).responsibilities(v),
                     logits, loc, scale, x)
    assert gradcheck(lambda a, m: GaussianMixture(a, m, scale).mean, logits, loc)
    assert gradcheck(lambda a, m, s: GaussianMixture(a, m, s).variance, logits, loc, scale)


def test_samples_have_the_mixture_distribution():
    logits = np.log(np.array([0.2, 0.5, 0.3]))
    loc, scale = np.array([[-3.0], [0.0], [4.0]]), np.array([[0.5], [1.0], [2.0]])
    d = GaussianMixture(logits, loc, scale)
    x = d.sample(np.random.default_rng(SEED), 20000).data
    assert x.shape == (20000, 1)
    cdf = lambda v: np.exp(logits) @ stats.norm.cdf((v - loc) / scale)
    assert stats.kstest(x[:, 0], cdf).pvalue > 1e-3
    assert_within_standard_errors(x, d.mean.data)
    assert_within_standard_errors((x - d.mean.data) ** 2, d.variance.data)


def test_mean_and_variance():
    rng = np.random.default_rng(SEED)
    logits, loc, scale = rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 4)), rng.uniform(
        0.5, 2, size=(2, 3, 4))
    d = GaussianMixture(logits, loc, scale)
    weights = sp.softmax(logits, axis=-1)[..., None]
    mean = (weights * loc).sum(axis=1)
    second_moment = (weights * (scale**2 + loc**2)).sum(axis=1)  # E[x²] = Σ π (σ² + μ²)
    np.testing.assert_allclose(d.mean.data, mean, rtol=1e-12)
    np.testing.assert_allclose(d.variance.data, second_moment - mean**2, rtol=1e-10)
    x = d.sample(rng, 20000).data
    assert x.shape == (20000, 2, 4)
    assert_within_standard_errors(x, d.mean.data)
    assert_within_standard_errors((x - d.mean.data) ** 2, d.variance.data)


def test_score_identity():
    """E_p[∇ log p(x)] = 0 for each parameter: mean of per-draw gradients within 5 SE of 0."""
    logits, loc, scale = np.array([0.3, -0.2]), np.array([[-1.0, 0.5], [1.0, 0.0]]), np.array(
        [[0.7, 1.0], [1.2, 0.5]])
    n = 20000
    x = GaussianMixture(logits, loc, scale).sample(np.random.default_rng(SEED), n)
    leaves = [Tensor(np.broadcast_to(v, (n,) + v.shape).copy(), requires_grad=True)
              for v in (logits, loc, scale)]
    GaussianMixture(*leaves).log_prob(x).sum().backward()
    for leaf in leaves:
        assert_within_standard_errors(leaf.grad, 0.0)


def test_batch_broadcasting():
    logits = np.array([0.0, 1.0, -1.0])  # shared weights
    loc = np.zeros((4, 3, 2))
    scale = np.ones((1, 3, 1))  # one scale per component, shared by batch and coordinates
    d = GaussianMixture(logits, loc, scale)
    assert d.batch_shape == (4,) and d.event_shape == (2,)
    assert d.mean.shape == (4, 2) and d.variance.shape == (4, 2)
    assert d.sample(np.random.default_rng(0), (5,)).shape == (5, 4, 2)
    assert d.log_prob(np.zeros(2)).shape == (4,)
    np.testing.assert_allclose(d.log_prob(np.zeros(2)).data, -np.log(2 * np.pi), rtol=1e-12)


def test_mixture_validation_and_dtype():
    good = (np.zeros(2), np.zeros((2, 1)), np.ones((2, 1)))
    for index, bad, name in ((2, -np.ones((2, 1)), "scale"), (1, np.full((2, 1), np.nan), "loc"),
                             (0, np.array([0.0, np.nan]), "logits"),
                             (1, np.zeros((3, 1)), "loc and scale must broadcast"),
                             (0, np.zeros(3), "K = 3 components"), (1, np.zeros(2), "loc")):
        arguments = list(good)
        arguments[index] = bad
        with pytest.raises(ValueError, match=name):
            GaussianMixture(*arguments)
    with pytest.raises(ValueError, match="batch axes"):
        GaussianMixture(np.zeros((3, 2)), np.zeros((4, 2, 1)), np.ones((2, 1)))
    with pytest.raises(NotImplementedError, match="closed-form entropy"):
        GaussianMixture(*good).entropy()
    d = GaussianMixture(*(a.astype(np.float32) for a in good))
    x = d.sample(np.random.default_rng(0), (3,))
    for out in (x, d.log_prob(x), d.responsibilities(x), d.mean, d.variance):
        assert out.dtype == np.float32
