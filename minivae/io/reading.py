"""Opening the files minivae reads: regular files only, opened without waiting.

A path can name things that are not files.  Opening a FIFO (named pipe) waits forever for a
writer; a device such as /dev/zero never ends; a directory cannot be read at all.  Every reader
of user files (checkpoints, IDX data, datasets) opens its file through ``open_regular``, which
refuses all of these with one error naming the path before a byte is read.

The path is checked with ``os.stat`` first, so nothing is opened that is not a regular file
(opening a device can have effects of its own).  It is then opened with ``O_NONBLOCK``, so that
a FIFO put in its place between the check and the open cannot block the open either, and the
open descriptor is checked again: that second check is the one that decides.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from minivae.io.atomic import PathLike

CHUNK_BYTES = 1 << 20  # how much the readers read at a time: a bound on what a read holds

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))
# O_NONBLOCK and O_BINARY exist on some platforms only
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def open_regular(path: PathLike, error: type[Exception] = ValueError) -> BinaryIO:
    """``open(path, "rb")`` for a regular file (or a link to one), and nothing else.

    Anything else (a directory, FIFO, socket or device) raises ``error`` naming the path and
    what it is, without blocking and before anything is read; a missing path raises
    ``FileNotFoundError`` as ``open`` does.

    Verified by: tests/io/test_hostile_files.py::test_fifo_is_refused_without_blocking
    """
    _require_regular(os.stat(path).st_mode, path, error)
    descriptor = os.open(path, _OPEN_FLAGS)
    try:
        _require_regular(os.fstat(descriptor).st_mode, path, error)
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def _require_regular(mode: int, path: PathLike, error: type[Exception]) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "a special file")
        raise error(f"{Path(path)} is {kind}, not a regular file, so it cannot be read as one")
