"""IDX files (minivae/io/idx.py): the round trip, damaged files, and the atomic write.

The expected bytes come from an encoder written here independently of ``write_idx``, straight
from the format description.
"""
from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae.io import atomic
from minivae.io.idx import DatasetError, read_idx, write_idx


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding straight from the format: 0, 0, 0x08, ndim, big-endian uint32 sizes, data."""
    header = bytes([0, 0, 8, array.ndim])
    for size in array.shape:
        header += int(size).to_bytes(4, "big")
    return header + array.astype(np.uint8).tobytes(order="C")


@given(array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0,
                                                    max_side=5)),
       gz=st.booleans())
def test_idx_round_trip(array, gz):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("x.idx.gz" if gz else "x.idx")
        write_idx(path, array)
        raw = path.read_bytes()
        # The bytes on disk follow the format independently of read_idx.
        assert (gzip.decompress(raw) if gz else raw) == idx_bytes(array)
        back = read_idx(path)
        assert back.dtype == np.uint8 and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable
        assert sorted(p.name for p in Path(tmp).iterdir()) == [path.name]


def test_read_idx_accepts_gzip_without_gz_suffix(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images.idx"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


def test_write_idx_rejects_non_uint8_and_scalars(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "a.idx", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "a.idx", [[1, 2]])
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "a.idx", np.array(3, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_idx_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.idx.gz"
    old = np.full((2, 2), 7, dtype=np.uint8)
    write_idx(path, old)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.zeros((3, 3), dtype=np.uint8))
    # The old file is intact and no temporary file is left behind.
    np.testing.assert_array_equal(read_idx(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx.gz"]


def test_write_idx_refuses_what_read_idx_refuses(tmp_path):
    deepest = np.arange(2, dtype=np.uint8).reshape((2,) + (1,) * 31)  # 32 dimensions
    write_idx(tmp_path / "deepest.idx", deepest)
    np.testing.assert_array_equal(read_idx(tmp_path / "deepest.idx"), deepest)
    with pytest.raises(ValueError, match="1 to 32 dimensions"):
        write_idx(tmp_path / "too_deep.idx", np.zeros((1,) * 33, dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deepest.idx"]


@pytest.mark.parametrize("content, fragment", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x01\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05\x05\x05\x05", "0x0d"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (bytes([0, 0, 8, 65]) + b"\x00\x00\x00\x01" * 65 + b"\x07", "65 dimensions; 1 to 32"),
    (bytes([0, 0, 8, 33]) + b"\x00\x00\x00\x01" * 33 + b"\x07", "33 dimensions; 1 to 32"),
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated header"),
])
def test_read_idx_rejects_bad_headers(tmp_path, content, fragment):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=fragment) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("change, word", [(-1, "truncated"), (-60, "truncated"),
                                          (+3, "trailing")])
def test_read_idx_rejects_wrong_length(tmp_path, gz, change, word):
    content = idx_bytes(np.ones((4, 5, 6), dtype=np.uint8))  # 16 header + 120 data bytes
    assert len(content) == 136
    content = content[:change] if change < 0 else content + b"\x00" * change
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(DatasetError, match=word) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "136" in message and str(136 + change) in message


@pytest.mark.parametrize("corrupt", ["not gzip", "cut", "flipped crc"])
def test_read_idx_rejects_corrupt_gzip(tmp_path, corrupt):
    packed = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    if corrupt == "not gzip":
        packed = b"this is not gzip data at all"
    elif corrupt == "cut":
        packed = packed[: len(packed) // 2]
    else:
        packed = packed[:-8] + bytes([packed[-8] ^ 0xFF]) + packed[-7:]
    path = tmp_path / "x.gz"
    path.write_bytes(packed)
    with pytest.raises(DatasetError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)
