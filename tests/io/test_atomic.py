"""One atomic write for every file minivae writes (minivae/io/atomic.py): readers see the old
file or the complete new one, never a mix, whatever happens during the write."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minivae.io import atomic
from minivae.io.atomic import atomic_write, write_bytes
from minivae.io.checkpoint import load_checkpoint, save_checkpoint
from minivae.io.idx import read_idx, write_idx
from minivae.io.json_text import write_json
from minivae.io.plots import new_figure, save_png
from tests.helpers import child_python, sigkill


def writes(data: bytes):
    def write(tmp_path: str) -> None:
        with open(tmp_path, "wb") as file:
            file.write(data)
    return write


def example_arrays() -> dict[str, np.ndarray]:
    return {"encoder.W": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
            "encoder.b": np.linspace(-1, 1, 4),
            "step": np.array(1234, dtype=np.int64)}


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_bytes(b"old")
    returned = atomic_write(target, writes(b"new content"))
    assert returned == target
    assert target.read_bytes() == b"new content"
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_atomic_write_uses_hidden_sibling_with_same_extension(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    seen = {}

    def write(tmp_path_str: str) -> None:
        seen["tmp"] = Path(tmp_path_str)
        seen["target_during_write"] = target.read_bytes()
        Path(tmp_path_str).write_bytes(b"new")

    atomic_write(target, write)
    assert seen["tmp"].parent == tmp_path
    assert seen["tmp"].name.startswith(".model.npz.")
    assert seen["tmp"].suffix == ".npz"
    assert seen["target_during_write"] == b"old"  # readers never see a partial file
    assert target.read_bytes() == b"new"


def test_atomic_write_exception_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_bytes(b'{"epoch": 1}\n')

    def failing_write(tmp_path_str: str) -> None:
        Path(tmp_path_str).write_bytes(b'{"epoch": 2, "elb')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing_write)
    assert target.read_bytes() == b'{"epoch": 1}\n'
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_atomic_write_exception_without_previous_file_leaves_nothing(tmp_path):
    def failing_write(tmp_path_str: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "new.bin", failing_write)
    assert os.listdir(tmp_path) == []


def test_atomic_write_creates_parent_directories(tmp_path):
    target = tmp_path / "runs" / "mnist" / "epoch_3.bin"
    atomic_write(target, writes(b"abc"))
    assert target.read_bytes() == b"abc"


def test_atomic_write_file_modes(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    fresh = tmp_path / "fresh.bin"
    atomic_write(fresh, writes(b"x"))
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # as if created by open()

    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o640)
    atomic_write(kept, writes(b"new"))
    assert kept.stat().st_mode & 0o777 == 0o640


def test_atomic_write_never_copies_setuid_setgid_or_sticky_bits(tmp_path):
    kept = tmp_path / "tool.bin"
    kept.write_bytes(b"old")
    kept.chmod(0o7755)
    assert stat.S_IMODE(kept.stat().st_mode) & 0o7000  # there are bits to drop
    atomic_write(kept, writes(b"new"))
    assert stat.S_IMODE(kept.stat().st_mode) == 0o755


def test_atomic_write_replaces_a_symlink_and_leaves_its_target_alone(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "elsewhere" / "tool"
    target.parent.mkdir()
    target.write_bytes(b"#!/bin/sh\n")
    target.chmod(0o4755)
    link = tmp_path / "metrics.json"
    link.symlink_to(target)
    write_json(link, {"epoch": 1})
    assert not link.is_symlink() and json.loads(link.read_text()) == {"epoch": 1}
    assert stat.S_IMODE(link.stat().st_mode) == 0o666 & ~umask  # a new file's, not the target's
    assert target.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o4755


def test_atomic_write_rejects_non_callable(tmp_path):
    with pytest.raises(TypeError, match="callable"):
        atomic_write(tmp_path / "x", b"not a function")


SLOW_WRITER = r"""
import sys, time
from minivae.io.atomic import atomic_write

def write(tmp_path):
    with open(tmp_path, "wb") as file:
        file.write(b"x" * 1_000_000)
        file.flush()
        print("started", tmp_path, flush=True)
        for _ in range(600):  # about a minute, far longer than the test waits
            file.write(b"y" * 100_000)
            file.flush()
            time.sleep(0.1)

atomic_write(sys.argv[1], write)
print("finished", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_atomic_write_survives_sigkill_mid_write(tmp_path):
    target = tmp_path / "model.npz"
    arrays = example_arrays()
    save_checkpoint(target, arrays, {"epoch": 4})
    before = target.read_bytes()

    with child_python(SLOW_WRITER, target, stdout=subprocess.PIPE) as child:
        line = child.stdout.readline()
        assert line.startswith("started "), f"child did not start writing: {line!r}"
        tmp_file = Path(line.split(" ", 1)[1].strip())
        assert tmp_file.parent == tmp_path and tmp_file.stat().st_size >= 1_000_000
        sigkill(child)

    assert target.read_bytes() == before
    loaded, meta = load_checkpoint(target)
    assert meta == {"epoch": 4}
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
    # The interrupted temp file is a hidden sibling; it never took the target's name.
    assert tmp_file.name.startswith(".model.npz.")


def test_write_bytes_replaces_content(tmp_path):
    target = tmp_path / "train-labels-idx1-ubyte"
    target.write_bytes(b"old")
    assert write_bytes(target, b"\x00\x00\x08\x01") == target
    assert target.read_bytes() == b"\x00\x00\x08\x01"
    assert os.listdir(tmp_path) == [target.name]


def png(path):
    figure = new_figure(20, 10)
    figure.add_subplot().plot([0, 1], [1, 0])
    save_png(figure, path)


# Each writer, its file name, and how to read the file back.
WRITERS = {
    "write_idx": (lambda path: write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3)),
                  "images.gz", lambda path: read_idx(path).tolist()),
    "write_json": (lambda path: write_json(path, {"epoch": 3}), "metrics.json",
                   lambda path: json.loads(path.read_text())),
    "save_checkpoint": (lambda path: save_checkpoint(path, example_arrays(), {"epoch": 3}),
                        "checkpoint.npz", lambda path: load_checkpoint(path)[1]),
    "save_png": (png, "curve.png", lambda path: path.read_bytes()),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_goes_through_the_atomic_rename(tmp_path, monkeypatch, writer):
    write, name, read = WRITERS[writer]
    target = tmp_path / name
    write(target)
    before = read(target)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write(target)
    # The rename is the only way a file reaches its name: the old one is intact, and no
    # temporary file is left behind.
    assert read(target) == before
    assert os.listdir(tmp_path) == [name]
