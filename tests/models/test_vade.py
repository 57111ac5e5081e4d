"""VaDE (GMM-prior VAE): its closed-form ELBO against Monte Carlo, gradients, learning on real
digits; and the clustering tools it needs (optimal assignment, accuracy, EM for a diagonal GMM)."""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae import gradcheck
from minivae.distributions import DiagonalNormal
from minivae.engine.tensor import Tensor
from minivae.models.vade import VaDE
from minivae.optim import Adam
from minivae.topics.clustering import clustering_accuracy
from tests.helpers import assert_pictures, binary_data, mixture_data, mnist_5k, run_demo


def tiny_model(z_dim=2, n_clusters=3, x_dim=6, seed=0, dtype=np.float64, **options):
    """A tiny float64 VaDE whose prior is moved away from its default."""
    rng = np.random.default_rng(seed)
    model = VaDE(x_dim, hidden=(5,), z_dim=z_dim, n_clusters=n_clusters, rng=rng, dtype=dtype,
                 **options)
    model.prior_logits.data[...] = rng.normal(0, 1, n_clusters)
    model.prior_means.data[...] = rng.normal(0, 1.5, (n_clusters, z_dim))
    model.prior_log_vars.data[...] = rng.uniform(-1, 1, (n_clusters, z_dim))
    return model


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


def cluster_posteriors(model, x, rng, n=4000):
    """Two choices of q(c|x), (B, K) logs: p(c|z) averaged over z ~ q(z|x) (arithmetic mean),
    and an arbitrary one."""
    z = model.encode(x).rsample(rng, (n,)).data
    averaged = np.log(np.exp(model.log_responsibilities(z).data).mean(0))
    return averaged, special.log_softmax(rng.normal(0, 2, averaged.shape), axis=-1)


def test_elbo_terms_add_up_to_the_elbo_at_every_draw():
    """log p(x|z) − [log q(z|x) − log p(z)] − KL(q(c|x) ‖ p(c|z)) = Σ_c q(c|x)
    [log p(x, z, c) − log q(z|x) − log q(c|x)] draw by draw, every density from SciPy."""
    model = tiny_model(z_dim=2, n_clusters=3)
    x, rng = binary_data(4), np.random.default_rng(0)
    ref = numpy_model(model)
    loc, scale = ref.encode(x)
    z = loc + scale * rng.standard_normal((7, 4, 2))
    log_p_z_c = ref.log_pi + np.stack([stats.norm.logpdf(z, ref.means[c], ref.stds[c]).sum(-1)
                                       for c in range(3)], -1)  # (7, B, K)
    log_q_z = stats.norm.logpdf(z, loc, scale).sum(-1)
    for log_q_c in cluster_posteriors(model, x, rng):
        terms = model.elbo_terms(x, log_q_c, z)
        integrand = (np.exp(log_q_c) * (ref.log_likelihood(x, z)[..., None] + log_p_z_c
                                        - log_q_z[..., None] - log_q_c)).sum(-1)
        total = terms.reconstruction - terms.latent_kl - terms.cluster_kl
        np.testing.assert_allclose(total.data, integrand, rtol=1e-10)
        assert np.all(terms.cluster_kl.data >= 0)


def test_elbo_terms_average_to_the_closed_form():
    """E[log p(x|z)] − KL(q(z|x) ‖ p(z)) − E KL(q(c|x) ‖ p(c|z)), each a mean over the same
    draws, agrees with the closed form E[log p(x|z)] − KL(q(z|x) q(c|x) ‖ p(z, c)) within 5
    standard errors; and KL(q(z|x) ‖ p(z)) alone is not that KL (the cluster term is > 0)."""
    model = tiny_model(z_dim=2, n_clusters=3)
    x, rng, n = binary_data(3), np.random.default_rng(1), 20_000
    q = model.encode(x)
    z = q.rsample(rng, (n,))
    for log_q_c in cluster_posteriors(model, x, rng):
        terms = model.elbo_terms(x, log_q_c, z)
        prior_part = (terms.latent_kl + terms.cluster_kl).data  # (n, B), mean → the KL
        closed = model.kl_to_prior(q, log_q_c).data
        standard_error = prior_part.std(0, ddof=1) / math.sqrt(n)
        assert np.all(np.abs(prior_part.mean(0) - closed) <= 5 * standard_error)
        assert np.all(standard_error < 0.05)  # the check has teeth
        cluster_kl = terms.cluster_kl.data.mean(0)
        assert np.all(cluster_kl > 10 * terms.cluster_kl.data.std(0) / math.sqrt(n))


def test_cluster_kl_is_smallest_at_the_geometric_mean_of_p_c_given_z():
    """argmin over q(c|x) of E_z KL(q(c|x) ‖ p(c|z)) is ∝ exp(E_z log p(c|z)) = γ*, with
    γ*_c ∝ π_c exp(−KL(q(z|x) ‖ N(μ_c, σ_c²))); the arithmetic mean of p(c|z) does worse."""
    model = tiny_model(z_dim=2, n_clusters=3)
    x, rng, n = binary_data(3), np.random.default_rng(2), 20_000
    q = model.encode(x)
    z = q.rsample(rng, (n,))
    log_p_c_given_z = model.log_responsibilities(z).data  # (n, B, K)
    geometric = special.log_softmax(log_p_c_given_z.mean(0), axis=-1)
    var, prior_var = np.exp(q.log_var.data), np.exp(model.prior_log_vars.data)
    kl_c = 0.5 * (np.log(prior_var) - q.log_var.data[:, None] - 1 + var[:, None] / prior_var
                  + (q.loc.data[:, None] - model.prior_means.data) ** 2 / prior_var).sum(-1)
    optimal = special.log_softmax(special.log_softmax(model.prior_logits.data) - kl_c, axis=-1)
    se = log_p_c_given_z.std(0).max() / math.sqrt(n)
    np.testing.assert_allclose(geometric, optimal, atol=10 * se)

    def cluster_kl(log_q_c):
        return model.elbo_terms(x, log_q_c, z).cluster_kl.data.mean(0)
    best = cluster_kl(optimal)
    for other in cluster_posteriors(model, x, rng):
        assert np.all(cluster_kl(other) > best)


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


def test_training_on_real_digits_raises_the_objective():
    from minivae.data import binarize_dynamic, minibatches

    data = mnist_5k()
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
    mnist_5k()
    result = run_demo("vade_clustering", tmp_path, "--dataset", "mnist-5k", "--pretrain-epochs",
                      "1", "--epochs", "2", "--max-train", "300", "--hidden", "16", "--z-dim", "3",
                      "--n-clusters", "4", "--quiet")
    assert len(result["test_accuracy"]) == 3 and 0.1 <= result["accuracy"] <= 1
    assert_pictures(tmp_path, "samples_per_cluster.png", "test_clusters.png", "curve.png")
