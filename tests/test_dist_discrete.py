"""Bernoulli, Categorical and Poisson against scipy.stats and sums written out here.

Oracles: scipy.stats log-pmfs and entropies, KLs summed over the support with
scipy.special.xlogy (0 · log 0 = 0), Monte Carlo estimates compared within 5 standard errors
(fixed seeds), chi-square tests for the samplers, and central differences for gradients.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats
from hypothesis import given, settings

from minivae import Tensor, gradcheck
from minivae.distributions.bernoulli import Bernoulli
from minivae.distributions.categorical import Categorical
from minivae.distributions.kl import cross_entropy, kl_divergence
from minivae.distributions.poisson import Poisson

SEED = 20240611


def reals(shape, low, high):
    return hnp.arrays(np.float64, shape, elements=st.floats(low, high, allow_subnormal=False))


def assert_within_standard_errors(samples: np.ndarray, truth, n_se: float = 5.0):
    """|mean − truth| ≤ n_se · (sample standard deviation / √n), entry by entry (axis 0)."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(mean - truth) <= n_se * se + 1e-12), (mean, truth, se)


def per_sample_score(make, parameter: np.ndarray, samples) -> np.ndarray:
    """∇_θ log q(x_i) for each draw x_i: θ is copied once per draw into a batched leaf."""
    leaf = Tensor(np.broadcast_to(parameter, samples.shape[:1] + parameter.shape).copy(),
                  requires_grad=True)
    make(leaf).log_prob(samples).sum().backward()
    return leaf.grad


def chi_square_pvalue(draws: np.ndarray, probs: np.ndarray) -> float:
    observed = np.bincount(draws, minlength=len(probs))[: len(probs)]
    keep = probs > 0
    assert observed[~keep].sum() == 0, "a value of probability 0 was drawn"
    return stats.chisquare(observed[keep], probs[keep] / probs[keep].sum() * len(draws)).pvalue


# -- Bernoulli ----------------------------------------------------------------------------------

@given(logits=reals((5,), -8, 8))
def test_bernoulli_matches_scipy(logits):
    d, p = Bernoulli(logits=logits), sp.expit(logits)
    for x in (0.0, 1.0):
        np.testing.assert_allclose(d.log_prob(np.full(5, x)).data, stats.bernoulli.logpmf(x, p),
                                   rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(d.entropy().data, stats.bernoulli.entropy(p), rtol=1e-8)
    np.testing.assert_allclose(d.mean.data, stats.bernoulli.mean(p), rtol=1e-12)
    np.testing.assert_allclose(d.variance.data, stats.bernoulli.var(p), rtol=1e-8)
    from_probs = Bernoulli(probs=p)
    np.testing.assert_allclose(from_probs.logits.data, logits, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(from_probs.mean.data, p)


def test_bernoulli_is_exact_at_probabilities_zero_and_one():
    with np.errstate(all="raise"):
        for d in (Bernoulli(probs=np.array([0.0, 1.0]), soft_targets=True),
                  Bernoulli(logits=[-np.inf, np.inf], soft_targets=True)):
            np.testing.assert_array_equal(d.log_prob(np.array([0.0, 1.0])).data, [0.0, 0.0])
            np.testing.assert_array_equal(d.log_prob(np.array([1.0, 0.0])).data, [-np.inf] * 2)
            np.testing.assert_array_equal(d.log_prob(np.array([0.5, 0.5])).data, [-np.inf] * 2)
            np.testing.assert_array_equal(d.entropy().data, [0.0, 0.0])
            np.testing.assert_array_equal(d.mean.data, [0.0, 1.0])
            np.testing.assert_array_equal(d.variance.data, [0.0, 0.0])
            np.testing.assert_array_equal(d.sample(np.random.default_rng(SEED), 1000).data.mean(0),
                                          [0.0, 1.0])


def test_bernoulli_soft_targets_and_outside_support():
    logits = np.array([-3.0, 0.4, 2.5])
    p, x = sp.expit(logits), np.array([0.2, 0.5, 0.9])
    expected = x * np.log(p) + (1 - x) * np.log1p(-p)  # −BCE(x, p)
    soft = Bernoulli(logits=logits, soft_targets=True)
    np.testing.assert_allclose(soft.log_prob(x).data, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="soft_targets=True"):
        Bernoulli(logits=logits).log_prob(x)  # grey levels need the explicit opt-in
    for outside in (-0.1, 1.5, np.nan, np.inf):
        for d in (soft, Bernoulli(logits=logits)):
            with pytest.raises(ValueError, match="x must"):
                d.log_prob(np.full(3, outside))


@settings(max_examples=10)
@given(logits=reals((3,), -4, 4), other=reals((3,), -4, 4), probs=reals((3,), 0.05, 0.95))
def test_bernoulli_gradients(logits, other, probs):
    x = np.array([0.0, 1.0, 1.0])
    assert gradcheck(lambda w: Bernoulli(logits=w).log_prob(x), logits)
    assert gradcheck(lambda p: Bernoulli(probs=p).log_prob(x), probs)
    assert gradcheck(lambda w, t: Bernoulli(logits=w, soft_targets=True).log_prob(t),
                     logits, probs)  # soft t
    assert gradcheck(lambda w: Bernoulli(logits=w).entropy(), logits)
    for between in (kl_divergence, cross_entropy):
        assert gradcheck(lambda a, b, f=between: f(Bernoulli(logits=a), Bernoulli(logits=b)),
                         logits, other)


def test_bernoulli_sampler_frequencies():
    probs = np.array([0.03, 0.5, 0.9])
    draws = Bernoulli(probs=probs).sample(np.random.default_rng(SEED), 20000).data
    assert draws.shape == (20000, 3) and set(np.unique(draws)) <= {0.0, 1.0}
    for j, p in enumerate(probs):
        assert chi_square_pvalue(draws[:, j].astype(int), np.array([1 - p, p])) > 1e-3


def bernoulli_kl_by_sum(p, q):
    return sp.xlogy(p, p) - sp.xlogy(p, q) + sp.xlogy(1 - p, 1 - p) - sp.xlogy(1 - p, 1 - q)


@given(lp=reals((4,), -10, 10), lq=reals((4,), -10, 10))
def test_bernoulli_kl_matches_direct_sum(lp, lq):
    kl = kl_divergence(Bernoulli(logits=lp), Bernoulli(logits=lq)).data
    np.testing.assert_allclose(kl, bernoulli_kl_by_sum(sp.expit(lp), sp.expit(lq)),
                               rtol=1e-8, atol=1e-13)


@given(lp=reals((4,), -30, 30), lq=reals((4,), -30, 30))
def test_bernoulli_kl_is_cross_entropy_minus_entropy(lp, lq):
    p, q = Bernoulli(logits=lp), Bernoulli(logits=lq)
    kl = kl_divergence(p, q).data
    assert np.all(kl >= 0)
    assert np.all(kl_divergence(p, p).data == 0)
    np.testing.assert_allclose(kl, cross_entropy(p, q).data - p.entropy().data,
                               rtol=1e-8, atol=1e-12)


def test_bernoulli_kl_is_finite_for_extreme_logits():
    big = 1e4
    lp, lq = np.array([big, big, -big, -big, big]), np.array([-big, big, big, -big, 0.0])
    with np.errstate(over="raise", invalid="raise"):
        p, q = Bernoulli(logits=lp), Bernoulli(logits=lq)
        kl = kl_divergence(p, q).data
        # p ≈ 1 → KL ≈ −log q(1) = softplus(−l_q); p ≈ 0 → KL ≈ −log q(0) = softplus(l_q)
        np.testing.assert_allclose(kl, [big, 0.0, big, 0.0, np.log(2)], rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(cross_entropy(p, q).data, kl, rtol=1e-12, atol=1e-300)
        log_prob = p.log_prob(np.array([0.0, 1.0, 1.0, 0.0, 0.0])).data
        np.testing.assert_allclose(log_prob, [-big, 0.0, -big, 0.0, -big], rtol=1e-12)
        leaf = Tensor(lp, requires_grad=True)
        kl_divergence(Bernoulli(logits=leaf), q).sum().backward()
    assert np.all(np.isfinite(leaf.grad))


def test_bernoulli_kl_and_cross_entropy_at_the_boundary():
    p = Bernoulli(probs=np.array([1.0, 1.0, 0.0, 0.0, 1.0, 0.0]))
    q = Bernoulli(probs=np.array([0.3, 1.0, 0.3, 1.0, 0.0, 0.0]))
    with np.errstate(all="raise"):
        kl, ce = kl_divergence(p, q).data, cross_entropy(p, q).data
    expected = [-np.log(0.3), 0.0, -np.log(0.7), np.inf, np.inf, 0.0]
    np.testing.assert_allclose(kl, expected, rtol=1e-12)
    np.testing.assert_allclose(ce, expected, rtol=1e-12)
    inside = Bernoulli(probs=np.array([0.4, 0.4]))
    np.testing.assert_array_equal(kl_divergence(inside, Bernoulli(probs=[0.0, 1.0])).data,
                                  [np.inf, np.inf])
    np.testing.assert_allclose(kl_divergence(Bernoulli(probs=[0.0, 1.0]), inside).data,
                               [-np.log(0.6), -np.log(0.4)], rtol=1e-12)


def test_bernoulli_kl_matches_monte_carlo():
    p, q = Bernoulli(logits=np.array([-1.0, 0.5, 2.0])), Bernoulli(logits=np.array([1.0, 0.0, -2]))
    x = p.sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors((p.log_prob(x) - q.log_prob(x)).data, kl_divergence(p, q).data)


def test_bernoulli_score_identity():
    logits = np.array([-1.5, 0.3, 2.0])
    x = Bernoulli(logits=logits).sample(np.random.default_rng(SEED), 20000)
    scores = per_sample_score(lambda leaf: Bernoulli(logits=leaf), logits, x)
    assert_within_standard_errors(scores, 0.0)


def test_bernoulli_validation_and_dtype():
    for kwargs, name in (({}, "probs and logits"), ({"probs": 0.5, "logits": 0.0}, "probs"),
                         ({"probs": [0.5, 1.2]}, "probs"), ({"probs": [np.nan]}, "probs"),
                         ({"logits": [np.nan]}, "logits")):
        with pytest.raises(ValueError, match=name):
            Bernoulli(**kwargs)
    d = Bernoulli(logits=np.array([0.3, -2.0], dtype=np.float32))
    q = Bernoulli(probs=np.array([0.5, 0.1], dtype=np.float32))
    for out in (d.log_prob([1, 0]), d.entropy(), d.mean, d.variance, kl_divergence(d, q),
                cross_entropy(d, q), d.sample(np.random.default_rng(0), 3)):
        assert out.dtype == np.float32


# -- Categorical --------------------------------------------------------------------------------

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
    assert_within_standard_errors(draws.astype(float), d.mean.data)
    centered = (draws - d.mean.data) ** 2
    assert_within_standard_errors(centered, d.variance.data)


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


def test_categorical_kl_matches_monte_carlo():
    p = Categorical(logits=np.array([[0.0, 1.0, -1.0, 0.5], [2.0, 0.0, 0.0, -3.0]]))
    q = Categorical(logits=np.array([[0.5, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
    k = p.sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors((p.log_prob(k) - q.log_prob(k)).data, kl_divergence(p, q).data)


def test_categorical_score_identity():
    logits = np.array([0.2, -1.0, 1.5, 0.0])
    k = Categorical(logits=logits).sample(np.random.default_rng(SEED), 20000)
    scores = per_sample_score(lambda leaf: Categorical(logits=leaf), logits, k)
    assert_within_standard_errors(scores, 0.0)


def test_categorical_preserves_float32():
    d = Categorical(logits=np.array([[0.1, 2.0, -1.0]], dtype=np.float32))
    q = Categorical(probs=np.array([0.2, 0.3, 0.5], dtype=np.float32))
    for out in (d.log_prob([1]), d.entropy(), d.mean, d.variance, d.probs, kl_divergence(d, q),
                cross_entropy(d, q)):
        assert out.dtype == np.float32


# -- Poisson ------------------------------------------------------------------------------------

@given(rate=st.floats(1e-3, 100))
def test_poisson_matches_scipy(rate):
    d, k = Poisson(rate), np.arange(60.0)
    np.testing.assert_allclose(d.log_prob(k).data, stats.poisson.logpmf(k, rate), rtol=1e-10)
    np.testing.assert_allclose(d.entropy().data, stats.poisson.entropy(rate), rtol=1e-8)
    assert d.mean.data == stats.poisson.mean(rate) and d.variance.data == stats.poisson.var(rate)


def poisson_entropy_by_sum(rate):
    k = np.arange(max(0, int(rate - 30 * np.sqrt(rate) - 60)), int(rate + 30 * np.sqrt(rate) + 60))
    log_p = stats.poisson.logpmf(k, rate)
    return -(np.exp(log_p) * log_p).sum()


def test_poisson_entropy_for_large_and_small_rates():
    rates = np.array([1e-8, 1e-3, 0.7, 250.0, 1e4, 1e6])
    entropy = Poisson(rates).entropy().data
    expected = [poisson_entropy_by_sum(r) for r in rates]
    np.testing.assert_allclose(entropy, expected, rtol=1e-9)
    # the large-λ expansion H = ½ log(2πeλ) − 1/(12λ) − 1/(24λ²) + O(λ⁻³), to the rounding
    # error 1e-16 · λ log λ of the log-probabilities (documented in Poisson.entropy)
    large = rates[-2:]
    asymptotic = 0.5 * np.log(2 * np.pi * np.e * large) - 1 / (12 * large) - 1 / (24 * large**2)
    relative_error = np.abs(entropy[-2:] - asymptotic) / asymptotic
    assert np.all(relative_error <= 1e-15 * large * np.log(large)), relative_error


def test_poisson_outside_support():
    d = Poisson(np.array([2.0, 3.0]))
    outside = d.log_prob(np.array([[-1.0], [0.5], [np.inf]])).data
    np.testing.assert_array_equal(outside, np.full((3, 2), -np.inf))
    with pytest.raises(ValueError, match="k must be free of NaN"):
        d.log_prob(np.nan)
    np.testing.assert_allclose(d.log_prob(0).data, [-2.0, -3.0], rtol=1e-15)


@settings(max_examples=10)
@given(rate=reals((3,), 0.2, 20), other=reals((3,), 0.2, 20))
def test_poisson_gradients(rate, other):
    k = np.array([0.0, 3.0, 11.0])
    assert gradcheck(lambda r: Poisson(r).log_prob(k), rate)
    assert gradcheck(lambda r: Poisson(r).entropy(), rate)
    assert gradcheck(lambda a, b: kl_divergence(Poisson(a), Poisson(b)), rate, other)


def test_poisson_sampler_chi_square_and_moments():
    rate = 3.7
    draws = Poisson(np.array([rate, 40.0])).sample(np.random.default_rng(SEED), 20000).data
    assert draws.shape == (20000, 2) and np.all(draws == np.floor(draws))
    counts = draws[:, 0].astype(int)
    top = 12  # pool the tail k ≥ 12 so that every expected count is large
    pooled = np.minimum(counts, top)
    probs = np.append(stats.poisson.pmf(np.arange(top), rate), stats.poisson.sf(top - 1, rate))
    assert chi_square_pvalue(pooled, probs) > 1e-3
    assert_within_standard_errors(draws, [rate, 40.0])
    assert_within_standard_errors((draws - [rate, 40.0]) ** 2, [rate, 40.0])


def poisson_kl_by_sum(a, b):
    k = np.arange(0, int(max(a, b) + 40 * np.sqrt(max(a, b)) + 80))
    return (stats.poisson.pmf(k, a) * (stats.poisson.logpmf(k, a) - stats.poisson.logpmf(k, b))
            ).sum()


@given(a=st.floats(0.01, 60), b=st.floats(0.01, 60))
def test_poisson_kl_matches_truncated_sum(a, b):
    p, q = Poisson(a), Poisson(b)
    kl = kl_divergence(p, q).data
    np.testing.assert_allclose(kl, poisson_kl_by_sum(a, b), rtol=1e-8, atol=1e-13)
    assert kl >= 0 and kl_divergence(p, p).data == 0
    k = np.arange(0, int(a + 40 * np.sqrt(a) + 80))
    cross = -(stats.poisson.pmf(k, a) * stats.poisson.logpmf(k, b)).sum()
    np.testing.assert_allclose(cross_entropy(p, q).data, cross, rtol=1e-8)


def test_poisson_kl_matches_monte_carlo():
    p, q = Poisson(np.array([0.5, 4.0, 30.0])), Poisson(np.array([1.0, 3.0, 35.0]))
    k = p.sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors((p.log_prob(k) - q.log_prob(k)).data, kl_divergence(p, q).data)


def test_poisson_score_identity():
    rate = np.array([0.4, 6.0])
    k = Poisson(rate).sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors(per_sample_score(Poisson, rate, k), 0.0)


def test_poisson_validation_and_dtype():
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="rate"):
            Poisson(np.array([1.0, bad]))
    d = Poisson(np.array([0.5, 7.0], dtype=np.float32))
    q = Poisson(np.array(2.0, dtype=np.float32))
    for out in (d.log_prob([0, 3]), d.entropy(), d.mean, d.variance, kl_divergence(d, q),
                d.sample(np.random.default_rng(0), 2)):
        assert out.dtype == np.float32
    np.testing.assert_allclose(d.entropy().data, [stats.poisson.entropy(0.5),
                                                  stats.poisson.entropy(7.0)], rtol=1e-5)


# the extreme inputs overflow on purpose (IEEE ∞), which NumPy reports
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("rate", [10.0, 2e6, 1e300])
def test_poisson_log_prob_at_huge_counts(rate):
    """Counts where k log λ and log k! overflow or cancel (scipy gives NaN, or −6e286 instead
    of −346 at k = λ = 1e300): the value of k log λ − λ − log Γ(k + 1) in 400-digit arithmetic
    (−∞ where it is below the float range), and a finite gradient k/λ − 1."""
    mpmath = pytest.importorskip("mpmath")
    counts = np.array([3e6, 1e300, 7.8e307])
    rate_leaf = Tensor(np.array(rate), requires_grad=True)
    log_p = Poisson(rate_leaf).log_prob(counts)
    for k, value in zip(counts, log_p.data):
        with mpmath.workdps(400):  # the terms reach 1e303 and cancel to 1e2: 300 digits go
            exact = mpmath.mpf(k) * mpmath.log(rate) - rate - mpmath.loggamma(mpmath.mpf(k) + 1)
        if abs(exact) > np.finfo(np.float64).max:
            assert value == -np.inf and exact < 0
        else:
            assert value == pytest.approx(float(exact), rel=1e-12)
    log_p.sum().backward()
    np.testing.assert_allclose(rate_leaf.grad, np.sum(counts / rate - 1), rtol=1e-12)
