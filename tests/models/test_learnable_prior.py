"""The learnable prior N(μ_z, σ_z² I): its KL, log density and gradients, the prior that is optimal
for a fixed encoder (the moment match of the aggregate posterior), and the VAE option."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from minivae import Tensor, gradcheck
from minivae.distributions import DiagonalNormal
from minivae.io.checkpoint import load_checkpoint
from minivae.io.resume import load_model
from minivae.models.gaussian_decoder import GaussianDecoderVAE
from minivae.models.learnable_prior import LearnablePrior, moment_matched_prior
from minivae.models.vae import VAE
from minivae.optim import Adam
from tests.helpers import grey_data


def random_prior(z_dim, seed, dtype=np.float64):
    prior, rng = LearnablePrior(z_dim, dtype), np.random.default_rng(seed)
    prior.mean.data[...] = rng.normal(0.0, 1.5, z_dim)
    prior.log_var.data[...] = rng.normal(0.0, 1.0)
    return prior


def random_posterior(batch, z_dim, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.5, (batch, z_dim)), rng.normal(0.0, 1.0, (batch, z_dim))


def kl_by_quadrature(loc, scale, prior_loc, prior_scale):
    """KL(N(loc, scale²) ‖ N(prior_loc, prior_scale²)) in 1-D as ∫ q (log q − log p)."""
    def integrand(z):
        log_q = stats.norm.logpdf(z, loc, scale)
        return np.exp(log_q) * (log_q - stats.norm.logpdf(z, prior_loc, prior_scale))
    value, _ = integrate.quad(integrand, loc - 40 * scale, loc + 40 * scale, epsabs=1e-13,
                              epsrel=1e-12, limit=200)
    return value


@pytest.mark.parametrize("seed", range(4))
def test_kl_matches_quadrature_and_monte_carlo(seed):
    prior = random_prior(3, seed)
    loc, log_var = random_posterior(2, 3, seed + 10)
    kl = prior.kl(DiagonalNormal(Tensor(loc), Tensor(log_var))).data
    prior_loc, prior_scale = prior.mean.data, np.exp(0.5 * float(prior.log_var.data))
    scale = np.exp(0.5 * log_var)
    # the diagonal KL is the sum of the coordinates' 1-D KLs
    exact = [sum(kl_by_quadrature(loc[b, j], scale[b, j], prior_loc[j], prior_scale)
                 for j in range(3)) for b in range(2)]
    np.testing.assert_allclose(kl, exact, rtol=1e-8, atol=1e-10)
    # Monte Carlo: the mean of log q(z) − log p(z) over z ~ q, within 5 standard errors
    rng = np.random.default_rng(seed)
    z = loc + scale * rng.standard_normal((100_000, *loc.shape))
    log_ratio = (stats.norm.logpdf(z, loc, scale)
                 - stats.norm.logpdf(z, prior_loc, prior_scale)).sum(-1)
    standard_error = log_ratio.std(axis=0) / np.sqrt(len(z))
    assert np.all(np.abs(log_ratio.mean(axis=0) - kl) < 5 * standard_error)


def test_kl_to_the_initial_prior_is_the_standard_normal_kl():
    loc, log_var = random_posterior(4, 3, 0)
    q = DiagonalNormal(Tensor(loc), Tensor(log_var))
    expected = 0.5 * (loc**2 + np.exp(log_var) - 1 - log_var).sum(-1)
    np.testing.assert_allclose(LearnablePrior(3, np.float64).kl(q).data, expected, rtol=1e-12)


def test_kl_gradients_pass_gradcheck():
    """In μ_z and log σ_z² (what training moves) and in the posterior's μ, log σ², float64."""
    prior = random_prior(3, 1)
    loc, log_var = random_posterior(4, 3, 2)

    def kl(loc, log_var, prior_mean, prior_log_var):
        prior.mean, prior.log_var = prior_mean, prior_log_var
        return prior.kl(DiagonalNormal(loc, log_var))

    assert gradcheck(kl, loc, log_var, prior.mean.data.copy(), prior.log_var.data.copy(),
                     n_directions=5)


def test_log_prob_matches_scipy():
    prior = random_prior(4, 3)
    z = np.random.default_rng(0).normal(0.0, 3.0, (5, 4))
    variance = np.exp(float(prior.log_var.data))
    expected = stats.multivariate_normal.logpdf(z, prior.mean.data, variance * np.eye(4))
    np.testing.assert_allclose(prior.log_prob(z).data, expected, rtol=1e-12)
    # the VAE's log p(x, z) uses it: log p(x | z) + log N(z; μ_z, σ_z² I)
    model = VAE(6, hidden=(5,), z_dim=4, rng=np.random.default_rng(0), dtype=np.float64,
                prior="learnable")
    model.latent_prior.mean.data[...], model.latent_prior.log_var.data[...] = (
        prior.mean.data, prior.log_var.data)
    x = (grey_data(5, 6) > 0.5).astype(np.float64)
    np.testing.assert_allclose(model.log_joint(x, z).data,
                               model.log_likelihood(x, z).data + expected, rtol=1e-12)


def bernoulli_vae_elbo(model, x, eps):
    """log p(x|z) − KL(q ‖ N(μ_z, σ_z² I)) in NumPy/SciPy for a one-hidden-layer VAE."""
    w0, b0, w1, b1, w2, b2, w3, b3 = [p.data for p in model.parameters()][:8]
    h = np.tanh(x @ w0 + b0) @ w1 + b1
    loc, log_var = h[:, :model.z_dim], h[:, model.z_dim:]
    z = loc + np.exp(0.5 * log_var) * eps
    logits = np.tanh(z @ w2 + b2) @ w3 + b3
    log_likelihood = stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1)
    prior_mean, prior_var = model.latent_prior.mean.data, np.exp(model.latent_prior.log_var.data)
    kl = 0.5 * ((np.exp(log_var) + (loc - prior_mean) ** 2) / prior_var - 1 - log_var
                + np.log(prior_var)).sum(-1)
    return log_likelihood - kl


def test_elbo_with_a_learnable_prior_matches_numpy():
    model = VAE(6, hidden=(5,), z_dim=3, rng=np.random.default_rng(0), dtype=np.float64,
                prior="learnable")
    model.latent_prior.mean.data[...] = [0.5, -1.0, 2.0]
    model.latent_prior.log_var.data[...] = 0.7
    x = (grey_data(7, 6) > 0.5).astype(np.float64)
    elbo = model.elbo(x, np.random.default_rng(9)).data
    eps = np.random.default_rng(9).standard_normal((7, 3))  # the noise elbo draws
    np.testing.assert_allclose(elbo, bernoulli_vae_elbo(model, x, eps), rtol=1e-10)


def test_elbo_gradients_reach_the_prior_and_pass_gradcheck(objective_gradcheck):
    model = GaussianDecoderVAE(5, hidden=(4,), z_dim=2, rng=np.random.default_rng(0),
                               dtype=np.float64, sigma="z_dependent", prior="learnable",
                               min_sigma=0.05)
    model.latent_prior.mean.data[...] = [0.3, -0.2]
    model.latent_prior.log_var.data[...] = -0.4
    objective_gradcheck(model, grey_data(3, 5), seed=3)


def test_training_only_the_prior_reaches_the_moment_match():
    """For a fixed encoder, maximizing the mean ELBO over μ_z, σ_z² alone gives μ_z = mean of
    the μ's and σ_z² = the mean over coordinates of mean(σ² + μ²) − mean(μ)²."""
    model = VAE(8, hidden=(6,), z_dim=3, rng=np.random.default_rng(4), dtype=np.float64,
                prior="learnable")
    x = (grey_data(60, 8, seed=5) > 0.5).astype(np.float64)
    encoder = [p.data.copy() for p in model.encoder.parameters()]
    optimizer = Adam(model.latent_prior.parameters(), lr=0.05)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        optimizer.zero_grad()
        (-model.elbo(x, rng).mean()).backward()
        optimizer.step()
    assert all(np.array_equal(a, p.data) for a, p in zip(encoder, model.encoder.parameters()))
    q = model.encode(x)
    loc, variance = q.loc.data, np.exp(q.log_var.data)
    best_mean = loc.mean(axis=0)
    best_variance = ((variance + loc**2).mean(axis=0) - best_mean**2).mean()
    np.testing.assert_allclose(model.latent_prior.mean.data, best_mean, atol=1e-6)
    np.testing.assert_allclose(np.exp(model.latent_prior.log_var.data), best_variance, rtol=1e-6)
    mean, variance_z = moment_matched_prior(q.loc.data, q.log_var.data)
    np.testing.assert_allclose(mean, best_mean, rtol=1e-12)
    np.testing.assert_allclose(variance_z, best_variance, rtol=1e-12)


def test_the_moment_match_minimizes_the_mean_kl():
    loc, log_var = random_posterior(50, 3, 7)
    q = DiagonalNormal(Tensor(loc), Tensor(log_var))
    mean, variance = moment_matched_prior(loc, log_var)
    prior = LearnablePrior(3, np.float64)

    def mean_kl(shift, log_scale):
        prior.mean.data[...] = mean + shift
        prior.log_var.data[...] = np.log(variance) + log_scale
        return float(prior.kl(q).data.mean())

    best = mean_kl(0.0, 0.0)
    for shift, log_scale in ((0.05, 0.0), (-0.05, 0.0), (0.0, 0.05), (0.0, -0.05),
                             (np.array([0.0, 0.03, 0.0]), 0.02)):
        assert mean_kl(shift, log_scale) > best


def test_samples_come_from_the_learned_prior():
    model = VAE(6, hidden=(5,), z_dim=2, rng=np.random.default_rng(0), dtype=np.float64,
                prior="learnable")
    model.latent_prior.mean.data[...] = [5.0, -3.0]
    model.latent_prior.log_var.data[...] = np.log(4.0)
    z = model.prior_draws(40_000, np.random.default_rng(1)).data
    # mean within 5 standard errors (σ/√n = 0.01), variance within 5 of its (σ² √(2/n) = 0.028)
    assert np.all(np.abs(z.mean(axis=0) - [5.0, -3.0]) < 5 * 2.0 / np.sqrt(len(z)))
    assert np.all(np.abs(z.var(axis=0) - 4.0) < 5 * 4.0 * np.sqrt(2 / len(z)))


def test_a_bad_prior_is_named():
    with pytest.raises(ValueError, match="prior must be one of"):
        VAE(6, hidden=(5,), z_dim=2, rng=np.random.default_rng(0), prior="gaussian")


@pytest.mark.parametrize("model, options", [
    ("vae", ["prior=learnable"]),
    ("gaussian_decoder", ["prior=learnable", "sigma=z_dependent"]),
])
def test_a_checkpoint_keeps_the_new_parameters(tmp_path, model, options):
    from minivae.cli import main

    out = tmp_path / "run"
    flags = [flag for option in options for flag in ("--option", option)]
    assert main(["train", "--model", model, *flags, "--max-train", "128", "--max-test", "64",
                 "--epochs", "1", "--hidden", "8", "--z-dim", "2", "--quiet", "--threads", "1",
                 "--out", str(out)]) == 0
    arrays, _ = load_checkpoint(out / "checkpoint.npz")
    loaded, config = load_model(out / "checkpoint.npz")
    assert config.model_options == dict(option.split("=") for option in options)
    for name in ("latent_prior.mean", "latent_prior.log_var"):
        assert name in arrays and np.any(arrays[name] != 0)  # trained away from N(0, I)
    state = loaded.state_dict()
    assert sorted(state) == sorted(k for k in arrays if not k.startswith("_"))
    for name, value in state.items():
        np.testing.assert_array_equal(value, arrays[name])
    if model == "gaussian_decoder":  # the decoder emits [μ; log σ²] per pixel
        assert state["decoder.layers.1.bias"].shape == (2 * 784,)
