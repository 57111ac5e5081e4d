"""The Jensen–Shannon divergence: bounds, symmetry, disjoint supports, and independent oracles."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.spatial.distance import jensenshannon

from minivae.divergences.jensen_shannon import jensen_shannon_1d, jensen_shannon_discrete
from minivae.divergences.quadrature import uniform_grid

LOG_2 = np.log(2.0)


@st.composite
def probability_vectors(draw, size=None, zeros=True):
    """A probability vector of ``size`` entries (drawn if None), some of them exactly 0."""
    size = size or draw(st.integers(1, 8))
    low = 0.0 if zeros else 0.01
    weights = np.array(draw(st.lists(st.floats(low, 1.0), min_size=size, max_size=size)))
    if weights.sum() == 0:
        weights[draw(st.integers(0, size - 1))] = 1.0
    return weights / weights.sum()


@st.composite
def pairs(draw):
    size = draw(st.integers(1, 8))
    return draw(probability_vectors(size)), draw(probability_vectors(size))


@given(pairs())
def test_discrete_agrees_with_scipy(pair):
    # scipy's jensenshannon is the square root of the divergence, in nats by default; it forms
    # m = (p + q)/2 first, which underflows to 0 for subnormal entries (then it returns inf)
    p, q = pair
    assume(not np.any((0 < np.concatenate([p, q])) & (np.concatenate([p, q]) < 1e-300)))
    expected = jensenshannon(p, q) ** 2
    assert jensen_shannon_discrete(p, q) == pytest.approx(expected, abs=1e-12)


@given(data=st.data(), size=st.integers(2, 10))
def test_discrete_disjoint_supports_give_log_2(data, size):
    in_support_of_p = np.array(data.draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    if in_support_of_p.all() or not in_support_of_p.any():
        in_support_of_p[0] = not in_support_of_p[1]
    weights_p = data.draw(probability_vectors(size, zeros=False))
    weights_q = data.draw(probability_vectors(size, zeros=False))
    p = np.where(in_support_of_p, weights_p, 0.0)
    q = np.where(in_support_of_p, 0.0, weights_q)
    p, q = p / p.sum(), q / q.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no log(0) or 0·∞ warnings on the way
        assert jensen_shannon_discrete(p, q) == pytest.approx(LOG_2, abs=1e-12)
        # a subnormal entry: (p + q)/2 would underflow to 0 there, 2q/(p + q) does not
        tiny = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 5e-324])
        assert jensen_shannon_discrete(*tiny) == LOG_2


@given(pairs())
def test_discrete_is_bounded_symmetric_and_zero_on_the_diagonal(pair):
    p, q = pair
    jsd = jensen_shannon_discrete(p, q)
    assert -1e-15 <= jsd <= LOG_2 + 1e-12
    assert jensen_shannon_discrete(q, p) == pytest.approx(jsd, abs=1e-15)
    assert jensen_shannon_discrete(p, p) == 0.0
    # equal to its definition through two KL divergences to the mixture (scipy's entropy)
    r = (p + q) / 2
    assert jsd == pytest.approx((stats.entropy(p, r) + stats.entropy(q, r)) / 2, abs=1e-12)


def test_discrete_batches_over_leading_axes_and_keeps_float32():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), (3, 4)), rng.dirichlet(np.ones(5), (3, 4))
    batched = jensen_shannon_discrete(p, q)
    assert batched.shape == (3, 4)
    one_by_one = [[jensen_shannon_discrete(p[i, j], q[i, j]) for j in range(4)] for i in range(3)]
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-14)
    single = jensen_shannon_discrete(p.astype(np.float32), q.astype(np.float32))
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, batched, rtol=1e-4, atol=1e-6)


def jsd_by_scipy_quad(p, q) -> float:
    """½ ∫ p log(2p/(p+q)) + ½ ∫ q log(2q/(p+q)), integrated adaptively by scipy."""
    def integrand(x):
        a, b = p.pdf(x), q.pdf(x)
        return sum(0.5 * f * np.log(2 * f / (a + b)) for f in (a, b) if f > 0)
    low = min(p.ppf(1e-15), q.ppf(1e-15))
    high = max(p.isf(1e-15), q.isf(1e-15))
    middle = (p.mean() + q.mean()) / 2
    left = integrate.quad(integrand, low, middle, limit=200, epsabs=1e-12)[0]
    return left + integrate.quad(integrand, middle, high, limit=200, epsabs=1e-12)[0]


@settings(max_examples=12)
@given(loc_p=st.floats(-3, 3), loc_q=st.floats(-3, 3),
       scale_p=st.floats(0.3, 2.0), scale_q=st.floats(0.3, 2.0))
def test_continuous_agrees_with_scipy_quad(loc_p, loc_q, scale_p, scale_q):
    p, q = stats.norm(loc_p, scale_p), stats.norm(loc_q, scale_q)
    grid = uniform_grid(-3 - 12 * 2.0, 3 + 12 * 2.0, 20001)
    jsd = jensen_shannon_1d(p.logpdf, q.logpdf, grid)
    assert jsd == pytest.approx(jsd_by_scipy_quad(p, q), abs=1e-7)
    assert -1e-12 <= jsd <= LOG_2
    assert jensen_shannon_1d(q.logpdf(grid), p.logpdf(grid), grid) == pytest.approx(jsd, abs=1e-14)
    assert jensen_shannon_1d(p.logpdf, p.logpdf, grid) == pytest.approx(0.0, abs=1e-15)


def log_bump(low: float, high: float):
    """log of the density 6(x − a)(b − x)/(b − a)³ on [a, b], −∞ outside: a continuous density
    with compact support, so the trapezoid rule integrates it to O(h²)."""
    def log_density(x):
        inside = (x > low) & (x < high)
        safe = np.where(inside, x, (low + high) / 2)
        values = np.log(6 * (safe - low) * (high - safe) / (high - low) ** 3)
        return np.where(inside, values, -np.inf)
    return log_density


@pytest.mark.parametrize("first, second", [((0.0, 1.0), (1.0, 2.0)), ((-3.0, -1.0), (2.0, 2.5)),
                                           ((0.5, 4.0), (-2.0, 0.2))])
def test_continuous_disjoint_supports_give_log_2(first, second):
    grid = uniform_grid(-4.0, 5.0, 36001)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # −∞ log densities must not produce NaN or warnings
        jsd = jensen_shannon_1d(log_bump(*first), log_bump(*second), grid)
    # the trapezoid rule's error on each bump's unit mass is O(h²) ≈ 1e-7 here
    assert jsd == pytest.approx(LOG_2, abs=1e-6)
    overlapping = jensen_shannon_1d(log_bump(0.0, 2.0), log_bump(1.0, 3.0), grid)
    assert 0 < overlapping < LOG_2 - 0.01


def test_continuous_approaches_log_2_as_gaussians_separate():
    grid = uniform_grid(-15.0, 40.0, 20001)
    shifts = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    values = [jensen_shannon_1d(stats.norm(0, 1).logpdf, stats.norm(d, 1).logpdf, grid)
              for d in shifts]
    assert values[0] == pytest.approx(0.0, abs=1e-15)
    assert np.all(np.diff(values) > 0)
    # the overlap left at shift 16 is below the tail mass 2Φ(−8) ≈ 1e-15
    assert values[-1] == pytest.approx(LOG_2, abs=1e-10)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="same shape"):
        jensen_shannon_discrete([0.5, 0.5], [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon_discrete([1.5, -0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        jensen_shannon_discrete([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="finite"):
        jensen_shannon_discrete([np.nan, 1.0], [0.5, 0.5])
    with pytest.raises(TypeError, match="dtype"):
        jensen_shannon_discrete(np.array([0.5, 0.5], np.float32), np.array([0.5, 0.5]))
    grid = uniform_grid(-10.0, 10.0, 2001)
    with pytest.raises(ValueError, match="integrate to 1"):
        jensen_shannon_1d(lambda x: -x**2 / 2, stats.norm.logpdf, grid)  # unnormalized
    with pytest.raises(ValueError, match="one value per grid point"):
        jensen_shannon_1d(np.zeros(5), stats.norm.logpdf, grid)
    with pytest.raises(ValueError, match="NaN"):
        jensen_shannon_1d(lambda x: np.full_like(x, np.nan), stats.norm.logpdf, grid)


def test_each_half_of_a_disjoint_jsd_is_log_2():
    """KL(p‖r) = KL(q‖r) = log 2 for disjoint supports, r = (p + q)/2 (each, not log 2 / 2), so
    JSD = ½ log 2 + ½ log 2 = log 2; the halves agree with scipy.stats.entropy."""
    from minivae.divergences.jensen_shannon import _kl_to_mixture_terms

    p, q = np.array([0.7, 0.3, 0.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.2, 0.5, 0.3])
    r = (p + q) / 2
    for first, second in ((p, q), (q, p)):
        half = _kl_to_mixture_terms(first, second).sum()
        assert half == pytest.approx(LOG_2, abs=1e-15)
        assert half == pytest.approx(stats.entropy(first, r), abs=1e-15)
