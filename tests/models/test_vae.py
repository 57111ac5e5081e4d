"""The Bernoulli VAE: its ELBO, its gradients, its bounds on log p(x), and that it learns digits."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import special, stats

from minivae.models import VAE
from minivae.objectives.likelihood import importance_sampling_log_likelihood
from tests import helpers
from tests.helpers import binary_data, mnist_5k, train_with_adam

tiny_vae = functools.partial(helpers.tiny_vae, z_dim=1, activation="tanh")


def numpy_forward(vae, x, eps):
    """The VAE's ELBO written again in plain NumPy/SciPy from its parameters."""
    (w0, b0, w1, b1, w2, b2, w3, b3) = [p.data for p in vae.parameters()]
    h = np.tanh(x @ w0 + b0) @ w1 + b1
    loc, log_var = h[:, : vae.z_dim], h[:, vae.z_dim:]
    z = loc + np.exp(0.5 * log_var) * eps
    logits = np.tanh(z @ w2 + b2) @ w3 + b3
    p = special.expit(logits)
    reconstruction = (x * np.log(p) + (1 - x) * np.log1p(-p)).sum(-1)
    kl = 0.5 * (loc**2 + np.exp(log_var) - 1 - log_var).sum(-1)
    return reconstruction - kl, loc, log_var


def test_elbo_is_reconstruction_minus_kl():
    vae = tiny_vae(z_dim=3)
    x = binary_data(5, 6)
    elbo = vae.elbo(x, np.random.default_rng(9))
    eps = np.random.default_rng(9).standard_normal((5, 3))
    np.testing.assert_allclose(elbo.data, numpy_forward(vae, x, eps)[0], rtol=1e-10)


def test_kl_term_matches_monte_carlo():
    vae = tiny_vae(z_dim=3)
    x = binary_data(4, 6)
    q = vae.encode(x)
    loc, scale = q.loc.data, q.scale.data
    n = 50_000
    z = loc + scale * np.random.default_rng(0).standard_normal((n, *loc.shape))
    log_ratio = stats.norm.logpdf(z, loc, scale).sum(-1) - stats.norm.logpdf(z).sum(-1)  # (n, B)
    standard_error = log_ratio.std(axis=0, ddof=1) / np.sqrt(n)
    difference = np.abs(q.kl_to_standard_normal().data - log_ratio.mean(axis=0))
    assert np.all(difference < 5 * standard_error)


def test_elbo_gradient_matches_central_differences(flat_gradient_check):
    vae = tiny_vae(z_dim=2)
    x = binary_data(7, 6)
    vae.elbo(x, np.random.default_rng(5)).sum().backward()

    def objective():
        return float(vae.elbo(x, np.random.default_rng(5)).data.sum())  # same ε every call

    directions = np.random.default_rng(6).standard_normal((6, vae.flat_data.size))
    flat_gradient_check(vae, objective, vae.flat_grad.copy(), directions, rtol=1e-6, atol=1e-7)


def exact_log_marginal(vae, x):
    """log p(x) = log ∫ p(x|z) N(z; 0, 1) dz by quadrature on a fine grid (z_dim = 1 only)."""
    grid = np.linspace(-10, 10, 20_001)
    (w2, b2, w3, b3) = [p.data for p in vae.decoder.parameters()]
    logits = np.tanh(grid[:, None] @ w2 + b2) @ w3 + b3  # (G, D)
    log_p_x_given_z = x @ logits.T - np.logaddexp(0, logits).sum(-1)  # (N, G)
    log_integrand = log_p_x_given_z + stats.norm.logpdf(grid)
    return special.logsumexp(log_integrand, axis=1) + np.log(grid[1] - grid[0])


def test_importance_sampling_bounds():
    """ELBO ≤ L_k ≤ log p(x), and the IS estimate converges to the exact log p(x)."""
    vae = tiny_vae(z_dim=1, seed=3)
    x = binary_data(6, 6, seed=4)
    exact = exact_log_marginal(vae, x)
    rng = np.random.default_rng(0)

    n = 4000  # repetitions of each estimator, for its mean and standard error
    elbos = np.stack([vae.elbo(x, rng).data for _ in range(n // 100)])
    log_w = vae.log_importance_weights(x, n, rng)  # (n, N)
    elbo_mean = log_w.mean(axis=0)  # E_q[log w] is the ELBO with a Monte Carlo KL
    elbo_se = log_w.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(elbo_mean < exact + 5 * elbo_se)
    np.testing.assert_allclose(elbos.mean(0), elbo_mean, atol=float(5 * elbo_se.max()) + 0.5)

    # L_10 from 400 independent groups of 10 weights: above the ELBO, below log p(x).
    groups = log_w.reshape(400, 10, -1)
    l10 = special.logsumexp(groups, axis=1) - np.log(10)  # (400, N)
    l10_se = l10.std(axis=0, ddof=1) / np.sqrt(400)
    assert np.all(l10.mean(0) > elbo_mean - 5 * (l10_se + elbo_se))
    assert np.all(l10.mean(0) < exact + 5 * l10_se)

    estimate, _ = importance_sampling_log_likelihood(vae, x, 20_000, rng, batch_size=100)
    np.testing.assert_allclose(estimate, exact, atol=0.02)


def test_importance_sampling_in_chunks_equals_one_pass(monkeypatch):
    import minivae.objectives.likelihood as likelihood

    vae = tiny_vae(z_dim=2)
    x = binary_data(4, 6)
    monkeypatch.setattr(likelihood, "ROWS_PER_CHUNK", 12)  # 3 samples of 4 examples per chunk
    chunked, _ = importance_sampling_log_likelihood(vae, x, 10, np.random.default_rng(1),
                                                    batch_size=4)
    log_w = vae.log_importance_weights(x, 10, np.random.default_rng(1))
    np.testing.assert_allclose(chunked, special.logsumexp(log_w, axis=0) - np.log(10), rtol=1e-10)


def test_sample_and_reconstruct_are_probabilities_of_the_right_shape():
    vae = tiny_vae(z_dim=2, dtype=np.float32)
    samples = vae.sample(5, np.random.default_rng(0))
    recon = vae.reconstruct(binary_data(3, 6, dtype=np.float32))
    assert samples.shape == (5, 6) and recon.shape == (3, 6)
    assert samples.dtype == recon.dtype == np.float32
    assert np.all((samples > 0) & (samples < 1)) and np.all((recon > 0) & (recon < 1))


def test_sample_pixel_means_are_the_decoder_averaged_over_the_prior():
    """sample(n) returns σ(g(z)), z ~ N(0, 1) (z_dim = 1, tanh decoder g): each pixel's mean and
    variance over 20,000 draws match ∫ σ(g(z))ᵏ φ(z) dz by quadrature, with g written again in
    NumPy, within 5 SE; a pixel wired as the negation of another is exactly 1 minus it (one
    shared z per draw)."""
    from scipy import integrate

    vae = tiny_vae()
    _, _, _, _, w2, b2, w3, b3 = vae.parameters()
    w2.data *= 3.0  # make the decoder bend, so the mean differs from σ(g(0))
    w3.data[:, 5], b3.data[5] = -w3.data[:, 0], -b3.data[0]
    n = 20_000
    samples = vae.sample(n, np.random.default_rng(3))

    def pixel(z, j, power):
        logits = np.tanh(z * w2.data[0] + b2.data) @ w3.data + b3.data
        return special.expit(logits[j]) ** power * stats.norm.pdf(z)

    for j in range(5):
        mean = integrate.quad(pixel, -12, 12, args=(j, 1), epsabs=1e-12)[0]
        second = integrate.quad(pixel, -12, 12, args=(j, 2), epsabs=1e-12)[0]
        standard_error = samples[:, j].std() / np.sqrt(n)
        assert abs(samples[:, j].mean() - mean) <= 5 * standard_error
        fourth = np.mean((samples[:, j] - mean) ** 4)
        variance = second - mean**2
        assert abs(samples[:, j].var() - variance) <= 5 * np.sqrt((fourth - variance**2) / n)
        decoded_at_zero = pixel(0.0, j, 1) / stats.norm.pdf(0.0)
        assert abs(mean - decoded_at_zero) > 10 * standard_error  # tells E σ(g(z)) from σ(g(0))
    np.testing.assert_allclose(samples[:, 5], 1 - samples[:, 0], atol=1e-15)


def test_sample_latents_are_standard_normal():
    """With a linear decoder (hidden = ()), logit(sample) = z W + b, so least squares recovers
    each draw's z exactly: its coordinates pass a KS test against N(0, 1) and are uncorrelated
    (within 5 SE)."""
    vae = VAE(6, hidden=(), z_dim=2, rng=np.random.default_rng(0), dtype=np.float64)
    weight, bias = (p.data for p in vae.parameters()[2:])
    samples = vae.sample(4000, np.random.default_rng(1))
    z = np.linalg.lstsq(weight.T, (special.logit(samples) - bias).T, rcond=None)[0].T
    np.testing.assert_allclose(z @ weight + bias, special.logit(samples), atol=1e-9)
    for coordinate in z.T:
        assert stats.kstest(coordinate, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z.T)[0, 1]) <= 5 / np.sqrt(4000)


def test_reconstruct_decodes_the_posterior_mean():
    """reconstruct(x) = σ(g(μ(x))), μ the encoder's mean, with both networks written again in
    NumPy: the mean is decoded, not a draw (two calls agree, and no rng is taken)."""
    vae = tiny_vae(z_dim=2)
    x = binary_data(5, 6)
    w0, b0, w1, b1, w2, b2, w3, b3 = (p.data for p in vae.parameters())
    loc = (np.tanh(x @ w0 + b0) @ w1 + b1)[:, :2]
    expected = special.expit(np.tanh(loc @ w2 + b2) @ w3 + b3)
    np.testing.assert_allclose(vae.reconstruct(x), expected, rtol=1e-12)
    np.testing.assert_array_equal(vae.reconstruct(x), vae.reconstruct(x))


def test_vae_rejects_bad_input():
    vae = tiny_vae(dtype=np.float32)
    with pytest.raises(ValueError, match="shape"):
        vae.elbo(np.zeros((2, 5), np.float32), np.random.default_rng(0))
    with pytest.raises(TypeError, match="dtype"):
        vae.elbo(np.zeros((2, 6)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        vae.elbo(np.zeros((2, 6), np.float32), 0)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(6, likelihood="gaussian", rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        VAE(6)


def test_training_on_real_digits_lowers_negative_elbo():
    from minivae.data import binarize_dynamic

    pixels = mnist_5k().pixels(np.float32)
    rng = np.random.default_rng(0)
    held_out = binarize_dynamic(pixels[-500:], rng)
    train_x = pixels[:-500]
    vae = VAE(784, hidden=(200,), z_dim=10, rng=rng)

    def held_out_elbo():
        return float(vae.elbo(held_out, np.random.default_rng(1)).data.mean())

    before = held_out_elbo()
    train_with_adam(vae, train_x, 300, 64, rng, lr=1e-3, objective=lambda x: vae.elbo(x, rng))
    after = held_out_elbo()
    # An untrained decoder has logits ≈ 0, i.e. ≈ 784·log 2 ≈ 543 nats per image; a VAE that has
    # learned pen strokes explains a digit in well under 250 nats.
    assert before < -500
    assert after > -250, (before, after)


def test_log_joint_is_likelihood_plus_prior():
    vae = tiny_vae(z_dim=2)
    x = binary_data(3, 6)
    z = np.random.default_rng(4).standard_normal((5, 3, 2))  # 5 samples for each of 3 images
    W = [layer.weight.data for layer in vae.decoder.layers]
    b = [layer.bias.data for layer in vae.decoder.layers]
    logits = np.tanh(z @ W[0] + b[0]) @ W[1] + b[1]
    p = special.expit(logits)
    expected = (np.log(np.where(x == 1, p, 1 - p)).sum(-1)
                + stats.norm.logpdf(z).sum(-1))
    np.testing.assert_allclose(vae.log_joint(x, z).data, expected, rtol=1e-10)
    np.testing.assert_allclose(vae.log_joint(x, z[0]).data, expected[0], rtol=1e-10)
    with pytest.raises(ValueError, match="z must have shape"):
        vae.log_joint(x, z[:, :2])
