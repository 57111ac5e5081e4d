"""Pickle-free ``.npz`` checkpoints and strict JSON, both written atomically.

Checkpoints are ``.npz`` archives (a zip of ``.npy`` files, the format of ``np.savez``) plus one
extra member, ``__meta__``, holding JSON text (configuration, epoch, ...).  Nothing is pickled,
so loading a checkpoint cannot run code, and ``load_checkpoint`` refuses archives that would
need pickle.  Every file goes through ``minivae.io.atomic.atomic_write``, so a crash or a kill
during a save leaves either the previous file or the complete new one.

The JSON also holds ``__sha256__``, a digest of the content (every array's name, dtype, shape
and bytes, and the metadata).  The zip format's own CRCs catch a damaged member but not an
edited one (a rewritten member gets a fresh CRC); the digest catches both, so a checkpoint
that was changed after it was written is refused instead of silently resumed.  It guards
against accidents, not attackers: anyone can recompute it.

Loading allocates nothing a file does not hold.  Members must be stored uncompressed, as
``save_checkpoint`` writes them, and fit in the file, so every byte a load allocates is a byte
on disk: a deflate "bomb" (a small member that inflates to gigabytes) is refused before it is
inflated.  Each array's shape and dtype are read from its ``.npy`` header and must account for
exactly the bytes of its member before its memory is allocated, so a header claiming terabytes
is refused too.  The metadata JSON may nest at most ``MAX_JSON_DEPTH`` levels, checked before it
is parsed.  Saving refuses exactly what loading refuses (array names, dtypes, nesting): one
rule each, used by both.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minivae.io.atomic import PathLike, atomic_write
from minivae.io.json_text import json_depth_problem, to_json
from minivae.io.npy import dtype_problem, read_npy
from minivae.io.reading import open_regular

META_KEY = "__meta__"
CHECKSUM_KEY = "__sha256__"  # inside the metadata JSON; never part of the caller's meta
NPY_SUFFIX = ".npy"  # member <name>.npy holds the array <name>, as in np.savez


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not hold what was expected."""


def _name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name an array of a checkpoint, or None.  ``save_checkpoint`` refuses
    such names and ``load_checkpoint`` refuses members carrying them, so whatever one writes
    the other reads, and NumPy's ``np.load`` reads the same arrays under the same names."""
    if not isinstance(name, str):
        return f"names must be str, got {name!r} ({type(name).__name__})"
    if name == "":
        return "names must be non-empty"
    if name == META_KEY:
        return f"{META_KEY!r} is reserved for the metadata"
    if "\x00" in name:
        return "names must not contain NUL (a zip member name ends there)"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "names must not contain '/' or '\\' or be '.' or '..' (zip member names are paths)"
    if name.endswith(NPY_SUFFIX):
        return f"names must not end with {NPY_SUFFIX!r} (np.load would confuse 'x.npy' with 'x')"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "names must be encodable as UTF-8, as zip member names are"
    return None


def content_digest(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint's content, independent of the zip container.

    Hashed, arrays in sorted name order: each name, dtype (``dtype.str``, which includes the
    byte order), shape and raw C-order bytes, every field length-prefixed so that no two
    different contents give the same byte stream; then the metadata as canonical JSON (sorted
    keys).  Bit-level: -0.0 and 0.0, or two NaN payloads, hash differently.

    Verified by: tests/io/test_checkpoint.py::test_edited_array_with_a_valid_zip_is_rejected
    """
    digest = hashlib.sha256()

    def field(data: bytes) -> None:
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)

    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        field(name.encode("utf-8"))
        field(array.dtype.str.encode("ascii"))
        field(",".join(map(str, array.shape)).encode("ascii"))
        field(array.tobytes())
    field(json.dumps(meta, sort_keys=True, allow_nan=False).encode("utf-8"))
    return digest.hexdigest()


def _check_contents(arrays, meta) -> dict[str, np.ndarray]:
    """save_checkpoint's arguments checked: the arrays under names and with dtypes that
    load_checkpoint reads back (``_name_problem``, ``npy.dtype_problem``), and meta a dict without
    the checksum key."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"save_checkpoint: arrays must be a dict of name -> array, "
                        f"got {type(arrays).__name__}")
    if not isinstance(meta, Mapping):
        raise TypeError(f"save_checkpoint: meta must be a dict, got {type(meta).__name__}")
    checked: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        problem = _name_problem(key)
        if problem:
            raise (ValueError if isinstance(key, str) else TypeError)(
                f"save_checkpoint: array name {key!r} is not allowed: {problem}")
        array = np.asarray(value)
        problem = dtype_problem(array.dtype)
        if problem:
            raise TypeError(f"save_checkpoint: array {key!r} {problem}")
        checked[key] = array
    if CHECKSUM_KEY in meta:
        raise ValueError(f"save_checkpoint: meta key {CHECKSUM_KEY!r} is reserved for the "
                         f"content checksum")
    return checked


def save_checkpoint(path: PathLike, arrays: Mapping[str, np.ndarray],
                    meta: Mapping[str, Any]) -> Path:
    """Save named arrays and a JSON-serializable ``meta`` dict as one ``.npz``, atomically.

    The file is an uncompressed ``np.savez`` archive: member ``<name>.npy`` for each array, and
    ``__meta__.npy``, a 0-d unicode array holding ``meta`` as JSON text, plus the key
    ``"__sha256__"``: the ``content_digest`` that ``load_checkpoint`` checks.  Written with
    ``allow_pickle=False``, so it loads without pickle.

    Raises
    ------
    TypeError : a key that is not a ``str``, an object or structured array, or ``meta`` not a
        dict.
    ValueError : a key that ``load_checkpoint`` would refuse (empty, containing NUL, '/' or
        '\\', '.' or '..', ending in '.npy', or the reserved ``"__meta__"``), the reserved meta
        key ``"__sha256__"``, NaN/infinity in ``meta``, or ``meta`` nested deeper than
        ``MAX_JSON_DEPTH``.

    Verified by: tests/io/test_checkpoint.py::test_checkpoint_round_trip_is_bit_exact
    """
    checked = _check_contents(arrays, meta)  # name -> array
    plain_meta = json.loads(to_json(dict(meta), "meta"))  # NumPy scalars become numbers
    plain_meta[CHECKSUM_KEY] = content_digest(checked, plain_meta)
    checked[META_KEY] = np.array(to_json(plain_meta, "meta"))

    def write(tmp_path: str) -> None:
        # The same bytes np.savez writes; calling it directly would turn array names such as
        # "file" or "allow_pickle" into its own keyword arguments.
        with zipfile.ZipFile(tmp_path, mode="w", compression=zipfile.ZIP_STORED) as archive:
            for key, array in checked.items():
                with archive.open(key + NPY_SUFFIX, mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    return atomic_write(path, write)


_ZIP_SIGNATURE = b"PK\x03\x04"  # every non-empty zip archive, hence every .npz, starts so

# What reading a damaged archive can raise, from zipfile, zlib, the .npy reader and json.
_CORRUPTION_ERRORS = (ValueError, EOFError, OSError, KeyError, UnicodeError,
                      zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, zlib.error)


def load_checkpoint(path: PathLike, require_checksum: bool = False
                    ) -> tuple[dict[str, np.ndarray], dict]:
    """Load a checkpoint written by ``save_checkpoint``: ``(arrays, meta)``.

    Arrays are read fully into memory, and no more memory is allocated than the file holds
    (the module docstring says how).  Never unpickles: archives holding object arrays are
    refused.  The content checksum is verified and removed from the returned ``meta``; files
    written before checksums existed have none and load unchecked, unless
    ``require_checksum``.

    Raises
    ------
    FileNotFoundError : ``path`` does not exist.
    CheckpointError : not a regular file (a directory, a FIFO, a device), not an ``.npz``
        archive, truncated or corrupted, compressed members, members that are not ``.npy``
        arrays or carry names ``save_checkpoint`` refuses, an array header that does not
        account for its member's bytes, no ``__meta__`` member, meta that is not a JSON object
        or nests deeper than ``MAX_JSON_DEPTH``, arrays that would need pickle, or content that
        does not match its checksum (edited after it was written).

    Verified by: tests/io/test_checkpoint.py::test_load_rejects_damaged_files,
    tests/io/test_hostile_files.py::test_deflate_bomb_is_refused_before_inflating
    """
    source = Path(path)
    if not os.path.lexists(source):  # the message the command line shows
        raise FileNotFoundError(errno.ENOENT, "checkpoint not found", str(source))
    with open_regular(source, CheckpointError) as file:
        head = file.read(len(np.lib.format.MAGIC_PREFIX))
        file.seek(0)
        if head == np.lib.format.MAGIC_PREFIX:
            raise CheckpointError(f"{source} is a single .npy array, not an .npz checkpoint")
        if not head.startswith(_ZIP_SIGNATURE):
            raise CheckpointError(f"{source} is not an .npz checkpoint: it does not start with "
                                  f"the zip signature {_ZIP_SIGNATURE!r} (got {head!r})")
        try:
            arrays = _read_arrays(file, source)
        except CheckpointError:
            raise
        except _CORRUPTION_ERRORS as error:
            raise CheckpointError(f"{source} is not a readable .npz checkpoint: "
                                  f"{type(error).__name__}: {error}") from error
    meta = _read_meta(arrays.pop(META_KEY), source)
    stored = meta.pop(CHECKSUM_KEY, None)
    if stored is None:
        if require_checksum:
            raise CheckpointError(f"{source} has no content checksum ({CHECKSUM_KEY!r} in its "
                                  f"metadata), so it was not written by this version of "
                                  f"save_checkpoint or the checksum was removed")
        return arrays, meta
    try:
        actual = content_digest(arrays, meta)
    except ValueError as error:  # NaN in the metadata: refused by strict JSON
        raise CheckpointError(f"{source}: metadata cannot be checked: {error}") from error
    if stored != actual:
        raise CheckpointError(f"{source} was modified after it was written: its content "
                              f"(arrays {sorted(arrays)} and metadata) has SHA-256 {actual}, "
                              f"the checksum stored in it is {stored!r}")
    return arrays, meta


def _read_arrays(file, source: Path) -> dict[str, np.ndarray]:
    """Every array of the archive ``file``, ``__meta__`` included, once the members are known
    to be what ``save_checkpoint`` writes and to fit in the file."""
    with zipfile.ZipFile(file) as archive:
        members = archive.infolist()
        _check_members(members, os.fstat(file.fileno()).st_size, source)
        names = [member.filename[:-len(NPY_SUFFIX)] for member in members]
        return {name: read_npy(archive, member, name, source, CheckpointError)
                for name, member in zip(names, members)}


def _check_members(members: list[zipfile.ZipInfo], file_size: int, source: Path) -> None:
    """CheckpointError unless the members are what ``save_checkpoint`` writes: one ``.npy``
    entry per array under an allowed name, ``__meta__`` among them, each stored uncompressed
    and no larger than the file."""
    names = [member.filename for member in members]
    not_npy = [name for name in names if not name.endswith(NPY_SUFFIX)]
    if not_npy:
        raise CheckpointError(f"{source}: entries {not_npy} are not .npy arrays")
    if META_KEY + NPY_SUFFIX not in names:
        raise CheckpointError(f"{source} has no {META_KEY!r} entry, so it was not written by "
                              f"save_checkpoint (entries: {names})")
    if len(set(names)) < len(names):
        raise CheckpointError(f"{source}: entries appear twice: {sorted(names)}")
    for member in members:
        name = member.filename[:-len(NPY_SUFFIX)]
        problem = None if name == META_KEY else _name_problem(name)
        if problem:
            raise CheckpointError(f"{source}: entry {member.filename!r} is not allowed: {problem}")
        if member.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(f"{source}: entry {member.filename!r} is compressed "
                                  f"({member.file_size} bytes inflated); save_checkpoint stores "
                                  f"entries uncompressed, and a compressed one is not inflated, "
                                  f"since what it would allocate is not bounded by the file")
        if member.file_size > file_size:
            raise CheckpointError(f"{source}: entry {member.filename!r} claims {member.file_size} "
                                  f"bytes, more than the whole file ({file_size} bytes)")


def _read_meta(meta_array: np.ndarray, source: Path) -> dict:
    """The metadata dict held as JSON text by the ``__meta__`` array."""
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise CheckpointError(f"{source}: {META_KEY!r} must be a 0-d unicode array of JSON "
                              f"text, got shape {meta_array.shape} dtype {meta_array.dtype}")
    text = str(meta_array)
    problem = json_depth_problem(text)
    if problem:
        raise CheckpointError(f"{source}: {META_KEY!r} {problem}")
    try:
        meta = json.loads(text)
    except ValueError as error:
        raise CheckpointError(f"{source}: {META_KEY!r} is not valid JSON: {error}") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: {META_KEY!r} must be a JSON object, "
                              f"got {type(meta).__name__}")
    return meta


def check_arrays(arrays: Mapping[str, np.ndarray],
                 expected: Mapping[str, tuple[tuple[int, ...], Any]]) -> None:
    """Check that ``arrays`` has exactly the names, shapes and dtypes in ``expected``.

    ``expected`` maps each name to ``(shape, dtype)``.  Every mismatch is listed in one
    ``CheckpointError`` (missing names, unexpected names, wrong shapes, wrong dtypes), so a
    model/checkpoint disagreement is diagnosed in one run.

    Verified by: tests/io/test_checkpoint.py::test_check_arrays_reports_every_mismatch
    """
    problems = []
    for key in sorted(set(expected) - set(arrays)):
        problems.append(f"missing array {key!r}")
    for key in sorted(set(arrays) - set(expected)):
        problems.append(f"unexpected array {key!r}")
    for key in [k for k in expected if k in arrays]:
        shape, dtype = expected[key]
        array = np.asarray(arrays[key])
        if tuple(array.shape) != tuple(shape):
            problems.append(f"array {key!r}: expected shape {tuple(shape)}, got {array.shape}")
        if array.dtype != np.dtype(dtype):
            problems.append(f"array {key!r}: expected dtype {np.dtype(dtype)}, "
                            f"got {array.dtype}")
    if problems:
        raise CheckpointError("checkpoint arrays do not match: " + "; ".join(problems))
