"""IDX files, the format MNIST and Fashion-MNIST are distributed in.

Math (the format): bytes 0–1 are zero, byte 2 is the type code (0x08 = uint8, the only one
accepted here), byte 3 the number of dimensions d, then d big-endian uint32 sizes n₁…n_d, then
exactly n₁·…·n_d data bytes in row-major order.  The length of the content must equal
4 + 4d + ∏nᵢ, so a truncated file or one with trailing bytes is refused, never half read.

Files may be gzip-compressed (the usual ``.gz`` downloads); gzip is recognised by the ``.gz``
suffix or by its magic bytes 1f 8b, so a compressed file without the suffix reads as well.

The header decides how much is read.  It is checked first (type code, 1 to ``MAX_IDX_DIMS``
dimensions, a declared length of at most ``MAX_IDX_BYTES``, and for an uncompressed file the
length on disk); then the declared number of bytes is read, decompressed on the fly, and at
most ``CHUNK_BYTES`` more to see where the content ends.  A gzip "bomb", a small file that
inflates to gigabytes, is therefore never inflated beyond what its header declares, and a
header declaring more than the bound is refused before anything is allocated.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from minivae.io.atomic import PathLike, write_bytes
from minivae.io.reading import CHUNK_BYTES, open_regular

IDX_UINT8 = 0x08
GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_DIMS = 32  # what NumPy 1 can hold (NumPy 2 holds 64); the datasets have 1 to 3
MAX_IDX_BYTES = 1 << 30  # 1 GiB, twenty times the largest MNIST file (47 MB)


class DatasetError(ValueError):
    """A data file is malformed or is not the file it claims to be (the message names it)."""


def read_idx(path: PathLike, source: str | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain) holding uint8 data.

    Returns a writable uint8 array of shape (n₁, …, n_d), laid out as the module docstring
    says.  Raises ``DatasetError`` naming the file (or ``source``, a URL for a download) for a
    bad header, a length mismatch (truncated file or trailing bytes), broken gzip, or a path
    that is not a regular file.

    Verified by: tests/io/test_idx.py::test_idx_round_trip,
    ::test_read_idx_rejects_wrong_length, ::test_read_idx_rejects_bad_headers
    """
    with open_idx(path, source) as idx:
        return idx.read()


@contextmanager
def open_idx(path: PathLike, source: str | None = None) -> Iterator[IdxFile]:
    """The IDX file at ``path``, opened and with its header checked, as an ``IdxFile``.

    Verified by: tests/io/test_hostile_files.py::test_gzip_bomb_is_refused_before_inflating
    """
    path = Path(path)
    with open_regular(path, DatasetError) as file:
        yield IdxFile(_Content(file, path, source or str(path)))


class IdxFile:
    """An open IDX file whose header has been read and checked; its data are not read yet.

    ``shape`` is what the header declares, ``size`` the length of the whole uncompressed
    content, and ``source`` what errors call the file.  ``chunks()`` streams the content (to
    hash it without keeping it) and ``read()`` returns the array; each starts from the
    beginning of the same open file and raises ``DatasetError`` naming it as soon as the
    content turns out shorter or longer than ``size``.
    """

    def __init__(self, content: _Content):
        self._content, self.source = content, content.source
        self.header, self.shape = _read_header(content)
        self.size = len(self.header) + math.prod(self.shape)
        if content.size_on_disk is not None and content.size_on_disk != self.size:
            raise self._length_error(content.size_on_disk, exact=True)

    def chunks(self) -> Iterator[bytes]:
        """The uncompressed content, header included, in pieces of at most ``CHUNK_BYTES``."""
        yield self.header
        yield from self._data()

    def read(self) -> np.ndarray:
        """The array the file holds: uint8, writable, of shape ``shape``."""
        data = np.empty(self.size - len(self.header), dtype=np.uint8)
        position = 0
        for chunk in self._data():
            data[position:position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            position += len(chunk)
        return data.reshape(self.shape)

    def _data(self) -> Iterator[bytes]:
        """The data after the header, from the start of the file, checked to end where the
        header says."""
        self._content.rewind()
        if self._content.read(len(self.header)) != self.header:
            raise DatasetError(f"{self.source}: the file changed while it was being read")
        remaining = self.size - len(self.header)
        while remaining:
            chunk = self._content.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                raise self._length_error(self.size - remaining, exact=True)
            remaining -= len(chunk)
            yield chunk
        extra = len(self._content.read(CHUNK_BYTES))  # reading to the end checks gzip's CRC
        if extra:
            raise self._length_error(self.size + extra, exact=extra < CHUNK_BYTES)

    def _length_error(self, length: int, exact: bool) -> DatasetError:
        problem = "truncated" if length < self.size else "trailing bytes"
        has = f"{length}" if exact else f"more than {length - 1}"
        return DatasetError(f"{self.source}: {problem}: shape {self.shape} needs "
                            f"{self.size} bytes (header {len(self.header)} + data "
                            f"{self.size - len(self.header)}), file has {has}")


def read_uncompressed(path: PathLike, source: str | None = None,
                      limit: int = MAX_IDX_BYTES) -> bytes:
    """The content of ``path``, gunzipped when it is gzip (by suffix or magic bytes).

    ``source`` is what error messages call the file (a URL for a download); default the path.
    Content longer than ``limit`` bytes is a ``DatasetError``, found without inflating more
    than ``limit`` + ``CHUNK_BYTES`` bytes.

    Verified by: tests/io/test_idx.py::test_read_idx_rejects_corrupt_gzip,
    tests/io/test_hostile_files.py::test_read_uncompressed_stops_at_its_limit
    """
    path = Path(path)
    with open_regular(path, DatasetError) as file:
        content = _Content(file, path, source or str(path))
        data = bytearray()
        while len(data) <= limit:
            chunk = content.read(CHUNK_BYTES)
            if not chunk:
                return bytes(data)
            data += chunk
    raise DatasetError(f"{content.source}: more than {limit} bytes uncompressed, more than a "
                       f"data file of this kind holds")


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


class _Content:
    """The bytes of an open file, gunzipped on the fly when it is gzip (by suffix or magic
    bytes); broken gzip data is a ``DatasetError`` naming the file."""

    def __init__(self, file: BinaryIO, path: Path, source: str):
        self.source = source
        compressed = path.name.endswith(".gz") or file.peek(2)[:2] == GZIP_MAGIC
        self._stream = gzip.GzipFile(fileobj=file, mode="rb") if compressed else file
        self.size_on_disk = None if compressed else os.fstat(file.fileno()).st_size

    def read(self, size: int) -> bytes:
        """At most ``size`` bytes: gzip inflates no more than it returns."""
        try:
            return self._stream.read(size)
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise DatasetError(f"{self.source}: corrupt gzip data ({exc}); delete the file and "
                               f"get a fresh copy") from None

    def rewind(self) -> None:
        self._stream.seek(0)


def _read_header(content: _Content) -> tuple[bytes, tuple[int, ...]]:
    """The header's bytes and the shape it declares, once every field of it is valid."""
    source = content.source
    magic = content.read(4)
    if len(magic) < 4:
        raise DatasetError(f"{source}: {len(magic)} bytes is too short for an IDX header "
                           f"(4 bytes at least)")
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(f"{source}: not an IDX file: the magic number must start with two "
                           f"zero bytes, found {magic.hex()}")
    if magic[2] != IDX_UINT8:
        raise DatasetError(f"{source}: IDX type code 0x{magic[2]:02x} is not supported; only "
                           f"0x08 (uint8) is")
    ndim = magic[3]
    if not 1 <= ndim <= MAX_IDX_DIMS:
        raise DatasetError(f"{source}: IDX header declares {ndim} dimensions; 1 to "
                           f"{MAX_IDX_DIMS} are supported")
    sizes = content.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DatasetError(f"{source}: truncated header: expected {4 + 4 * ndim} bytes for "
                           f"{ndim} dimensions, file has {4 + len(sizes)}")
    shape = struct.unpack(f">{ndim}I", sizes)
    declared = math.prod(shape)  # Python ints: four uint32 sizes can overflow int64
    if declared > MAX_IDX_BYTES:
        raise DatasetError(f"{source}: IDX header declares shape {shape}, {declared} bytes of "
                           f"data, more than the {MAX_IDX_BYTES} bytes (MAX_IDX_BYTES) read")
    return magic + sizes, shape


def _check_idx_array(array) -> None:
    """What the IDX header can describe and ``read_idx`` reads back: uint8, 1 to
    ``MAX_IDX_DIMS`` dimensions, each size below 2³², at most ``MAX_IDX_BYTES`` bytes."""
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        shown = (f"{array.dtype} array of shape {array.shape}" if isinstance(array, np.ndarray)
                 else type(array).__name__)
        raise TypeError(f"array must be a uint8 numpy array, got {shown}")
    if not 1 <= array.ndim <= MAX_IDX_DIMS:
        raise ValueError(f"array must have 1 to {MAX_IDX_DIMS} dimensions for IDX, got "
                         f"{array.ndim}")
    if any(n >= 2**32 for n in array.shape) or array.size > MAX_IDX_BYTES:
        raise ValueError(f"IDX sizes must be below 2**32 and hold at most {MAX_IDX_BYTES} "
                         f"bytes (MAX_IDX_BYTES), got shape {array.shape}")
