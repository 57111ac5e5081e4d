"""The full-covariance VAE: its Cholesky encoder, closed-form KL, objective, gradients, learning."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae import kl_divergence
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.distributions import MultivariateNormal
from minivae.models.full_covariance import FullCovarianceVAE, kl_to_standard_normal
from minivae.optim import Adam
from tests.helpers import binary_data, demo


def tiny_model(z_dim=3, x_dim=6, seed=0, dtype=np.float64, **options):
    return FullCovarianceVAE(x_dim, hidden=(5,), z_dim=z_dim, rng=np.random.default_rng(seed),
                             dtype=dtype, **options)


def numpy_posterior(model, x, diagonal="softplus"):
    """μ and L of q(z|x), written again in NumPy from the encoder's weights."""
    w0, b0, w1, b1 = [p.data for p in model.encoder.parameters()]
    h = np.tanh(x @ w0 + b0) @ w1 + b1
    d = model.z_dim
    rows, cols = np.tril_indices(d)  # row by row: L11, L21, L22, L31, ...
    L = np.zeros((len(x), d, d))
    L[:, rows, cols] = h[:, d:]
    positive = np.logaddexp(0.0, L) if diagonal == "softplus" else np.exp(L)
    index = np.arange(d)
    L[:, index, index] = positive[:, index, index]
    return h[:, :d], L


def numpy_objective(model, x, eps):
    """log p(x|z) − KL with z = μ + Lε, the KL from Σ = LLᵀ via trace and log-determinant."""
    loc, L = numpy_posterior(model, x)
    z = loc + np.einsum("bij,bj->bi", L, eps)
    w2, b2, w3, b3 = [p.data for p in model.decoder.parameters()]
    logits = np.tanh(z @ w2 + b2) @ w3 + b3
    log_likelihood = stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1)
    covariance = L @ np.swapaxes(L, -1, -2)
    log_det = np.linalg.slogdet(covariance)[1]
    kl = 0.5 * (np.trace(covariance, axis1=-2, axis2=-1) + (loc**2).sum(-1) - model.z_dim
                - log_det)
    return log_likelihood - kl


@pytest.mark.parametrize("diagonal", ["softplus", "exp"])
def test_encoder_outputs_fill_the_triangle(diagonal):
    model = tiny_model(z_dim=4, diagonal=diagonal)
    x = binary_data(5, 6)
    q = model.encode(x)
    loc, L = numpy_posterior(model, x, diagonal)
    np.testing.assert_allclose(q.loc.data, loc, rtol=1e-12)
    np.testing.assert_allclose(q.scale_tril.data, L, rtol=1e-12)
    assert np.all(np.triu(q.scale_tril.data, 1) == 0)
    assert np.all(np.diagonal(q.scale_tril.data, axis1=-2, axis2=-1) > 0)
    assert q.batch_shape == (5,) and q.event_shape == (4,)


@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=25)
def test_kl_equals_the_distributions_module(z_dim, seed):
    model = tiny_model(z_dim=z_dim, seed=seed)
    q = model.encode(binary_data(4, 6, seed=seed + 1))
    standard = MultivariateNormal(np.zeros(z_dim), np.eye(z_dim))
    kl = kl_to_standard_normal(q).data
    np.testing.assert_allclose(kl, kl_divergence(q, standard).data, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kl, kl_divergence(q, model.prior()).data, rtol=1e-10, atol=1e-12)
    assert np.all(kl >= 0)


def test_kl_matches_monte_carlo():
    model = tiny_model(z_dim=3, seed=4)
    x = binary_data(4, 6)
    q = model.encode(x)
    n = 40_000
    z = q.sample(np.random.default_rng(0), (n,)).data  # (n, B, d)
    log_ratio = q.log_prob(z).data - stats.norm.logpdf(z).sum(-1)
    standard_error = log_ratio.std(axis=0, ddof=1) / np.sqrt(n)
    difference = np.abs(kl_to_standard_normal(q).data - log_ratio.mean(axis=0))
    assert np.all(difference < 5 * standard_error)


def test_objective_matches_numpy():
    model = tiny_model(z_dim=3)
    x = binary_data(7, 6)
    objective = model.objective(x, np.random.default_rng(9))
    eps = np.random.default_rng(9).standard_normal((7, 3))  # the noise objective draws
    np.testing.assert_allclose(objective.data, numpy_objective(model, x, eps), rtol=1e-10)
    np.testing.assert_allclose(model.elbo(x, np.random.default_rng(9)).data, objective.data)


@pytest.mark.parametrize("diagonal", ["softplus", "exp"])
def test_objective_gradients_pass_gradcheck(objective_gradcheck, diagonal):
    model = tiny_model(z_dim=2, x_dim=5, diagonal=diagonal)
    x = binary_data(3, 5)
    objective_gradcheck(model, x, seed=3)


def test_float32_in_float32_out():
    model = tiny_model(dtype=np.float32)
    x = binary_data(4, 6, dtype=np.float32)
    assert model.objective(x, np.random.default_rng(0)).dtype == np.float32
    assert model.encode(x).scale_tril.dtype == np.float32
    assert model.reconstruct(x).dtype == np.float32


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="diagonal"):
        tiny_model(diagonal="square")
    with pytest.raises(ValueError, match="z_dim"):
        tiny_model(z_dim=0)
    with pytest.raises(TypeError, match="rng"):
        FullCovarianceVAE(6, z_dim=2, rng=0)
    with pytest.raises(ValueError, match="x must have shape"):
        tiny_model().objective(np.zeros((3, 7)), np.random.default_rng(0))


def test_importance_weights_and_protocol_shapes():
    model = tiny_model(z_dim=2)
    x = binary_data(4, 6)
    log_w = model.log_importance_weights(x, 5, np.random.default_rng(0))
    assert log_w.shape == (5, 4) and np.all(np.isfinite(log_w))
    # E_q[log w] = E_q[log p(x, z) − log q(z|x)] is the ELBO, which the objective estimates
    # with the KL in closed form: the two averages agree within their standard errors
    n, m = 20_000, 2_000
    many = model.log_importance_weights(x, n, np.random.default_rng(1))
    draws = np.stack([model.objective(x, np.random.default_rng(s)).data for s in range(m)])
    standard_error = np.sqrt(many.var(0, ddof=1) / n + draws.var(0, ddof=1) / m)
    assert np.all(np.abs(many.mean(0) - draws.mean(0)) < 5 * standard_error)
    assert model.sample(3, np.random.default_rng(0)).shape == (3, 6)
    reconstruction = model.reconstruct(x)
    assert reconstruction.shape == (4, 6) and np.all((reconstruction >= 0) & (reconstruction <= 1))


def test_training_lowers_the_loss_on_digits():
    pixels = load_dataset("mnist-5k", "train").pixels(np.float32)
    held_out = binarize_dynamic(load_dataset("mnist-5k", "test").pixels(np.float32)[:200],
                                np.random.default_rng(0))
    model = FullCovarianceVAE(784, hidden=(64,), z_dim=4, rng=np.random.default_rng(0))
    optimizer = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)

    def held_out_loss():
        return -float(model.objective(held_out, np.random.default_rng(2)).data.mean())

    before, losses = held_out_loss(), []
    for _ in range(5):
        for batch in minibatches(pixels, 100, rng, drop_last=True):
            optimizer.zero_grad()
            loss = -model.objective(binarize_dynamic(batch, rng), rng).mean()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.data))
    after = held_out_loss()
    assert np.all(np.isfinite(losses)) and len(losses) >= 200
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 150
    assert after < before - 150  # from ≈ 784 log 2 ≈ 543 nats at the start


def test_demo_writes_pictures_and_table(tmp_path, capsys):
    from matplotlib.image import imread

    full_covariance = demo("full_covariance")
    arguments = ["--out", str(tmp_path), "--epochs", "1", "--max-train", "300", "--n-test", "40",
                 "--k-eval", "10", "--elbo-draws", "2", "--hidden", "32", "--fit-steps", "5"]
    pictures = full_covariance.main(full_covariance.parse_args(arguments))
    assert sorted(p.name for p in pictures) == ["latent_space.png", "posteriors.png"]
    for path in pictures:
        image = imread(path)
        assert image.ndim == 3 and image[..., :3].std() > 0.05  # something was drawn
    printed = capsys.readouterr().out
    assert "full − diag" in printed and "test ELBO" in printed
    assert (tmp_path / "results.json").is_file()
