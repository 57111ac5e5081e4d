"""One run per output folder: an exclusive lock held for the run's whole life.

Two runs writing into one folder would delete each other's temporary files and overwrite each
other's checkpoint.  ``run_folder`` takes an exclusive ``flock`` on ``<folder>/.lock`` (which
also holds the owner's process id, for the message the second run gets); the second run is
refused at once.  The operating system releases a flock when its process ends, however it
ends, so a killed run leaves no lock that blocks the next one: a ``.lock`` file left behind
is simply locked again.

``run_folder`` also makes sure the run can write there before any work is done (not an epoch
later, at the first save), and removes the folders it created if the run fails before
writing anything into them.  Platforms without ``fcntl`` run without the lock.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from minivae.io.atomic import PathLike

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_NAME = ".lock"


class FolderInUseError(RuntimeError):
    """Another process holds the output folder's lock."""


@contextlib.contextmanager
def run_folder(path: PathLike) -> Iterator[Path]:
    """Hold the folder ``path`` for one run: create it (and missing parents), check that files
    can be created in it, and lock it.  The lock is released on the way out; if the body raised
    and left the folders created here empty, they are removed again.

    Raises ``NotADirectoryError`` when ``path`` or one of its parents is a file,
    ``PermissionError`` (or another ``OSError``) when nothing can be written there, and
    ``FolderInUseError`` when another run holds the folder.

    Verified by: tests/io/test_lock.py::test_a_held_folder_is_refused_with_the_holder_named,
    ::test_a_failed_run_leaves_no_folder_it_made,
    tests/test_cli_contract.py::test_a_second_run_into_one_folder_is_refused
    """
    folder = Path(path)
    created = [p for p in (folder, *folder.parents) if not p.exists()][::-1]  # outermost first
    try:
        make_folder(folder)
        with tempfile.TemporaryFile(dir=folder):  # can files be created here? (a read-only
            pass                                  # folder fails here, not after an epoch)
        with _exclusive_lock(folder):
            yield folder
    except BaseException:
        for made in reversed(created):  # innermost first; rmdir refuses a non-empty folder
            with contextlib.suppress(OSError):
                made.rmdir()
        raise


def make_folder(path: PathLike) -> Path:
    """``path`` as a Path to a folder that exists, created with its parents if missing; a
    ``NotADirectoryError`` naming it when it, or a folder above it, is a file."""
    folder = Path(path)
    for above in (folder, *folder.parents):
        if above.exists() and not above.is_dir():
            where = "is a file" if above == folder else f"lies under the file {above}"
            raise NotADirectoryError(20, f"cannot make the folder: it {where}", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _exclusive_lock(folder: Path) -> Iterator[None]:
    """``flock(LOCK_EX | LOCK_NB)`` on ``folder/.lock`` while the body runs; the file is
    removed when the lock is released."""
    if fcntl is None:
        yield
        return
    lock_path = folder / LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FolderInUseError(f"another run (process {owner}) is writing into {folder}; "
                                   f"wait for it to end, or give another --out") from None
        # The previous holder removes the file as it releases it: if that happened between
        # our open and our flock, we hold a lock on a removed file; take the new one instead.
        if _same_file(fd, lock_path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()
        os.close(fd)  # releases the lock


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
