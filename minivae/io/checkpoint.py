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
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minivae.io.atomic import PathLike, atomic_write

META_KEY = "__meta__"
CHECKSUM_KEY = "__sha256__"  # inside the metadata JSON; never part of the caller's meta


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not hold what was expected."""


def _json_default(value: Any) -> Any:
    """Let NumPy scalars and arrays through ``json``, which only knows Python types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return value.tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def _first_non_finite(obj: Any, where: str, seen: set[int] | None = None) -> str | None:
    """Where the first NaN or infinity inside ``obj`` is, as an index expression, or None."""
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else f"{where} = {obj!r}"
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(obj))
        return None if len(bad) == 0 else f"{where}[{', '.join(map(str, bad[0]))}] is not finite"
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return None
    if isinstance(obj, Mapping):
        seen.add(id(obj))
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        seen.add(id(obj))
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, f"{where}[{key!r}]", seen)
        if found:
            return found
    return None


def _to_json(obj: Any, argument: str, indent: int | None = None) -> str:
    """Strict JSON text: NaN and infinity are refused, since they are not valid JSON."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False, default=_json_default)
    except TypeError as error:
        raise TypeError(f"{argument} is not JSON-serializable: {error}") from None
    except ValueError as error:
        where = _first_non_finite(obj, argument) if "Out of range" in str(error) else None
        if where is None:
            raise ValueError(f"{argument} cannot be written as JSON: {error}") from None
        raise ValueError(f"{argument} must not contain NaN or infinity (not valid JSON): "
                         f"{where}") from None


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


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (indent 2, trailing newline), atomically.

    NaN and infinity are refused with a ``ValueError`` naming where they are, so the file stays
    readable by any JSON parser.  NumPy scalars and arrays are written as numbers and lists.

    Verified by: tests/io/test_checkpoint.py::test_write_json_rejects_non_finite
    """
    text = _to_json(obj, "obj", indent=2) + "\n"

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as file:
            file.write(text)

    return atomic_write(path, write)


def _check_contents(arrays, meta) -> dict[str, np.ndarray]:
    """save_checkpoint's arguments checked: the arrays under names a zip member may have, none
    needing pickle, and meta a dict without the checksum key."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"save_checkpoint: arrays must be a dict of name -> array, "
                        f"got {type(arrays).__name__}")
    if not isinstance(meta, Mapping):
        raise TypeError(f"save_checkpoint: meta must be a dict, got {type(meta).__name__}")
    checked: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"save_checkpoint: array names must be str, got {key!r} "
                            f"({type(key).__name__})")
        if key in ("", META_KEY) or "\x00" in key:
            # zip member names end at a NUL byte, so such a name would load as another one.
            raise ValueError(f"save_checkpoint: array name {key!r} is not allowed (names must "
                             f"be non-empty, without NUL, and not the reserved {META_KEY!r})")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"save_checkpoint: array {key!r} has dtype {array.dtype}, which "
                            f"would need pickle; convert it to a numeric or string dtype")
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
    TypeError : a key that is not a ``str``, an object-dtype array, or ``meta`` not a dict.
    ValueError : an empty key, a key containing NUL, the reserved key ``"__meta__"``, the
        reserved meta key ``"__sha256__"``, or NaN/infinity in ``meta``.

    Verified by: tests/io/test_checkpoint.py::test_checkpoint_round_trip_is_bit_exact
    """
    checked = _check_contents(arrays, meta)  # name -> array
    plain_meta = json.loads(_to_json(dict(meta), "meta"))  # NumPy scalars become numbers
    plain_meta[CHECKSUM_KEY] = content_digest(checked, plain_meta)
    checked[META_KEY] = np.array(_to_json(plain_meta, "meta"))

    def write(tmp_path: str) -> None:
        # The same bytes np.savez writes; calling it directly would turn array names such as
        # "file" or "allow_pickle" into its own keyword arguments.
        with zipfile.ZipFile(tmp_path, mode="w", compression=zipfile.ZIP_STORED) as archive:
            for key, array in checked.items():
                with archive.open(key + ".npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    return atomic_write(path, write)


_ZIP_SIGNATURE = b"PK\x03\x04"  # every non-empty zip archive, hence every .npz, starts so

# What reading a damaged archive can raise, from zipfile, zlib, the .npy reader and json.
_CORRUPTION_ERRORS = (ValueError, EOFError, OSError, KeyError, UnicodeError,
                      zipfile.BadZipFile, zipfile.LargeZipFile, struct.error, zlib.error)


def load_checkpoint(path: PathLike, require_checksum: bool = False
                    ) -> tuple[dict[str, np.ndarray], dict]:
    """Load a checkpoint written by ``save_checkpoint``: ``(arrays, meta)``.

    Arrays are read fully into memory.  Never unpickles: archives holding object arrays are
    refused.  The content checksum is verified and removed from the returned ``meta``; files
    written before checksums existed have none and load unchecked, unless
    ``require_checksum``.

    Raises
    ------
    FileNotFoundError : ``path`` does not exist.
    CheckpointError : not an ``.npz`` archive, truncated or corrupted, no ``__meta__`` member,
        meta that is not a JSON object, arrays that would need pickle, or content that does
        not match its checksum (edited after it was written).

    Verified by: tests/io/test_checkpoint.py::test_load_rejects_damaged_files
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(2, "checkpoint not found", str(source))
    with open(source, "rb") as file:
        head = file.read(len(np.lib.format.MAGIC_PREFIX))
        file.seek(0)
        if head == np.lib.format.MAGIC_PREFIX:
            raise CheckpointError(f"{source} is a single .npy array, not an .npz checkpoint")
        if not head.startswith(_ZIP_SIGNATURE):
            # Checked here because np.load would call anything unrecognized "pickled data".
            raise CheckpointError(f"{source} is not an .npz checkpoint: it does not start with "
                                  f"the zip signature {_ZIP_SIGNATURE!r} (got {head!r})")
        try:
            loaded = np.load(file, allow_pickle=False)
        except _CORRUPTION_ERRORS as error:
            raise CheckpointError(f"{source} is not a readable .npz checkpoint: "
                                  f"{type(error).__name__}: {error}") from error
        with loaded:
            if META_KEY not in loaded.files:
                raise CheckpointError(f"{source} has no {META_KEY!r} entry, so it was not "
                                      f"written by save_checkpoint (entries: {loaded.files})")
            try:
                arrays = {key: loaded[key] for key in loaded.files}
            except _CORRUPTION_ERRORS as error:
                raise CheckpointError(f"{source} is damaged or holds arrays that need pickle: "
                                      f"{type(error).__name__}: {error}") from error
    not_arrays = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
    if not_arrays:
        raise CheckpointError(f"{source}: entries {not_arrays} are not .npy arrays")
    meta_array = arrays.pop(META_KEY)
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise CheckpointError(f"{source}: {META_KEY!r} must be a 0-d unicode array of JSON "
                              f"text, got shape {meta_array.shape} dtype {meta_array.dtype}")
    try:
        meta = json.loads(str(meta_array))
    except ValueError as error:
        raise CheckpointError(f"{source}: {META_KEY!r} is not valid JSON: {error}") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: {META_KEY!r} must be a JSON object, "
                              f"got {type(meta).__name__}")
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
