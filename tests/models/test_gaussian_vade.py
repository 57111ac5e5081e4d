"""VaDE with a Gaussian decoder: its ELBO against SciPy and against Monte Carlo, ELBO ≤ log p(x),
gradients, the variance floor, and clustering of real-valued data."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from minivae.models.gaussian_vade import GaussianVaDE
from minivae.optim import Adam
from minivae.topics.clustering import clustering_accuracy


def tiny_model(z_dim=2, n_clusters=3, x_dim=6, seed=0, dtype=np.float64, **options):
    """A tiny float64 Gaussian VaDE whose prior is moved away from its default."""
    rng = np.random.default_rng(seed)
    model = GaussianVaDE(x_dim, hidden=(5,), z_dim=z_dim, n_clusters=n_clusters, rng=rng,
                         dtype=dtype, **options)
    model.prior_logits.data[...] = rng.normal(0, 1, n_clusters)
    model.prior_means.data[...] = rng.normal(0, 1.5, (n_clusters, z_dim))
    model.prior_log_vars.data[...] = rng.uniform(-1, 1, (n_clusters, z_dim))
    return model


def real_data(n, x_dim=6, seed=1):
    return np.random.default_rng(seed).normal(0.3, 1.0, (n, x_dim))


def numpy_decoder(model):
    """(μ_x, σ_x) of z, read from the model's parameters, in NumPy."""
    w2, b2, w3, b3 = [p.data for p in model.parameters()[4:8]]
    d = model.x_dim

    def decode(z):
        output = np.tanh(z @ w2 + b2) @ w3 + b3
        mean = special.expit(output[..., :d]) if model.mean_activation == "sigmoid" \
            else output[..., :d]
        return mean, np.sqrt(model.min_sigma**2 + np.exp(output[..., d:]))  # σ² = floor² + e^h
    return decode


def numpy_elbo(model, x, eps):
    """The closed form, term by term in SciPy: (1/L) Σ_l [Σ_i log N(x_i; μ_xi, σ_xi²)
    − ½ Σ_c γ_c Σ_j (log σ²_cj + σ̃²_j/σ²_cj + (μ̃_j − μ_cj)²/σ²_cj)
    + Σ_c γ_c log(π_c/γ_c) + ½ Σ_j (1 + log σ̃²_j)],  γ = p(c | z_l)."""
    w0, b0, w1, b1 = [p.data for p in model.parameters()[:4]]
    h = np.tanh(x @ w0 + b0) @ w1 + b1
    loc, var = h[:, :model.z_dim], np.exp(h[:, model.z_dim:])
    z = loc + np.sqrt(var) * eps  # (L, B, J)
    mean, sigma = numpy_decoder(model)(z)
    log_likelihood = stats.norm.logpdf(x, mean, sigma).sum(-1)
    log_pi = special.log_softmax(model.prior_logits.data)
    means, prior_var = model.prior_means.data, np.exp(model.prior_log_vars.data)
    log_joint = log_pi + np.stack([stats.norm.logpdf(z, means[c], np.sqrt(prior_var[c])).sum(-1)
                                   for c in range(len(log_pi))], -1)
    gamma = special.softmax(log_joint, axis=-1)
    inner = (np.log(prior_var) + var[:, None, :] / prior_var
             + (loc[:, None, :] - means) ** 2 / prior_var).sum(-1)
    return (log_likelihood - 0.5 * (gamma * inner).sum(-1)
            + (gamma * (log_pi - np.log(gamma))).sum(-1)
            + 0.5 * (1 + np.log(var)).sum(-1)).mean(0)


@pytest.mark.parametrize("mean_activation", ["identity", "sigmoid"])
@pytest.mark.parametrize("n_samples", [1, 3])
def test_objective_matches_numpy(mean_activation, n_samples):
    model = tiny_model(mean_activation=mean_activation, n_samples=n_samples, min_sigma=0.05)
    x = real_data(4)
    objective = model.objective(x, np.random.default_rng(5)).data
    eps = np.random.default_rng(5).standard_normal((n_samples, 4, 2))
    np.testing.assert_allclose(objective, numpy_elbo(model, x, eps), rtol=1e-10)


def test_closed_form_elbo_matches_monte_carlo():
    """Closed form (given q(c|x) = γ) = E_q(z,c|x)[log p(x, z, c) − log q(z, c | x)], with the
    same z draws in both; c ~ γ and every density from SciPy."""
    model = tiny_model()
    x, n = real_data(3), 20_000
    rng = np.random.default_rng(3)
    q = model.encode(x)
    log_gamma = model.log_responsibilities(q.rsample(rng))  # γ = p(c | z) at one draw, (B, K)
    z = q.rsample(rng, (n,))  # (n, B, J)
    closed = model.log_likelihood(x, z).data.mean(0) - model.kl_to_prior(q, log_gamma).data

    mean, sigma = numpy_decoder(model)(z.data)
    log_pi = special.log_softmax(model.prior_logits.data)
    means, stds = model.prior_means.data, np.exp(0.5 * model.prior_log_vars.data)
    gamma = np.exp(log_gamma.data)
    c = np.stack([rng.choice(3, n, p=gamma[b]) for b in range(3)], axis=1)  # (n, B)
    log_p = (stats.norm.logpdf(x, mean, sigma).sum(-1) + log_pi[c]
             + stats.norm.logpdf(z.data, means[c], stds[c]).sum(-1))
    log_q = (stats.norm.logpdf(z.data, q.loc.data, q.scale.data).sum(-1)
             + np.log(gamma[np.arange(3), c]))
    difference = log_p - log_q
    standard_error = difference.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(difference.mean(0) - closed) <= 5 * standard_error)
    assert np.all(standard_error < 0.05)  # the check has teeth


def test_elbo_is_below_the_evidence():
    """With z_dim = 1, log p(x) = log ∫ N(x; μ_x(z), σ_x²(z)) Σ_c π_c N(z; μ_c, σ_c²) dz on a
    fine grid; importance sampling agrees with it and the mean ELBO lies below it."""
    model = tiny_model(z_dim=1, min_sigma=0.3)
    x = real_data(3)
    log_pi = special.log_softmax(model.prior_logits.data)
    means, stds = model.prior_means.data[:, 0], np.exp(0.5 * model.prior_log_vars.data[:, 0])
    grid = np.linspace(-15, 15, 30_001)[:, None, None].repeat(3, axis=1)  # (G, B, 1)
    log_prior = special.logsumexp(log_pi + stats.norm.logpdf(grid, means, stds), -1)
    mean, sigma = numpy_decoder(model)(grid)
    log_likelihood = stats.norm.logpdf(x, mean, sigma).sum(-1)
    step = grid[1, 0, 0] - grid[0, 0, 0]
    log_px = special.logsumexp(log_likelihood + log_prior, axis=0) + np.log(step)
    n = 20_000
    log_w = model.log_importance_weights(x, n, np.random.default_rng(0))  # (n, B)
    weights = np.exp(log_w - log_px)  # scaled by p(x): mean 1
    assert np.all(np.abs(weights.mean(0) - 1) <= 5 * weights.std(0, ddof=1) / math.sqrt(n))
    elbos = model.elbo(np.tile(x, (n, 1)), np.random.default_rng(1)).data.reshape(n, 3)
    assert np.all(elbos.mean(0) <= log_px)
    gap = log_px - elbos.mean(0)
    assert np.all(gap > 5 * elbos.std(0, ddof=1) / math.sqrt(n))  # strictly below, not by noise


def test_objective_gradient_passes_gradcheck(objective_gradcheck):
    objective_gradcheck(tiny_model(n_samples=2, min_sigma=0.05), real_data(4), 7)


def test_variance_floor_keeps_the_density_finite():
    model = tiny_model(min_sigma=0.01)
    last = model.decoder.layers[-1]
    last.weight.data[:, 6:] = 0.0
    for raw, expected in ((-1e4, 0.01), (0.0, math.sqrt(1e-4 + 1.0)), (30.0, math.exp(15.0))):
        last.bias.data[6:] = raw
        sigma = np.exp(model.decode(model.encode(real_data(2)).loc).log_scale.data)
        np.testing.assert_allclose(sigma, expected, rtol=1e-12)
    last.bias.data[6:] = -1e4
    x = real_data(3)
    model.zero_grad()
    value = model.objective(x, np.random.default_rng(0))
    (-value.sum()).backward()
    assert np.all(np.isfinite(value.data)) and np.all(np.isfinite(model.flat_grad))


def test_pictures_and_decoder_means():
    model = tiny_model(x_dim=6)
    model.decoder.layers[-1].bias.data[:6] = [-3.0, 3.0, 0.5, 0.2, 9.0, -9.0]
    x = real_data(5)
    assert np.all((model.reconstruct(x) >= 0) & (model.reconstruct(x) <= 1))
    samples = model.sample(50, np.random.default_rng(0), cluster=2)
    assert samples.shape == (50, 6) and samples.min() == 0.0 and samples.max() == 1.0
    z = model.encode(x).loc.data
    np.testing.assert_allclose(model.decoder_means(z), numpy_decoder(model)(z)[0], rtol=1e-12)
    np.testing.assert_allclose(model.reconstruct(x), np.clip(model.decoder_means(z), 0, 1))


def test_constructor_and_inputs_are_validated():
    rng = np.random.default_rng(0)
    for options, name in (({"min_sigma": 0.0}, "min_sigma"), ({"min_sigma": -1}, "min_sigma"),
                          ({"mean_activation": "relu"}, "mean_activation"),
                          ({"n_clusters": 0}, "n_clusters")):
        with pytest.raises(ValueError, match=name):
            GaussianVaDE(6, rng=rng, **options)
    model = tiny_model()
    assert not model.binary_data and model.x_support == "real"
    with pytest.raises(ValueError, match=r"x must be finite"):
        model.objective(np.full((2, 6), np.nan), rng)
    model32 = GaussianVaDE(6, hidden=(5,), z_dim=2, n_clusters=3, rng=rng)
    value = model32.objective(real_data(4).astype(np.float32), rng)
    assert value.dtype == np.float32 and np.all(np.isfinite(value.data))


def blobs_through_a_nonlinear_map(n, n_clusters=4, x_dim=10, seed=0):
    """(x, labels): n points of well-separated 2-D Gaussian blobs (centres on a circle of
    radius 4, unit spread) sent to x_dim dimensions by a fixed random map tanh(A u + b) + C u."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_clusters, n)
    angles = 2 * np.pi * np.arange(n_clusters) / n_clusters
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    u = centres[labels] + rng.standard_normal((n, 2))
    a, b = rng.normal(0, 0.7, (2, x_dim)), rng.normal(0, 1, x_dim)
    return np.tanh(u @ a + b) + u @ rng.normal(0, 0.3, (2, x_dim)), labels


def test_clusters_real_valued_blobs_better_than_chance():
    x, labels = blobs_through_a_nonlinear_map(1200)
    rng = np.random.default_rng(0)
    model = GaussianVaDE(10, hidden=(32,), z_dim=2, n_clusters=4, rng=rng, dtype=np.float64,
                         min_sigma=0.01)
    optimizer = Adam(model.parameters(), lr=5e-3)

    def steps(objective, n_steps):
        values = []
        for _ in range(n_steps):
            batch = x[rng.integers(0, len(x), 100)]
            value = objective(batch).mean()
            optimizer.zero_grad()
            (-value).backward()
            optimizer.step()
            values.append(float(value.data))
        return values

    steps(model.autoencoder_objective, 300)
    model.initialize_prior(model.encode(x).loc.data, rng)
    values = steps(lambda batch: model.objective(batch, rng), 300)
    assert np.all(np.isfinite(values))
    assert np.mean(values[-50:]) > np.mean(values[:50])  # the ELBO rose
    # chance, the best matching of random clusters to 4 balanced classes, is about 0.27
    assert clustering_accuracy(labels, model.predict(x)) > 0.6
