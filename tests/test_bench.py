"""bench/hand_fused.py must compute exactly minivae's step, or its timings compare nothing."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from minivae.models import VAE
from tests.helpers import mnist_5k, run_demo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from hand_fused import HandFusedVAE  # noqa: E402


@pytest.mark.parametrize("hidden, z_dim, activation, slope",
                         [((400,), 20, "tanh", 0.01), ((400, 400), 200, "leaky_relu", 0.2)])
def test_hand_fused_step_has_minivaes_loss_and_gradient(hidden, z_dim, activation, slope):
    x = (np.random.default_rng(0).random((32, 784)) < 0.2).astype(np.float32)
    hand = HandFusedVAE(hidden, z_dim, activation, slope, np.random.default_rng(1))
    model = VAE(784, hidden, z_dim, activation, rng=np.random.default_rng(1), leaky_slope=slope)
    np.testing.assert_array_equal(hand.params, model.flat_data)
    loss = -model.elbo(x, np.random.default_rng(2)).mean()
    loss.backward()
    hand_loss = hand.step(x, np.random.default_rng(2))
    np.testing.assert_allclose(hand_loss, loss.item(), rtol=1e-6)
    scale = np.abs(model.flat_grad).max()
    np.testing.assert_allclose(hand.grads, model.flat_grad, atol=1e-6 * scale)


def test_loglik_bench_gives_pytorch_the_same_weights_and_formula():
    """bench/loglik.py's PyTorch log-weights equal minivae's for the same weights and ε, and
    its estimates agree with minivae's within their standard errors."""
    torch = pytest.importorskip("torch")
    import loglik

    from minivae.engine.tensor import no_grad
    from minivae.objectives.iwae import log_importance_weights
    from minivae.objectives.likelihood import importance_sampling_log_likelihood

    model = VAE(12, hidden=(8,), z_dim=3, rng=np.random.default_rng(0))
    x = (np.random.default_rng(1).random((6, 12)) < 0.4).astype(np.float32)
    encoder, decoder = loglik.torch_copy(torch, model)
    eps = np.random.default_rng(2).standard_normal((4, 6, 3)).astype(np.float32)
    with no_grad():
        ours = log_importance_weights(model, x, 4, np.random.default_rng(2)).data
    with torch.no_grad():
        theirs = loglik.torch_log_weights(torch, encoder, decoder, torch.from_numpy(x),
                                          torch.from_numpy(eps)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-5)
    estimate, error = importance_sampling_log_likelihood(model, x, 400, np.random.default_rng(3))
    their_estimate, their_error = loglik.torch_log_likelihood(torch, encoder, decoder, x, 400,
                                                              64, seed=3)
    assert np.all(np.abs(estimate - their_estimate) < 4 * np.hypot(error, their_error))
    np.testing.assert_allclose(their_error, error, rtol=0.5)


def test_iwae_bench_gives_pytorch_the_same_bound_and_gradient():
    torch = pytest.importorskip("torch")
    import iwae_epoch

    x = (np.random.default_rng(0).random((8, 784)) < 0.2).astype(np.float32)
    bound_difference, gradient_difference = iwae_epoch.check_models_agree(torch, x, 5)
    assert bound_difference < 1e-3 and gradient_difference < 1e-4


def test_results_figures_draw_the_runs_metrics(tmp_path, monkeypatch):
    """bench/results_figures.py reads the keys train() writes in metrics.json (and the
    semi-supervised demo in results.json)."""
    import results_figures  # bench/ is on sys.path (above)

    from minivae.config import TrainConfig
    from minivae.train import train

    runs = []
    for name, fields in (("elbo", {}), ("iwae", {"objective": "iwae", "k": 2})):
        out = tmp_path / name
        train(TrainConfig(epochs=2, max_train=50, max_test=20, hidden=(8,), z_dim=2,
                          out=str(out), **fields), progress=False)
        runs.append(str(out))
    m2 = tmp_path / "m2"
    train(TrainConfig(model="m2", labels=10, epochs=1, max_train=60, max_test=20, hidden=(8,),
                      z_dim=2, out=str(m2)), progress=False)
    mnist_5k()
    m1m2 = tmp_path / "m1m2"  # and the keys demos/semi_supervised.py writes in results.json
    run_demo("semi_supervised", m1m2, "--epochs", "2", "--vae-epochs", "1", "--hidden", "16",
             "--z-dim", "4", "--m1-units", "all", "--skip-m2", "--quiet")
    vade = tmp_path / "vade"  # and the keys demos/vade_clustering.py writes in results.json
    run_demo("vade_clustering", vade, "--max-train", "200", "--hidden", "16", "--z-dim", "3",
             "--n-clusters", "3", "--gmm-restarts", "1", "--pretrain", "plain",
             "--pretrain-epochs", "1", "--epochs", "2", "--quiet")
    monkeypatch.setattr(results_figures, "OUT", tmp_path / "figures")
    results_figures.main(["--burda", *runs, "--burda-labels", "one core", "both cores",
                          "--m2", str(m2), str(m2), "--m2-draws", str(m2), str(m2),
                          "--m1m2-draws", str(m1m2), str(m1m2),
                          "--vade", str(vade), "--vade-compare", str(vade)])
    for name in ("burda_one_hour.png", "m2_test_error.png", "m2_label_draws.png",
                 "m1m2_label_draws.png", "vade_seeds.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_binarize_bench_times_two_forms_of_one_draw(capsys):
    """bench/binarize.py's two forms draw the same binary images (the bench asserts it after
    its timings), so its ratio compares one computation written two ways."""
    import binarize  # bench/ is on sys.path (above)

    medians = binarize.main(binarize.parse_args(["--epochs", "1", "--n", "500"]))
    assert set(medians) == {"fresh", "minivae"} and all(t > 0 for t in medians.values())
    assert "minivae / fresh:" in capsys.readouterr().out
    pixels = np.random.default_rng(3).random((50, 7), dtype=np.float32)
    np.testing.assert_array_equal(binarize.fresh_draw(pixels, np.random.default_rng(4)),
                                  binarize.binarize_dynamic(pixels, np.random.default_rng(4)))


def test_m2_step_bench_times_two_forms_of_one_encoder(capsys):
    """bench/m2_step.py's two encoders give the same first objective (the bench asserts it
    after its timings), so its ratio compares one computation written two ways."""
    import m2_step  # bench/ is on sys.path (above)

    medians = m2_step.main(m2_step.parse_args(["--steps", "1", "--rounds", "1",
                                               "--batch-size", "8"]))
    assert set(medians) == {"concatenated", "minivae"} and all(t > 0 for t in medians.values())
    assert "minivae / concatenated:" in capsys.readouterr().out
