"""The training loop: one seed gives one result, bit for bit; training on the IWAE bound L_k,
its agreement with the ELBO at k = 1, and the objective's settings in TrainConfig."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from minivae.config import check_memory, memory_needs
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
from tests.helpers import tiny_config

# -- one seed, one result ----------------------------------------------------------------------


def run(out, **changes):
    """Two epochs of the tiny configuration: the metrics (wall-clock time and the output folder
    left out), the checkpoint's arrays and the generator states it saved."""
    metrics = train(tiny_config(out, 2, **changes), progress=False)
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    del metrics["seconds"], metrics["config"]["out"]
    return metrics, arrays, meta["rng"]


@pytest.mark.usefixtures("no_pictures")
@pytest.mark.parametrize("changes", [
    {},
    dict(objective="iwae", k=4, dtype="float64"),
    dict(model="vqvae", activation="relu",
         model_options={"codebook_size": 8, "ema": True, "restart_dead": True}),
])
def test_same_seed_gives_bit_identical_runs(tmp_path, changes):
    first, first_arrays, first_rng = run(tmp_path / "a", **changes)
    second, second_arrays, second_rng = run(tmp_path / "b", **changes)
    assert first == second  # every epoch's training bound and test ELBO, exactly
    assert first_rng == second_rng
    assert sorted(first_arrays) == sorted(second_arrays)
    for key in first_arrays:  # parameters and Adam's state
        assert first_arrays[key].tobytes() == second_arrays[key].tobytes(), key


@pytest.mark.usefixtures("no_pictures")
def test_another_seed_gives_another_run(tmp_path):
    first, first_arrays, _ = run(tmp_path / "a")
    other, other_arrays, _ = run(tmp_path / "b", seed=1)
    assert first["test_elbo"] != other["test_elbo"]
    assert not np.array_equal(first_arrays["decoder.layers.0.weight"],
                              other_arrays["decoder.layers.0.weight"])


@pytest.mark.usefixtures("no_pictures")
def test_train_elbo_is_the_mean_over_every_example_seen(tmp_path, monkeypatch):
    """An epoch's train ELBO is the sum of the per-example bounds over the number of examples
    seen, the last partial batch included (120 = 50 + 50 + 20).  Dividing by (last batch
    index) × (batch size), as the notes' training loop does (599 · 100 for 600 batches of
    100), would give sum/100 here, 20% off."""
    import minivae.train as training

    bounds = []

    def recording(model, x, config, rng, extra=None, kl_weight=1.0):
        bound = training_bound(model, x, config, rng, extra, kl_weight)
        bounds.append(bound.data.astype(np.float64))
        return bound

    monkeypatch.setattr(training, "training_bound", recording)
    metrics = train(tiny_config(tmp_path / "run", 1, batch_size=50), progress=False)
    assert [len(b) for b in bounds] == [50, 50, 20]
    values = np.concatenate(bounds)
    assert metrics["train_elbo"] == [pytest.approx(values.mean(), rel=1e-12)]
    notes_form = values.sum() / ((len(bounds) - 1) * 50)
    assert abs(metrics["train_elbo"][0] - notes_form) > 0.1 * abs(values.mean())


# -- training on the IWAE bound ----------------------------------------------------------------


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


@pytest.mark.parametrize("changes, error, message", [
    # x[:n] with n = 0 would take every image, and n = -10 all but the last ten
    ({"max_train": 0}, ValueError, "max_train must be a positive integer or None, got 0"),
    ({"max_train": -10}, ValueError, "max_train must be a positive integer or None, got -10"),
    ({"max_train": "abc"}, ValueError, "max_train must be a positive integer or None"),
    ({"max_train": 2.5}, ValueError, "max_train must be a positive integer or None"),
    ({"max_train": True}, ValueError, "max_train must be a positive integer or None"),
    ({"max_test": 0}, ValueError, "max_test must be a positive integer or None, got 0"),
    ({"seed": -1}, ValueError, "seed must be an integer ≥ 0, got -1"),
    ({"seed": 1.5}, ValueError, "seed must be an integer ≥ 0"),
    ({"hidden": (8, 0)}, ValueError, "every hidden width must be a positive integer"),
    ({"hidden": "wide"}, TypeError, "hidden must be an int or a sequence of ints"),
    ({"leaky_slope": float("inf")}, ValueError, "leaky_slope must be a finite number"),
    ({"activation": "swish"}, ValueError, "activation must be one of"),
    ({"dataset": "cifar"}, ValueError, "dataset must be one of"),
    ({"model_options": {"n_classes": 4}}, ValueError,
     "model_options holds n_classes, which model 'vae' does not take"),
    ({"model": "categorical", "model_options": {"x_dim": 4}}, ValueError,
     "model_options holds x_dim"),
    ({"out": 3}, TypeError, "out must be a non-empty path"),
    ({"out": ""}, TypeError, "out must be a non-empty path"),
    ({"data_root": ["a"]}, TypeError, "data_root must be a non-empty path"),
])
def test_config_rejects_each_bad_field_by_name(changes, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(**changes)


def test_config_keeps_good_values_as_plain_types(tmp_path):
    config = TrainConfig(max_train=np.int64(5), seed=np.int64(3), hidden=np.array([4, 2]),
                         out=tmp_path, data_root=tmp_path)
    assert (config.max_train, config.seed, config.hidden) == (5, 3, (4, 2))
    assert type(config.max_train) is int and type(config.seed) is int
    assert config.out == str(tmp_path) and config.data_root == str(tmp_path)
    assert json.loads(json.dumps(dataclasses.asdict(config)))["out"] == str(tmp_path)


@pytest.mark.parametrize("limit, message", [
    (0, "max_test must be a positive integer or None, got 0"),
    (-10, "max_test must be a positive integer or None, got -10"),
    (501, "max_test must be at most the 500 images of the test split of mnist-5k, got 501"),
])
def test_a_limit_set_after_the_config_was_made_is_checked_where_it_slices(limit, message):
    """The attribute can be assigned past __post_init__ (as evaluate --n once did): the slice
    itself refuses a limit that is not a count of images there are."""
    config = TrainConfig(dataset="mnist-5k")
    config.max_test = limit
    with pytest.raises(ValueError, match=message):
        load_binary_split(config, "test")
    config.max_test = 500
    assert len(load_binary_split(config, "test")) == 500


def test_sizes_that_cannot_fit_are_refused_up_front():
    """The estimate counts the VAE's weights exactly (an independent count: the model's own
    parameters), and names the field that makes the run too large."""
    config = TrainConfig(hidden=(40, 30), z_dim=5)
    model = build_model(config, 784, np.random.default_rng(0))
    weights = sum(p.data.size for p in model.parameters())
    floats = 4 * weights + 1000 * (784 + 40 + 30 + 10 + 5 + 30 + 40 + 784) * 4  # one batch
    check_memory(config, 784, 60_000, available=floats * 4)  # float32: 4 bytes, just fits
    with pytest.raises(MemoryError, match=r"^hidden \[40, 30\] is too large"):
        check_memory(config, 784, 60_000, available=floats * 4 - 1)
    iwae = TrainConfig(hidden=(40, 30), z_dim=5, objective="iwae", k=100, batch_size=50)
    with pytest.raises(MemoryError, match=r"^k 100 is too large: a training batch of 50 images"):
        check_memory(iwae, 784, 60_000, available=floats * 4)
    # the batch never holds more images than the data
    check_memory(TrainConfig(hidden=(40, 30), z_dim=5, batch_size=10**9), 784, 1000,
                 available=floats * 4)


def test_the_memory_estimate_counts_m2_s_enumerated_classes():
    """M2 runs its encoder and decoder on the K classes of every unlabelled image and on the
    labelled one: its batch estimate grows with K, past K + 1 = 11 times the VAE's for the
    digits; its weights are counted exactly (the model's own parameters, three MLPs)."""
    vae = memory_needs(TrainConfig(hidden=(40,), z_dim=5), 784, 60_000)
    batches = []
    for k in (2, 10, 20):
        config = TrainConfig(model="m2", labels=100, hidden=(40,), z_dim=5,
                             model_options={"n_classes": k})
        needs = memory_needs(config, 784, 60_000)
        model = build_model(config, 784, np.random.default_rng(0))
        assert needs["weights"] == 4 * 4 * sum(p.data.size for p in model.parameters())
        batches.append(needs["batch"])
    assert batches[0] < batches[1] < batches[2] and batches[1] > 11 * vae["batch"]
    with pytest.raises(MemoryError, match=r"^hidden \[40\] is too large"):
        check_memory(config, 784, 60_000, available=sum(vae.values()) * 11)
