"""The training options of the papers: learning-rate schedules, KL warm-up, Adam's ε, weight
initialization, a validation split with early stopping and the best checkpoint, and a
wall-clock budget."""
from __future__ import annotations

import functools
import io
import json
import time
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

import minivae.train as training
import minivae.training_data as training_data
from minivae.cli import main
from minivae.config import build_model
from minivae.data import binarize_dynamic, load_dataset
from minivae.io.checkpoint import load_checkpoint
from minivae.io.resume import load_model
from minivae.models import VAE
from minivae.optim import Adam
from minivae.schedules import burda, cosine
from minivae.train import kl_weighted_elbo, train
from tests.helpers import tiny_config

DIGITS = functools.lru_cache(load_dataset)


@pytest.fixture(autouse=True)
def fast_runs(monkeypatch):
    monkeypatch.setattr(training_data, "load_dataset", DIGITS)
    monkeypatch.setattr(training, "write_pictures", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    pixels = load_dataset("mnist-5k", "train").pixels("float64")[::90][:40]
    return binarize_dynamic(pixels, np.random.default_rng(0))


def small_vae(dtype="float64") -> VAE:
    return VAE(784, hidden=(10,), z_dim=3, rng=np.random.default_rng(1), dtype=dtype)


# -- KL warm-up --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kl_weighted_bound_at_beta_one_is_the_elbo(digits, dtype):
    model, x = small_vae(dtype), digits.astype(dtype)
    weighted = kl_weighted_elbo(model, x, np.random.default_rng(3), 1.0).data
    elbo = model.elbo(x, np.random.default_rng(3)).data
    assert weighted.dtype == elbo.dtype == np.dtype(dtype)
    assert weighted.tobytes() == elbo.tobytes()


def gradient(model, loss) -> np.ndarray:
    model.zero_grad()
    loss.backward()
    return np.concatenate([p.grad.ravel().copy() for p in model.parameters()])


def test_kl_weighted_gradient_is_the_weighted_sum_of_the_terms(digits):
    """∇(log p(x|z) − β KL) = ∇ log p(x|z) − β ∇ KL, each term's gradient from a backward pass
    of its own with the same noise ε; the weighted gradient is not the ELBO's."""
    model, beta = small_vae(), 0.3
    rec, _ = model.reconstruction_and_kl(digits, np.random.default_rng(5))
    g_rec = gradient(model, rec.mean())
    _, kl = model.reconstruction_and_kl(digits, np.random.default_rng(5))
    g_kl = gradient(model, kl.mean())
    g_weighted = gradient(model, kl_weighted_elbo(model, digits, np.random.default_rng(5),
                                                  beta).mean())
    g_elbo = gradient(model, model.elbo(digits, np.random.default_rng(5)).mean())
    np.testing.assert_allclose(g_weighted, g_rec - beta * g_kl, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_elbo, g_rec - g_kl, rtol=1e-10, atol=1e-12)
    assert np.abs(g_weighted - g_elbo).max() > 1e-3


def test_warm_up_weights_the_kl_epoch_by_epoch(tmp_path, monkeypatch):
    """β = min(1, e/W) in every step of epoch e (W = 2: ½, then 1); the test ELBO is still
    the model's true ELBO."""
    weights, real = [], training.training_bound

    def recording(model, x, config, rng, extra=None, kl_weight=1.0):
        weights.append(kl_weight)
        return real(model, x, config, rng, extra, kl_weight)

    monkeypatch.setattr(training, "training_bound", recording)
    scored = []
    real_mean_elbo = training.mean_elbo
    monkeypatch.setattr(training, "mean_elbo",
                        lambda model, x, rng, **kw: scored.append(1) or real_mean_elbo(model, x,
                                                                                        rng))
    train(tiny_config(tmp_path / "run", 3, kl_warmup=2), progress=False)
    assert weights == [0.5] * 3 + [1.0] * 6  # 120 images in batches of 40
    assert len(scored) == 3


def test_warm_up_is_refused_where_the_bound_does_not_split(tmp_path):
    for changes in (dict(model="vade"), dict(model="full_covariance"),
                    dict(objective="iwae", k=2)):
        with pytest.raises(ValueError, match="kl_warmup weights the KL"):
            tiny_config(tmp_path, 1, kl_warmup=3, **changes)


# -- learning rate and Adam's ε ----------------------------------------------------------------


@pytest.mark.parametrize("schedule, formula", [("cosine", lambda e: cosine(e, 2e-3, 4)),
                                               ("burda", lambda e: burda(e, 2e-3)),
                                               ("constant", lambda e: 2e-3)])
def test_each_epoch_steps_with_its_scheduled_rate_and_eps(tmp_path, monkeypatch, schedule,
                                                          formula):
    seen, real_step = [], Adam.step

    def recording_step(self):
        seen.append((self.lr, self.eps))
        real_step(self)

    monkeypatch.setattr(Adam, "step", recording_step)
    train(tiny_config(tmp_path / "run", 4, lr=2e-3, lr_schedule=schedule, adam_eps=1e-4),
          progress=False)
    expected = [(formula(e), 1e-4) for e in range(1, 5) for _ in range(3)]
    assert seen == expected


def test_init_redraws_the_linear_layers_of_the_built_model(tmp_path):
    default = build_model(tiny_config(tmp_path, 1), 784, np.random.default_rng(0))
    he = build_model(tiny_config(tmp_path, 1, init="he"), 784, np.random.default_rng(0))
    assert all(np.all(layer.bias.data == 0) for layer in he.encoder.layers + he.decoder.layers)
    w = he.encoder.layers[0].weight.data
    assert abs(w.var() / (2 / 784) - 1) < 0.05  # 784·12 draws: a standard error of 1.5%
    assert not np.array_equal(w, default.encoder.layers[0].weight.data)
    assert he.encoder.layers[0].weight.data.base is he.flat_data  # the optimizer's buffer


# -- validation, early stopping, the best checkpoint ----------------------------------------------


def test_validation_images_are_held_out_by_the_seed(tmp_path):
    whole = training.training_data(tiny_config(tmp_path, 1)).train_pixels
    data = training.training_data(tiny_config(tmp_path, 1, validation=30))
    assert data.validation_pixels.shape == (30, 784) and data.train_pixels.shape == (90, 784)
    rows = {row.tobytes(): i for i, row in enumerate(whole)}
    held = sorted(rows[r.tobytes()] for r in data.validation_pixels)
    kept = [rows[r.tobytes()] for r in data.train_pixels]
    assert sorted(held + kept) == list(range(120)) and kept == sorted(kept)
    assert held != list(range(90, 120))  # random, not the last (one class in the sorted split)
    again = training.training_data(tiny_config(tmp_path, 1, validation=30))
    other = training.training_data(tiny_config(tmp_path, 1, validation=30, seed=1))
    assert np.array_equal(again.validation_pixels, data.validation_pixels)
    assert not np.array_equal(other.validation_pixels, data.validation_pixels)


def test_validation_elbo_is_recorded_and_best_npz_holds_the_best_epoch(tmp_path, monkeypatch):
    scores = iter([-100.0, -90.0, -95.0, -96.0, -80.0])
    monkeypatch.setattr(training, "validation_score",
                        lambda model, x, rng: {} if x is None else {"validation_elbo":
                                                                    next(scores)})
    bests = []
    real_save = training.save_run
    monkeypatch.setattr(training, "save_run", lambda path, *args: (
        bests.append(args[1]) if path.name == "best.npz" else None, real_save(path, *args)))
    metrics = train(tiny_config(tmp_path / "run", 4, validation=20), progress=False)
    assert metrics["validation_elbo"] == [-100.0, -90.0, -95.0, -96.0]
    assert bests == [1, 2]  # written when the score is the best so far, and only then
    best_arrays, best_meta = load_checkpoint(tmp_path / "run" / "best.npz")
    assert best_meta["epoch"] == 2 and "stopped" not in metrics
    model, _ = load_model(tmp_path / "run" / "best.npz")  # what evaluate reads
    last, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert not np.array_equal(best_arrays["encoder.layers.0.weight"],
                              last["encoder.layers.0.weight"])


def test_early_stopping_stops_after_patience_epochs_without_a_better_score(tmp_path,
                                                                          monkeypatch):
    scores = iter([-100.0, -90.0, -95.0, -91.0, -80.0, -70.0])
    monkeypatch.setattr(training, "validation_score",
                        lambda model, x, rng: {"validation_elbo": next(scores)})
    metrics = train(tiny_config(tmp_path / "run", 6, validation=20, early_stopping=2),
                    progress=False)
    assert metrics["epoch"] == [1, 2, 3, 4]
    assert metrics["stopped"].startswith("stopped early after epoch 4")
    assert "since epoch 2" in metrics["stopped"]
    assert load_checkpoint(tmp_path / "run" / "best.npz")[1]["epoch"] == 2
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epoch"] == [1, 2, 3, 4]


def test_a_real_validation_run_scores_the_held_out_images(tmp_path):
    metrics = train(tiny_config(tmp_path / "run", 2, validation=20), progress=False)
    assert len(metrics["validation_elbo"]) == 2
    assert all(np.isfinite(metrics["validation_elbo"]))
    code, out, err = run_cli(["evaluate", "--checkpoint", tmp_path / "run" / "best.npz",
                              "--k", "2", "--quiet"])
    assert code == 0, err
    assert "test ELBO" in out


# -- the wall-clock budget ---------------------------------------------------------------------


def run_cli(argv):
    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()) as err:
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_a_spent_budget_stops_after_the_step_and_the_run_resumes(tmp_path, monkeypatch):
    """With 0.001 minutes (60 ms, spent by the first step, made to take 70 ms) the run stops
    after one step of its three, writes epoch 1's checkpoint and metrics, and says why in one
    line; --resume starts a fresh budget each time."""
    real_step = Adam.step

    def slow_step(self):
        real_step(self)
        time.sleep(0.07)

    monkeypatch.setattr(Adam, "step", slow_step)
    out = tmp_path / "run"
    flags = ["--max-train", "120", "--max-test", "20", "--hidden", "12", "--z-dim", "3",
             "--batch-size", "40", "--quiet", "--out", out]
    code, stdout, err = run_cli(["train", "--epochs", "3", "--budget-minutes", "0.001", *flags])
    assert (code, err) == (0, "")
    assert stdout.count("\n") == 1 and stdout.startswith(
        "stopped at the wall-clock budget of 0.001 minutes in epoch 1")
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 1 and int(arrays["_adam.t"]) == 1  # one step of three
    assert json.loads((out / "metrics.json").read_text())["epoch"] == [1]
    code, stdout, err = run_cli(["train", "--resume", "--quiet", "--out", out])
    assert code == 0 and "in epoch 2" in stdout
    assert int(load_checkpoint(out / "checkpoint.npz")[0]["_adam.t"]) == 2
    code, stdout, err = run_cli(["train", "--resume", "--budget-minutes", "10", "--quiet",
                                 "--out", out])
    assert code == 0 and stdout.startswith("final test ELBO") and "after 3 epochs" in stdout
    assert int(load_checkpoint(out / "checkpoint.npz")[0]["_adam.t"]) == 2 + 3


def test_a_stage_budget_ends_no_later_than_its_run():
    """Budget.stage(m): m minutes from now, or less where the run's budget ends sooner; None on
    both sides is no limit, and a spent run leaves its stages spent."""
    from minivae.stopping import Budget

    unlimited = Budget(None)
    assert unlimited.minutes_left() is None and unlimited.stage(None).minutes is None
    assert unlimited.stage(5).minutes == 5
    run = Budget(10)
    assert 9.9 < run.minutes_left() <= 10
    assert 9.9 < run.stage(60).minutes <= 10 and run.stage(2).minutes == 2
    assert 9.9 < run.stage(None).minutes <= 10
    spent = Budget(1e-9)
    time.sleep(1e-3)
    assert spent.minutes_left() < 0 and spent.stage(60).spent()
