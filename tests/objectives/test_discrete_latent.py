"""Exact inference over a discrete latent against scipy: log p(x), the posterior, the ELBO
identity log p(x) = ELBO(q) + KL(q ‖ p(·|x)), the ELBO-tightening example of a two-component
Gaussian mixture (the optimum is the exact posterior), and the weights' relative variance."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from minivae.objectives.discrete_latent import (
    bernoulli_q,
    elbo,
    gaussian_mixture_log_joint,
    kl_to_posterior,
    log_evidence,
    posterior,
    relative_second_moment,
    sample_log_weights,
)

# the lecture's two-component mixture (component 1 is the one whose posterior is λ)
WEIGHTS = np.array([0.67, 0.33])
MEANS = np.array([[1.10, 0.86], [4.04, 3.83]])
COVARIANCES = np.array([[[1.20, -0.97], [-0.97, 1.15]], [[1.79, -0.10], [-0.10, 2.00]]])

log_joints = st.lists(st.floats(-60, 10), min_size=2, max_size=6).map(np.array)


def scipy_log_joint(x):
    return np.array([np.log(w) + stats.multivariate_normal(m, c).logpdf(x)
                     for w, m, c in zip(WEIGHTS, MEANS, COVARIANCES)])


@pytest.mark.parametrize("x", [[2.108, 1.878], [0.0, 0.0], [4.0, 4.0], [-3.0, 9.0]])
def test_gaussian_mixture_log_joint_matches_scipy(x):
    np.testing.assert_allclose(gaussian_mixture_log_joint(np.array(x), WEIGHTS, MEANS,
                                                          COVARIANCES),
                               scipy_log_joint(x), rtol=1e-12)


@given(log_joint=log_joints)
def test_evidence_and_posterior_match_scipy(log_joint):
    np.testing.assert_allclose(log_evidence(log_joint), special.logsumexp(log_joint), rtol=1e-13)
    np.testing.assert_allclose(posterior(log_joint), special.softmax(log_joint), atol=1e-15,
                               rtol=1e-12)


@given(log_joint=log_joints, raw=st.lists(st.floats(0, 1), min_size=6, max_size=6))
def test_elbo_plus_kl_is_the_evidence(log_joint, raw):
    q = np.array(raw[:len(log_joint)]) + 1e-3
    q /= q.sum()
    entropy_form = (q * log_joint).sum() + stats.entropy(q)  # E_q log p(x, c) + H(q)
    np.testing.assert_allclose(elbo(q, log_joint), entropy_form, rtol=1e-12, atol=1e-12)
    kl = kl_to_posterior(q, log_joint)
    np.testing.assert_allclose(kl, stats.entropy(q, special.softmax(log_joint)), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(elbo(q, log_joint) + kl, special.logsumexp(log_joint),
                               rtol=1e-12, atol=1e-11)
    assert kl >= 0


def test_bernoulli_elbo_peaks_at_the_posterior():
    """At every λ of a grid the ELBO is log p(x) − KL(Ber(λ) ‖ Ber(β)) with β from scipy;
    a bounded scalar optimizer (scipy) finds the maximum at β, and the ELBO there is log p(x)."""
    x = np.array([2.108, 1.878])
    log_joint = gaussian_mixture_log_joint(x, WEIGHTS, MEANS, COVARIANCES)
    reference = scipy_log_joint(x)
    beta = np.exp(reference[1] - special.logsumexp(reference))
    lam = np.linspace(0, 1, 201)
    curve = elbo(bernoulli_q(lam), log_joint)
    kl = special.rel_entr(lam, beta) + special.rel_entr(1 - lam, 1 - beta)  # 0 log 0 = 0
    np.testing.assert_allclose(curve, special.logsumexp(reference) - kl, rtol=1e-12, atol=1e-12)
    best = optimize.minimize_scalar(lambda l: -elbo(bernoulli_q(l), log_joint), bounds=(0, 1),
                                    method="bounded", options={"xatol": 1e-10})
    np.testing.assert_allclose(best.x, beta, atol=1e-7)
    np.testing.assert_allclose(posterior(log_joint)[1], beta, rtol=1e-12)
    np.testing.assert_allclose(elbo(bernoulli_q(beta), log_joint), special.logsumexp(reference),
                               rtol=1e-13)
    assert abs(beta - 0.76) < 0.005  # this x is a point where the lecture's 0.76 holds


def test_elbo_ends_are_the_joint_log_densities():
    """λ = 0 and 1 are a point mass on one component: ELBO = log p(x, c), no 0 · log 0 NaN."""
    log_joint = np.array([-3.0, -5.0])
    np.testing.assert_array_equal(elbo(bernoulli_q(np.array([0.0, 1.0])), log_joint), log_joint)


@given(log_joint=log_joints, seed=st.integers(0, 2**16))
@settings(max_examples=20)
def test_weights_under_the_posterior_all_equal_the_evidence(log_joint, seed):
    """q = p(·|x): w = p(x, c)/p(c|x) = p(x) for every draw, so the estimate has no spread."""
    log_q = np.log(special.softmax(log_joint))
    _, log_w = sample_log_weights(log_joint, log_q, 50, np.random.default_rng(seed))
    np.testing.assert_allclose(log_w, special.logsumexp(log_joint), rtol=1e-12, atol=1e-12)


def test_relative_second_moment_matches_enumeration():
    log_joint = np.log([0.02, 0.3, 1e-4, 0.05])
    for q in (np.array([0.25, 0.25, 0.25, 0.25]), np.array([0.1, 0.6, 0.2, 0.1])):
        p = np.exp(log_joint)
        expected = (q * (p / q) ** 2).sum() / p.sum() ** 2  # E_q[w²]/p(x)², w = p(x,c)/q_c
        np.testing.assert_allclose(relative_second_moment(log_joint, np.log(q)), expected,
                                   rtol=1e-13)
    # one latent value in |Z| = 1000 explains x: χ² = |Z| − 1 under uniform prior sampling
    one_hot = np.full(1000, -np.inf)
    one_hot[17] = -2.0
    np.testing.assert_allclose(relative_second_moment(one_hot, np.full(1000, -np.log(1000))),
                               1000.0, rtol=1e-12)


def test_prior_sampling_mean_agrees_within_its_standard_error():
    x = np.array([2.108, 1.878])
    log_joint = gaussian_mixture_log_joint(x, WEIGHTS, MEANS, COVARIANCES)
    _, log_w = sample_log_weights(log_joint, np.log(WEIGHTS), 20_000, np.random.default_rng(3))
    w = np.exp(log_w)
    exact = np.exp(special.logsumexp(scipy_log_joint(x)))
    se = np.sqrt((relative_second_moment(log_joint, np.log(WEIGHTS)) - 1) / len(w)) * exact
    assert abs(w.mean() - exact) < 4 * se
    np.testing.assert_allclose(w.std(ddof=1) / exact, np.sqrt(se**2 * len(w)) / exact, rtol=0.05)


@pytest.mark.parametrize("call, message", [
    (lambda: elbo([0.5, 0.6], [-1.0, -2.0]), "q must be a distribution"),
    (lambda: bernoulli_q(1.5), "lam must be a probability"),
    (lambda: log_evidence([np.nan, 1.0]), "log_joint must be log-densities"),
    (lambda: gaussian_mixture_log_joint([0.0, 0.0], WEIGHTS, MEANS, -COVARIANCES),
     "covariances must be positive definite"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
