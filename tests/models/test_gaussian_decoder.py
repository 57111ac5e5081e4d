"""The Gaussian-decoder VAE: its pixel density, objective, gradients, σ, and learning."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae.data import load_dataset, minibatches
from minivae.engine.tensor import Tensor
from minivae.models.gaussian_decoder import GaussianDecoderVAE, GaussianPixels, floored_log_scale
from minivae.optim import Adam
from tests.helpers import grey_data

SIGMA_CHOICES = ["learned_per_pixel", "learned_shared", 0.3]
# the same and σ(z) from the decoder, which needs a floor above 0
ALL_SIGMAS = [*SIGMA_CHOICES, "z_dependent"]


def tiny_model(x_dim=6, z_dim=2, seed=0, dtype=np.float64, **options):
    return GaussianDecoderVAE(x_dim, hidden=(5,), z_dim=z_dim, rng=np.random.default_rng(seed),
                              dtype=dtype, **options)


def numpy_objective(model, x, eps):
    """log N(x; μ_θ(z), σ²I) − KL(q ‖ N(0, I)) in NumPy/SciPy, z = μ + σ_q ε."""
    w0, b0, w1, b1, w2, b2, w3, b3 = [p.data for p in model.parameters()][:8]
    h = np.tanh(x @ w0 + b0) @ w1 + b1
    loc, log_var = h[:, : model.z_dim], h[:, model.z_dim:]
    z = loc + np.exp(0.5 * log_var) * eps
    output = np.tanh(z @ w2 + b2) @ w3 + b3
    if model.sigma == "z_dependent":  # the decoder emits [μ; h], σ² = min_sigma² + e^h
        output, h = output[:, :model.x_dim], output[:, model.x_dim:]
        sigma = np.sqrt(model.min_sigma**2 + np.exp(h))
    elif isinstance(model.sigma, str):
        sigma = model.min_sigma + np.exp(model.sigma_parameter.data)
    else:
        sigma = model.sigma
    mean = special.expit(output) if model.mean_activation == "sigmoid" else output
    log_likelihood = stats.norm.logpdf(x, mean, np.broadcast_to(sigma, mean.shape)).sum(-1)
    kl = 0.5 * (loc**2 + np.exp(log_var) - 1 - log_var).sum(-1)
    return log_likelihood - kl


@given(st.integers(1, 4), st.integers(1, 30), st.booleans(), st.floats(-6.0, 3.0),
       st.integers(0, 2**31 - 1))
@settings(max_examples=40)
def test_density_is_gaussian(batch, pixels, shared, log_sigma_center, seed):
    rng = np.random.default_rng(seed)
    x, mean = rng.random((batch, pixels)), rng.random((batch, pixels))
    log_sigma = log_sigma_center + (0.0 if shared else 0.5 * rng.standard_normal(pixels))
    log_p = GaussianPixels(Tensor(mean), Tensor(np.asarray(log_sigma))).log_prob(x).data
    sigma = np.exp(np.broadcast_to(log_sigma, (pixels,)))
    np.testing.assert_allclose(log_p, stats.norm.logpdf(x, mean, sigma).sum(-1), rtol=1e-10)
    if shared:  # −log p = ‖x − μ‖²/(2σ²) + D log(σ √(2π))
        sigma = math.exp(log_sigma)
        squared_error = ((x - mean) ** 2).sum(-1)
        minus_log_p = (squared_error / (2 * sigma**2)
                       + pixels * math.log(sigma * math.sqrt(2 * math.pi)))
        np.testing.assert_allclose(-log_p, minus_log_p, rtol=1e-10)


def test_shared_sigma_maximizing_the_density_is_the_root_mean_squared_error():
    rng = np.random.default_rng(0)
    x, mean = rng.random((3, 20)), rng.random((3, 20))
    best = 0.5 * np.log(((x - mean) ** 2).mean())  # log σ* with σ*² = ‖x − μ‖²/(B·D)
    log_sigma = Tensor(np.array(best), requires_grad=True)
    GaussianPixels(Tensor(mean), log_sigma).log_prob(x).sum().backward()
    assert abs(float(log_sigma.grad)) < 1e-10  # a stationary point ...
    for shift in (-0.1, 0.1):  # ... and a maximum
        moved = GaussianPixels(Tensor(mean), Tensor(np.array(best + shift))).log_prob(x).data
        peak = GaussianPixels(Tensor(mean), Tensor(np.array(best))).log_prob(x).data
        assert moved.sum() < peak.sum()


@pytest.mark.parametrize("sigma", ALL_SIGMAS)
@pytest.mark.parametrize("mean_activation", ["sigmoid", "identity"])
def test_objective_matches_numpy(sigma, mean_activation):
    model = tiny_model(z_dim=3, sigma=sigma, mean_activation=mean_activation, min_sigma=0.01)
    if sigma in SIGMA_CHOICES[:2]:  # move σ off its initial value, differently per pixel
        shape = model.sigma_parameter.shape
        model.sigma_parameter.data[...] = np.random.default_rng(2).normal(-1.0, 0.5, shape)
    x = grey_data(7, 6)
    objective = model.objective(x, np.random.default_rng(9))
    eps = np.random.default_rng(9).standard_normal((7, 3))  # the noise objective draws
    np.testing.assert_allclose(objective.data, numpy_objective(model, x, eps), rtol=1e-10)
    np.testing.assert_allclose(model.elbo(x, np.random.default_rng(9)).data, objective.data)


@pytest.mark.parametrize("sigma, min_sigma", [(sigma, min_sigma) for sigma in ALL_SIGMAS
                                               for min_sigma in (0.0, 0.05)
                                               if (sigma, min_sigma) != ("z_dependent", 0.0)])
def test_objective_gradients_pass_gradcheck(objective_gradcheck, sigma, min_sigma):
    model = tiny_model(x_dim=5, sigma=sigma, min_sigma=min_sigma, init_sigma=0.4)
    x = grey_data(3, 5)
    objective_gradcheck(model, x, seed=3)


@pytest.mark.parametrize("mean_activation", ["sigmoid", "identity"])
def test_z_dependent_likelihood_matches_scipy(mean_activation):
    """log p(x | z) = Σᵢ log N(xᵢ; μᵢ(z), σᵢ²(z)) with [μ; h] = decoder(z), σᵢ² = m² + e^hᵢ."""
    model = tiny_model(z_dim=3, sigma="z_dependent", mean_activation=mean_activation,
                       min_sigma=0.02, init_sigma=0.3)
    w2, b2, w3, b3 = [p.data for p in model.decoder.parameters()]
    z = np.random.default_rng(4).normal(0.0, 2.0, (9, 3))
    output = np.tanh(z @ w2 + b2) @ w3 + b3
    mean = special.expit(output[:, :6]) if mean_activation == "sigmoid" else output[:, :6]
    sigma = np.sqrt(0.02**2 + np.exp(output[:, 6:]))
    x = np.random.default_rng(5).normal(0.5, 0.4, (9, 6))
    np.testing.assert_allclose(model.decode(Tensor(z)).log_prob(x).data,
                               stats.norm.logpdf(x, mean, sigma).sum(-1), rtol=1e-10)
    # σ(z) starts near init_sigma: the h-biases are set there (the weights add a little)
    np.testing.assert_allclose(np.median(sigma), 0.3, rtol=0.5)


def test_z_dependent_sigma_has_its_floor():
    """σ² = m² + e^h ≥ m² for any raw output h, and the density stays finite: at most
    −D log(m √(2π)) per image, however well the mean fits."""
    for min_sigma in (1e-3, 0.1):
        for dtype in (np.float32, np.float64):
            raw = np.array([-1e4, -700.0, -50.0, 0.0, 50.0, 700.0], dtype)
            log_sigma = floored_log_scale(Tensor(raw), min_sigma).data
            exact = [0.5 * float(mpmath.log(mpmath.mpf(min_sigma) ** 2 + mpmath.exp(h)))
                     for h in raw.astype(np.float64)]
            assert log_sigma.dtype == dtype and np.all(np.isfinite(log_sigma))
            # σ itself to a few ulps: log σ to a few ulps of the terms m and h it is made of
            # (near σ = 1, log σ ≈ 0 is their difference, so its own relative error is larger)
            ulp = np.finfo(dtype).eps
            bound = 4 * ulp * (abs(2 * math.log(min_sigma)) + np.abs(raw.astype(np.float64)))
            assert np.all(np.abs(log_sigma - np.array(exact)) <= bound)
    model = tiny_model(sigma="z_dependent", min_sigma=0.01)
    optimizer, rng = Adam(model.parameters(), lr=0.05), np.random.default_rng(0)
    x = np.full((20, 6), 0.25)  # data the decoder can fit exactly
    for _ in range(300):
        optimizer.zero_grad()
        (-model.objective(x, rng).mean()).backward()
        optimizer.step()
    log_p = model.decode(model.encode(x).loc).log_prob(x).data
    ceiling = -6 * math.log(0.01 * math.sqrt(2 * math.pi))  # D = 6 pixels at σ = min_sigma
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= ceiling + 1e-9)
    assert np.all(log_p > ceiling - 6)  # it did run towards the floor


def test_noisy_samples_spread_by_sigma():
    """sample(noise=True) is μ_θ(z) + σ ε with the same z as the mean images."""
    model = tiny_model(sigma=0.02)
    means = model.sample(3000, np.random.default_rng(1))
    draws = model.sample(3000, np.random.default_rng(1), noise=True)
    noise = (draws - means).ravel()  # the means of this tiny model lie far from 0 and 1
    n = noise.size  # mean within 5 SE; variance within 5 SE of a variance, σ² √(2/n)
    assert abs(noise.mean()) < 5 * 0.02 / math.sqrt(n)
    assert abs(noise.var() - 0.02**2) < 5 * 0.02**2 * math.sqrt(2 / n)


def test_sigma_stays_positive():
    for sigma in ("learned_per_pixel", "learned_shared"):
        for min_sigma in (0.0, 1e-3):
            model = tiny_model(sigma=sigma, min_sigma=min_sigma)
            for rho in (-700.0, -50.0, 0.0, 50.0, 700.0):
                model.sigma_parameter.data[...] = rho
                log_sigma = model.log_sigma().data
                assert np.all(np.isfinite(log_sigma)) and np.all(np.exp(log_sigma) > 0)
                assert np.all(np.exp(log_sigma) >= min_sigma)
    # a large step size drives σ down on data the decoder can fit; it stays positive
    model = tiny_model(sigma="learned_per_pixel", min_sigma=0.0)
    optimizer = Adam(model.parameters(), lr=0.1)
    x, rng = np.zeros((20, 6)), np.random.default_rng(0)
    start = model.log_sigma().data.copy()
    for _ in range(200):
        optimizer.zero_grad()
        (-model.objective(x, rng).mean()).backward()
        optimizer.step()
    sigma = np.exp(model.log_sigma().data)
    assert np.all(model.log_sigma().data < start - 2) and np.all(sigma > 0)


def test_float32_in_float32_out():
    for sigma in SIGMA_CHOICES:
        model = tiny_model(sigma=sigma, dtype=np.float32)
        x = grey_data(4, 6, dtype=np.float32)
        assert model.objective(x, np.random.default_rng(0)).dtype == np.float32
        assert model.log_sigma().dtype == np.float32
        assert model.sample(3, np.random.default_rng(0)).dtype == np.float32


def test_pictures_lie_in_the_unit_interval():
    for mean_activation in ("sigmoid", "identity"):
        model = tiny_model(mean_activation=mean_activation)
        samples = model.sample(5, np.random.default_rng(0))
        for images in (samples, model.reconstruct(grey_data(4, 6))):
            assert images.shape[1] == 6 and np.all((images >= 0) & (images <= 1))


def test_bad_arguments_are_named():
    for bad in ("learned", -1.0, 0.0, float("inf"), True):
        with pytest.raises(ValueError, match="sigma must be"):
            tiny_model(sigma=bad)
    with pytest.raises(ValueError, match="mean_activation"):
        tiny_model(mean_activation="tanh")
    with pytest.raises(ValueError, match="min_sigma"):
        tiny_model(min_sigma=-0.1)
    with pytest.raises(ValueError, match="init_sigma"):
        tiny_model(init_sigma=0.01, min_sigma=0.05)
    with pytest.raises(ValueError, match="min_sigma"):  # a z-dependent σ needs its floor
        tiny_model(sigma="z_dependent", min_sigma=0.0)
    with pytest.raises(ValueError, match="σ depends on z"):
        tiny_model(sigma="z_dependent").log_sigma()


def train_on_grey_digits(model, pixels, held_out, epochs=3):
    """(held-out loss before, held-out loss after, the training losses) of Adam on −objective."""
    optimizer = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    before, losses = -float(model.objective(held_out, np.random.default_rng(2)).data.mean()), []
    for _ in range(epochs):
        for batch in minibatches(pixels, 100, rng, drop_last=True):
            optimizer.zero_grad()
            loss = -model.objective(batch, rng).mean()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.data))
    after = -float(model.objective(held_out, np.random.default_rng(2)).data.mean())
    return before, after, losses


@pytest.mark.parametrize("sigma", ["learned_per_pixel", "learned_shared"])
def test_training_lowers_the_loss_on_grey_digits(sigma):
    pixels = load_dataset("mnist-5k", "train").pixels(np.float32)  # grey levels, not binarized
    held_out = load_dataset("mnist-5k", "test").pixels(np.float32)[:200]
    model = GaussianDecoderVAE(784, hidden=(64,), z_dim=4, rng=np.random.default_rng(0),
                               sigma=sigma)
    before, after, losses = train_on_grey_digits(model, pixels, held_out)
    assert np.all(np.isfinite(losses)) and len(losses) >= 130
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 500
    assert after < before - 500  # from ≈ 8,000 nats at σ = 0.1 to about 1,300
    assert np.all(np.exp(model.log_sigma().data) > 0)
