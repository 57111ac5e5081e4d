"""Distributions at the edges of their parameters: huge logits, huge and tiny variances,
probabilities of exactly 0 and 1, in float32 and float64.

Each value is either finite and right, or ±∞ where infinity is the exact answer; no value and
no gradient is NaN.  Expected values come from the math (limits worked out in the comments) or
from scipy's xlogy, never from the code under test.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sp

from minivae import Tensor
from minivae.distributions import (
    Bernoulli,
    BernoulliLogits,
    Categorical,
    DiagonalNormal,
    Independent,
    Normal,
    RelaxedOneHotCategorical,
    cross_entropy,
    kl_divergence,
)

DTYPES = [np.float32, np.float64]
HUGE = 1e4


def leaf(values, dtype) -> Tensor:
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def assert_finite(*arrays):
    for array in arrays:
        assert array is not None and np.all(np.isfinite(array)), array


def assert_no_nan(*arrays):
    for array in arrays:
        assert array is not None and not np.any(np.isnan(array)), array


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_and_bernoulli_logits_at_huge_logits(dtype):
    logits = [HUGE, -HUGE, HUGE, -HUGE]
    x = np.array([1, 0, 0, 1], dtype)
    # right answers cost 0 nats, each wrong one |l| nats (softplus(1e4) = 1e4 exactly in floats)
    for make in (lambda l: Bernoulli(logits=l),
                 lambda l: Independent(Bernoulli(logits=l), 1),
                 lambda l: BernoulliLogits(l.reshape(1, 4)),  # the fused 2-D path
                 lambda l: BernoulliLogits(l.reshape(1, 1, 4))):  # the general path
        l = leaf(logits, dtype)
        d = make(l)
        value = d.log_prob(x.reshape(d.batch_shape + d.event_shape)
                           if d.event_shape else x)
        assert value.dtype == dtype
        np.testing.assert_allclose(value.data.sum(), -2 * HUGE, rtol=1e-6)
        (value.sum() + d.entropy().sum()).backward()
        assert_finite(l.grad)
        # d/dl log p(x) = x − σ(l); the entropy's slope −l σ(l) σ(−l) underflows to 0 here
        np.testing.assert_allclose(l.grad, x - sp.expit(np.array(logits)), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_at_huge_logits(dtype):
    l = leaf([[HUGE, 0.0, -HUGE], [-HUGE, -HUGE, HUGE]], dtype)
    d = Categorical(logits=l)
    value = d.log_prob(np.array([1, 0]))
    # log π_1 = 0 − logsumexp(1e4, 0, −1e4) = −1e4;  log π_0 = −1e4 − 1e4 = −2e4
    np.testing.assert_allclose(value.data, [-HUGE, -2 * HUGE], rtol=1e-6)
    (value.sum() + d.entropy().sum() + d.mean.sum() + d.variance.sum()).backward()
    assert_finite(value.data, l.grad, d.entropy().data)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relaxed_categorical_at_huge_logits(dtype):
    l, tau = leaf([[HUGE, 0.0, -HUGE]], dtype), leaf(0.5, dtype)
    d = RelaxedOneHotCategorical(tau, logits=l)
    inside = np.full((1, 3), 1 / 3, dtype)
    value = d.log_prob(inside)
    assert_finite(value.data)
    y = d.rsample(np.random.default_rng(0), (4,))
    assert_finite(y.data)
    np.testing.assert_allclose(y.data.sum(axis=-1), 1, rtol=1e-5)
    (value.sum() + (y * np.arange(3, dtype=dtype)).sum()).backward()
    assert_finite(l.grad, tau.grad)  # through the samples and through the density


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


@pytest.mark.parametrize("dtype, log_scale", [
    (np.float32, 25.0), (np.float32, -25.0),  # log σ² = ±50: σ⁻² and σ² fit in float32
    (np.float64, 50.0), (np.float64, -50.0),  # log σ = ±50: e^±100 fits in float64
])
def test_normal_at_extreme_log_scale(dtype, log_scale):
    loc, s = leaf([0.5, -2.0], dtype), leaf([log_scale, log_scale], dtype)
    p = Normal(loc, s.exp())
    z = p.rsample(np.random.default_rng(3), (5,))
    values = [p.log_prob(z).sum(), p.entropy().sum(),
              kl_divergence(p, Normal(np.zeros(2, dtype), np.ones(2, dtype))).sum(),
              p.log_prob(np.zeros(2, dtype)).sum()]
    for value in values:
        assert_finite(value.data)
    # H = ½(1 + log 2π) + log σ, exact in the log-scale
    np.testing.assert_allclose(p.entropy().data, 0.5 * (1 + np.log(2 * np.pi)) + log_scale,
                               rtol=1e-6)
    sum(values[1:], values[0]).backward()
    assert_finite(loc.grad, s.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_log_prob_at_probabilities_zero_and_one(dtype):
    for given in ("probs", "logits"):
        p = leaf([1.0, 0.0], dtype) if given == "probs" else leaf([np.inf, -np.inf], dtype)
        d = Bernoulli(**{given: p})
        certain = d.log_prob(np.array([1, 0], dtype))  # the value that always happens
        np.testing.assert_array_equal(certain.data, [0.0, 0.0])
        certain.sum().backward()
        assert_finite(p.grad)
        if given == "probs":  # log p(1) = log p has slope 1/p = 1 at p = 1; log(1 − p): −1
            np.testing.assert_array_equal(p.grad, [1.0, -1.0])
        p.grad = None
        impossible = d.log_prob(np.array([0, 1], dtype))  # never happens: −∞ exactly
        np.testing.assert_array_equal(impossible.data, [-np.inf, -np.inf])
        impossible.sum().backward()
        assert_no_nan(p.grad)
        p.grad = None
        h = d.entropy()
        np.testing.assert_array_equal(h.data, [0.0, 0.0])
        h.sum().backward()
        assert_no_nan(p.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_targets_at_probabilities_zero_and_one(dtype):
    p = leaf([1.0, 0.0, 1.0], dtype)
    d = Bernoulli(probs=p, soft_targets=True)
    # x log p + (1 − x) log(1 − p): a grey target against a certain coin is −∞, x = 1 is 0
    value = d.log_prob(np.array([0.5, 0.5, 1.0], dtype))
    np.testing.assert_array_equal(value.data, [-np.inf, -np.inf, 0.0])
    value.sum().backward()
    assert_no_nan(p.grad)


def bernoulli_kl_reference(p, q):
    """Σ_x p(x) log(p(x)/q(x)) with scipy's xlogy (0 log 0 = 0, and +∞ where q(x) = 0 < p(x))."""
    with np.errstate(divide="ignore"):
        return sp.xlogy(p, p) - sp.xlogy(p, q) + sp.xlogy(1 - p, 1 - p) - sp.xlogy(1 - p, 1 - q)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_kl_with_certain_coins(dtype):
    """The case that gives NaN gradients in other libraries: p or q exactly 0 or 1."""
    pairs = [(a, b) for a in (0.0, 1.0, 0.3) for b in (0.0, 1.0, 0.3)]
    ps = np.array([a for a, _ in pairs])
    qs = np.array([b for _, b in pairs])
    expected_kl = bernoulli_kl_reference(ps, qs)
    with np.errstate(divide="ignore"):
        expected_ce = -sp.xlogy(ps, qs) - sp.xlogy(1 - ps, 1 - qs)
    for given in ("probs", "logits"):
        to_param = (lambda v: v) if given == "probs" else (
            lambda v: np.log(v) - np.log1p(-v))
        with np.errstate(divide="ignore"):
            a, b = leaf(to_param(ps), dtype), leaf(to_param(qs), dtype)
        p, q = Bernoulli(**{given: a}), Bernoulli(**{given: b})
        kl, ce = kl_divergence(p, q), cross_entropy(p, q)
        np.testing.assert_allclose(kl.data, expected_kl, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ce.data, expected_ce, rtol=1e-5, atol=1e-7)
        assert np.all(np.isinf(kl.data) == np.isinf(expected_kl))
        (kl + ce).sum().backward()
        assert_no_nan(a.grad, b.grad)
        finite = np.isfinite(expected_kl)
        assert np.all(np.isfinite(a.grad[finite])) and np.all(np.isfinite(b.grad[finite]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_with_zero_and_one_probabilities(dtype):
    probs = leaf([[0.0, 1.0, 0.0], [0.0, 0.3, 0.7]], dtype)
    d = Categorical(probs=probs)
    value = d.log_prob(np.array([1, 0]))
    np.testing.assert_array_equal(value.data, [0.0, -np.inf])
    (value.sum() + d.entropy().sum()).backward()
    assert_no_nan(probs.grad)
    other = leaf([[0.2, 0.8, 0.0], [0.5, 0.5, 0.0]], dtype)
    kl = kl_divergence(Categorical(probs=other), d)  # mass on class 0 where d has none: +∞
    np.testing.assert_array_equal(kl.data, [np.inf, np.inf])
    kl.sum().backward()
    assert_no_nan(other.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relaxed_with_a_class_of_probability_zero(dtype):
    l, tau = leaf([-np.inf, 0.0, 1.0], dtype), leaf(0.5, dtype)
    y = RelaxedOneHotCategorical(tau, logits=l).rsample(np.random.default_rng(4), (3,))
    assert np.all(y.data[..., 0] == 0)  # a class of probability 0 is never chosen, for any τ
    (y * np.arange(3, dtype=dtype)).sum().backward()
    assert_finite(l.grad, tau.grad)


def test_reparameterized_gamma_family_refuses_concentrations_beyond_its_gradient():
    """Above 1e8 the implicit gradient's series would not converge: a clear error up front,
    while ``sample`` (no gradient) still draws."""
    from minivae.distributions import Beta, Dirichlet, Gamma

    huge = leaf([1e30], np.float64)
    for d in (Gamma(huge, 1.0), Beta(huge, 1.0), Dirichlet(huge)):
        with pytest.raises(ValueError, match="at most 1e\\+08 for a reparameterized draw"):
            d.rsample(np.random.default_rng(0))
        assert np.all(np.isfinite(d.sample(np.random.default_rng(0)).data))
    big = leaf([1e6, 2.0], np.float64)  # within the limit: finite draw and gradient
    Gamma(big, 1.0).rsample(np.random.default_rng(0)).sum().backward()
    assert_finite(big.grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relaxed_rsample_with_huge_logit_gaps(dtype):
    """Logits near the dtype's largest number: (l + G)/τ alone would overflow to ∞ and the
    softmax to NaN.  The sample is one-hot at the huge logit (the other classes' weights are
    below e^(−10³⁸)), with finite gradients to l and τ."""
    largest = float(np.finfo(dtype).max)
    l, tau = leaf([[0.0, 0.9 * largest], [-0.9 * largest, 0.0]], dtype), leaf(0.5, dtype)
    y = RelaxedOneHotCategorical(tau, logits=l).rsample(np.random.default_rng(0), (5,))
    np.testing.assert_array_equal(y.data, np.broadcast_to([[0, 1], [0, 1]], (5, 2, 2)))
    (y * np.array([1.0, 2.0], dtype)).sum().backward()
    assert_finite(l.grad, tau.grad)
