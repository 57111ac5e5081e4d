"""One seed, one result: two runs with the same config are bit-identical on one machine."""
from __future__ import annotations

import numpy as np
import pytest

import minivae.train as training
from minivae.io.checkpoint import load_checkpoint
from minivae.train import TrainConfig, train


@pytest.fixture(autouse=True)
def no_pictures(monkeypatch):
    monkeypatch.setattr(training, "write_pictures", lambda *args, **kwargs: None)


def run(out, **changes):
    fields = dict(dataset="mnist-5k", epochs=2, batch_size=40, z_dim=3, hidden=(12,),
                  max_train=120, max_test=20, out=str(out))
    metrics = train(TrainConfig(**{**fields, **changes}), progress=False)
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    del metrics["seconds"], metrics["config"]["out"]
    return metrics, arrays, meta["rng"]


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


def test_another_seed_gives_another_run(tmp_path):
    first, first_arrays, _ = run(tmp_path / "a")
    other, other_arrays, _ = run(tmp_path / "b", seed=1)
    assert first["test_elbo"] != other["test_elbo"]
    assert not np.array_equal(first_arrays["decoder.layers.0.weight"],
                              other_arrays["decoder.layers.0.weight"])
