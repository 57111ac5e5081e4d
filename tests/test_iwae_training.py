"""Training on the IWAE bound L_k: the option, its agreement with the ELBO at k = 1, the demos."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from minivae.cli import main as cli_main
from minivae.data import binarize_dynamic, load_dataset
from minivae.engine.tensor import no_grad
from minivae.io.checkpoint import load_checkpoint
from minivae.io.resume import load_model
from minivae.models import VAE
from minivae.objectives.iwae import iwae_bound
from minivae.train import (
    TEST_BINARIZATION_SEED,
    TrainConfig,
    build_model,
    load_binary_split,
    train,
    training_bound,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demos"))
import importance_sampling  # noqa: E402
import iwae  # noqa: E402


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """16 real binarized digits (float64) from the embedded MNIST subset."""
    pixels = load_dataset("mnist-5k", "train").pixels("float64")[::281][:16]
    return binarize_dynamic(pixels, np.random.default_rng(1))


def mean_bound(model, x, k, seed, repeats=4):
    """Mean of L̂_k over the rows of x and ``repeats`` draws, and its standard error."""
    rng = np.random.default_rng(seed)
    with no_grad():
        values = np.concatenate([iwae_bound(model, x, k, rng).data for _ in range(repeats)])
    return values.mean(), values.std(ddof=1) / np.sqrt(len(values))


def test_iwae_training_raises_the_bound_on_real_digits(tmp_path):
    config = TrainConfig(dataset="mnist-5k", epochs=4, batch_size=50, lr=3e-3, z_dim=4,
                         hidden=(32,), max_train=1000, max_test=200, objective="iwae", k=5,
                         out=str(tmp_path / "run"))
    metrics = train(config, progress=False)
    test_x = binarize_dynamic(load_binary_split(config, "test"),
                              np.random.default_rng(TEST_BINARIZATION_SEED))
    untrained = build_model(config, test_x.shape[1], np.random.default_rng(config.seed).spawn(3)[0])
    trained, loaded = load_model(tmp_path / "run" / "checkpoint.npz")
    before, before_se = mean_bound(untrained, test_x, 5, seed=2)
    after, after_se = mean_bound(trained, test_x, 5, seed=2)
    assert after - before > 5 * np.hypot(before_se, after_se) and after - before > 50.0
    # the run says what it optimized, in metrics.json and in the checkpoint
    assert metrics["objective"] == "iwae" and metrics["k"] == 5
    assert len(metrics["train_iwae"]) == 4 and "train_elbo" not in metrics
    assert metrics["train_iwae"][-1] > metrics["train_iwae"][0]
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["config"]["objective"] == "iwae" and written["config"]["k"] == 5
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["objective"] == "iwae" and meta["k"] == 5
    assert (loaded.objective, loaded.k) == ("iwae", 5)


def test_k1_iwae_step_is_the_monte_carlo_elbo_step(digits):
    """With one sample, L̂_1 = log p(x, z) − log q(z|x) for the same z: value and gradient."""
    model = VAE(784, hidden=(8,), z_dim=3, rng=np.random.default_rng(0), dtype=np.float64)
    config = TrainConfig(objective="iwae", k=1, dtype="float64")
    bound = training_bound(model, digits, config, np.random.default_rng(7))
    bound.mean().backward()
    iwae_value, iwae_gradient = bound.data.copy(), model.flat_grad.copy()

    model.zero_grad()
    q = model.encode(digits)
    z = q.rsample(np.random.default_rng(7), (1,))  # the same noise: the same z
    monte_carlo_elbo = (model.log_joint(digits, z) - q.log_prob(z))[0]
    monte_carlo_elbo.mean().backward()
    np.testing.assert_allclose(iwae_value, monte_carlo_elbo.data, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(iwae_gradient, model.flat_grad, rtol=1e-9, atol=1e-12)


def test_k1_iwae_gradient_equals_the_elbo_gradient_in_expectation(digits):
    """E[∇L̂_1] (Monte Carlo KL) = E[∇ELBO] (closed-form KL): both are ∇ of the same ELBO."""
    model = VAE(784, hidden=(8,), z_dim=3, rng=np.random.default_rng(0), dtype=np.float64)
    x = digits[:4]
    directions = np.random.default_rng(3).standard_normal((4, model.flat_data.size))
    iwae_config, elbo_config = (TrainConfig(objective=o, dtype="float64") for o in ("iwae", "elbo"))

    def projected_gradients(config, seed, draws=600):
        rng, rows = np.random.default_rng(seed), []
        for _ in range(draws):
            model.zero_grad()
            training_bound(model, x, config, rng).mean().backward()
            rows.append(directions @ model.flat_grad)
        return np.array(rows)  # (draws, directions)

    iwae_draws = projected_gradients(iwae_config, seed=10)
    elbo_draws = projected_gradients(elbo_config, seed=11)
    difference = iwae_draws.mean(axis=0) - elbo_draws.mean(axis=0)
    standard_error = np.sqrt(iwae_draws.var(axis=0, ddof=1) / len(iwae_draws)
                             + elbo_draws.var(axis=0, ddof=1) / len(elbo_draws))
    assert np.all(np.abs(difference) <= 5 * standard_error), (difference, standard_error)


@pytest.mark.parametrize("changes, message", [
    ({"objective": "vimco"}, "objective must be one of"),
    ({"objective": "iwae", "k": 0}, "k must be a positive integer"),
    ({"objective": "iwae", "k": 2.5}, "k must be a positive integer"),
    ({"objective": "elbo", "k": 5}, "k must be 1 with objective 'elbo'"),
])
def test_config_rejects_bad_objective_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_old_checkpoints_default_to_the_elbo():
    config = TrainConfig()
    assert (config.objective, config.k) == ("elbo", 1)


def test_cli_trains_on_the_iwae_bound(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["train", "--dataset", "mnist-5k", "--max-train", "200", "--max-test", "50",
                     "--epochs", "1", "--batch-size", "50", "--hidden", "16", "--z-dim", "3",
                     "--objective", "iwae", "--k-train", "3", "--out", str(out), "--quiet"])
    assert code == 0
    assert "on the L_3" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["objective"], metrics["k"]) == ("iwae", 3)
    assert np.isfinite(metrics["train_iwae"]).all()
    code = cli_main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--k", "10",
                     "--n", "20", "--quiet"])
    assert code == 0
    assert "model vae trained on the L_3" in capsys.readouterr().out


def test_importance_sampling_demo_converges_to_the_exact_value(tmp_path, capsys):
    result = importance_sampling.main(importance_sampling.parse_args(
        ["--out", str(tmp_path), "--max-samples", "2000"]))
    assert result["path"].is_file() and result["counts"][-1] == 2000
    estimates, errors = result["table"]["importance sampling"]
    # the largest importance-sampling run lands within 5 of its standard errors of log p(x)
    assert np.all(np.abs(estimates[-1] - result["exact"]) <= 5 * errors[-1])
    assert "exact log p(x)" in capsys.readouterr().out


def test_iwae_demo_runs_on_the_embedded_digits(tmp_path, capsys):
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


def test_iwae_demo_explains_a_missing_mnist_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(iwae, "SHARED_MNIST", tmp_path / "nowhere")
    with pytest.raises(SystemExit):
        iwae.parse_args([])
    assert "--data-root" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        iwae.parse_args(["--dataset", "mnist-5k", "--ks", "0"])
    assert "--ks must be positive" in capsys.readouterr().err
