"""IDX files, the format MNIST and Fashion-MNIST are distributed in.

Math (the format): bytes 0–1 are zero, byte 2 is the type code (0x08 = uint8, the only one
accepted here), byte 3 the number of dimensions d, then d big-endian uint32 sizes n₁…n_d, then
exactly n₁·…·n_d data bytes in row-major order.  The length of the content must equal
4 + 4d + ∏nᵢ, so a truncated file or one with trailing bytes is refused, never half read.

Files may be gzip-compressed (the usual ``.gz`` downloads); gzip is recognised by the ``.gz``
suffix or by its magic bytes 1f 8b, so a compressed file without the suffix reads as well.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from minivae.io.atomic import PathLike, write_bytes

IDX_UINT8 = 0x08
GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A data file is malformed or is not the file it claims to be (the message names it)."""


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain) holding uint8 data.

    Returns a writable uint8 array of shape (n₁, …, n_d), laid out as the module docstring
    says.  Raises ``DatasetError`` naming the file for a bad header, a length mismatch
    (truncated file or trailing bytes) or broken gzip.

    Verified by: tests/io/test_idx.py::test_idx_round_trip,
    ::test_read_idx_rejects_wrong_length
    """
    path = Path(path)
    return parse_idx(read_uncompressed(path), path)


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzip-compressed if ``path`` ends with ``.gz``.

    The layout is the one the module docstring gives.  The file appears atomically (through
    ``minivae.io.atomic``), so readers never see half a file.

    Verified by: tests/io/test_idx.py::test_idx_round_trip,
    ::test_write_idx_is_atomic
    """
    _check_idx_array(array)
    path = Path(path)
    header = bytes([0, 0, IDX_UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        # mtime=0: the same array always gives the same bytes
        content = gzip.compress(content, compresslevel=6, mtime=0)
    write_bytes(path, content)


def read_uncompressed(path: Path, source: str | None = None) -> bytes:
    """The content of ``path``, gunzipped when it is gzip (by suffix or magic bytes).

    ``source`` is what error messages call the file (a URL for a download); default the path.

    Verified by: tests/io/test_idx.py::test_read_idx_rejects_corrupt_gzip
    """
    source = source or str(path)
    raw = path.read_bytes()
    if not (path.name.endswith(".gz") or raw[:2] == GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{source}: corrupt gzip data ({exc}); delete the file and get a "
                           f"fresh copy") from None


def parse_idx(data: bytes, source) -> np.ndarray:
    """The array held by the uncompressed IDX content ``data``; errors name ``source``.

    Verified by: tests/io/test_idx.py::test_read_idx_rejects_bad_headers
    """
    if len(data) < 4:
        raise DatasetError(f"{source}: {len(data)} bytes is too short for an IDX header "
                           f"(4 bytes at least)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{source}: not an IDX file: the magic number must start with two "
                           f"zero bytes, found {data[:4].hex()}")
    if data[2] != IDX_UINT8:
        raise DatasetError(f"{source}: IDX type code 0x{data[2]:02x} is not supported; only "
                           f"0x08 (uint8) is")
    ndim = data[3]
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(f"{source}: truncated header: expected {header_size} bytes for "
                           f"{ndim} dimensions, file has {len(data)}")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    # Python ints: the product of four uint32 sizes can overflow int64.
    expected = header_size + int(np.prod(shape, dtype=object))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes"
        raise DatasetError(f"{source}: {problem}: shape {shape} needs {expected} bytes "
                           f"(header {header_size} + data {expected - header_size}), "
                           f"file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _check_idx_array(array) -> None:
    """What the IDX header can describe: uint8, 1 to 255 dimensions, each size below 2³²."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        shown = (f"{array.dtype} array of shape {array.shape}" if isinstance(array, np.ndarray)
                 else type(array).__name__)
        raise TypeError(f"array must be a uint8 numpy array, got {shown}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions for IDX, got {array.ndim}")
    if any(n >= 2**32 for n in array.shape):
        raise ValueError(f"IDX sizes must be below 2**32, got shape {array.shape}")
