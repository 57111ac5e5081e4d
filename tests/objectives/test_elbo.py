"""The ELBO: the identity log p(x) = ELBO(q) + KL(q ‖ p(z|x)), its three estimators, their
gradients, tightness at the exact posterior, and ELBO maximization on a Gaussian mixture."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae import Tensor, gradcheck, kl_divergence
from minivae.distributions import Bernoulli, GaussianMixture, MultivariateNormal
from minivae.distributions.multivariate_normal import scale_tril_from_unconstrained
from minivae.models import VAE, LinearGaussian
from minivae.objectives.elbo import FORMS, elbo

LOG_2PI = np.log(2 * np.pi)


def gaussian_problem(seed: int, x_dim: int = 3, z_dim: int = 2, batch: int = 2):
    """A random linear-Gaussian model, data drawn from it, and random parameters of a
    full-covariance Gaussian q: its mean and an unconstrained matrix for its Cholesky factor."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((x_dim, z_dim))
    b = rng.standard_normal(x_dim)
    sigma = rng.uniform(0.5, 1.5)
    x, _ = LinearGaussian(W, b, sigma).sample(batch, rng)
    loc = 0.7 * rng.standard_normal((batch, z_dim))
    raw = 0.4 * rng.standard_normal((batch, z_dim, z_dim))
    return W, b, sigma, x, loc, raw


def model_with_q(W, b, sigma, loc, raw) -> tuple[LinearGaussian, MultivariateNormal]:
    q = MultivariateNormal(loc, scale_tril_from_unconstrained(raw))
    return LinearGaussian(W, b, sigma, encoder=lambda x: q), q


def exact_elbo(W, b, sigma, x, m, S):
    """ELBO(q) for q = N(m, S), derived here in closed form (per example):

    E_q[log p(z)]   = −(d/2) log 2π − ½ (‖m‖² + tr S)
    E_q[log p(x|z)] = −(D/2) log 2π − D log σ − (‖x − W m − b‖² + tr(W S Wᵀ)) / (2σ²)
                      (E‖r − W ε‖² = ‖r‖² + tr(W S Wᵀ) for ε = z − m with covariance S)
    H[q]            = ½ d (1 + log 2π) + ½ log det S
    """
    D, d = W.shape
    residual = x - m @ W.T - b
    trace_S = np.trace(S, axis1=-2, axis2=-1)
    trace_WSW = np.trace(W @ S @ W.T, axis1=-2, axis2=-1)
    expected_log_prior = -0.5 * d * LOG_2PI - 0.5 * ((m * m).sum(-1) + trace_S)
    expected_log_lik = (-0.5 * D * LOG_2PI - D * np.log(sigma)
                        - ((residual ** 2).sum(-1) + trace_WSW) / (2 * sigma ** 2))
    entropy = 0.5 * d * (1 + LOG_2PI) + 0.5 * np.linalg.slogdet(S)[1]
    return expected_log_prior + expected_log_lik + entropy


def numpy_posterior_kl(W, b, sigma, x, m, S):
    """KL(N(m, S) ‖ p(z|x)) with p(z|x) = N(m_p, S_p) from Bayes' rule, written with inverses."""
    d = W.shape[1]
    precision = np.eye(d) + W.T @ W / sigma ** 2
    S_p = np.linalg.inv(precision)
    m_p = (x - b) @ W @ S_p / sigma ** 2
    shift = m_p - m
    return 0.5 * (np.trace(precision @ S, axis1=-2, axis2=-1)
                  + np.einsum("bi,ij,bj->b", shift, precision, shift) - d
                  + np.linalg.slogdet(S_p)[1] - np.linalg.slogdet(S)[1])


def log_evidence(W, b, sigma, x):
    return stats.multivariate_normal(b, W @ W.T + sigma ** 2 * np.eye(len(b))).logpdf(x)


def q_moments(q: MultivariateNormal):
    return q.loc.data, q.covariance_matrix.data


@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), x_dim=st.integers(1, 5), z_dim=st.integers(1, 3))
def test_elbo_is_log_evidence_minus_posterior_kl(seed, x_dim, z_dim):
    """log p(x) = ELBO(q) + KL(q ‖ p(z|x)) for an arbitrary Gaussian q, exactly."""
    W, b, sigma, x, loc, raw = gaussian_problem(seed, x_dim, z_dim, batch=3)
    model, q = model_with_q(W, b, sigma, loc, raw)
    m, S = q_moments(q)
    elbo_value = exact_elbo(W, b, sigma, x, m, S)
    kl = numpy_posterior_kl(W, b, sigma, x, m, S)
    truth = np.reshape(log_evidence(W, b, sigma, x), 3)
    np.testing.assert_allclose(elbo_value + kl, truth, rtol=1e-10, atol=1e-10)
    assert np.all(kl >= -1e-12) and np.all(elbo_value <= truth + 1e-10)
    # the engine's version of the same identity (used below as the exact gradient)
    engine = model.log_marginal(x) - kl_divergence(q, model.posterior(x))
    np.testing.assert_allclose(engine.data, elbo_value, rtol=1e-10, atol=1e-10)


def repeated_estimates(model, x, form, repeats, n_samples, seed):
    rng = np.random.default_rng(seed)
    return np.stack([elbo(model, x, rng, form, n_samples).data for _ in range(repeats)])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_forms_agree_with_the_exact_elbo(form, seed):
    W, b, sigma, x, loc, raw = gaussian_problem(seed, batch=3)
    model, q = model_with_q(W, b, sigma, loc, raw)
    estimates = repeated_estimates(model, x, form, repeats=40, n_samples=500, seed=seed + 10)
    mean = estimates.mean(axis=0)
    standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    truth = exact_elbo(W, b, sigma, x, *q_moments(q))
    assert np.all(np.abs(mean - truth) <= 5 * standard_error + 1e-12), (mean, truth)


def exact_gradient(W, b, sigma, x, loc, raw):
    """∇ of log p(x) − KL(q ‖ p(z|x)) (= ELBO(q)) w.r.t. q's parameters, by the engine."""
    loc_t, raw_t = Tensor(loc.copy(), requires_grad=True), Tensor(raw.copy(), requires_grad=True)
    model, q = model_with_q(W, b, sigma, loc_t, raw_t)
    (model.log_marginal(x) - kl_divergence(q, model.posterior(x))).sum().backward()
    return np.concatenate([loc_t.grad.ravel(), raw_t.grad.ravel()])


@pytest.mark.parametrize("form", FORMS)
def test_three_forms_have_the_exact_gradient(form):
    """E[∇ ELBO-estimate] = ∇ ELBO: the pathwise gradient is unbiased in all three forms."""
    W, b, sigma, x, loc, raw = gaussian_problem(4)
    truth = exact_gradient(W, b, sigma, x, loc, raw)
    rng = np.random.default_rng(5)
    gradients = []
    for _ in range(300):
        loc_t = Tensor(loc.copy(), requires_grad=True)
        raw_t = Tensor(raw.copy(), requires_grad=True)
        model, _ = model_with_q(W, b, sigma, loc_t, raw_t)
        elbo(model, x, rng, form, n_samples=4).sum().backward()
        gradients.append(np.concatenate([loc_t.grad.ravel(), raw_t.grad.ravel()]))
    gradients = np.array(gradients)
    standard_error = gradients.std(axis=0, ddof=1) / np.sqrt(len(gradients))
    difference = np.abs(gradients.mean(axis=0) - truth)
    assert np.all(difference <= 5 * standard_error + 1e-10), (difference, standard_error)


@pytest.mark.parametrize("form", FORMS)
def test_pathwise_gradient_matches_central_differences(form):
    """With the noise held fixed, each estimate is a smooth function of q's parameters."""
    W, b, sigma, x, loc, raw = gaussian_problem(6)

    def estimate(loc_t, raw_t):
        model, _ = model_with_q(W, b, sigma, loc_t, raw_t)
        return elbo(model, x, np.random.default_rng(7), form, n_samples=3)

    assert gradcheck(estimate, loc, raw)


def test_elbo_is_tight_at_the_exact_posterior():
    """q = p(z|x): ELBO = log p(x); the "monte_carlo" integrand log p(x,z) − log q(z|x) equals
    log p(x) for every z (no variance), while the other two forms are exact only on average."""
    W, b, sigma, x, _, _ = gaussian_problem(8, x_dim=4, z_dim=2, batch=3)
    model = LinearGaussian(W, b, sigma)  # encode(x) is the exact posterior
    truth = np.reshape(log_evidence(W, b, sigma, x), 3)
    np.testing.assert_allclose(exact_elbo(W, b, sigma, x, *q_moments(model.posterior(x))),
                               truth, rtol=1e-10)
    single = elbo(model, x, np.random.default_rng(0), "monte_carlo", n_samples=1).data
    np.testing.assert_allclose(single, truth, rtol=1e-10)
    for form in ("analytic", "entropy"):
        estimates = repeated_estimates(model, x, form, repeats=40, n_samples=200, seed=1)
        standard_error = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
        assert np.all(standard_error > 1e-6)  # these forms still fluctuate
        assert np.all(np.abs(estimates.mean(axis=0) - truth) <= 5 * standard_error)


def test_analytic_form_is_the_vae_elbo_and_dtypes_are_kept():
    """With one sample, the "analytic" form is what VAE.elbo computes (same noise ε)."""
    vae = VAE(6, hidden=(5,), z_dim=3, rng=np.random.default_rng(0), dtype=np.float64)
    x = (np.random.default_rng(1).random((4, 6)) < 0.5).astype(np.float64)
    np.testing.assert_allclose(elbo(vae, x, np.random.default_rng(2)).data,
                               vae.elbo(x, np.random.default_rng(2)).data, rtol=1e-10)
    vae32 = VAE(6, hidden=(5,), z_dim=3, rng=np.random.default_rng(0), dtype=np.float32)
    for form in FORMS:
        value = elbo(vae32, x.astype(np.float32), np.random.default_rng(3), form, n_samples=2)
        assert value.dtype == np.float32 and value.shape == (4,)


def test_bad_arguments_raise():
    W, b, sigma, x, loc, raw = gaussian_problem(0)
    model, _ = model_with_q(W, b, sigma, loc, raw)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="form must be one of"):
        elbo(model, x, rng, form="exact")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            elbo(model, x, rng, n_samples=bad)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        elbo(model, x, 0)


@pytest.mark.parametrize("form", FORMS)
def test_an_elbo_beyond_the_float_range_is_refused_naming_the_example(form):
    """x = 1e300 under a Gaussian likelihood: log p(x|z) ≈ −1e600 overflows to −∞, which is
    not the ELBO's value; the error names the example instead of returning −∞."""
    W, b, sigma, x, loc, raw = gaussian_problem(0)
    model, _ = model_with_q(W, b, sigma, loc, raw)
    x = x.copy()
    x[1] = 1e300
    with pytest.raises(ValueError, match="ELBO of example 1 is -inf"), \
            np.errstate(over="ignore"):  # (x − Wz − b)² overflows on purpose
        elbo(model, x, np.random.default_rng(0), form=form)


@settings(max_examples=30)
@given(x=st.floats(-4.0, 5.0), weight=st.floats(0.1, 0.9),
       r=st.floats(0.0, 1.0))
def test_mixture_elbo_is_maximized_at_the_responsibility(x, weight, r):
    """p(c) = (1 − π, π), p(x|c) = N(μ_c, σ_c²), q(c) = Bernoulli(r) over c ∈ {0, 1}:

    ELBO(r) = Σ_c q(c) [log p(x, c) − log q(c)] = r ℓ₁ + (1 − r) ℓ₀ + H(r),  ℓ_c = log p(x, c),

    is largest at r* = p(c=1 | x), where it equals log p(x); elsewhere the gap is
    KL(Bernoulli(r) ‖ Bernoulli(r*)) > 0, and dELBO/dr = ℓ₁ − ℓ₀ − logit(r) vanishes at r*.
    """
    loc, scale = np.array([-1.0, 2.0]), np.array([0.8, 1.3])
    log_joint = np.log([1 - weight, weight]) + stats.norm(loc, scale).logpdf(x)  # ℓ_0, ℓ_1
    evidence = special.logsumexp(log_joint)
    responsibility = np.exp(log_joint[1] - evidence)
    mixture = GaussianMixture(np.log([1 - weight, weight]), loc[:, None], scale[:, None])
    np.testing.assert_allclose(mixture.log_prob(np.array([x])).data, evidence, rtol=1e-12)
    np.testing.assert_allclose(mixture.responsibilities(np.array([x])).data[1], responsibility,
                               rtol=1e-10, atol=1e-14)

    def mixture_elbo(probability):
        q = Bernoulli(probs=probability)
        expected = sum(q.log_prob(float(c)).exp() * log_joint[c] for c in (0, 1))
        return expected + q.entropy()

    best = Tensor(np.array(responsibility), requires_grad=True)
    at_best = mixture_elbo(best)
    at_best.backward()
    np.testing.assert_allclose(at_best.data, evidence, rtol=1e-10, atol=1e-12)
    assert abs(best.grad) <= 1e-8 * max(1.0, abs(evidence))
    elsewhere = mixture_elbo(Tensor(np.array(r))).data
    gap = kl_divergence(Bernoulli(probs=r), Bernoulli(probs=responsibility)).data
    np.testing.assert_allclose(evidence - elsewhere, gap, rtol=1e-8, atol=1e-10)
    assert elsewhere <= evidence + 1e-12
    if abs(r - responsibility) > 1e-3:
        assert elsewhere < evidence
