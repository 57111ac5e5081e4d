"""Hostile and broken files given to minivae's readers (minivae/io/checkpoint.py, idx.py,
datasets.py, reading.py): each is refused with one error naming the file, without allocating
what the file only claims to hold, and without blocking.

The bombs are small (a few hundred kB on disk, 64 MiB inflated) and each refusal is measured
with tracemalloc, which also sees NumPy's buffers: reading any of them whole would exceed the
bounds asserted here many times over.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import threading
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minivae.data import load_dataset
from minivae.io import datasets
from minivae.io.checkpoint import (
    CheckpointError,
    content_digest,
    load_checkpoint,
    save_checkpoint,
)
from minivae.io.datasets import DatasetError, DatasetNotFoundError
from minivae.io.idx import read_idx, read_uncompressed
from minivae.io.json_text import write_json
from minivae.io.reading import open_regular
from tests.io.test_datasets import TRAIN, put_dataset, use_checksums

MiB = 1 << 20
BOMB_BYTES = 64 * MiB  # what each bomb inflates to
MEMORY_BOUND = 8 * MiB  # what a refusal may hold at its peak: an eighth of one bomb


def refused_within_memory(call, error, match) -> pytest.ExceptionInfo:
    """Assert that ``call()`` raises ``error`` (message matching ``match``) while the memory it
    allocates at its peak stays below ``MEMORY_BOUND``."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        with pytest.raises(error, match=match) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"the refusal allocated {peak / MiB:.1f} MiB at its peak"
    return info


def npy_header(shape, dtype="<f8") -> bytes:
    """A version 1.0 .npy header (magic and dict) declaring ``shape`` and ``dtype``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def meta_member(meta_text: str) -> bytes:
    return npy_bytes(np.array(meta_text))


def signed_meta(arrays: dict) -> str:
    """Metadata JSON carrying the content digest of ``arrays``, as save_checkpoint stores it."""
    return json.dumps({"__sha256__": content_digest(arrays, {})})


def gzip_of_zeros(path: Path, header: bytes, zeros: int) -> Path:
    """``header`` then ``zeros`` zero bytes, gzipped into ``path`` piece by piece."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(header)
        for start in range(0, zeros, MiB):
            out.write(bytes(min(MiB, zeros - start)))
    return path


def idx_header(shape) -> bytes:
    """The header of an IDX file of uint8 data of ``shape``, straight from the format."""
    return bytes([0, 0, 8, len(shape)]) + b"".join(int(n).to_bytes(4, "big") for n in shape)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def test_npy_header_claiming_terabytes_is_refused(tmp_path):
    path = tmp_path / "terabytes.npz"
    with zipfile.ZipFile(path, "w") as archive:  # 8 TB declared, 64 bytes present
        archive.writestr("weights.npy", npy_header((10**6, 10**6)) + bytes(64))
        archive.writestr("__meta__.npy", meta_member("{}"))
    info = refused_within_memory(lambda: load_checkpoint(path), CheckpointError,
                                 r"'weights' declares shape \(1000000, 1000000\)")
    assert str(path) in str(info.value) and "8000000000000 bytes" in str(info.value)


def test_npy_header_must_account_for_every_byte_of_its_entry(tmp_path):
    path = tmp_path / "short_header.npz"
    weights = np.arange(6.0)
    with zipfile.ZipFile(path, "w") as archive:  # the header says 4 numbers, 6 follow
        archive.writestr("w.npy", npy_header((4,)) + weights.tobytes())
        archive.writestr("__meta__.npy", meta_member(signed_meta({"w": weights[:4]})))
    with pytest.raises(CheckpointError, match=r"declares shape \(4,\).*32 bytes.*holds 48"):
        load_checkpoint(path)


@pytest.mark.parametrize("member, fragment", [
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': (((", "no valid .npy header"),  # tokenize fails
    (npy_header((2,), "<x9") + bytes(16), "no valid .npy header"),
    (npy_header((-2, -3)) + bytes(48), r"declares the shape \(-2, -3\)"),
    (npy_header((1,) * 65) + bytes(8), "maximum supported dimension"),
    (b"\x93NUMPY\x03\x00" + bytes(16), r"format version \(3, 0\)"),
])
def test_malformed_npy_headers_are_checkpoint_errors(tmp_path, member, fragment):
    path = tmp_path / "malformed.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", member)
        archive.writestr("__meta__.npy", meta_member("{}"))
    with pytest.raises(CheckpointError, match=fragment) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_deflate_bomb_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.npz"
    zeros = np.zeros(BOMB_BYTES // 8)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("weights.npy", "w", force_zip64=True) as member:
            member.write(npy_header(zeros.shape))
            for _ in range(BOMB_BYTES // MiB):
                member.write(bytes(MiB))
        archive.writestr("__meta__.npy", meta_member(signed_meta({"weights": zeros})))
    del zeros
    assert path.stat().st_size < BOMB_BYTES / 100  # a bomb indeed
    info = refused_within_memory(lambda: load_checkpoint(path), CheckpointError,
                                 "'weights.npy' is compressed")
    assert str(path) in str(info.value)


def test_deeply_nested_metadata_is_refused_without_recursion(tmp_path):
    path = tmp_path / "deep.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__meta__.npy", meta_member("[" * 200_000 + "]" * 200_000))
    with pytest.raises(CheckpointError, match="nests deeper than 100 levels") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def nested(depth: int):
    """A dict whose values nest ``depth`` JSON levels deep, the dict itself included."""
    value = []
    for _ in range(depth - 2):
        value = [value]
    return {"x": value}


def test_save_and_load_agree_on_the_nesting_bound(tmp_path):
    path = tmp_path / "c.npz"
    deepest = nested(100)
    brackets_in_strings = {"text": "[{" * 1000 + '\\"[' * 1000, "keys": {"[[[": "{{{"}}
    for meta in (deepest, brackets_in_strings):  # strings hold brackets, not nesting
        save_checkpoint(path, {"w": np.ones(2)}, meta)
        assert load_checkpoint(path)[1] == meta
    for too_deep in (nested(101), nested(200_000)):  # the second one beyond Python's recursion
        with pytest.raises(ValueError, match="meta nests deeper than 100 levels"):
            save_checkpoint(tmp_path / "refused.npz", {"w": np.ones(2)}, too_deep)
        with pytest.raises(ValueError, match="obj nests deeper than 100 levels"):
            write_json(tmp_path / "refused.json", too_deep)
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


# ---------------------------------------------------------------------------------------------
# Data files


def test_gzip_bomb_is_refused_before_inflating(isolated, monkeypatch):
    # Official checksums, and an images file whose header declares 64 MiB of zero pixels:
    # the checksum is compared on a stream that keeps nothing.
    root = isolated / "root"
    fixture = put_dataset(root, seed=1)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    bomb = gzip_of_zeros(root / f"{TRAIN[0]}.gz", idx_header((BOMB_BYTES // 1024, 32, 32)),
                         BOMB_BYTES)
    assert bomb.stat().st_size < BOMB_BYTES / 100
    info = refused_within_memory(lambda: load_dataset("mnist", root=root, download=False),
                                 DatasetError, "checksum mismatch")
    assert str(bomb) in str(info.value)


def test_gzip_inflating_past_its_header_stops_there(tmp_path):
    bomb = gzip_of_zeros(tmp_path / "labels.gz", idx_header((4,)), 4 + BOMB_BYTES)
    info = refused_within_memory(lambda: read_idx(bomb), DatasetError,
                                 r"trailing bytes: shape \(4,\) needs 12 bytes .* file has "
                                 r"more than")
    assert str(bomb) in str(info.value)


def test_idx_header_declaring_more_than_the_bound_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.idx.gz"
    path.write_bytes(gzip.compress(idx_header((65536, 65536)) + bytes(100)))  # 4 GiB declared
    info = refused_within_memory(lambda: read_idx(path), DatasetError, "MAX_IDX_BYTES")
    assert str(path) in str(info.value)
    plain = tmp_path / "huge.idx"  # uncompressed: its length on disk is checked before reading
    plain.write_bytes(idx_header((1000, 1000)) + bytes(100))
    with pytest.raises(DatasetError, match="truncated.*1000012 bytes.*file has 112"):
        read_idx(plain)


def test_read_uncompressed_stops_at_its_limit(tmp_path):
    bomb = gzip_of_zeros(tmp_path / "table.csv.gz", b"", BOMB_BYTES)
    info = refused_within_memory(lambda: read_uncompressed(bomb, limit=MiB), DatasetError,
                                 f"more than {MiB} bytes")
    assert str(bomb) in str(info.value)


def test_mnist_5k_is_never_inflated_past_the_official_length(tmp_path, monkeypatch):
    bomb = gzip_of_zeros(tmp_path / "mnist_5k.csv.gz", b"", 2 * datasets.MNIST_5K_BYTES)
    monkeypatch.setattr(datasets, "_mnist_5k_path", lambda: bomb)
    with pytest.raises(DatasetError, match=f"more than {datasets.MNIST_5K_BYTES} bytes"):
        load_dataset("mnist-5k")


def test_download_longer_than_any_official_file_is_refused(isolated, monkeypatch):
    mirror = isolated / "mirror"
    fixture = put_dataset(mirror, seed=2)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (mirror.as_uri(),))
    monkeypatch.setattr(datasets, "MAX_DOWNLOAD_BYTES", 50)  # the images are over 100 bytes
    with pytest.raises(DatasetNotFoundError, match="more than 50 bytes"):
        load_dataset("mnist", "train")
    assert list((isolated / "cache" / "mnist").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Paths that are not regular files


def within_seconds(call, seconds: float = 10.0, fifo: Path | None = None):
    """What ``call()`` raises, run in a thread that must finish within ``seconds``; a reader
    stuck on ``fifo`` is released (by opening its other end) so that a regression fails the
    test instead of hanging the suite."""
    outcome = {}

    def run():
        try:
            call()
        except BaseException as error:  # noqa: B036 - handed back to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    blocked = thread.is_alive()
    if blocked and fifo is not None:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the reader sees end of file
    assert not blocked, f"still blocked after {seconds} s"
    return outcome.get("error")


READERS = {
    "load_checkpoint": (lambda path: load_checkpoint(path), CheckpointError),
    "read_idx": (lambda path: read_idx(path), DatasetError),
    "read_uncompressed": (lambda path: read_uncompressed(path), DatasetError),
    "open_regular": (lambda path: open_regular(path), ValueError),
}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("reader", sorted(READERS))
def test_fifo_is_refused_without_blocking(tmp_path, reader):
    read, error_type = READERS[reader]
    fifo = tmp_path / "checkpoint.npz"
    os.mkfifo(fifo)
    error = within_seconds(lambda: read(fifo), fifo=fifo)
    assert isinstance(error, error_type), f"{reader} gave {error!r}"
    assert f"{fifo} is a FIFO (named pipe), not a regular file" in str(error)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_directories_and_devices_are_refused(tmp_path, reader):
    read, error_type = READERS[reader]
    with pytest.raises(error_type, match=re.escape(f"{tmp_path} is a directory, not a")):
        read(tmp_path)
    if Path("/dev/zero").exists():  # endless: reading it whole would never finish
        error = within_seconds(lambda: read("/dev/zero"))
        assert isinstance(error, error_type)
        assert "/dev/zero is a character device" in str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_the_data_root_is_not_taken_for_a_data_file(isolated, monkeypatch):
    root = isolated / "root"
    fixture = put_dataset(root, seed=3)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    (root / f"{TRAIN[0]}.gz").unlink()
    os.mkfifo(root / f"{TRAIN[0]}.gz")
    error = within_seconds(lambda: load_dataset("mnist", root=root, download=False),
                           fifo=root / f"{TRAIN[0]}.gz")
    assert isinstance(error, DatasetNotFoundError)


def test_links_to_regular_files_are_read(tmp_path):
    path = tmp_path / "real.npz"
    save_checkpoint(path, {"w": np.arange(3.0)}, {"epoch": 1})
    (tmp_path / "link.npz").symlink_to(path)
    assert load_checkpoint(tmp_path / "link.npz")[1] == {"epoch": 1}
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")
