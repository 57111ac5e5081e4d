"""Categorical: log-probabilities, entropy, moments, the Gumbel-max sampler, KL and
cross-entropy against direct sums and scipy; gradients; huge logits and probabilities of
exactly 0 and 1."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats
from hypothesis import given, settings

from minivae import Tensor, gradcheck
from minivae.distributions import Categorical, cross_entropy, kl_divergence
from tests.distributions.helpers import (
    DTYPES,
    HUGE,
    assert_finite,
    assert_no_nan,
    assert_within_standard_errors,
    chi_square_pvalue,
    leaf,
    per_sample_score,
    reals,
)

SEED = 20240611


@given(logits=reals((3, 4), -10, 10))
def test_categorical_matches_direct_formulas(logits):
    d, probs = Categorical(logits=logits), sp.softmax(logits, axis=-1)
    k = np.array([0, 3, 2])
    expected = [stats.multinomial(1, probs[i]).logpmf(np.eye(4)[k[i]]) for i in range(3)]
    np.testing.assert_allclose(d.log_prob(k).data, expected, rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(d.entropy().data, stats.entropy(probs, axis=-1), rtol=1e-8,
                               atol=1e-14)
    mean = probs @ np.arange(4)
    np.testing.assert_allclose(d.mean.data, mean, rtol=1e-8)
    np.testing.assert_allclose(d.variance.data, probs @ np.arange(4) ** 2 - mean**2,
                               rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(Categorical(probs=7 * probs).logits.data, np.log(probs),
                               rtol=1e-8, atol=1e-8)
    # every class of every row at once: k broadcast over the batch
    table = d.log_prob(np.arange(4)[:, None]).data.T
    np.testing.assert_allclose(table, np.log(probs), rtol=1e-8, atol=1e-300)


def test_categorical_outside_support_and_validation():
    d = Categorical(logits=np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(d.log_prob(np.array([-1, 3, 1.5, np.inf])).data, [-np.inf] * 4)
    with pytest.raises(ValueError, match="NaN"):
        d.log_prob(np.array([1.0, np.nan]))
    np.testing.assert_allclose(d.log_prob(2.0).data, d.log_prob(2).data)
    with pytest.raises(TypeError, match="class indices"):
        d.log_prob(np.array(["a"]))
    with pytest.raises(ValueError, match="broadcast"):
        Categorical(logits=np.zeros((2, 3))).log_prob(np.zeros(3, dtype=int))
    for kwargs, name in (({}, "probs and logits"), ({"probs": [0.5, -0.1]}, "probs"),
                         ({"probs": [0.0, 0.0]}, "probs"), ({"logits": [0.0, np.nan]}, "logits"),
                         ({"logits": [0.0, np.inf]}, "logits"),
                         ({"logits": [-np.inf, -np.inf]}, "logits"), ({"logits": 1.0}, "logits")):
        with pytest.raises(ValueError, match=name):
            Categorical(**kwargs)


@settings(max_examples=10)
@given(logits=reals((2, 3), -4, 4), other=reals((2, 3), -4, 4), probs=reals((2, 3), 0.1, 1))
def test_categorical_gradients(logits, other, probs):
    k = np.array([2, 0])
    assert gradcheck(lambda w: Categorical(logits=w).log_prob(k), logits)
    assert gradcheck(lambda p: Categorical(probs=p).log_prob(k), probs)
    for quantity in ("entropy", "mean", "variance"):
        def f(w, quantity=quantity):
            value = getattr(Categorical(logits=w), quantity)
            return value() if callable(value) else value
        assert gradcheck(f, logits)
    for between in (kl_divergence, cross_entropy):
        assert gradcheck(lambda a, b, f=between: f(Categorical(logits=a), Categorical(logits=b)),
                         logits, other)


def test_categorical_sampler_chi_square():
    probs = np.array([[0.05, 0.5, 0.0, 0.3, 0.15], [0.2, 0.2, 0.2, 0.2, 0.2]])
    with np.errstate(divide="ignore"):
        logits = np.log(probs)
    d = Categorical(logits=logits)
    draws = d.sample(np.random.default_rng(SEED), 20000)
    assert draws.shape == (20000, 2) and draws.dtype == np.int64
    for row in range(2):
        assert chi_square_pvalue(draws[:, row], np.exp(logits[row])) > 1e-3
    assert_within_standard_errors(draws.astype(float), d.mean.data, atol=1e-12)
    centered = (draws - d.mean.data) ** 2
    assert_within_standard_errors(centered, d.variance.data, atol=1e-12)


def categorical_kl_by_sum(p, q):
    return (sp.xlogy(p, p) - sp.xlogy(p, q)).sum(axis=-1)


@given(lp=reals((3, 5), -10, 10), lq=reals((3, 5), -10, 10))
def test_categorical_kl_matches_direct_sum(lp, lq):
    kl = kl_divergence(Categorical(logits=lp), Categorical(logits=lq)).data
    expected = categorical_kl_by_sum(sp.softmax(lp, axis=-1), sp.softmax(lq, axis=-1))
    np.testing.assert_allclose(kl, expected, rtol=1e-8, atol=1e-13)


@given(lp=reals((3, 5), -30, 30), lq=reals((3, 5), -30, 30))
def test_categorical_kl_is_cross_entropy_minus_entropy(lp, lq):
    p, q = Categorical(logits=lp), Categorical(logits=lq)
    kl = kl_divergence(p, q).data
    assert np.all(kl >= 0)
    np.testing.assert_allclose(kl_divergence(p, p).data, 0.0, atol=1e-15)
    np.testing.assert_allclose(kl, cross_entropy(p, q).data - p.entropy().data,
                               rtol=1e-8, atol=1e-10)


def test_categorical_kl_with_zero_probabilities():
    p_probs = np.array([[0.5, 0.0, 0.5], [0.2, 0.8, 0.0], [0.0, 1.0, 0.0]])
    q_probs = np.array([[0.25, 0.25, 0.5], [0.1, 0.0, 0.9], [0.3, 0.3, 0.4]])
    p, q = Categorical(probs=p_probs), Categorical(probs=q_probs)
    with np.errstate(all="raise"):
        kl, ce, h = kl_divergence(p, q).data, cross_entropy(p, q).data, p.entropy().data
        np.testing.assert_array_equal(kl_divergence(p, p).data, 0.0)
    with np.errstate(divide="ignore"):
        expected = categorical_kl_by_sum(p_probs, q_probs)
    np.testing.assert_allclose(kl, [expected[0], np.inf, expected[2]], rtol=1e-12)
    assert ce[1] == np.inf and np.isfinite(ce[[0, 2]]).all()
    np.testing.assert_allclose(h, stats.entropy(p_probs, axis=-1), rtol=1e-12, atol=1e-300)


def test_categorical_kl_is_finite_for_extreme_logits():
    big = 1e4
    lp, lq = np.array([[big, -big, 0.0], [0.0, 0.0, 0.0]]), np.array([[-big, big, 0.0]] * 2)
    with np.errstate(over="raise", invalid="raise"):
        p, q = Categorical(logits=lp), Categorical(logits=lq)
        kl = kl_divergence(p, q).data
        log_prob = q.log_prob(np.array([0, 2])).data
    # p ≈ δ₀ (rounded, π₀ = 1): KL = −log ρ₀ = 2e4; p uniform: KL = −log 3 − mean log ρ
    np.testing.assert_allclose(kl, [2 * big, -np.log(3) + (2 * big + big) / 3], rtol=1e-12)
    np.testing.assert_allclose(log_prob, [-2 * big, -big], rtol=1e-12)


def test_categorical_kl_where_a_normalized_logit_overflows():
    """q = logits [1.1e308, −1e308]: l − max l = −2.1e308 overflows to −∞, so ρ₁ is 0 in floats,
    while the KL from p = [0, −23] is π₁ (log π₁ − log ρ₁) + … = 2.15e298, and its gradient
    ∂KL/∂l^p_j = π_j (log(π_j/ρ_j) − KL), ∂KL/∂l^q_j = ρ_j − π_j, is finite.  Was +inf (the class
    counted as impossible)."""
    import mpmath as mp

    lp, lq = Tensor(np.array([0.0, -23.0]), requires_grad=True), \
        Tensor(np.array([1.1e308, -1e308]), requires_grad=True)
    with np.errstate(over="ignore"):
        kl = kl_divergence(Categorical(logits=lp), Categorical(logits=lq))
        kl.backward()
    with mp.workdps(60):
        def log_softmax(values):
            values = [mp.mpf(float(v)) for v in values]
            top = max(values)
            total = top + mp.log(mp.fsum(mp.exp(v - top) for v in values))
            return [v - total for v in values]
        log_p, log_q = log_softmax(lp.data), log_softmax(lq.data)
        exact = mp.fsum(mp.exp(a) * (a - b) for a, b in zip(log_p, log_q))
        grad_p = [mp.exp(a) * (a - b - exact) for a, b in zip(log_p, log_q)]
        grad_q = [mp.exp(b) - mp.exp(a) for a, b in zip(log_p, log_q)]
    np.testing.assert_allclose(kl.item(), float(exact), rtol=1e-12)
    np.testing.assert_allclose(lp.grad, [float(v) for v in grad_p], rtol=1e-12)
    np.testing.assert_allclose(lq.grad, [float(v) for v in grad_q], rtol=1e-12)


def test_categorical_kl_matches_monte_carlo():
    p = Categorical(logits=np.array([[0.0, 1.0, -1.0, 0.5], [2.0, 0.0, 0.0, -3.0]]))
    q = Categorical(logits=np.array([[0.5, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
    k = p.sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors((p.log_prob(k) - q.log_prob(k)).data, kl_divergence(p, q).data,
                                  atol=1e-12)


def test_categorical_score_identity():
    logits = np.array([0.2, -1.0, 1.5, 0.0])
    k = Categorical(logits=logits).sample(np.random.default_rng(SEED), 20000)
    scores = per_sample_score(lambda leaf: Categorical(logits=leaf), logits, k)
    assert_within_standard_errors(scores, 0.0, atol=1e-12)


def test_categorical_preserves_float32():
    d = Categorical(logits=np.array([[0.1, 2.0, -1.0]], dtype=np.float32))
    q = Categorical(probs=np.array([0.2, 0.3, 0.5], dtype=np.float32))
    for out in (d.log_prob([1]), d.entropy(), d.mean, d.variance, d.probs, kl_divergence(d, q),
                cross_entropy(d, q)):
        assert out.dtype == np.float32


# -- at huge logits and at probabilities 0 and 1 -----------------------------------------------


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
