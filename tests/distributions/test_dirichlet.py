"""Dirichlet: densities against scipy.stats, KL against a formula built from scipy's entropy and
Monte Carlo, marginals by KS tests, the score identity, the rsample gradient, gradients,
validation.

scipy is the independent oracle here; the library itself never imports it.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import special, stats

from minivae import Tensor, gradcheck
from minivae.distributions.dirichlet import Dirichlet
from minivae.distributions.kl import cross_entropy, kl_divergence
from tests.distributions.helpers import log_uniform


@st.composite
def concentrations(draw, batch=(), low=0.1, high=30.0):
    k = draw(st.integers(2, 5), label="K")
    return draw(log_uniform(batch + (k,), low, high), label="concentration")


def kl_from_scipy(a, b):
    """KL(Dir(a) ‖ Dir(b)) = −H(p) − E_p[log q], with H from scipy.stats and
    E_p[log q] = log Γ(b₀) − Σ log Γ(b_k) + Σ (b_k − 1) E_p[log x_k],
    E_p[log x_k] = ψ(a_k) − ψ(a₀).
    """
    expected_log_x = special.digamma(a) - special.digamma(a.sum())
    expected_log_q = (special.gammaln(b.sum()) - special.gammaln(b).sum()
                      + np.sum((b - 1) * expected_log_x))
    return -stats.dirichlet(a).entropy() - expected_log_q


@given(alpha=concentrations(), seed=st.integers(0, 2**16))
def test_log_prob_matches_scipy(alpha, seed):
    x = np.random.default_rng(seed).dirichlet(alpha, size=4)
    x = x[np.all(x > 0, axis=1)]  # scipy refuses points on the simplex's faces
    expected = [stats.dirichlet.logpdf(row, alpha) for row in x]
    np.testing.assert_allclose(Dirichlet(alpha).log_prob(x).data, expected, rtol=1e-8,
                               atol=1e-10)


def test_log_prob_off_the_simplex():
    dist = Dirichlet(np.array([[0.5, 2.0, 1.0], [3.0, 1.0, 2.0]]))  # batch of 2
    inside = np.array([0.2, 0.3, 0.5])
    assert np.all(np.isfinite(dist.log_prob(inside).data))
    assert np.all(np.isfinite(dist.log_prob(inside + 1e-9).data))  # within the tolerance √ε
    for off in (inside + 1e-6, np.array([-0.1, 0.6, 0.5]), np.array([np.inf, 0.5, 0.5])):
        assert np.all(dist.log_prob(off).data == -np.inf)
    with pytest.raises(ValueError, match="x must be free of NaN"):
        dist.log_prob(np.array([np.nan, 0.5, 0.5]))
    # faces: x_k = 0 gives the limit of x_k^(α_k − 1): +∞ for α_k < 1, −∞ for α_k > 1
    np.testing.assert_array_equal(dist.log_prob(np.array([0.0, 0.5, 0.5])).data,
                                  [np.inf, -np.inf])
    # where one factor's limit is +∞ and another's −∞ the density has no limit
    with pytest.raises(ValueError, match="no limit"):
        dist.log_prob(np.array([0.0, 0.0, 1.0]))
    # and for α_k = 1 the factor is 1: what is left is the density of the other coordinates
    face = dist.log_prob(np.array([0.5, 0.5, 0.0])).data[0]
    alpha = np.array([0.5, 2.0, 1.0])
    by_hand = (special.gammaln(alpha.sum()) - special.gammaln(alpha).sum()
               + np.sum((alpha[:2] - 1) * np.log(0.5)))
    np.testing.assert_allclose(face, by_hand, rtol=1e-12)
    assert dist.log_prob(np.tile(inside, (4, 1, 1))).shape == (4, 2)


@given(alpha=concentrations())
def test_entropy_mean_variance_match_scipy(alpha):
    dist, oracle = Dirichlet(alpha), stats.dirichlet(alpha)
    np.testing.assert_allclose(dist.entropy().data, oracle.entropy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dist.mean.data, oracle.mean(), rtol=1e-12)
    np.testing.assert_allclose(dist.variance.data, oracle.var(), rtol=1e-12)


@given(data=st.data())
def test_kl_matches_independent_formula(data):
    a = data.draw(concentrations(), label="a")
    b = data.draw(log_uniform(a.shape, 0.1, 30), label="b")
    kl = kl_divergence(Dirichlet(a), Dirichlet(b)).item()
    np.testing.assert_allclose(kl, kl_from_scipy(a, b), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("a, b", [([0.3, 0.8, 2.0], [1.0, 1.0, 1.0]),
                                  ([4.0, 2.0, 6.0, 1.5], [2.0, 2.0, 0.7, 3.0])])
def test_kl_matches_monte_carlo(a, b):
    p, q = Dirichlet(np.array(a)), Dirichlet(np.array(b))
    x = p.sample(np.random.default_rng(9), 100_000)
    log_ratio = p.log_prob(x).data - q.log_prob(x).data
    standard_error = log_ratio.std() / np.sqrt(log_ratio.size)
    assert abs(log_ratio.mean() - kl_divergence(p, q).item()) <= 5 * standard_error


@given(data=st.data())
def test_kl_is_nonnegative_zero_on_the_diagonal_and_cross_entropy_minus_entropy(data):
    a = data.draw(concentrations(batch=(3,), low=0.05, high=50), label="a")
    b = data.draw(log_uniform(a.shape, 0.05, 50), label="b")
    p, q = Dirichlet(a), Dirichlet(b)
    kl = kl_divergence(p, q).data
    assert kl.shape == (3,) and np.all(kl >= -1e-12)
    np.testing.assert_allclose(kl_divergence(p, p).data, 0, atol=1e-12)
    difference = cross_entropy(p, q).data - p.entropy().data
    assert np.all(np.abs(kl - difference) <= 1e-9 * (1 + np.abs(kl)))


@pytest.mark.parametrize("alpha", [[0.05, 0.1, 0.3, 0.4], [0.5, 1.0, 2.5, 4.0], [20.0, 3.0]])
def test_marginal_of_samples_is_beta_by_ks(alpha):
    """x_k ~ Beta(α_k, α₀ − α_k): each marginal by a KS test, its mean within 5 SE.

    (With α₀ − α_k small, many x_k round to exactly 1 and the ties would void a KS test, so
    the smallest concentrations go in ``test_tiny_concentrations_give_finite_draws``.)
    """
    alpha = np.array(alpha)
    x = Dirichlet(alpha).sample(np.random.default_rng(13), 20_000).data
    assert np.all(np.isfinite(x)) and np.allclose(x.sum(axis=-1), 1, rtol=0, atol=1e-12)
    for k in range(len(alpha)):
        marginal = stats.beta(alpha[k], alpha.sum() - alpha[k])
        assert stats.kstest(x[:, k], marginal.cdf).pvalue > 1e-3
        assert abs(x[:, k].mean() - marginal.mean()) <= 5 * marginal.std() / np.sqrt(len(x))


def test_tiny_concentrations_give_finite_draws():
    """Gamma(0.002, 1) draws round to 0 about a quarter of the time, so normalizing them would
    give 0/0 in about 2.5% of pairs; drawn in log space, every draw is on the simplex."""
    alpha = np.array([0.002, 0.003])
    n = 20_000
    x = Dirichlet(alpha).sample(np.random.default_rng(14), n).data
    assert np.all(np.isfinite(x)) and np.allclose(x.sum(axis=-1), 1, rtol=0, atol=1e-12)
    marginal = stats.beta(alpha[0], alpha[1])
    assert abs(x[:, 0].mean() - marginal.mean()) <= 5 * marginal.std() / np.sqrt(n)


def test_score_function_has_mean_zero():
    """E_p[∂ log p(x)/∂α_k] = 0 for each k."""
    n = 100_000
    alpha = Tensor(np.tile([0.4, 2.0, 1.3], (n, 1)), requires_grad=True)
    dist = Dirichlet(alpha)
    dist.log_prob(dist.sample(np.random.default_rng(3))).sum().backward()
    per_draw = alpha.grad
    assert np.all(np.abs(per_draw.mean(axis=0)) <= 5 * per_draw.std(axis=0) / np.sqrt(n))


@pytest.mark.parametrize("concentration", [[0.3, 1.0, 2.0], [5.0, 0.8]])
def test_rsample_gradient_is_unbiased(concentration):
    """E[∂x_k/∂α_j] = ∂(α_k/α₀)/∂α_j = (δ_kj α₀ − α_k)/α₀²  (Monte Carlo, 5 SE)."""
    concentration = np.array(concentration)
    n, total = 20_000, concentration.sum()
    for k in range(len(concentration)):
        alpha = Tensor(np.tile(concentration, (n, 1)), requires_grad=True)
        x = Dirichlet(alpha).rsample(np.random.default_rng(7))
        selector = np.zeros((n, len(concentration)))
        selector[:, k] = 1
        x.backward(selector)
        expected = (np.eye(len(concentration))[k] * total - concentration[k]) / total**2
        per_draw = alpha.grad
        assert np.all(np.abs(per_draw.mean(axis=0) - expected)
                      <= 5 * per_draw.std(axis=0) / np.sqrt(n))


def softmax(y: Tensor) -> Tensor:
    weights = y.exp()
    return weights / weights.sum(axis=-1, keepdims=True)


@settings(max_examples=6)  # each example gradchecks the float-range KL graph (~3 s)
@given(data=st.data())
def test_gradients_of_log_prob_entropy_and_kl(data):
    a = data.draw(concentrations(batch=(2,), low=0.2, high=20), label="a")
    b = data.draw(log_uniform(a.shape, 0.2, 20), label="b")
    y = data.draw(hnp.arrays(np.float64, a.shape, elements=st.floats(-2, 2)), label="y")
    # x = softmax(y) stays on the simplex under the finite-difference steps
    assert gradcheck(lambda s, t: Dirichlet(s).log_prob(softmax(t)), a, y)
    assert gradcheck(lambda s: Dirichlet(s).entropy(), a)
    assert gradcheck(lambda s, t: kl_divergence(Dirichlet(s), Dirichlet(t)), a, b)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_parameters_raise_naming_them(bad):
    with pytest.raises(ValueError, match="concentration"):
        Dirichlet(np.array([1.0, bad, 2.0]))
    Dirichlet(np.array([1.0, bad]), validate_args=False)  # the check can be switched off


def test_concentration_needs_a_category_axis():
    for shape in ((), (3, 0)):
        with pytest.raises(ValueError, match="concentration"):
            Dirichlet(np.ones(shape))
    with pytest.raises(ValueError, match="event shape"):
        Dirichlet(np.ones(3)).log_prob(np.full(4, 0.25))


def test_float32_is_preserved():
    alpha = np.array([0.5, 3.0, 1.0], np.float32)
    dist, rng = Dirichlet(alpha), np.random.default_rng(0)
    x = np.array([0.25, 0.5, 0.25], np.float32)
    outputs = [dist.log_prob(x), dist.entropy(), dist.mean, dist.variance, dist.sample(rng),
               dist.rsample(rng, 3), kl_divergence(dist, Dirichlet(alpha[::-1].copy()))]
    assert all(out.dtype == np.float32 for out in outputs)
    assert np.isfinite(dist.log_prob(x + np.float32(1e-7)).item())  # float32 tolerance √ε
    a = Tensor(alpha, requires_grad=True)
    (Dirichlet(a).rsample(rng, 4) * Tensor(np.arange(3, dtype=np.float32))).sum().backward()
    assert a.grad.dtype == np.float32


def test_sample_shapes():
    dist, rng = Dirichlet(np.ones((2, 4))), np.random.default_rng(0)
    assert dist.batch_shape == (2,) and dist.event_shape == (4,)
    for method in (dist.sample, dist.rsample):
        assert method(rng).shape == (2, 4)
        assert method(rng, (5, 3)).shape == (5, 3, 2, 4)
    assert dist.log_prob(dist.sample(rng, 5)).shape == (5, 2)
    assert dist.entropy().shape == (2,) and dist.mean.shape == (2, 4)
