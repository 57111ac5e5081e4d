"""MultivariateNormal: densities against scipy.stats, KLs against a numpy.linalg formula written
here (inverses and determinants are fine in a test) and against Monte Carlo, gradients."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import stats

from minivae import Tensor, gradcheck
from minivae.distributions.base import Distribution, Independent
from minivae.distributions.kl import cross_entropy, kl_divergence
from minivae.distributions.multivariate_normal import (
    MultivariateNormal,
    scale_tril_from_unconstrained,
)
from minivae.distributions.normal import Normal
from minivae.engine.ops.linalg import tril
from tests.distributions.helpers import reals


@st.composite
def gaussians(draw, d, batch=()):
    """(loc, L): L lower-triangular, diagonal log-uniform in [0.3, 3], below it in [−1, 1]."""
    loc = draw(reals(batch + (d,), -3, 3), label="loc")
    below = np.tril(draw(reals(batch + (d, d), -1, 1), label="below"), -1)
    diagonal = np.exp(draw(reals(batch + (d,), np.log(0.3), np.log(3.0)), label="log_diag"))
    return loc, below + diagonal[..., None] * np.eye(d)


dims = st.integers(1, 4)


def numpy_kl(loc_p, cov_p, loc_q, cov_q):
    """½[tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀΣ_q⁻¹(μ_q − μ_p) − d + log det Σ_q − log det Σ_p]."""
    inverse_q = np.linalg.inv(cov_q)
    shift = loc_q - loc_p
    return 0.5 * (np.trace(inverse_q @ cov_p) + shift @ inverse_q @ shift - len(loc_p)
                  + np.log(np.linalg.det(cov_q)) - np.log(np.linalg.det(cov_p)))


@given(data=st.data(), d=dims)
def test_log_prob_and_entropy_match_scipy(data, d):
    loc, L = data.draw(gaussians(d, batch=(2,)))
    x = data.draw(reals((3, 2, d), -8, 8), label="x")
    dist = MultivariateNormal(loc, L)
    log_prob, entropy = dist.log_prob(x).data, dist.entropy().data
    for b in range(2):
        oracle = stats.multivariate_normal(loc[b], L[b] @ L[b].T)
        np.testing.assert_allclose(log_prob[:, b], oracle.logpdf(x[:, b]), rtol=1e-9)
        np.testing.assert_allclose(entropy[b], oracle.entropy(), rtol=1e-9, atol=1e-12)


def test_log_prob_is_minus_infinity_for_infinite_points():
    dist = MultivariateNormal(np.zeros(2), np.array([[1.0, 0.0], [0.5, 1.0]]))
    values = dist.log_prob(np.array([[np.inf, np.inf], [-np.inf, 0.0], [0.0, 0.0]])).data
    assert values[0] == values[1] == -np.inf and np.isfinite(values[2])


@given(data=st.data(), d=dims)
def test_mean_variance_and_covariance(data, d):
    loc, L = data.draw(gaussians(d, batch=(2,)))
    dist = MultivariateNormal(loc[:1], L)  # loc broadcasts against the batch of L
    covariance = np.einsum("bij,bkj->bik", L, L)
    np.testing.assert_allclose(dist.covariance_matrix.data, covariance, rtol=1e-12)
    np.testing.assert_allclose(dist.variance.data, np.diagonal(covariance, 0, -2, -1), rtol=1e-12)
    np.testing.assert_allclose(dist.mean.data, np.broadcast_to(loc[:1], (2, d)))


@given(data=st.data(), d=dims)
def test_change_of_variables(data, d):
    """z = μ + L ε with ε ~ N(0, I) has density N(ε; 0, I) / |det L|."""
    loc, L = data.draw(gaussians(d))
    noise = data.draw(reals((d,), -3, 3), label="noise")
    z = loc + L @ noise
    expected = stats.multivariate_normal(np.zeros(d)).logpdf(noise) - np.log(abs(np.linalg.det(L)))
    assert MultivariateNormal(loc, L).log_prob(z).item() == pytest.approx(expected, rel=1e-9)
    # with L = diag(σ) it is the diagonal Gaussian Independent(Normal(μ, σ), 1)
    scale = np.diagonal(L)
    diagonal = Independent(Normal(loc, scale), 1).log_prob(z).item()
    assert MultivariateNormal(loc, np.diag(scale)).log_prob(z).item() == \
        pytest.approx(diagonal, rel=1e-10)


def test_sample_covariance_approaches_scale_tril_squared():
    loc = np.array([1.0, -2.0, 0.5])
    L = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.5, 0.3, 1.2]])
    covariance, n = L @ L.T, 100_000
    z = MultivariateNormal(loc, L).sample(np.random.default_rng(2), (n,)).data
    assert np.all(np.abs(z.mean(0) - loc) <= 5 * np.sqrt(np.diag(covariance) / n))
    # For Gaussian data, Var[(zᵢ − μᵢ)(zⱼ − μⱼ)] = ΣᵢᵢΣⱼⱼ + Σᵢⱼ², which sets each entry's SE.
    entry_se = np.sqrt((np.outer(np.diag(covariance), np.diag(covariance)) + covariance**2) / n)
    assert np.all(np.abs(np.cov(z, rowvar=False) - covariance) <= 5 * entry_se)
    whitened = np.linalg.solve(L, (z - loc).T).T  # L⁻¹(z − μ) must be N(0, I)
    for j in range(3):
        assert stats.kstest(whitened[:, j], "norm").pvalue > 1e-3


@given(data=st.data())
@settings(max_examples=10)
def test_gradients_of_rsample_log_prob_and_kl(data):
    """Every parameter entry, scale_tril included (tril zeroes the upper part, whose gradient
    must then be 0, and keeps the matrix valid under the finite-difference steps)."""
    (loc_p, L_p), (loc_q, L_q) = data.draw(gaussians(3)), data.draw(gaussians(3))
    x = data.draw(reals((2, 3), -3, 3), label="x")

    def mvn(loc, raw):
        return MultivariateNormal(loc, tril(raw))

    def diag(loc, scale):
        return Independent(Normal(loc, scale), 1)

    scale = np.diagonal(L_q).copy()
    assert gradcheck(lambda m, r: mvn(m, r).rsample(np.random.default_rng(3), (2,)), loc_p, L_p)
    assert gradcheck(lambda m, r, v: mvn(m, r).log_prob(v), loc_p, L_p, x)
    assert gradcheck(lambda r: mvn(np.zeros(3), r).entropy(), L_p)
    assert gradcheck(lambda r: mvn(np.zeros(3), r).covariance_matrix, L_p)
    for divergence in (kl_divergence, cross_entropy):
        assert gradcheck(lambda a, b, c, e, f=divergence: f(mvn(a, b), mvn(c, e)),
                         loc_p, L_p, loc_q, L_q)
    assert gradcheck(lambda a, b, c, e: kl_divergence(mvn(a, b), diag(c, e)), loc_p, L_p, loc_q,
                     scale)
    assert gradcheck(lambda a, b, c, e: kl_divergence(diag(a, b), mvn(c, e)), loc_q, scale,
                     loc_p, L_p)


@given(data=st.data(), d=dims)
def test_kl_matches_an_independent_formula(data, d):
    (loc_p, L_p), (loc_q, L_q) = data.draw(gaussians(d, batch=(2,))), data.draw(gaussians(d))
    sigma_p, sigma_q = np.diagonal(L_p, 0, -2, -1), np.diagonal(L_q)
    p, q = MultivariateNormal(loc_p, L_p), MultivariateNormal(loc_q, L_q)
    diag_p, diag_q = Independent(Normal(loc_p, sigma_p), 1), Independent(Normal(loc_q, sigma_q), 1)
    pairs = {  # name: (p, q, covariance of p for batch entry b, covariance of q)
        "mvn-mvn": (p, q, lambda b: L_p[b] @ L_p[b].T, L_q @ L_q.T),
        "diag-mvn": (diag_p, q, lambda b: np.diag(sigma_p[b] ** 2), L_q @ L_q.T),
        "mvn-diag": (p, diag_q, lambda b: L_p[b] @ L_p[b].T, np.diag(sigma_q**2)),
    }
    for name, (first, second, cov_p, cov_q) in pairs.items():
        kl = kl_divergence(first, second).data
        assert kl.shape == (2,), name
        expected = [numpy_kl(loc_p[b], cov_p(b), loc_q, cov_q) for b in range(2)]
        np.testing.assert_allclose(kl, expected, rtol=1e-8, atol=1e-12, err_msg=name)
    # A diagonal Gaussian is the MultivariateNormal with L = diag(σ).
    full_p = MultivariateNormal(loc_p, sigma_p[..., None] * np.eye(d))
    full_q = MultivariateNormal(loc_q, np.diag(sigma_q))
    np.testing.assert_allclose(kl_divergence(diag_p, q).data, kl_divergence(full_p, q).data,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(kl_divergence(p, diag_q).data, kl_divergence(p, full_q).data,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(kl_divergence(diag_p, diag_q).data,
                               kl_divergence(full_p, full_q).data, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", ["mvn-mvn", "diag-mvn", "mvn-diag"])
def test_kl_matches_monte_carlo(kind):
    loc_p, L_p = np.array([0.5, -1.0, 0.0]), np.array([[1.0, 0, 0], [0.4, 0.7, 0], [0, -0.3, 1.1]])
    loc_q, L_q = np.array([0.0, 0.3, 0.2]), np.array([[1.5, 0, 0], [-0.2, 0.9, 0], [0.6, 0, 0.8]])
    if kind == "diag-mvn":
        L_p = np.diag(np.diagonal(L_p))
        p = Independent(Normal(loc_p, np.diagonal(L_p)), 1)
        q = MultivariateNormal(loc_q, L_q)
    elif kind == "mvn-diag":
        L_q = np.diag(np.diagonal(L_q))
        p = MultivariateNormal(loc_p, L_p)
        q = Independent(Normal(loc_q, np.diagonal(L_q)), 1)
    else:
        p, q = MultivariateNormal(loc_p, L_p), MultivariateNormal(loc_q, L_q)
    z = np.random.default_rng(4).multivariate_normal(loc_p, L_p @ L_p.T, 100_000)
    terms = (stats.multivariate_normal(loc_p, L_p @ L_p.T).logpdf(z)
             - stats.multivariate_normal(loc_q, L_q @ L_q.T).logpdf(z))
    standard_error = terms.std(ddof=1) / np.sqrt(len(terms))
    assert abs(terms.mean() - kl_divergence(p, q).item()) <= 5 * standard_error


@given(data=st.data(), d=dims)
def test_kl_is_nonnegative_and_zero_on_the_diagonal(data, d):
    (loc_p, L_p), (loc_q, L_q) = data.draw(gaussians(d)), data.draw(gaussians(d))
    p, q = MultivariateNormal(loc_p, L_p), MultivariateNormal(loc_q, L_q)
    assert kl_divergence(p, q).item() >= 0
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-10)
    sigma = np.diagonal(L_p)
    diag, full = Independent(Normal(loc_p, sigma), 1), MultivariateNormal(loc_p, np.diag(sigma))
    assert kl_divergence(diag, full).item() == pytest.approx(0.0, abs=1e-10)
    assert kl_divergence(full, diag).item() == pytest.approx(0.0, abs=1e-10)
    assert kl_divergence(diag, q).item() >= 0 and kl_divergence(p, Independent(
        Normal(loc_q, np.diagonal(L_q)), 1)).item() >= 0


@given(data=st.data(), d=dims)
def test_kl_is_cross_entropy_minus_entropy(data, d):
    (loc_p, L_p), (loc_q, L_q) = data.draw(gaussians(d)), data.draw(gaussians(d))
    p, q = MultivariateNormal(loc_p, L_p), MultivariateNormal(loc_q, L_q)
    cross = cross_entropy(p, q).item()
    assert kl_divergence(p, q).item() == pytest.approx(cross - p.entropy().item(), abs=1e-9)
    # −E_p[log q] = ½[d log 2π + log det Σ_q + tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀΣ_q⁻¹(μ_q − μ_p)]
    cov_p, cov_q = L_p @ L_p.T, L_q @ L_q.T
    shift, inverse_q = loc_q - loc_p, np.linalg.inv(cov_q)
    expected = 0.5 * (d * np.log(2 * np.pi) + np.log(np.linalg.det(cov_q))
                      + np.trace(inverse_q @ cov_p) + shift @ inverse_q @ shift)
    assert cross == pytest.approx(expected, rel=1e-8)
    assert cross_entropy(p, p).item() == pytest.approx(p.entropy().item(), rel=1e-12)


def test_score_function_has_zero_mean():
    """E_q[∇_θ log q(x)] = ∇_θ ∫ q dx = 0 for every entry of μ and of L's lower triangle."""
    n, L = 20_000, np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.4, 0.2, 1.3]])
    loc = Tensor(np.tile([0.3, -0.2, 1.0], (n, 1)), requires_grad=True)  # a copy per draw
    scale_tril = Tensor(np.tile(L, (n, 1, 1)), requires_grad=True)
    dist = MultivariateNormal(loc, scale_tril)
    dist.log_prob(dist.sample(np.random.default_rng(6))).sum().backward()
    rows, cols = np.tril_indices(3)
    for score in (loc.grad, scale_tril.grad[:, rows, cols]):
        assert np.all(np.abs(score.mean(0)) <= 5 * score.std(0, ddof=1) / np.sqrt(n))
    assert np.all(scale_tril.grad[:, 0, 1:] == 0) and np.all(scale_tril.grad[:, 1, 2] == 0)


@pytest.mark.parametrize("mode", ["softplus", "exp"])
@given(raw=reals((2, 3, 3), -4, 4))
@settings(max_examples=15)
def test_scale_tril_from_unconstrained(mode, raw):
    L = scale_tril_from_unconstrained(raw, diagonal=mode).data
    positive = np.logaddexp(0, raw) if mode == "softplus" else np.exp(raw)
    expected = np.tril(raw, -1) + np.diagonal(positive, 0, -2, -1)[..., None] * np.eye(3)
    np.testing.assert_allclose(L, expected, rtol=1e-14)
    MultivariateNormal(np.zeros(3), L)  # passes validation
    assert gradcheck(lambda r: scale_tril_from_unconstrained(r, diagonal=mode), raw)


def test_scale_tril_from_unconstrained_edge_cases():
    raw = np.array([[50.0, 1000.0], [2.0, -1.0]], dtype=np.float32)
    for mode in ("softplus", "exp"):  # a huge entry above the diagonal is ignored, no inf·0
        L = scale_tril_from_unconstrained(Tensor(raw), diagonal=mode)
        assert L.dtype == np.float32 and np.all(np.isfinite(L.data)) and L.data[0, 1] == 0
    # softplus grows linearly: an output of 50 gives a scale of 50, not e⁵⁰
    assert scale_tril_from_unconstrained(raw).data[0, 0] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="diagonal must be 'softplus' or 'exp'"):
        scale_tril_from_unconstrained(raw, diagonal="square")
    with pytest.raises(ValueError, match="raw must have shape"):
        scale_tril_from_unconstrained(np.zeros((2, 3)))


def test_mixed_kl_needs_an_independent_normal_over_one_axis():
    class Other(Distribution):
        pass

    q = MultivariateNormal(np.zeros(3), np.eye(3))
    other = Independent(Other((3,), (), np.float64), 1)
    nested = Independent(Independent(Normal(np.zeros(3), 1.0), 1), 0)
    for p in (other, nested):
        with pytest.raises(NotImplementedError, match="Independent\\(Normal, 1\\)"):
            kl_divergence(p, q)
        with pytest.raises(NotImplementedError, match="Independent\\(Normal, 1\\)"):
            kl_divergence(q, p)


LOWER = np.array([[1.0, 0.0], [0.5, 2.0]])


@pytest.mark.parametrize("loc, scale_tril, message", [
    (np.zeros(2), np.ones((2, 3)), "scale_tril must have shape"),
    (np.zeros(2), np.ones(2), "scale_tril must have shape"),
    (np.zeros(3), LOWER, "loc must have shape"),
    (np.zeros((3, 2)), np.stack([LOWER, LOWER]), "batch axes of loc"),
    (np.zeros(2), np.array([[1.0, 0.1], [0.5, 2.0]]), "scale_tril must be lower-triangular"),
    (np.zeros(2), np.array([[1.0, 0.0], [0.5, 0.0]]), "scale_tril must be positive on the diag"),
    (np.zeros(2), np.array([[-1.0, 0.0], [0.5, 2.0]]), "scale_tril must be positive on the diag"),
    (np.zeros(2), np.array([[1.0, 0.0], [np.inf, 2.0]]), "scale_tril must be finite"),
    (np.zeros(2), np.array([[np.nan, 0.0], [0.0, 2.0]]), "scale_tril must be finite"),
    (np.array([0.0, np.nan]), LOWER, "loc must be finite"),
])
def test_invalid_parameters_raise_value_errors_naming_them(loc, scale_tril, message):
    with pytest.raises(ValueError, match=message):
        MultivariateNormal(loc, scale_tril)


def test_value_checks_can_be_switched_off_but_shape_checks_cannot():
    MultivariateNormal(np.zeros(2), np.array([[1.0, 5.0], [0.5, -2.0]]), validate_args=False)
    with pytest.raises(ValueError, match="loc must have shape"):
        MultivariateNormal(np.zeros(3), LOWER, validate_args=False)
    with pytest.raises(ValueError, match="x must end in the event shape"):
        MultivariateNormal(np.zeros(2), LOWER).log_prob(np.zeros(3))
    with pytest.raises(TypeError, match="rng"):
        MultivariateNormal(np.zeros(2), LOWER).sample(None)


def test_float32_is_preserved():
    loc, L = np.zeros(2, np.float32), LOWER.astype(np.float32)
    p, q = MultivariateNormal(loc, L), MultivariateNormal(loc + 1, 2 * L)
    diag = Independent(Normal(loc, np.ones(2, np.float32)), 1)
    x = p.rsample(np.random.default_rng(0), (4,))
    outputs = [x, p.log_prob(x), p.entropy(), p.mean, p.variance, p.covariance_matrix,
               kl_divergence(p, q), cross_entropy(p, q), kl_divergence(p, diag),
               kl_divergence(diag, p)]
    assert all(out.dtype == np.float32 for out in outputs)
    with pytest.raises(TypeError, match="scale_tril"):
        MultivariateNormal(loc, LOWER)


def test_shapes_follow_sample_batch_event():
    dist = MultivariateNormal(np.zeros((4, 1, 3)), np.stack([np.eye(3), 2 * np.eye(3)]))
    assert dist.batch_shape == (4, 2) and dist.event_shape == (3,)
    x = dist.sample(np.random.default_rng(0), (5,))
    assert x.shape == (5, 4, 2, 3)
    assert dist.rsample(np.random.default_rng(0)).shape == (4, 2, 3)
    assert dist.log_prob(x).shape == (5, 4, 2)
    assert dist.log_prob(np.zeros(3)).shape == (4, 2)
    assert dist.entropy().shape == (4, 2)
    assert dist.mean.shape == dist.variance.shape == (4, 2, 3)
    assert dist.covariance_matrix.shape == (4, 2, 3, 3)
    q = MultivariateNormal(np.ones(3), np.eye(3))
    assert kl_divergence(dist, q).shape == kl_divergence(q, dist).shape == (4, 2)
    assert cross_entropy(dist, q).shape == (4, 2)
    diag = Independent(Normal(np.zeros((2, 3)), 1.0), 1)
    assert kl_divergence(dist, diag).shape == kl_divergence(diag, dist).shape == (4, 2)
