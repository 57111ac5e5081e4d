"""Algorithm 1 (per-datapoint λ_i, shared θ): its θ-step is the ELBO's gradient at fixed λ,
and on the linear-Gaussian model it reaches the maximum-likelihood θ with λ_i at the exact
posteriors.

Expected optimum: max over θ and diagonal q_i of Σ ELBO = max_θ Σ log p_θ(x_i), the
probabilistic-PCA MLE (Tipping & Bishop 1999: b = mean x, σ² = mean of the D − d smallest
eigenvalues of the sample covariance, W Wᵀ = U_d (Λ_d − σ²) U_dᵀ).  log p is unchanged by
W → W R (R a rotation), and one such rotation makes WᵀW diagonal; the posterior covariance
(I + WᵀW/σ²)⁻¹ is then diagonal, so a diagonal q_i equals p(z|x_i) and the bound is tight.
The oracle is computed here with numpy's eigh and scipy's Gaussian density, not by the code.
"""
from __future__ import annotations

import numpy as np
import pytest

from minivae.engine.tensor import Tensor
from minivae.models import LinearGaussian
from minivae.objectives.svi_learning import (
    StochasticVariationalLearning,
    lambda_steps,
    local_elbo,
    svi_learn,
    theta_step,
)
from minivae.optim import SGD
from tests.helpers import demo, mnist_5k, tiny_vae
from tests.objectives.test_svi import exact_elbo, exact_posterior, kl_to_posterior, log_marginal


def learnable_linear_gaussian(D, d, seed=0):
    rng = np.random.default_rng(seed)
    return LinearGaussian(Tensor(0.1 * rng.normal(size=(D, d)), requires_grad=True),
                          Tensor(np.zeros(D), requires_grad=True),
                          Tensor(np.array(1.0), requires_grad=True))


def ppca_data(N, D, d, seed=0):
    rng = np.random.default_rng(seed)
    W, b = 1.5 * rng.normal(size=(D, d)), rng.normal(size=D)
    return rng.standard_normal((N, d)) @ W.T + b + 0.5 * rng.standard_normal((N, D))


def ppca_mle(x, d):
    """(W Wᵀ, b, σ²) maximizing Σ log N(x_i; b, WWᵀ + σ²I), and one W attaining it."""
    values, vectors = np.linalg.eigh(np.cov(x.T, bias=True))
    values, vectors = values[::-1], vectors[:, ::-1]
    sigma2 = values[d:].mean()
    W = vectors[:, :d] * np.sqrt(values[:d] - sigma2)
    return W, x.mean(axis=0), sigma2


def theta_of(model):
    return [model.W, model.b, model.sigma]


def gradient_by_sgd(model, x, loc, log_scale, seed, n_samples):
    """What one θ-step applies: with SGD at lr = 1, θ_new − θ_old = ∇_θ (1/B) Σ ELBÔ_i."""
    before = [p.data.copy() for p in theta_of(model)]
    theta_step(model, SGD(theta_of(model), lr=1.0), x, loc, log_scale,
               np.random.default_rng(seed), n_samples)
    change = [p.data - b for p, b in zip(theta_of(model), before)]
    for p, b in zip(theta_of(model), before):
        p.data[...] = b
    return np.concatenate([c.ravel() for c in change])


def test_theta_step_follows_the_elbo_gradient():
    """Same ε (a fixed seed): the step equals central differences of the estimate, float64."""
    model, rng = learnable_linear_gaussian(4, 2), np.random.default_rng(1)
    x, loc, log_scale = rng.normal(size=(5, 4)), rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    step = gradient_by_sgd(model, x, loc, log_scale, seed=7, n_samples=3)

    def estimate():
        return local_elbo(model, x, Tensor(loc), Tensor(log_scale), np.random.default_rng(7),
                          3).data.mean()
    numerical, h = [], 1e-6
    for p in theta_of(model):
        flat = p.data.reshape(-1)
        for i in range(flat.size):
            flat[i] += h
            up = estimate()
            flat[i] -= 2 * h
            down = estimate()
            flat[i] += h
            numerical.append((up - down) / (2 * h))
    np.testing.assert_allclose(step, numerical, rtol=1e-6, atol=1e-8)


def test_theta_step_gradient_is_unbiased_for_the_exact_elbo():
    """Averaged over ε, the step is ∇_θ of the exact ELBO (scipy's log p − the closed-form
    KL to the posterior) at fixed λ: within 5 standard errors over 20 replicas."""
    model, rng = learnable_linear_gaussian(3, 2, seed=2), np.random.default_rng(3)
    x, loc, log_scale = rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    model.W.data[...] = rng.normal(size=(3, 2))
    replicas = np.array([gradient_by_sgd(model, x, loc, log_scale, seed, 500)
                         for seed in range(20)])
    mean, se = replicas.mean(axis=0), replicas.std(axis=0, ddof=1) / np.sqrt(len(replicas))

    def exact(values):
        W, b, sigma = values[:6].reshape(3, 2), values[6:9], values[9]
        return exact_elbo(W, b, sigma, x, loc, np.exp(log_scale)).mean()
    theta = np.concatenate([p.data.ravel() for p in theta_of(model)])
    h, numerical = 1e-5, []
    for i in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        numerical.append((exact(up) - exact(down)) / (2 * h))
    assert np.all(np.abs(mean - numerical) < 5 * se + 1e-6), (mean, numerical, se)


def test_lambda_steps_leave_theta_alone():
    model, rng = learnable_linear_gaussian(3, 1, seed=4), np.random.default_rng(5)
    x = rng.normal(size=(6, 3))
    before = [p.data.copy() for p in theta_of(model)]
    loc, log_scale = lambda_steps(model, x, np.zeros((6, 1)), np.zeros((6, 1)), rng, steps=50,
                                  lr=0.05, n_samples=8)
    for p, b in zip(theta_of(model), before):
        np.testing.assert_array_equal(p.data, b)
        assert p.requires_grad
    W, b, sigma = before
    start = exact_elbo(W, b, float(sigma), x, np.zeros((6, 1)), np.ones((6, 1)))
    assert np.all(exact_elbo(W, b, float(sigma), x, loc, np.exp(log_scale)) > start)


def check_reaches_the_mle(x, d, learned, result, per_point):
    W_mle, b_mle, sigma2_mle = ppca_mle(x, d)
    best = log_marginal(W_mle, b_mle, np.sqrt(sigma2_mle), x).sum()
    W, b, sigma = learned.W.data, learned.b.data, float(learned.sigma.data)
    bound = exact_elbo(W, b, sigma, x, result.loc, result.scale).sum()
    assert bound <= best + 1e-9  # ELBO ≤ log p_θ ≤ log p at the MLE
    assert (best - bound) / len(x) < per_point
    np.testing.assert_allclose(sigma**2, sigma2_mle, rtol=0.05)
    np.testing.assert_allclose(b, b_mle, atol=0.05)
    np.testing.assert_allclose(W @ W.T, W_mle @ W_mle.T, atol=0.1 * np.abs(W_mle).max() ** 2)
    mean, precision = exact_posterior(W, b, sigma, x)
    return kl_to_posterior(result.loc, result.scale, mean, precision), W


def test_algorithm_1_reaches_the_mle():
    """d = 1: the family holds every posterior; λ_i → p(z|x_i), θ → the MLE (measured gap
    0.0015 nats per point; asserted < 0.005)."""
    x, model = ppca_data(100, 4, 1), learnable_linear_gaussian(4, 1)
    result = svi_learn(x, model, np.random.default_rng(1), iterations=400, batch_size=50,
                       inner_steps=3, local_lr=0.1, model_lr=0.05, n_samples=16,
                       final_lr_fraction=0.02)
    kl, _ = check_reaches_the_mle(x, 1, model, result, per_point=0.005)
    assert kl.mean() < 0.005 and kl.max() < 0.05


def test_algorithm_1_with_diagonal_q_reaches_the_mle_in_two_dimensions():
    """d = 2, diagonal q_i: the bound still reaches the MLE, by learning a W whose columns are
    orthogonal (WᵀW diagonal), where the posterior is diagonal too."""
    x, model = ppca_data(60, 4, 2), learnable_linear_gaussian(4, 2)
    result = svi_learn(x, model, np.random.default_rng(1), iterations=1000, batch_size=60,
                       inner_steps=2, local_lr=0.1, model_lr=0.05, n_samples=16,
                       final_lr_fraction=0.02)
    kl, W = check_reaches_the_mle(x, 2, model, result, per_point=0.02)
    gram = W.T @ W
    assert abs(gram[0, 1]) < 0.05 * np.sqrt(gram[0, 0] * gram[1, 1])
    assert kl.mean() < 0.02


def test_algorithm_1_learns_a_vae_decoder_and_leaves_the_encoder():
    vae, x = tiny_vae(x_dim=6, z_dim=2), (np.random.default_rng(0).random((30, 6)) < 0.4) * 1.0
    encoder_before, decoder_before = vae.encoder.parameters(), vae.decoder.parameters()
    encoder_before = [p.data.copy() for p in encoder_before]
    decoder_before = [p.data.copy() for p in decoder_before]
    learner = StochasticVariationalLearning(vae, x, np.random.default_rng(1), batch_size=10,
                                            model_lr=0.01, parameters=vae.decoder.parameters())
    first = np.mean([learner.iterate() for _ in range(20)])
    last = np.mean([learner.iterate() for _ in range(200)][-20:])
    assert last > first
    for p, b in zip(vae.encoder.parameters(), encoder_before):
        np.testing.assert_array_equal(p.data, b)
    assert any(not np.array_equal(p.data, b)
               for p, b in zip(vae.decoder.parameters(), decoder_before))


@pytest.mark.parametrize("argument, value, words", [
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("inner_steps", 0, "inner_steps must be a positive integer"),
    ("local_lr", -1.0, "local_lr must be"),
    ("model_lr", 0.0, "model_lr must be"),
])
def test_bad_settings_name_themselves(argument, value, words):
    model = learnable_linear_gaussian(3, 1)
    with pytest.raises(ValueError, match=words):
        StochasticVariationalLearning(model, np.zeros((4, 3)), np.random.default_rng(0),
                                      **{argument: value})


def test_demo_draws_both_algorithms(tmp_path):
    mnist_5k()
    svi_vs_amortized = demo("svi_vs_amortized")
    summary = svi_vs_amortized.main(svi_vs_amortized.parse_args([
        "--out", str(tmp_path), "--train", "60", "--held-out", "12", "--steps", "6",
        "--batch-size", "20", "--hidden", "16", "--z-dim", "2", "--eval-every", "3",
        "--eval-svi-steps", "10", "--quiet"]))
    for curve in summary["curves"].values():
        assert curve["steps"] == [3, 6] and np.all(np.isfinite(curve["held-out"]))
    assert (tmp_path / "svi_vs_amortized.png").stat().st_size > 1000
