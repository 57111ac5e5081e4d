"""A run killed while saving keeps its previous checkpoint; edited or foreign files are refused."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minivae.train as training
from minivae.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minivae.io.resume import load_model
from minivae.train import TrainConfig, train

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(dataset="mnist-5k", batch_size=40, z_dim=3, hidden=[12], max_train=120,
              max_test=20)

# Trains 3 epochs; the second save of checkpoint.npz writes the whole new file to its temporary
# name, says so through the `ready` file, and then hangs where the rename would come.
DRIVER = r"""
import json, sys, time
from pathlib import Path
import minivae.io.checkpoint as checkpoint
import minivae.train as training

out, ready, fields = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
original, saves = checkpoint.atomic_write, []

def slow_second_checkpoint(path, write):
    if Path(path).name == "checkpoint.npz":
        saves.append(path)
        if len(saves) == 2:
            def write_then_hang(tmp_path):
                write(tmp_path)
                ready.write_text(tmp_path)
                time.sleep(300)
            return original(path, write_then_hang)
    return original(path, write)

checkpoint.atomic_write = slow_second_checkpoint
training.write_pictures = lambda *args, **kwargs: None
training.train(training.TrainConfig(epochs=3, out=str(out), **fields), progress=False)
"""


@pytest.fixture(autouse=True)
def no_pictures(monkeypatch):
    monkeypatch.setattr(training, "write_pictures", lambda *args, **kwargs: None)


def config(out, epochs) -> TrainConfig:
    return TrainConfig(epochs=epochs, out=str(out), **CONFIG)


def assert_same_arrays(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path):
    out, ready = tmp_path / "run", tmp_path / "ready"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    child = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(ready),
                              json.dumps(CONFIG)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, f"driver exited early: {child.stderr.read()}"
            assert time.monotonic() < deadline, "driver never reached the second save"
            time.sleep(0.05)
        half_saved = Path(ready.read_text())
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()

    # The epoch-2 file was complete but never renamed: the checkpoint is still epoch 1's.
    assert half_saved.parent == out and half_saved.name.startswith(".checkpoint.npz.")
    assert load_checkpoint(half_saved)[1]["epoch"] == 2
    arrays, meta = load_checkpoint(out / "checkpoint.npz", require_checksum=True)
    assert meta["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epoch"] == [1]

    # ... and it is exactly what an undisturbed first epoch saves,
    train(config(tmp_path / "reference", 1), progress=False)
    reference, _ = load_checkpoint(tmp_path / "reference" / "checkpoint.npz")
    assert_same_arrays(arrays, reference)

    # so resuming after the kill ends where the undisturbed run ends.
    resumed = train(config(out, 2), progress=False, resume=True)
    undisturbed = train(config(tmp_path / "reference", 2), progress=False, resume=True)
    assert resumed["test_elbo"] == undisturbed["test_elbo"]
    assert_same_arrays(load_checkpoint(out / "checkpoint.npz")[0],
                       load_checkpoint(tmp_path / "reference" / "checkpoint.npz")[0])
    assert not half_saved.exists()  # the dead temporary file was cleaned up


# ---------------------------------------------------------------- edited files are refused

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "write_pictures", lambda *args, **kwargs: None)
        train(config(out, 1), progress=False)
    return out / "checkpoint.npz"


def edited_copy(source: Path, target: Path, member: str, edit) -> Path:
    """A copy of an .npz with one member's bytes changed; the zip stays valid (fresh CRCs)."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as copy:
        for info in archive.infolist():
            data = archive.read(info)
            copy.writestr(info.filename, edit(data) if info.filename == member else data)
    return target


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_edited_array_with_a_valid_zip_is_rejected(trained, tmp_path):
    member = "encoder.layers.0.weight.npy"
    flipped = edited_copy(trained, tmp_path / "checkpoint.npz", member,
                          lambda data: data[:-1] + bytes([data[-1] ^ 0x01]))
    with np.load(flipped, allow_pickle=False) as npz, np.load(trained) as original:
        # NumPy and zipfile find nothing wrong: only the last weight differs, by one bit
        changed = npz["encoder.layers.0.weight"] != original["encoder.layers.0.weight"]
        assert changed.sum() == 1 and changed.ravel()[-1]
    with pytest.raises(CheckpointError, match="modified after it was written") as error:
        load_checkpoint(flipped)
    assert str(flipped) in str(error.value)
    with pytest.raises(CheckpointError, match="modified after it was written"):
        train(config(tmp_path, 2), progress=False, resume=True)


def test_replaced_array_is_rejected(trained, tmp_path):
    arrays, _ = load_checkpoint(trained)
    zeros = npy_bytes(np.zeros_like(arrays["_adam.v.0"]))
    path = edited_copy(trained, tmp_path / "c.npz", "_adam.v.0.npy", lambda data: zeros)
    with pytest.raises(CheckpointError, match="modified after it was written"):
        load_checkpoint(path)


def test_edited_metadata_is_rejected(trained, tmp_path):
    def later_epoch(data: bytes) -> bytes:
        text = str(np.load(io.BytesIO(data)))
        assert '"epoch": 1,' in text
        return npy_bytes(np.array(text.replace('"epoch": 1,', '"epoch": 5,')))

    path = edited_copy(trained, tmp_path / "c.npz", "__meta__.npy", later_epoch)
    with pytest.raises(CheckpointError, match="c.npz was modified after it was written"):
        load_checkpoint(path)


def test_removed_checksum_is_rejected_where_required(trained, tmp_path):
    def strip(data: bytes) -> bytes:
        meta = json.loads(str(np.load(io.BytesIO(data))))
        del meta["__sha256__"]
        return npy_bytes(np.array(json.dumps(meta)))

    path = edited_copy(trained, tmp_path / "checkpoint.npz", "__meta__.npy", strip)
    assert load_checkpoint(path)[1]["epoch"] == 1  # files from before checksums still load
    with pytest.raises(CheckpointError, match="no content checksum"):
        load_checkpoint(path, require_checksum=True)
    with pytest.raises(CheckpointError, match="no content checksum"):  # resuming requires it
        train(config(tmp_path, 2), progress=False, resume=True)


def test_checksum_key_is_reserved(tmp_path):
    with pytest.raises(ValueError, match="'__sha256__' is reserved"):
        save_checkpoint(tmp_path / "c.npz", {"x": np.ones(2)}, {"__sha256__": "0" * 64})
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- foreign files

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
    copied = train(config(tmp_path, 2), progress=False, resume=True)
    assert copied["epoch"] == [1, 2]
    original_meta = load_checkpoint(trained)[1]
    assert copied["test_elbo"][0] == original_meta["metrics"]["test_elbo"][0]
    assert dataclasses.asdict(config(tmp_path, 2))["out"] == copied["config"]["out"]
