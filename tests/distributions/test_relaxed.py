"""Gumbel-max, the Gumbel-softmax (Concrete) distribution and the straight-through op.

Oracles: scipy.stats (Gumbel and logistic laws, chi-square and KS tests with fixed seeds),
scipy.integrate (the density integrates to 1 over the simplex) and central differences.
"""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.special as sp
import scipy.stats as stats
from hypothesis import given, settings

from minivae import Tensor, gradcheck
from minivae.distributions import Categorical, RelaxedOneHotCategorical
from minivae.distributions.categorical import standard_gumbel
from minivae.distributions.relaxed import straight_through
from tests.distributions.helpers import DTYPES, HUGE, assert_finite, chi_square_pvalue, leaf, reals

SEED = 31337


def softmax(z: Tensor) -> Tensor:
    """Engine softmax over the last axis, to move around inside the open simplex in gradchecks."""
    return (z - z.logsumexp(axis=-1, keepdims=True)).exp()


def test_gumbel_noise_has_the_gumbel_distribution():
    noise = standard_gumbel(np.random.default_rng(SEED), (20000,), np.float64)
    assert stats.kstest(noise, stats.gumbel_r.cdf).pvalue > 1e-3
    small = standard_gumbel(np.random.default_rng(SEED), (3, 4), np.float32)
    assert small.dtype == np.float32 and np.all(np.isfinite(small))


@pytest.mark.parametrize("logits", [[0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 0.0],
                                    [1e4, 1e4 + np.log(3.0), -1e4]])
def test_gumbel_max_is_exactly_categorical(logits):
    logits = np.array(logits)
    probs = sp.softmax(logits)
    rng = np.random.default_rng(SEED)
    by_hand = np.argmax(logits + standard_gumbel(rng, (20000, len(logits)), np.float64), axis=-1)
    assert chi_square_pvalue(by_hand, probs) > 1e-3
    draws = Categorical(logits=logits).sample(rng, 20000)
    assert chi_square_pvalue(draws, probs) > 1e-3


@pytest.mark.parametrize("temperature", [0.05, 1.0, 5.0])
def test_argmax_of_relaxed_sample_is_categorical(temperature):
    logits = np.array([1.0, -0.5, 0.0, 2.0])
    y = RelaxedOneHotCategorical(temperature, logits=logits).sample(
        np.random.default_rng(SEED), 20000)
    np.testing.assert_allclose(y.data.sum(axis=-1), 1.0, rtol=1e-12)
    assert chi_square_pvalue(np.argmax(y.data, axis=-1), sp.softmax(logits)) > 1e-3


def test_relaxed_sample_tends_to_one_hot_as_temperature_falls():
    logits = np.array([0.5, -1.0, 0.0, 1.0, 0.2])
    noise = standard_gumbel(np.random.default_rng(SEED), (500, 5), np.float64)
    winner = np.argmax(logits + noise, axis=-1)
    ordered = np.sort(logits + noise, axis=-1)
    gap = ordered[:, -1] - ordered[:, -2]
    previous = 0.0
    for temperature in (2.0, 0.5, 0.1, 0.01, 0.001):
        d = RelaxedOneHotCategorical(temperature, logits=logits)
        y = d.sample(np.random.default_rng(SEED), 500).data  # the same noise as above
        np.testing.assert_array_equal(np.argmax(y, axis=-1), winner)
        # every other coordinate is at most exp(−gap/τ) times the largest
        assert np.all(1 - y.max(axis=-1) <= 4 * np.exp(-gap / temperature) + 1e-15)
        assert y.max(axis=-1).mean() > previous
        previous = y.max(axis=-1).mean()
    assert previous > 0.99


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_relaxed_samples_match_the_logistic_change_of_variables(temperature):
    """K = 2: y₁ = σ((x₁ − x₂)/τ) with x₁ − x₂ ~ Logistic(l₁ − l₂), so
    P(y₁ ≤ t) = F_logistic(τ logit t; l₁ − l₂)."""
    logits = np.array([0.7, -0.4])
    y = RelaxedOneHotCategorical(temperature, logits=logits).sample(
        np.random.default_rng(SEED), 20000).data[:, 0]
    cdf = lambda t: stats.logistic.cdf(temperature * sp.logit(t), loc=logits[0] - logits[1])
    assert stats.kstest(y, cdf).pvalue > 1e-3


@settings(max_examples=20)
@given(logits=reals((2,), -3, 3), temperature=st.floats(0.2, 4.0),
       y1=st.floats(1e-3, 1 - 1e-3))
def test_concrete_density_matches_change_of_variables_for_two_classes(logits, temperature, y1):
    """y₁ = σ(L/τ) with L ~ Logistic(l₁ − l₂), so p(y₁) = f_L(τ logit y₁) · τ/(y₁(1 − y₁))."""
    d = RelaxedOneHotCategorical(temperature, logits=logits)
    expected = (stats.logistic.logpdf(temperature * sp.logit(y1), loc=logits[0] - logits[1])
                + np.log(temperature) - np.log(y1) - np.log1p(-y1))
    np.testing.assert_allclose(d.log_prob(np.array([y1, 1 - y1])).data, expected, rtol=1e-9)


@pytest.mark.parametrize("temperature,logits", [(0.6, [0.0, 0.0]), (1.0, [1.5, -0.5]),
                                                (3.0, [-2.0, 1.0])])
def test_concrete_density_integrates_to_one(temperature, logits):
    d = RelaxedOneHotCategorical(temperature, logits=np.array(logits))
    density = lambda t: float(np.exp(d.log_prob(np.array([t, 1 - t])).data))
    total, error = integrate.quad(density, 0, 1, limit=200, epsabs=1e-12, epsrel=1e-10)
    assert abs(total - 1) < 1e-8 and error < 1e-8


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_concrete_density_integrates_to_one_for_three_classes(temperature):
    """∫ p(y) dy₁ dy₂ over the 2-simplex, in the coordinates y = softmax(z₁, z₂, 0).

    The map (z₁, z₂) ↦ (y₁, y₂) has Jacobian diag(y) − y yᵀ (first two rows and columns),
    of determinant y₁ y₂ (1 − y₁ − y₂) = y₁ y₂ y₃, so the integral is ∫∫ p(y(z)) y₁y₂y₃ dz over
    ℝ²: smooth and exponentially decaying, where the trapezoid rule converges very fast.
    """
    d = RelaxedOneHotCategorical(temperature, logits=np.array([0.5, -0.3, 0.0]))
    step, reach = 0.1, 40.0 / temperature  # the density decays like e^(−τ|z|)
    z = np.arange(-reach, reach + step / 2, step)
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    y = sp.softmax(np.stack([z1, z2, np.zeros_like(z1)], axis=-1), axis=-1)
    density = np.exp(d.log_prob(y).data) * y.prod(axis=-1)
    assert abs(density.sum() * step**2 - 1) < 1e-10


@settings(max_examples=10)
@given(logits=reals((2, 3), -2, 2), temperature=reals((2,), 0.3, 3), z=reals((2, 3), -2, 2))
def test_relaxed_log_prob_gradcheck(logits, temperature, z):
    assert gradcheck(lambda a, t, w: RelaxedOneHotCategorical(t, logits=a).log_prob(softmax(w)),
                     logits, temperature, z)


@settings(max_examples=10)
@given(logits=reals((3,), -2, 2), temperature=st.floats(0.3, 3))
def test_relaxed_rsample_gradcheck(logits, temperature):
    def draw(a, t):  # the noise is reseeded, so the draw is a function of (logits, τ) alone
        d = RelaxedOneHotCategorical(t, logits=a)
        return d.rsample(np.random.default_rng(SEED), (4,))

    assert gradcheck(draw, logits, np.array(temperature))


def test_straight_through_is_one_hot_with_relaxed_gradient():
    logits, weights = np.array([0.3, -0.2, 1.0, 0.1]), np.arange(4.0) - 1.5
    gradients = {}
    for hard in (False, True):
        leaf = Tensor(logits, requires_grad=True)
        d = RelaxedOneHotCategorical(0.7, logits=leaf, straight_through=hard)
        y = d.rsample(np.random.default_rng(SEED), (6,))
        (y * weights).sum().backward()
        gradients[hard] = leaf.grad
        if hard:
            relaxed = RelaxedOneHotCategorical(0.7, logits=logits).rsample(
                np.random.default_rng(SEED), (6,)).data
            np.testing.assert_array_equal(y.data, np.eye(4)[np.argmax(relaxed, axis=-1)])
            assert np.all(d.log_prob(y).data == -np.inf)  # one-hot: outside the open simplex
    np.testing.assert_allclose(gradients[True], gradients[False], rtol=1e-12)
    y = Tensor(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]), requires_grad=True)
    upstream = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    straight_through(y).backward(upstream)
    np.testing.assert_array_equal(y.grad, upstream)


def test_relaxed_log_prob_outside_simplex_and_missing_closed_forms():
    d = RelaxedOneHotCategorical(0.5, logits=np.zeros(3))
    points = np.array([[1.0, 0.0, 0.0], [0.5, 0.6, -0.1], [0.2, 0.2, 0.2], [np.inf, 0.5, 0.5]])
    np.testing.assert_array_equal(d.log_prob(points).data, [-np.inf] * 4)
    with pytest.raises(ValueError, match="y must be free of NaN"):
        d.log_prob(np.array([np.nan, 0.5, 0.5]))
    for name in ("entropy", "mean", "variance"):
        with pytest.raises(NotImplementedError, match="closed-form"):
            value = getattr(d, name)
            value()


def test_relaxed_validation_and_dtype():
    for kwargs, name in (({"temperature": 0.0, "logits": [0.0, 1.0]}, "temperature"),
                         ({"temperature": np.nan, "logits": [0.0, 1.0]}, "temperature"),
                         ({"temperature": 1.0, "logits": [0.0, np.nan]}, "logits"),
                         ({"temperature": 1.0}, "probs and logits"),
                         ({"temperature": [1.0, 2.0, 3.0], "logits": np.zeros((2, 4))},
                          "temperature")):
        with pytest.raises(ValueError, match=name):
            RelaxedOneHotCategorical(**kwargs)
    d = RelaxedOneHotCategorical(0.5, probs=np.array([0.2, 0.3, 0.5], dtype=np.float32))
    y = d.rsample(np.random.default_rng(0), (5,))
    assert y.dtype == np.float32 and d.log_prob(y).dtype == np.float32
    assert np.all(np.isfinite(d.log_prob(y).data))
    assert d.batch_shape == () and d.event_shape == (3,) and y.shape == (5, 3)


# -- at extreme logits -------------------------------------------------------------------------


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
def test_relaxed_with_a_class_of_probability_zero(dtype):
    l, tau = leaf([-np.inf, 0.0, 1.0], dtype), leaf(0.5, dtype)
    y = RelaxedOneHotCategorical(tau, logits=l).rsample(np.random.default_rng(4), (3,))
    assert np.all(y.data[..., 0] == 0)  # a class of probability 0 is never chosen, for any τ
    (y * np.arange(3, dtype=dtype)).sum().backward()
    assert_finite(l.grad, tau.grad)


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
