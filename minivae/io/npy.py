"""One ``.npy`` array read from an archive member without trusting its header.

A ``.npy`` header states a shape and a dtype, and NumPy allocates what they say before it
reads a byte, so a header claiming terabytes is a MemoryError (or worse, a machine swapping).
Here the declared size must account for exactly the bytes the member holds before any memory
is allocated, and the bytes are then read in chunks.  Object and structured dtypes are refused:
the first would need pickle, neither is what minivae writes.
"""
from __future__ import annotations

import math
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from minivae.io.reading import CHUNK_BYTES

# What NumPy's .npy header parser raises for a header that is not a Python dict literal.
_HEADER_ERRORS = (ValueError, EOFError, SyntaxError, tokenize.TokenError)


def dtype_problem(dtype: np.dtype) -> str | None:
    """Why arrays of ``dtype`` cannot be in a checkpoint, or None (the rule of save and load)."""
    if dtype.hasobject:
        return (f"has dtype {dtype}, which would need pickle; convert it to a numeric or string "
                f"dtype")
    if dtype.fields is not None or dtype.subdtype is not None:
        return f"has the structured dtype {dtype}; checkpoints hold numeric or string arrays"
    return None


def read_npy(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, source: Path,
             error: type[Exception] = ValueError) -> np.ndarray:
    """The array ``name`` of one ``.npy`` member of ``archive``, allocated only once its
    header's shape and dtype are found to account for exactly the member's bytes; anything
    else raises ``error`` naming ``source`` and the array."""
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise error(f"{source}: array {name!r} has .npy format version {version}; "
                        f"save_checkpoint writes 1.0 or 2.0")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        try:
            shape, fortran_order, dtype = read_header(stream)
        except _HEADER_ERRORS as problem:
            raise error(f"{source}: array {name!r} has no valid .npy header: "
                        f"{type(problem).__name__}: {problem}") from problem
        problem = dtype_problem(dtype)
        if problem:
            raise error(f"{source}: array {name!r} {problem}")
        if min(shape, default=0) < 0:
            raise error(f"{source}: array {name!r} declares the shape {shape}")
        declared = math.prod(shape) * dtype.itemsize
        held = member.file_size - stream.tell()
        if declared != held:
            raise error(f"{source}: array {name!r} declares shape {shape} of {dtype}, "
                        f"{declared} bytes, but its entry holds {held}")
        data = np.empty(declared, dtype=np.uint8)
        for start in range(0, declared, CHUNK_BYTES):
            chunk = stream.read(min(CHUNK_BYTES, declared - start))
            data[start:start + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        stream.read(1)  # to the end of the entry, where zipfile checks its CRC
    if declared == 0:  # nothing to view: the dtype may even have no size
        return np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
    return data.view(dtype).reshape(shape, order="F" if fortran_order else "C")
