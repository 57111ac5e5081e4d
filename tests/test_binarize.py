"""``train --binarize dynamic|static|round``: each against its definition, seen where the
training loop hands the images to the minibatches; and the seed-004 network (LeakyReLU 0.2
hidden layers) differentiated correctly end to end.

dynamic: every epoch a fresh Bernoulli draw with mean x; static: one such draw for all epochs
(and for a resumed run); round: [x > 1/2] = [k ≥ 128] for 8-bit intensities k, on the test
images too.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import minivae.train as training
from minivae.config import TrainConfig
from minivae.data import load_dataset
from minivae.models.vae import VAE

N_TRAIN = 400


def tiny_config(tmp_path, **fields) -> TrainConfig:
    return TrainConfig(**{**dict(dataset="mnist-5k", max_train=N_TRAIN, max_test=50, epochs=3,
                                 hidden=(8,), z_dim=2, batch_size=100, seed=4,
                                 out=str(tmp_path / "run")), **fields})


def epochs_images(monkeypatch, config: TrainConfig, resume: bool = False) -> list:
    """The training images each epoch of ``train(config)`` gives its minibatches (drawn by
    minivae/training_data.py for every model)."""
    import minivae.training_data as training_data

    seen, minibatches = [], training_data.minibatches

    def recording(x, *args, **kwargs):
        seen.append(np.array(x))
        return minibatches(x, *args, **kwargs)

    monkeypatch.setattr(training_data, "minibatches", recording)
    monkeypatch.setattr(training, "write_pictures", lambda *args: None)
    training.train(config, progress=False, resume=resume)
    return seen


def intensities(split: str, n: int) -> np.ndarray:
    return load_dataset("mnist-5k", split).images.reshape(-1, 784)[:n]


def assert_bernoulli_with_mean(draw: np.ndarray, pixels: np.ndarray) -> None:
    """Σ(b − x) over all pixels is within 4 standard errors √Σ x(1 − x) of 0, and b ∈ {0, 1}
    with b = x wherever x is 0 or 1."""
    assert set(np.unique(draw)) <= {0.0, 1.0}
    x = pixels.astype(np.float64)
    assert np.all(draw[x == 0] == 0) and np.all(draw[x == 1] == 1)
    z = (draw - x).sum() / np.sqrt((x * (1 - x)).sum())
    assert abs(z) < 4, z


def test_dynamic_is_a_fresh_bernoulli_draw_every_epoch(monkeypatch, tmp_path):
    images = epochs_images(monkeypatch, tiny_config(tmp_path, binarize="dynamic"))
    pixels = intensities("train", N_TRAIN) / 255
    assert len(images) == 3
    for draw in images:
        assert_bernoulli_with_mean(draw, pixels)
    grey = (pixels > 0) & (pixels < 1)
    # two independent draws of the grey pixels disagree on a fraction 2 x(1 − x) of them
    expected = (2 * pixels * (1 - pixels))[grey].mean()
    assert abs((images[0] != images[1])[grey].mean() - expected) < 0.02


def test_static_is_one_bernoulli_draw_for_all_epochs(monkeypatch, tmp_path):
    config = tiny_config(tmp_path, binarize="static", epochs=2)
    images = epochs_images(monkeypatch, config)
    assert_bernoulli_with_mean(images[0], intensities("train", N_TRAIN) / 255)
    np.testing.assert_array_equal(images[0], images[1])
    # a resumed run keeps the run's draw (it is made anew from the seed, not from saved state)
    resumed = epochs_images(monkeypatch, dataclasses.replace(config, epochs=3), resume=True)
    np.testing.assert_array_equal(resumed[0], images[0])
    other_seed = epochs_images(monkeypatch, tiny_config(tmp_path / "b", binarize="static",
                                                        epochs=1, seed=5))
    assert np.any(other_seed[0] != images[0])


def test_round_thresholds_both_splits_at_one_half(monkeypatch, tmp_path):
    images = epochs_images(monkeypatch, tiny_config(tmp_path, binarize="round", epochs=2))
    for draw in images:  # k/255 > 1/2 ⇔ k ≥ 128: the oracle works on the integers
        np.testing.assert_array_equal(draw, intensities("train", N_TRAIN) >= 128)
    test_pixels = intensities("test", 50) / np.float32(255)
    model = VAE(784, hidden=(8,), z_dim=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(training.scored_test_images(model, test_pixels, "round"),
                                  intensities("test", 50) >= 128)
    # the other choices score the fixed-seed Bernoulli draw, as runs always have
    dynamic = training.scored_test_images(model, test_pixels, "dynamic")
    assert_bernoulli_with_mean(dynamic, test_pixels)
    np.testing.assert_array_equal(training.scored_test_images(model, test_pixels, "static"),
                                  dynamic)


def test_the_default_is_dynamic_and_the_first_streams_are_unchanged():
    """Runs that do not ask for a binarization draw what they drew before the option
    existed: the same three generators, whichever number of streams is spawned."""
    assert TrainConfig().binarize == "dynamic"
    from minivae.train import run_generators

    assert len(run_generators(7)) == 5
    for n in (3, 4):  # before the static binarization, before the training data's own stream
        for a, b in zip(np.random.default_rng(7).spawn(n), run_generators(7)):
            np.testing.assert_array_equal(a.random(5), b.random(5))


def test_grey_level_models_refuse_a_binarization(tmp_path):
    config = tiny_config(tmp_path, model="gaussian_decoder", binarize="round", epochs=1)
    with pytest.raises(ValueError, match="binarize 'round' applies to models of binary pixels"):
        training.train(config, progress=False)


def test_seed004_network_passes_gradcheck(objective_gradcheck):
    """784-400-400-200 with LeakyReLU(0.2), shrunk to 12-6-6-3: every weight's gradient of the
    ELBO through the fused bias + leaky_relu kernel agrees with central differences."""
    rng = np.random.default_rng(0)
    model = VAE(12, hidden=(6, 6), z_dim=3, activation="leaky_relu", leaky_slope=0.2, rng=rng,
                dtype=np.float64)
    x = (rng.random((5, 12)) < 0.5).astype(np.float64)
    objective_gradcheck(model, x, seed=3)


def test_a_checkpoint_older_than_the_option_resumes_as_dynamic(monkeypatch, tmp_path):
    """A run saved before ``binarize`` existed has no such field: it was dynamic, and resuming
    it is not a change of config (while asking for another binarization is)."""
    from minivae.io.checkpoint import load_checkpoint, save_checkpoint
    from minivae.io.resume import CHECKPOINT_NAME, resume_config

    config = tiny_config(tmp_path, epochs=1)
    epochs_images(monkeypatch, config)
    path = tmp_path / "run" / CHECKPOINT_NAME
    arrays, meta = load_checkpoint(path)
    del meta["config"]["binarize"]
    save_checkpoint(path, arrays, meta)
    resumed = resume_config(config.out, epochs=2)
    assert resumed.binarize == "dynamic"
    assert len(epochs_images(monkeypatch, resumed, resume=True)) == 1
    with pytest.raises(ValueError, match="binarize 'dynamic' → 'round'"):
        training.train(dataclasses.replace(resumed, epochs=3, binarize="round"), progress=False,
                       resume=True)
