"""Interrupted and resumed training ends exactly where an uninterrupted run ends (--resume)."""
from __future__ import annotations

import dataclasses
import functools
import json
import shutil

import numpy as np
import pytest

import minivae.train as training
import minivae.training_data as training_data
from minivae.cli import main
from minivae.data import load_dataset
from minivae.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minivae.io.resume import load_model, resume_config
from minivae.train import train
from tests.helpers import assert_same_arrays, tiny_config

DIGITS = functools.lru_cache(load_dataset)  # shared by the tests of this file


@pytest.fixture(autouse=True)
def fast_runs(monkeypatch):
    """Read the embedded digits once and skip the pictures: neither is part of the run state."""
    monkeypatch.setattr(training_data, "load_dataset", DIGITS)
    monkeypatch.setattr(training, "write_pictures", lambda *args, **kwargs: None)


def comparable(metrics: dict) -> dict:
    """Everything but wall-clock time and the output folder."""
    return {key: (dict(value, out=None) if key == "config" else value)
            for key, value in metrics.items() if key != "seconds"}


def assert_same_checkpoints(path_a, path_b):
    a, meta_a = load_checkpoint(path_a)
    b, meta_b = load_checkpoint(path_b)
    assert sorted(a) == sorted(b)
    for key in a:  # bit for bit: parameters, Adam's m, v and t, model extras
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
    assert meta_a["rng"] == meta_b["rng"] and meta_a["model_state"] == meta_b["model_state"]
    assert comparable(meta_a["metrics"]) == comparable(meta_b["metrics"])


MODELS = {
    "vae": {},
    "iwae": dict(objective="iwae", k=3),
    # the temperature schedule lives outside the parameters
    "categorical": dict(model="categorical", model_options={"n_classes": 4}),
    # the EMA codebook is a buffer; restarting dead codewords draws from the model's own rng
    "vqvae_ema": dict(model="vqvae", activation="relu",
                      model_options={"codebook_size": 8, "ema": True, "restart_dead": True}),
    # which labelled pairs meet each batch comes from the training data's own generator
    "m2": dict(model="m2", labels=20),
    # the papers' options: a schedule that changes in epoch 2, the warm-up's β, held-out images
    # scored every epoch (from the noise stream) and the best checkpoint
    "papers": dict(lr_schedule="burda", kl_warmup=2, adam_eps=1e-4, init="he", validation=20,
                   early_stopping=5),
}


@pytest.mark.parametrize("name", MODELS)
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, name):
    whole = train(tiny_config(tmp_path / "whole", 3, **MODELS[name]), progress=False)
    train(tiny_config(tmp_path / "parts", 1, **MODELS[name]), progress=False)
    first_epoch, _ = load_checkpoint(tmp_path / "parts" / "checkpoint.npz")
    resumed = train(tiny_config(tmp_path / "parts", 3, **MODELS[name]), progress=False,
                    resume=True)

    assert resumed["epoch"] == [1, 2, 3]
    assert comparable(resumed) == comparable(whole)
    assert_same_checkpoints(tmp_path / "whole" / "checkpoint.npz",
                            tmp_path / "parts" / "checkpoint.npz")
    if "validation" in MODELS[name]:
        assert_same_checkpoints(tmp_path / "whole" / "best.npz", tmp_path / "parts" / "best.npz")
    on_disk = json.loads((tmp_path / "parts" / "metrics.json").read_text())
    assert comparable(on_disk) == comparable(json.loads(json.dumps(whole)))
    # not vacuous: epochs 2 and 3 changed the parameters and advanced Adam
    last, _ = load_checkpoint(tmp_path / "whole" / "checkpoint.npz")
    assert int(last["_adam.t"]) == 3 * int(first_epoch["_adam.t"]) > 0
    assert not np.array_equal(last["_adam.m.0"], first_epoch["_adam.m.0"])


def test_only_a_semi_supervised_run_saves_a_labels_generator(tmp_path):
    """m2 draws its labelled pairs from a stream of its own, saved with the others (the
    resume above is identical only because it is); the other models' checkpoints are as
    before."""
    for name in ("m2", "vae"):
        train(tiny_config(tmp_path / name, 1, **MODELS[name]), progress=False)
        _, meta = load_checkpoint(tmp_path / name / "checkpoint.npz")
        assert sorted(meta["rng"]) == (["data", "labels", "noise"] if name == "m2"
                                       else ["data", "noise"])


def test_categorical_temperature_is_restored(tmp_path):
    config = dict(MODELS["categorical"], model_options={"n_classes": 4, "anneal_rate": 0.5})
    train(tiny_config(tmp_path, 1, **config), progress=False)
    _, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    kind, temperature = meta["model_state"]["scalars"]["temperature"]
    assert kind == "float" and temperature == pytest.approx(np.exp(-0.5))  # τ(1) = τ₀ e^{−rate}
    resumed = train(tiny_config(tmp_path, 2, **config), progress=False, resume=True)
    whole = train(tiny_config(tmp_path / "whole", 2, **config), progress=False)
    assert comparable(resumed) == comparable(whole)


def test_resuming_in_several_steps_matches_too(tmp_path, tiny_mnist):
    data = dict(dataset="mnist", data_root=str(tiny_mnist))  # files that can be moved
    whole = train(tiny_config(tmp_path / "whole", 3, **data), progress=False)
    for epochs in (1, 2, 3):
        # the data may move in between: data_root is not part of the run's identity
        moved = shutil.copytree(tiny_mnist, tmp_path / f"moved {epochs}")
        parts = train(tiny_config(tmp_path / "parts", epochs, **{**data, "data_root": moved}),
                      progress=False, resume=epochs > 1)
    whole["config"]["data_root"] = str(moved)
    assert comparable(parts) == comparable(whole)


@pytest.mark.parametrize("change, field", [
    (dict(lr=2e-3), "lr"), (dict(seed=1), "seed"), (dict(hidden=(13,)), "hidden"),
    (dict(batch_size=30), "batch_size"), (dict(max_train=100), "max_train"),
    (dict(model="full_covariance"), "model"),
])
def test_resume_with_a_changed_config_is_rejected(tmp_path, change, field):
    train(tiny_config(tmp_path, 1), progress=False)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match=f"differs from the run's in {field} ") as error:
        train(tiny_config(tmp_path, 2, **change), progress=False, resume=True)
    assert str(tmp_path / "checkpoint.npz") in str(error.value)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before  # nothing was overwritten


def test_resume_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume: no checkpoint in"):
        train(tiny_config(tmp_path / "empty", 2), progress=False, resume=True)
    assert not (tmp_path / "empty").exists()  # a mistyped --out leaves no empty folder behind


def test_resuming_a_finished_run_says_so(tmp_path):
    train(tiny_config(tmp_path, 2), progress=False)
    for epochs in (2, 1):
        with pytest.raises(ValueError, match="already finished 2 epochs.*raise --epochs"):
            train(tiny_config(tmp_path, epochs), progress=False, resume=True)


def test_checkpoint_without_run_state_cannot_be_resumed(tmp_path):
    config = tiny_config(tmp_path, 2)
    model = training.build_model(config, 784, np.random.default_rng(0))
    save_checkpoint(tmp_path / "checkpoint.npz", model.state_dict(),
                    {"config": dataclasses.asdict(config), "epoch": 1, "x_dim": 784})
    with pytest.raises(CheckpointError, match="has no 'metrics'.*older minivae"):
        train(config, progress=False, resume=True)


def test_checkpoint_that_does_not_fit_the_model_is_rejected(tmp_path):
    train(tiny_config(tmp_path, 1), progress=False)
    path = tmp_path / "checkpoint.npz"
    arrays, meta = load_checkpoint(path)
    arrays["decoder.layers.0.bias"] = arrays["decoder.layers.0.bias"][:-1]
    arrays["_adam.m.0"] = arrays["_adam.m.0"].astype(np.float64)
    save_checkpoint(path, arrays, meta)  # a valid checksum: only the contents are wrong
    with pytest.raises(CheckpointError) as error:
        train(tiny_config(tmp_path, 2), progress=False, resume=True)
    message = str(error.value)
    assert str(path) in message and "does not fit the model" in message
    assert "'decoder.layers.0.bias': expected shape (12,), got (11,)" in message
    assert "'_adam.m.0': expected dtype float32, got float64" in message


def test_stale_temporary_files_are_ignored_and_removed(tmp_path):
    train(tiny_config(tmp_path, 1), progress=False)
    stale = tmp_path / ".checkpoint.npz.k1ll3d.npz"
    stale.write_bytes(b"PK\x03\x04 half a zip")
    metrics = train(tiny_config(tmp_path, 2), progress=False, resume=True)
    assert metrics["epoch"] == [1, 2] and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "metrics.json"]


class Interrupted(Exception):
    """Stands for a kill between two epochs."""


def interrupt_once_after_epoch(monkeypatch, epoch: int):
    """The next run stops right after saving the checkpoint of ``epoch``, as if killed there."""
    save, armed = training.save_run, [True]

    def save_then_stop(path, config, done, *rest):
        save(path, config, done, *rest)
        if done == epoch and armed:
            armed.clear()
            raise Interrupted

    monkeypatch.setattr(training, "save_run", save_then_stop)


# none of these is a default: a resume that ignored the run's own options would not match
OPTIONS = ["--dataset", "mnist-5k", "--batch-size", "40", "--hidden", "12", "--z-dim", "3",
           "--max-train", "120", "--max-test", "20", "--lr", "0.003", "--seed", "7", "--quiet"]


def test_command_line_resume_needs_only_the_run_folder(tmp_path, monkeypatch):
    whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
    assert main(["train", *OPTIONS, "--epochs", "4", "--out", whole]) == 0
    interrupt_once_after_epoch(monkeypatch, 1)
    with pytest.raises(Interrupted):
        main(["train", *OPTIONS, "--epochs", "3", "--out", parts])

    assert main(["train", "--resume", "--out", parts, "--quiet"]) == 0  # epochs 2 and 3
    assert json.loads((tmp_path / "parts" / "metrics.json").read_text())["epoch"] == [1, 2, 3]
    assert main(["train", "--resume", "--out", parts, "--epochs", "4", "--quiet"]) == 0

    assert_same_checkpoints(tmp_path / "whole" / "checkpoint.npz",
                            tmp_path / "parts" / "checkpoint.npz")
    read = [json.loads((tmp_path / run / "metrics.json").read_text())
            for run in ("whole", "parts")]
    assert comparable(read[0]) == comparable(read[1])
    assert read[1]["config"]["lr"] == 0.003 and read[1]["config"]["epochs"] == 4


@pytest.mark.parametrize("given, message", [
    (["--lr", "0.01"], "lr 0.003 → 0.01"),
    (["--hidden", "12", "12"], "hidden [12] → [12, 12]"),
    (["--dataset", "mnist", "--seed", "7"], "dataset 'mnist-5k' → 'mnist'"),
    (["--option", "n_classes=4"], "model_options {} → {'n_classes': 4}"),
])
def test_command_line_resume_refuses_a_changed_option(tmp_path, capsys, given, message):
    out = str(tmp_path)
    assert main(["train", *OPTIONS, "--epochs", "1", "--out", out]) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", out, "--epochs", "2", "--quiet", *given]) == 2
    error = capsys.readouterr().err
    assert "differs from the run's in " + message in error
    assert "seed 7" not in error  # an option given with the run's own value is no change
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_command_line_resume_of_a_finished_or_missing_run_says_so(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *OPTIONS, "--epochs", "1", "--out", out]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", out, "--quiet"]) == 2
    assert "already finished 1 epochs" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "cannot resume: no checkpoint" in capsys.readouterr().err


def test_resume_config_reads_the_run_back(tmp_path):
    config = tiny_config(tmp_path / "run", 1, lr=0.003, model="categorical",
                         model_options={"n_classes": 4})
    train(config, progress=False)
    moved = tmp_path / "moved"
    (tmp_path / "run").rename(moved)
    assert resume_config(moved) == dataclasses.replace(config, out=str(moved))
    longer = resume_config(moved, epochs=3, data_root="elsewhere", lr=0.003)
    assert (longer.epochs, longer.data_root, longer.lr) == (3, "elsewhere", 0.003)
    with pytest.raises(ValueError, match="differs from the run's in z_dim 3 → 4; seed 0 → 1 "):
        resume_config(moved, z_dim=4, seed=1)


# -- load_model and copied run folders ---------------------------------------------------------


def test_load_model_round_trip(trained):
    model, loaded_config = load_model(trained)
    assert loaded_config.hidden == (12,) and loaded_config.epochs == 1
    assert_same_arrays(dict(model.state_dict()), {k: v for k, v in load_checkpoint(trained)[0]
                                                  .items() if not k.startswith("_")})


def test_foreign_files_are_rejected_with_the_file_named(trained, tmp_path):
    arrays, meta = load_checkpoint(trained)
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    (tmp_path / "metrics.npz").write_text(json.dumps({"epoch": [1]}))
    save_checkpoint(tmp_path / "list_config.npz", arrays, dict(meta, config=[1, 2]))
    save_checkpoint(tmp_path / "bad_hidden.npz", arrays,
                    dict(meta, config=dict(meta["config"], hidden="wide")))
    save_checkpoint(tmp_path / "bad_field.npz", arrays,
                    dict(meta, config=dict(meta["config"], epochs=-3)))
    save_checkpoint(tmp_path / "bad_x_dim.npz", arrays, dict(meta, x_dim="784"))
    save_checkpoint(tmp_path / "small_x_dim.npz", arrays, dict(meta, x_dim=100))
    save_checkpoint(tmp_path / "missing.npz",
                    {k: v for k, v in arrays.items() if k != "decoder.layers.1.bias"}, meta)
    cases = {"other.npz": "no '__meta__' entry", "metrics.npz": "zip signature",
             "list_config.npz": "no 'config' object", "bad_hidden.npz": "config .* not valid",
             "bad_field.npz": "epochs must be a positive integer",
             "bad_x_dim.npz": "no valid x_dim", "small_x_dim.npz": "does not fit the model",
             "missing.npz": "missing array 'decoder.layers.1.bias'"}
    for name, pattern in cases.items():
        with pytest.raises(ValueError, match=pattern) as error:
            load_model(tmp_path / name)
        assert name in str(error.value), name


def test_a_copied_run_folder_resumes(trained, tmp_path):
    """The checkpoint holds everything: a folder copied elsewhere continues identically."""
    shutil.copy(trained, tmp_path / "checkpoint.npz")
    copied = train(tiny_config(tmp_path, 2), progress=False, resume=True)
    assert copied["epoch"] == [1, 2]
    original_meta = load_checkpoint(trained)[1]
    assert copied["test_elbo"][0] == original_meta["metrics"]["test_elbo"][0]
    assert dataclasses.asdict(tiny_config(tmp_path, 2))["out"] == copied["config"]["out"]


# -- a run state that no run could have written ------------------------------------------------


def set_in(path: tuple, value):
    """A change that sets ``meta[path[0]][path[1]]...`` (or an array, for a str path)."""
    def change(arrays, meta):
        if isinstance(path, str):
            arrays[path] = value(arrays[path]) if callable(value) else value
            return
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def poke(index, value):
    """An array copy with ``value`` at ``index``."""
    def change(array):
        array = array.copy()
        array[index] = value
        return array
    return change


def drop_noise(arrays, meta):
    del meta["rng"]["noise"]


IMPOSSIBLE_STATES = {
    "adam step -1": (set_in("_adam.t", np.array(-1)), "Adam state t must be an integer ≥ 0"),
    "adam step 1.5": (set_in("_adam.t", np.array(1.5)), "'_adam.t': expected dtype int64"),
    "adam steps": (set_in("_adam.t", np.array([1, 2])), "'_adam.t': expected shape ()"),
    "adam m nan": (set_in("_adam.m.0", poke(0, np.nan)), "'_adam.m.0' must be finite"),
    "adam v negative": (set_in("_adam.v.0", poke(5, -1.0)),
                        "Adam state v.0 must be finite and ≥ 0"),
    "weight inf": (set_in("decoder.layers.0.bias", poke(0, np.inf)),
                   "'decoder.layers.0.bias' must be finite"),
    "rng negative": (set_in(("rng", "data", "state", "state"), -1),
                     "the data generator: {'bit_generator': 'PCG64'"),
    "rng too wide": (set_in(("rng", "data", "state", "state"), 2**200), "OverflowError"),
    "rng just too wide": (set_in(("rng", "noise", "state", "inc"), 2**128 + 1), "OverflowError"),
    "rng float": (set_in(("rng", "noise", "state", "state"), 1.5), "the noise generator"),
    "rng bool": (set_in(("rng", "noise", "has_uint32"), True), "the noise generator"),
    "rng of another kind": (set_in(("rng", "data", "bit_generator"), "MT19937"),
                            "not a state of a PCG64 bit generator"),
    "rng not a dict": (set_in(("rng", "data"), [1, 2]), "the data generator"),
    "rng missing": (drop_noise, "KeyError"),
    "metric not a number": (set_in(("metrics", "test_elbo"), ["-90"]), "'metrics' must hold"),
    "epochs miscounted": (set_in(("metrics", "epoch"), [7]), "'epoch' counting 1 to 1"),
}


@pytest.mark.parametrize("name", IMPOSSIBLE_STATES)
def test_an_impossible_run_state_is_refused_naming_the_file(trained, tmp_path, name):
    """A run state edited and signed again (the digest guards against accidents only) that no
    run could have written: a CheckpointError naming the file, not a ZeroDivisionError or an
    OverflowError from deep inside the first step."""
    change, message = IMPOSSIBLE_STATES[name]
    path = tmp_path / "checkpoint.npz"
    arrays, meta = load_checkpoint(trained)
    change(arrays, meta)
    save_checkpoint(path, arrays, meta)
    with pytest.raises(CheckpointError) as error:
        train(tiny_config(tmp_path, 2), progress=False, resume=True)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_model_generator_state_is_checked_as_strictly(tmp_path):
    config = tiny_config(tmp_path, 1, **MODELS["vqvae_ema"])
    train(config, progress=False)
    path = tmp_path / "checkpoint.npz"
    arrays, meta = load_checkpoint(path)
    (name, state), = meta["model_state"]["generators"].items()
    state["state"]["state"] = -5
    save_checkpoint(path, arrays, meta)
    with pytest.raises(CheckpointError, match=f"the model's generator '{name}'"):
        train(tiny_config(tmp_path, 2, **MODELS["vqvae_ema"]), progress=False, resume=True)


def test_a_model_scalar_of_another_kind_is_refused(tmp_path):
    train(tiny_config(tmp_path, 1, **MODELS["categorical"]), progress=False)
    path = tmp_path / "checkpoint.npz"
    arrays, meta = load_checkpoint(path)
    meta["model_state"]["scalars"]["temperature"] = ["int", 3]
    save_checkpoint(path, arrays, meta)
    with pytest.raises(CheckpointError, match="'temperature' must be of kind 'float'"):
        train(tiny_config(tmp_path, 2, **MODELS["categorical"]), progress=False, resume=True)
