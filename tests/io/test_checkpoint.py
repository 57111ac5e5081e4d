"""Strict JSON and pickle-free .npz checkpoints (minivae/io/checkpoint.py): round trips,
damaged and edited files refused, and a save killed half-way leaves the previous checkpoint."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from minivae.io.checkpoint import (
    CheckpointError,
    check_arrays,
    content_digest,
    load_checkpoint,
    save_checkpoint,
)
from minivae.io.json_text import write_json
from minivae.train import train
from tests.helpers import TINY_RUN, assert_same_arrays, child_python, sigkill, tiny_config

pytestmark = pytest.mark.usefixtures("no_pictures")  # the training runs below


def example_arrays() -> dict[str, np.ndarray]:
    return {"encoder.W": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
            "encoder.b": np.linspace(-1, 1, 4),
            "step": np.array(1234, dtype=np.int64)}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@given(obj=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_write_json_round_trip(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("json") / "metrics.json"
    write_json(path, obj)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert json.loads(text) == obj
    if obj:
        assert text.splitlines()[1].startswith('  "')  # indent=2


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float32("nan")])
def test_write_json_rejects_non_finite(tmp_path, bad):
    path = tmp_path / "metrics.json"
    write_json(path, {"epoch": 1})
    with pytest.raises(ValueError, match=r"NaN or infinity.*\['elbo'\]\[1\]"):
        write_json(path, {"epoch": 2, "elbo": [-100.0, bad]})
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_write_json_converts_numpy_values(tmp_path):
    path = tmp_path / "m.json"
    write_json(path, {"loss": np.float32(0.5), "step": np.int64(3), "curve": np.arange(3)})
    assert json.loads(path.read_text()) == {"loss": 0.5, "step": 3, "curve": [0, 1, 2]}
    with pytest.raises(ValueError, match=r"\['curve'\]\[2\] is not finite"):
        write_json(path, {"curve": np.array([1.0, 2.0, np.nan])})


def test_write_json_rejects_unserializable(tmp_path):
    with pytest.raises(TypeError, match="obj is not JSON-serializable"):
        write_json(tmp_path / "m.json", {"f": print})


# Every name a zip member can carry without meaning a path or another name (NumPy's np.load
# reads member "x.npy" as "x", so "x.npy" is out too); the refused ones are tested below.
array_names = st.text(min_size=1, max_size=10).filter(
    lambda name: not any(c in name for c in "\x00/\\") and name not in ("__meta__", ".", "..")
    and not name.endswith(".npy"))


named_arrays = st.dictionaries(
    array_names,
    hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int64]),
               shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
    max_size=5,
)


@given(arrays=named_arrays,
       meta=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_checkpoint_round_trip_is_bit_exact(tmp_path_factory, arrays, meta):
    path = tmp_path_factory.mktemp("ckpt") / "model.npz"
    save_checkpoint(path, arrays, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta
    assert set(loaded) == set(arrays)
    for key, array in arrays.items():
        assert type(loaded[key]) is np.ndarray  # in memory, not a lazy view of the file
        assert loaded[key].dtype == array.dtype
        assert loaded[key].shape == array.shape
        assert loaded[key].tobytes() == array.tobytes()  # bit for bit, NaN payloads included


def test_checkpoint_is_a_plain_uncompressed_npz(tmp_path):
    path = tmp_path / "model.npz"
    save_checkpoint(path, example_arrays(), {"epoch": 2, "config": {"latent": 2}})
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(
            [key + ".npy" for key in example_arrays()] + ["__meta__.npy"])
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    with np.load(path, allow_pickle=False) as npz:  # readable by NumPy alone
        meta = json.loads(str(npz["__meta__"]))
        assert len(meta.pop("__sha256__")) == 64  # hex SHA-256 of the content
        assert meta == {"epoch": 2, "config": {"latent": 2}}
        np.testing.assert_array_equal(npz["encoder.W"], example_arrays()["encoder.W"])


def test_checkpoint_accepts_names_that_are_np_savez_keywords(tmp_path):
    path = tmp_path / "model.npz"
    arrays = {"file": np.ones(2), "allow_pickle": np.zeros(3), "args": np.arange(2)}
    save_checkpoint(path, arrays, {})
    loaded, _ = load_checkpoint(path)
    assert {key: value.tolist() for key, value in loaded.items()} == \
        {key: value.tolist() for key, value in arrays.items()}


def test_checkpoint_path_without_npz_extension_is_kept(tmp_path):
    path = tmp_path / "latest.ckpt"
    save_checkpoint(path, {"x": np.ones(1)}, {})
    assert os.listdir(tmp_path) == ["latest.ckpt"]
    assert load_checkpoint(path)[0]["x"].tolist() == [1.0]


@pytest.mark.parametrize("arrays, meta, error, pattern", [
    ({1: np.ones(2)}, {}, TypeError, "names must be str, got 1"),
    ({"__meta__": np.ones(2)}, {}, ValueError, "'__meta__'"),
    ({"": np.ones(2)}, {}, ValueError, "non-empty"),
    ({"a\x00b": np.ones(2)}, {}, ValueError, "NUL"),
    ({"decoder.cache": np.array([{}, None], dtype=object)}, {}, TypeError,
     "'decoder.cache' has dtype object"),
    ({"x": np.ones(2)}, {"best": float("nan")}, ValueError, r"meta\['best'\]"),
    ({"x": np.ones(2)}, [("epoch", 1)], TypeError, "meta must be a dict"),
    ([np.ones(2)], {}, TypeError, "arrays must be a dict"),
])
def test_save_checkpoint_rejects_bad_input_and_writes_nothing(tmp_path, arrays, meta, error,
                                                              pattern):
    with pytest.raises(error, match=pattern):
        save_checkpoint(tmp_path / "model.npz", arrays, meta)
    assert os.listdir(tmp_path) == []


# Names save_checkpoint must refuse because load_checkpoint refuses them: the metadata's name,
# names np.load would confuse with others ("x.npy" reads as "x"), paths, and names a zip member
# cannot carry.
REFUSED_NAMES = ["", "__meta__", "__meta__.npy", "x.npy", "a/b", "../up", "..", ".", "a\\b",
                 "a\x00b", "\ud800"]


@pytest.mark.filterwarnings("ignore:Duplicate name")  # "__meta__" twice, as crafted
@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_save_refuses_exactly_the_names_load_refuses(tmp_path, name):
    with pytest.raises(ValueError, match="is not allowed"):
        save_checkpoint(tmp_path / "saved.npz", {name: np.ones(2)}, {})
    assert os.listdir(tmp_path) == []
    if "\x00" in name or "\ud800" in name:
        return  # no zip member can carry the name, so no file holds it
    # The same name in a file written by other means, with a valid checksum, is refused too.
    path = tmp_path / "crafted.npz"
    digest = content_digest({name: np.ones(2)}, {})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name + ".npy", npy_bytes(np.ones(2)))
        archive.writestr("__meta__.npy", npy_bytes(np.array(json.dumps({"__sha256__": digest}))))
    with pytest.raises(CheckpointError, match="is not allowed|appear twice") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def test_structured_arrays_are_refused_on_save_and_load(tmp_path):
    pairs = np.zeros(3, dtype=[("a", "<f8"), ("b", "<i4")])
    with pytest.raises(TypeError, match="structured dtype"):
        save_checkpoint(tmp_path / "c.npz", {"pairs": pairs}, {})
    np.savez(tmp_path / "c.npz", pairs=pairs, __meta__=np.array("{}"))
    with pytest.raises(CheckpointError, match="'pairs' has the structured dtype"):
        load_checkpoint(tmp_path / "c.npz")


unpickled = []


def _record_unpickling() -> str:
    unpickled.append(True)
    return "unpickled"


class PickleCanary:
    """Unpickling this object calls _record_unpickling, so a test can tell if it happened."""

    def __reduce__(self):
        return (_record_unpickling, ())


def test_load_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, weights=np.array([PickleCanary()], dtype=object), __meta__=np.array("{}"))
    with np.load(path, allow_pickle=True) as npz:  # the canary works when pickle is allowed
        assert npz["weights"][0] == "unpickled"
    unpickled.clear()

    with pytest.raises(CheckpointError, match="pickle") as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert unpickled == []


def test_load_rejects_every_truncation(tmp_path):
    good = tmp_path / "good.npz"
    save_checkpoint(good, example_arrays(), {"epoch": 1})
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    # Every length near the end (the zip directory lives there), a stride elsewhere.
    for length in sorted(set(range(0, len(data), 5)) | set(range(len(data) - 64, len(data)))):
        cut.write_bytes(data[:length])
        with pytest.raises(CheckpointError, match="cut.npz"):
            load_checkpoint(cut)


def test_load_rejects_damaged_files(tmp_path):
    good = tmp_path / "good.npz"
    save_checkpoint(good, example_arrays(), {"epoch": 1})
    data = good.read_bytes()
    rng = np.random.default_rng(7)
    weights = example_arrays()["encoder.W"].tobytes()
    offset = data.find(weights)
    assert offset > 0
    flipped = bytearray(data)
    flipped[offset + 5] ^= 0x01  # one bit of one weight

    damaged = {
        "garbage.npz": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "zip_garbage.npz": b"PK\x03\x04" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text.npz": b"epoch=3 elbo=-101.2\n",
        "empty.npz": b"",
        "bitflip.npz": bytes(flipped),
    }
    for name, content in damaged.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path)
        assert str(path) in str(error.value), name


def test_load_rejects_npy_missing_meta_and_bad_meta(tmp_path):
    cases = {}
    np.save(tmp_path / "single.npy", np.ones(3))
    cases["single.npy"] = "single .npy array"
    np.savez(tmp_path / "no_meta.npz", W=np.ones(3))
    cases["no_meta.npz"] = "no '__meta__' entry"
    np.savez(tmp_path / "bad_json.npz", W=np.ones(3), __meta__=np.array("{epoch: 1"))
    cases["bad_json.npz"] = "not valid JSON"
    np.savez(tmp_path / "list_meta.npz", W=np.ones(3), __meta__=np.array("[1, 2]"))
    cases["list_meta.npz"] = "must be a JSON object"
    np.savez(tmp_path / "numeric_meta.npz", W=np.ones(3), __meta__=np.array(3.0))
    cases["numeric_meta.npz"] = "0-d unicode array"
    with zipfile.ZipFile(tmp_path / "not_npy.npz", "w") as archive:
        archive.writestr("__meta__.npy", b"")
        archive.writestr("notes.txt", b"hello")
    cases["not_npy.npz"] = "damaged|not .npy arrays"
    for name, pattern in cases.items():
        with pytest.raises(CheckpointError, match=pattern) as error:
            load_checkpoint(tmp_path / name)
        assert name in str(error.value)


def test_load_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "model.npz"
    with pytest.raises(FileNotFoundError, match="model.npz"):
        load_checkpoint(path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_check_arrays_accepts_a_match():
    arrays = example_arrays()
    expected = {key: (value.shape, value.dtype) for key, value in arrays.items()}
    assert check_arrays(arrays, expected) is None


def test_check_arrays_reports_every_mismatch():
    arrays = {"W": np.zeros((3, 4), np.float32), "b": np.zeros(4), "extra": np.zeros(1)}
    expected = {"W": ((4, 3), np.float32), "b": ((4,), np.float32), "missing": ((2,), "f8")}
    with pytest.raises(CheckpointError) as error:
        check_arrays(arrays, expected)
    message = str(error.value)
    assert "missing array 'missing'" in message
    assert "unexpected array 'extra'" in message
    assert "'W': expected shape (4, 3), got (3, 4)" in message
    assert "'b': expected dtype float32, got float64" in message
    assert "'W': expected dtype" not in message  # W's dtype is right


# -- a training run killed while it saves ------------------------------------------------------

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


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_while_saving_keeps_the_previous_checkpoint(tmp_path):
    out, ready = tmp_path / "run", tmp_path / "ready"
    with child_python(DRIVER, out, ready, json.dumps(TINY_RUN), stderr=subprocess.PIPE) as child:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None, f"driver exited early: {child.stderr.read()}"
            assert time.monotonic() < deadline, "driver never reached the second save"
            time.sleep(0.05)
        half_saved = Path(ready.read_text())
        sigkill(child)

    # The epoch-2 file was complete but never renamed: the checkpoint is still epoch 1's.
    assert half_saved.parent == out and half_saved.name.startswith(".checkpoint.npz.")
    assert load_checkpoint(half_saved)[1]["epoch"] == 2
    arrays, meta = load_checkpoint(out / "checkpoint.npz", require_checksum=True)
    assert meta["epoch"] == 1
    assert json.loads((out / "metrics.json").read_text())["epoch"] == [1]

    # ... and it is exactly what an undisturbed first epoch saves,
    train(tiny_config(tmp_path / "reference", 1), progress=False)
    reference, _ = load_checkpoint(tmp_path / "reference" / "checkpoint.npz")
    assert_same_arrays(arrays, reference)

    # so resuming after the kill ends where the undisturbed run ends.
    resumed = train(tiny_config(out, 2), progress=False, resume=True)
    undisturbed = train(tiny_config(tmp_path / "reference", 2), progress=False, resume=True)
    assert resumed["test_elbo"] == undisturbed["test_elbo"]
    assert_same_arrays(load_checkpoint(out / "checkpoint.npz")[0],
                       load_checkpoint(tmp_path / "reference" / "checkpoint.npz")[0])
    assert not half_saved.exists()  # the dead temporary file was cleaned up


# -- edited files are refused ------------------------------------------------------------------


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
        train(tiny_config(tmp_path, 2), progress=False, resume=True)


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
        train(tiny_config(tmp_path, 2), progress=False, resume=True)


def test_checksum_key_is_reserved(tmp_path):
    with pytest.raises(ValueError, match="'__sha256__' is reserved"):
        save_checkpoint(tmp_path / "c.npz", {"x": np.ones(2)}, {"__sha256__": "0" * 64})
    assert os.listdir(tmp_path) == []
