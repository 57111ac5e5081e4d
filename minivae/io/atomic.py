"""Files that are either the old version or the new one, never half of each.

Everything minivae writes to disk (IDX files, downloaded datasets, checkpoints, metrics,
pictures) goes through ``atomic_write``: the bytes go to a temporary file in the target's
directory, are flushed to the disk, and only then renamed over the target.  A rename within one
directory is atomic, so a crash or a kill at any moment leaves either the previous file or the
complete new one.  A writer that finds its own output wrong (a download with a bad checksum)
raises, and the target is never touched.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

PathLike = str | os.PathLike


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Write a file so that readers see either its old content or the new one, never a mix.

    ``write(tmp_path)`` must create the file at ``tmp_path``.  The temporary file sits in the
    target's directory (a rename is only atomic within one file system) and keeps the target's
    extension (``np.savez`` and matplotlib choose the format by extension).  After ``write``
    returns, the file is fsynced and renamed over ``path``; if ``write`` raises, the temporary
    file is removed, ``path`` is untouched, and the exception propagates.  Parent directories
    are created.  The new file gets the old file's read, write and execute permissions, never
    its setuid, setgid or sticky bits; if there was no regular file, those of any newly created
    file (0o666 minus the umask).

    A symbolic link at ``path`` is replaced by the new file, as any rename replaces it: the
    file it pointed to is left as it was, and its permissions are not copied.  Writing through
    a link would change a file elsewhere, possibly one that is not the caller's to change.

    Parameters
    ----------
    path : the final file.
    write : callable receiving the temporary path as a ``str``; it may raise to abort.

    Returns
    -------
    The final path as a ``pathlib.Path``.

    Verified by: tests/io/test_atomic.py::test_atomic_write_survives_sigkill_mid_write
    """
    if not callable(write):
        raise TypeError(f"atomic_write: write must be callable, got {type(write).__name__}")
    target = Path(path)
    if target.name == "":
        raise ValueError(f"atomic_write: path must name a file, got {str(path)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _kept_mode(target)

    fd, tmp_path = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                    dir=target.parent)
    os.close(fd)
    try:
        write(tmp_path)
        os.chmod(tmp_path, mode)
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data must be on disk before the rename makes it visible
        finally:
            os.close(fd)
        os.replace(tmp_path, target)
    except BaseException:
        # BaseException too: Ctrl-C during a long save must not leave temp files behind.
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(target.parent)
    return target


def _kept_mode(target: Path) -> int:
    """The permissions the new file takes over: rwx bits only, and only from a regular file
    (not from the file a link points to)."""
    try:
        existing = os.lstat(target)
    except FileNotFoundError:
        existing = None
    if existing is None or not stat.S_ISREG(existing.st_mode):
        return 0o666 & ~_umask()
    return stat.S_IMODE(existing.st_mode) & 0o777  # a copied setuid bit would grant privileges


def write_bytes(path: PathLike, content: bytes) -> Path:
    """``atomic_write`` of a ready ``bytes`` object.

    Verified by: tests/io/test_atomic.py::test_write_bytes_replaces_content
    """
    return atomic_write(path, lambda tmp_path: Path(tmp_path).write_bytes(content))


def _umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        # Linux exposes the umask here, which avoids the set-and-restore race below.
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself; best effort, since some platforms cannot open directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
