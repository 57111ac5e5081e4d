"""The importance-weighted bound: ELBO = L_1 ≤ L_k ≤ L_2k ≤ log p(x), convergence as k grows,
stability in log space, and gradients good enough to train on."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from minivae import Tensor, gradcheck
from minivae.distributions import Independent, Normal
from minivae.models import LinearGaussian
from minivae.objectives.elbo import elbo
from minivae.objectives.iwae import iwae_bound, log_importance_weights
from minivae.optim import Adam
from minivae.program import run_reporting_errors
from tests.helpers import binary_data, demo, tiny_vae
from tests.objectives.helpers import linear_gaussian


def poor_q(batch: int, z_dim: int, loc_value=0.8, scale_value=0.5):
    """A diagonal Gaussian that ignores x, so it fits no posterior well (on purpose)."""
    loc = np.full((batch, z_dim), loc_value)
    return Independent(Normal(loc, np.full_like(loc, scale_value)), 1)


def test_bounds_increase_with_k_towards_log_evidence():
    W, b, sigma, x, truth = linear_gaussian(0)
    q = poor_q(len(x), W.shape[1], loc_value=0.3, scale_value=0.6)
    model = LinearGaussian(W, b, sigma, encoder=lambda x: q)
    rng = np.random.default_rng(1)
    ks, repeats = [1, 2, 4, 8, 16, 64, 256, 1024], 400
    means, errors = [], []
    for k in ks:
        values = np.stack([iwae_bound(model, x, k, rng).data for _ in range(repeats)])
        means.append(values.mean(axis=0))
        errors.append(values.std(axis=0, ddof=1) / np.sqrt(repeats))
    means, errors = np.array(means), np.array(errors)  # (len(ks), B)
    gaps = truth - means
    assert np.all(gaps >= -5 * errors), "L_k above log p(x)"
    steps = means[1:] - means[:-1]
    step_errors = np.hypot(errors[1:], errors[:-1])
    assert np.all(steps >= -5 * step_errors), "L_k decreased as k grew"
    assert np.all(steps[0] > 3 * step_errors[0]), "L_2 not clearly above L_1 for a poor q"
    assert np.all(gaps[0] > 10 * errors[0]), "the test needs a poor q"
    assert np.all(gaps[-1] < 0.05 * gaps[0]), (gaps[0], gaps[-1])  # the gap shrinks


def test_iwae_with_one_sample_is_the_elbo():
    W, b, sigma, x, _ = linear_gaussian(2)
    q = poor_q(len(x), W.shape[1])
    model = LinearGaussian(W, b, sigma, encoder=lambda x: q)
    for seed in range(3):
        np.testing.assert_allclose(
            iwae_bound(model, x, 1, np.random.default_rng(seed)).data,
            elbo(model, x, np.random.default_rng(seed), "monte_carlo", 1).data, rtol=1e-12)


def test_iwae_is_log_mean_exp_of_the_weights():
    W, b, sigma, x, _ = linear_gaussian(3)
    model = LinearGaussian(W, b, sigma, encoder=lambda x: poor_q(len(x), W.shape[1]))
    log_w = log_importance_weights(model, x, 50, np.random.default_rng(4)).data
    assert log_w.shape == (50, len(x))
    np.testing.assert_allclose(iwae_bound(model, x, 50, np.random.default_rng(4)).data,
                               special.logsumexp(log_w, axis=0) - np.log(50), rtol=1e-12)


def test_log_weights_are_constant_at_the_exact_posterior():
    """q = p(z|x) makes every weight p(x, z)/p(z|x) = p(x): zero variance, L_k = log p(x)."""
    W, b, sigma, x, truth = linear_gaussian(5, x_dim=5, z_dim=3)
    model = LinearGaussian(W, b, sigma)
    log_w = log_importance_weights(model, x, 1000, np.random.default_rng(6)).data
    np.testing.assert_allclose(log_w, np.broadcast_to(truth, log_w.shape), rtol=1e-10)
    assert np.all(log_w.std(axis=0) <= 1e-10 * np.abs(truth))
    for k in (1, 7):
        np.testing.assert_allclose(iwae_bound(model, x, k, np.random.default_rng(k)).data, truth,
                                   rtol=1e-10)


def test_iwae_is_stable_for_tiny_weights():
    """log p(x) ≈ −10⁴: every weight underflows to 0 in float64, the log-space bound does not."""
    rng = np.random.default_rng(7)
    W, b, sigma = rng.standard_normal((400, 2)), rng.standard_normal(400), 0.05
    model = LinearGaussian(W, b, sigma)
    x = model.sample(2, rng)[0] + 1.0  # shifted off the model: a very unlikely point
    truth = model.log_marginal(x).data
    assert np.all(truth < -1000)
    log_w = log_importance_weights(model, x, 10, rng).data
    with np.errstate(divide="ignore"):
        assert np.all(np.isneginf(np.log(np.exp(log_w).mean(axis=0))))  # the naive way fails
    np.testing.assert_allclose(iwae_bound(model, x, 10, rng).data, truth, rtol=1e-10)


def test_iwae_gradient_matches_central_differences():
    """The pathwise gradient of L̂_k w.r.t. q's and the model's parameters (noise held fixed)."""
    W, b, sigma, x, _ = linear_gaussian(8, batch=2)
    loc = np.random.default_rng(9).standard_normal((2, 2))

    def bound(W_t, loc_t, log_scale_t):
        q = Independent(Normal(loc_t, log_scale_t.exp()), 1)
        model = LinearGaussian(W_t, b, sigma, encoder=lambda x: q)
        return iwae_bound(model, x, 5, np.random.default_rng(10))

    assert gradcheck(bound, W, loc, np.full((2, 2), -0.3))


def test_vae_iwae_gradient_matches_central_differences(flat_gradient_check):
    vae = tiny_vae()
    x = binary_data(5)
    iwae_bound(vae, x, 4, np.random.default_rng(2)).sum().backward()

    def objective():
        return float(iwae_bound(vae, x, 4, np.random.default_rng(2)).data.sum())

    directions = np.random.default_rng(3).standard_normal((5, vae.flat_data.size))
    flat_gradient_check(vae, objective, vae.flat_grad.copy(), directions, rtol=1e-6, atol=1e-7)


def test_training_a_vae_on_the_iwae_bound_raises_it():
    """Two prototype patterns with flipped pixels: maximizing L_5 must learn them."""
    rng = np.random.default_rng(0)
    prototypes = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=np.float64)
    data = prototypes[rng.integers(0, 2, 512)]
    data = np.abs(data - (rng.random(data.shape) < 0.05))  # flip 5% of the pixels
    vae = tiny_vae(seed=1)
    optimizer = Adam(vae.parameters(), lr=1e-2)

    def held_out_bound():
        values = iwae_bound(vae, data[:200], 5, np.random.default_rng(4)).data
        return values.mean(), values.std(ddof=1) / np.sqrt(len(values))

    (before, before_se) = held_out_bound()
    for _ in range(150):
        batch = data[rng.integers(0, len(data), 64)]
        loss = -iwae_bound(vae, batch, 5, rng).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, after_se = held_out_bound()
    # 6 independent fair pixels cost 6 log 2 ≈ 4.16 nats; the learned two-cluster model
    # needs about log 2 + 6·H(0.05) ≈ 2.0 nats per pattern
    assert after > before + 1.0 + 5 * np.hypot(before_se, after_se), (before, after)
    assert after > -3.0


def test_float32_is_kept_and_bad_k_raises():
    vae = tiny_vae(dtype=np.float32)
    x = np.zeros((3, 6), np.float32)
    value = iwae_bound(vae, x, 3, np.random.default_rng(0))
    assert value.dtype == np.float32 and value.shape == (3,)
    for bad in (0, -1, 2.0, None):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            iwae_bound(vae, x, bad, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        iwae_bound(vae, x, 3, 42)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        log_importance_weights(vae, x, 0, np.random.default_rng(0))


def test_gradients_reach_q_through_every_weight():
    """L̂_k's gradient is the softmax-weighted sum of the per-sample gradients: every one of the
    k draws contributes (checked here on the location of q, with the noise held fixed)."""
    W, b, sigma, x, _ = linear_gaussian(11, batch=1)
    loc = Tensor(np.zeros((1, 2)), requires_grad=True)
    q = Independent(Normal(loc, np.full((1, 2), 0.7)), 1)
    model = LinearGaussian(W, b, sigma, encoder=lambda x: q)
    iwae_bound(model, x, 6, np.random.default_rng(12)).sum().backward()
    values, gradients = [], []
    for i in range(6):  # the same draws, one at a time, each with its own gradient
        single = Tensor(np.zeros((1, 2)), requires_grad=True)
        q_i = Independent(Normal(single, np.full((1, 2), 0.7)), 1)
        z = q_i.rsample(np.random.default_rng(12), (6,))[i]
        log_w = model.log_joint(x, z) - q_i.log_prob(z)
        log_w.sum().backward()
        values.append(log_w.data[0])
        gradients.append(single.grad[0])
    expected = special.softmax(values) @ np.array(gradients)  # Σ_i (w_i / Σ_j w_j) ∇ log w_i
    np.testing.assert_allclose(loc.grad[0], expected, rtol=1e-10)


# -- the demo ----------------------------------------------------------------------------------


def test_iwae_demo_runs_on_the_embedded_digits(tmp_path, capsys):
    iwae = demo("iwae")
    rows = iwae.main(iwae.parse_args([
        "--dataset", "mnist-5k", "--ks", "1", "3", "--epochs", "1", "--max-train", "200",
        "--hidden", "16", "--z-dim", "3", "--k-eval", "20", "--n-test", "40",
        "--out", str(tmp_path), "--quiet"]))
    assert [row["k"] for row in rows] == [1, 3]
    assert [row["objective"] for row in rows] == ["elbo", "iwae"]
    for row in rows:
        assert row["n_test"] == 40 and np.isfinite(row["nll"]) and row["nll"] > 0
    assert (tmp_path / "nll_vs_k.png").is_file() and (tmp_path / "results.json").is_file()
    printed = capsys.readouterr().out
    assert "Burda et al." in printed and "86.76" in printed


def test_iwae_demo_in_two_jobs_gives_the_runs_of_one_process(tmp_path):
    """--jobs trains the k's in separate processes: each run's seeds are its own, so the table
    is the one a single process computes (to BLAS's rounding), and each k keeps its --epochs."""
    iwae = demo("iwae")
    common = ["--dataset", "mnist-5k", "--ks", "1", "3", "--epochs", "2", "1", "--max-train",
              "100", "--hidden", "8", "--z-dim", "2", "--k-eval", "10", "--n-test", "20",
              "--lr-schedule", "cosine", "--quiet"]
    alone = iwae.main(iwae.parse_args([*common, "--out", str(tmp_path / "alone")]))
    jobs = iwae.main(iwae.parse_args([*common, "--jobs", "2", "--out", str(tmp_path / "jobs")]))
    assert [row["epochs"] for row in alone] == [row["epochs"] for row in jobs] == [2, 1]
    for one, other in zip(alone, jobs):
        assert one["k"] == other["k"]
        np.testing.assert_allclose(other["nll"], one["nll"], rtol=1e-5)
        np.testing.assert_allclose(other["test_elbo"], one["test_elbo"], rtol=1e-5)
    assert (tmp_path / "jobs" / "curves.png").is_file()


def test_iwae_demo_stops_each_run_at_its_budget(tmp_path):
    iwae = demo("iwae")
    rows = iwae.main(iwae.parse_args([
        "--dataset", "mnist-5k", "--ks", "1", "2", "--epochs", "50", "--max-train", "100",
        "--batch-size", "10", "--hidden", "8", "--z-dim", "2", "--k-eval", "10", "--n-test",
        "10", "--budget-minutes", "1e-6", "--out", str(tmp_path), "--quiet"]))
    for row in rows:  # the first step spends the budget: its epoch is the last
        assert row["epochs"] == 1 and "wall-clock budget" in row["stopped"]
        assert np.isfinite(row["nll"])


@pytest.mark.parametrize("arguments, fragment", [
    (["--ks", "1", "5", "50", "--epochs", "3", "4"], "--epochs must be one positive integer, "
                                                     "or one per k (3 for --ks 1 5 50)"),
    (["--epochs", "0"], "--epochs must be one positive integer"),
    (["--jobs", "0"], "--jobs must be a positive integer"),
    (["--budget-minutes", "0"], "--budget-minutes must be a positive number"),
])
def test_iwae_demo_refuses_bad_run_lengths(arguments, fragment, capsys):
    with pytest.raises(SystemExit):
        demo("iwae").parse_args(arguments)
    assert fragment in capsys.readouterr().err


def test_iwae_demo_explains_a_missing_mnist_folder(isolated, capsys):
    """Full MNIST is asked for with --dataset mnist and found like `train` finds it; where it
    is missing, the demo ends in one line that says where to put it."""
    iwae = demo("iwae")
    defaults = iwae.parse_args([])
    assert (defaults.dataset, defaults.data_root) == ("mnist-5k", None)  # runs offline
    out = isolated / "out"
    code = run_reporting_errors(
        lambda: iwae.main(iwae.parse_args(["--dataset", "mnist", "--out", str(out)])))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in ("mnist (train split) not found", "--data-root", "MINIVAE_DATA",
                     "--dataset mnist-5k"):
        assert fragment in err
    assert not out.exists()  # the failed start left no folder
    with pytest.raises(SystemExit):
        iwae.parse_args(["--dataset", "mnist-5k", "--ks", "0"])
    assert "--ks must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        iwae.parse_args(["--n-test", "-5"])
    assert "--n-test must be 0 (all) or a positive integer" in capsys.readouterr().err
