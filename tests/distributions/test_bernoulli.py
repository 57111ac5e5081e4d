"""Bernoulli and BernoulliLogits: log-probabilities, entropy, moments, sampling, KL and
cross-entropy against scipy and direct sums; gradients; logits ±1e4 and probabilities of
exactly 0 and 1 (finite, or ±∞ where infinity is the exact answer, never NaN)."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as stats
from hypothesis import given, settings
from scipy import special

from minivae import Tensor, gradcheck
from minivae.distributions import (
    Bernoulli,
    BernoulliLogits,
    Independent,
    cross_entropy,
    kl_divergence,
)
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


def bernoulli_kl_by_sum(p, q):
    """Σ_x p(x) log(p(x)/q(x)) with scipy's xlogy (0 log 0 = 0, and +∞ where q(x) = 0 < p(x))."""
    with np.errstate(divide="ignore"):
        return sp.xlogy(p, p) - sp.xlogy(p, q) + sp.xlogy(1 - p, 1 - p) - sp.xlogy(1 - p, 1 - q)


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
    assert_within_standard_errors((p.log_prob(x) - q.log_prob(x)).data, kl_divergence(p, q).data,
                                  atol=1e-12)


def test_bernoulli_score_identity():
    logits = np.array([-1.5, 0.3, 2.0])
    x = Bernoulli(logits=logits).sample(np.random.default_rng(SEED), 20000)
    scores = per_sample_score(lambda leaf: Bernoulli(logits=leaf), logits, x)
    assert_within_standard_errors(scores, 0.0, atol=1e-12)


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


# -- BernoulliLogits, the decoder's likelihood -------------------------------------------------


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


def test_bernoulli_fused_and_general_paths_agree():
    rng = np.random.default_rng(3)
    logits = rng.uniform(-20, 20, (2, 3, 5))
    x = (rng.random((2, 3, 5)) < 0.5).astype(float)
    general = BernoulliLogits(Tensor(logits)).log_prob(x).data  # 3-D: the general path
    fused_rows = BernoulliLogits(Tensor(logits.reshape(6, 5))).log_prob(x.reshape(6, 5)).data
    np.testing.assert_allclose(general.reshape(6), fused_rows, rtol=1e-12)


@pytest.mark.parametrize("soft", [False, True])
def test_targets_broadcast_over_sample_axes_as_the_general_path_does(soft):
    """Logits (S, B, D) of S samples against x (B, D): the kernel's repeated target rows give
    the values and gradients of the general path's NumPy broadcasting; a bad target in x is
    caught once."""
    rng = np.random.default_rng(4)
    logits = rng.uniform(-20, 20, (4, 3, 5))
    x = rng.random((3, 5)) if soft else (rng.random((3, 5)) < 0.5).astype(float)
    fused_logits, general_logits = Tensor(logits, requires_grad=True), Tensor(logits,
                                                                               requires_grad=True)
    fused = BernoulliLogits(fused_logits, soft_targets=soft).log_prob(x)  # x 2-D: the kernel
    general = BernoulliLogits(general_logits, soft_targets=soft).log_prob(  # x 3-D: broadcasting
        np.broadcast_to(x, logits.shape))
    assert fused.shape == (4, 3)
    np.testing.assert_allclose(fused.data, general.data, rtol=1e-12)
    weights = rng.normal(size=(4, 3))
    (fused * Tensor(weights)).sum().backward()
    (general * Tensor(weights)).sum().backward()
    np.testing.assert_allclose(fused_logits.grad, general_logits.grad, rtol=1e-12, atol=1e-15)
    bad = x.copy()
    bad[2, 1] = 0.5 if not soft else 1.5
    with pytest.raises(ValueError, match="must hold 0s and 1s" if not soft else r"\[0, 1\]"):
        BernoulliLogits(Tensor(logits), soft_targets=soft).log_prob(bad)


# -- at huge logits and at probabilities 0 and 1 -----------------------------------------------


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
def test_bernoulli_log_prob_at_probabilities_zero_and_one(dtype):
    for form in ("probs", "logits"):
        p = leaf([1.0, 0.0], dtype) if form == "probs" else leaf([np.inf, -np.inf], dtype)
        d = Bernoulli(**{form: p})
        certain = d.log_prob(np.array([1, 0], dtype))  # the value that always happens
        np.testing.assert_array_equal(certain.data, [0.0, 0.0])
        certain.sum().backward()
        assert_finite(p.grad)
        if form == "probs":  # log p(1) = log p has slope 1/p = 1 at p = 1; log(1 − p): −1
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


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_kl_with_certain_coins(dtype):
    """The case that gives NaN gradients in other libraries: p or q exactly 0 or 1."""
    pairs = [(a, b) for a in (0.0, 1.0, 0.3) for b in (0.0, 1.0, 0.3)]
    ps = np.array([a for a, _ in pairs])
    qs = np.array([b for _, b in pairs])
    expected_kl = bernoulli_kl_by_sum(ps, qs)
    with np.errstate(divide="ignore"):
        expected_ce = -sp.xlogy(ps, qs) - sp.xlogy(1 - ps, 1 - qs)
    for form in ("probs", "logits"):
        to_param = (lambda v: v) if form == "probs" else (
            lambda v: np.log(v) - np.log1p(-v))
        with np.errstate(divide="ignore"):
            a, b = leaf(to_param(ps), dtype), leaf(to_param(qs), dtype)
        p, q = Bernoulli(**{form: a}), Bernoulli(**{form: b})
        kl, ce = kl_divergence(p, q), cross_entropy(p, q)
        np.testing.assert_allclose(kl.data, expected_kl, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ce.data, expected_ce, rtol=1e-5, atol=1e-7)
        assert np.all(np.isinf(kl.data) == np.isinf(expected_kl))
        (kl + ce).sum().backward()
        assert_no_nan(a.grad, b.grad)
        finite = np.isfinite(expected_kl)
        assert np.all(np.isfinite(a.grad[finite])) and np.all(np.isfinite(b.grad[finite]))
