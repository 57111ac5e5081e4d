"""Image grids and PNG figures (minivae/io/plots.py)."""
from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from matplotlib.image import imread

from minivae.io.plots import (
    ROW_LABEL_WIDTH_PIXELS,
    SCREEN_PIXELS_PER_IMAGE_PIXEL,
    SEPARATOR_VALUE,
    TITLE_HEIGHT_PIXELS,
    image_grid,
    save_curve,
    save_image_grid,
    save_reconstructions,
)
from tests.fuzzing import COUNTS, anything, arrays, check_contract
from tests.helpers import child_env

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCALE = SCREEN_PIXELS_PER_IMAGE_PIXEL


# Colormap lookup tables quantize to 256 levels and PNG to 8 bits: allow two steps.
PIXEL_TOLERANCE = 2.5 / 255


def read_png(path: Path) -> np.ndarray:
    """The PNG's gray level in [0, 1] (1 = white), checking the file really is a PNG."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    return pixels[..., :3].mean(axis=2)


def as_ink_on_paper(image: np.ndarray) -> np.ndarray:
    """What an image in [0, 1] should look like on screen: 0 white, 1 black, SCALE× enlarged."""
    return 1.0 - np.kron(image, np.ones((SCALE, SCALE)))


@given(count=st.integers(1, 13), height=st.integers(1, 6), width=st.integers(1, 6),
       ncols=st.integers(1, 8), separator=st.integers(0, 2), seed=st.integers(0, 2**32 - 1))
def test_image_grid_places_image_k_at_row_k_div_ncols(count, height, width, ncols, separator,
                                                      seed):
    images = np.random.default_rng(seed).random((count, height, width))
    grid = image_grid(images, ncols, separator=separator)

    cols = min(ncols, count)
    rows = math.ceil(count / cols)
    assert grid.shape == (rows * height + (rows - 1) * separator,
                          cols * width + (cols - 1) * separator)
    covered = np.zeros(grid.shape, dtype=bool)
    for i in range(rows):
        for j in range(cols):
            tile = (slice(i * (height + separator), i * (height + separator) + height),
                    slice(j * (width + separator), j * (width + separator) + width))
            covered[tile] = True
            k = i * ncols + j
            if k < count:
                np.testing.assert_array_equal(grid[tile], images[k])
            else:
                assert np.all(grid[tile] == 0.0)  # blank paper where no image is
    assert np.all(grid[~covered] == SEPARATOR_VALUE)


def test_image_grid_separator_value_and_width():
    images = np.ones((4, 2, 2))
    grid = image_grid(images, 2, separator=2, separator_value=0.0)
    assert grid.shape == (6, 6)
    assert np.all(grid[2:4, :] == 0.0) and np.all(grid[:, 2:4] == 0.0)
    assert grid.sum() == 16  # the four 2x2 images, nothing else


def test_flat_images_are_reshaped_to_squares():
    images = np.random.default_rng(0).random((5, 4, 4))
    np.testing.assert_array_equal(image_grid(images.reshape(5, 16), 3), image_grid(images, 3))


@pytest.mark.parametrize("images, error, pattern", [
    (np.zeros((3, 15)), ValueError, "not a perfect square"),
    (np.zeros(16), ValueError, r"\(N, H, W\)"),
    (np.zeros((2, 3, 4, 4)), ValueError, r"\(N, H, W\)"),
    (np.zeros((0, 4, 4)), ValueError, "at least one"),
    (np.zeros((2, 0, 4)), ValueError, "at least one"),
    (np.full((2, 3, 3), 255.0), ValueError, "divide by 255"),
    (np.full((2, 3, 3), -0.1), ValueError, r"\[0, 1\]"),
    (np.full((2, 3, 3), np.nan), ValueError, "NaN"),
    (np.full((2, 3, 3), "a"), TypeError, "numeric"),
])
def test_image_grid_rejects_bad_images(images, error, pattern):
    with pytest.raises(error, match=pattern):
        image_grid(images, 2)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"ncols": 0}, "ncols"), ({"ncols": -1}, "ncols"), ({"ncols": 2.5}, "ncols"),
    ({"ncols": True}, "ncols"), ({"ncols": 2, "separator": -1}, "separator must"),
    ({"ncols": 2, "separator_value": 1.5}, "separator_value"),
])
def test_image_grid_rejects_bad_layout(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        image_grid(np.zeros((3, 2, 2)), **kwargs)


def test_save_image_grid_renders_pixels_as_ink_on_paper(tmp_path):
    images = np.random.default_rng(1).random((7, 5, 4))
    path = save_image_grid(tmp_path / "samples.png", images, ncols=3)
    gray = read_png(path)
    expected = as_ink_on_paper(image_grid(images, 3))
    assert gray.shape == expected.shape
    assert np.abs(gray - expected).max() <= PIXEL_TOLERANCE
    assert os.listdir(tmp_path) == ["samples.png"]


def test_save_image_grid_sparse_strokes_are_dark_on_white(tmp_path):
    images = np.zeros((4, 28, 28))
    images[:, 10:18, 13:15] = 1.0  # a "1" in each cell
    gray = read_png(save_image_grid(tmp_path / "ones.png", images, ncols=2))
    assert gray.shape == (2 * (28 * SCALE) + SCALE, 2 * (28 * SCALE) + SCALE)
    assert np.median(gray) > 0.99  # paper
    assert gray.min() < 0.01  # ink


def test_save_image_grid_with_title_adds_a_strip_on_top(tmp_path):
    images = np.random.default_rng(2).random((20, 784))
    plain = read_png(save_image_grid(tmp_path / "plain.png", images, ncols=10))
    titled = read_png(save_image_grid(tmp_path / "titled.png", images, ncols=10,
                                      title="samples, epoch 3"))
    assert titled.shape[1] == plain.shape[1]
    strip = titled.shape[0] - plain.shape[0]
    assert strip > 0
    np.testing.assert_allclose(titled[strip:], plain, atol=PIXEL_TOLERANCE)
    assert titled[:strip].min() < 0.5 < titled[:strip].max()  # dark text on white


def test_save_image_grid_writes_png_whatever_the_extension(tmp_path):
    path = save_image_grid(tmp_path / "grid", np.ones((1, 2, 2)))
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_save_image_grid_bad_input_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="divide by 255"):
        save_image_grid(tmp_path / "bad.png", np.full((3, 28, 28), 200, dtype=np.uint8))
    assert os.listdir(tmp_path) == []


def test_plots_do_not_use_pyplot(tmp_path):
    # pyplot would pick an interactive backend and keep global figure state.
    script = ("import sys, numpy as np\n"
              "from minivae.io.plots import save_image_grid, save_curve\n"
              "save_image_grid(sys.argv[1] + '/a.png', np.zeros((2, 4)))\n"
              "save_curve(sys.argv[1] + '/b.png', [1, 2], {'x': [1.0, 2.0]})\n"
              "print('matplotlib.pyplot' in sys.modules)\n")
    env = child_env()
    env.pop("MPLBACKEND", None)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


@pytest.mark.parametrize("count, n, expected_rows", [(12, 10, 2), (15, 15, 4), (3, 5, 2)])
def test_save_reconstructions_layout(tmp_path, count, n, expected_rows):
    rng = np.random.default_rng(count)
    originals = rng.random((count, 28, 28))
    reconstructions = rng.random((count, 784))
    gray = read_png(save_reconstructions(tmp_path / "recon.png", originals, reconstructions, n))

    pairs = min(n, count)
    per_row = min(10, pairs)
    tile = 28 * SCALE
    assert gray.shape == (expected_rows * tile + (expected_rows - 1) * SCALE,
                          ROW_LABEL_WIDTH_PIXELS + per_row * tile + (per_row - 1) * SCALE)
    # The last pair of the first block, read off the right edge: data above, its decoding below.
    last = per_row - 1
    np.testing.assert_allclose(gray[:tile, -tile:], as_ink_on_paper(originals[last]),
                               atol=PIXEL_TOLERANCE)
    np.testing.assert_allclose(gray[tile + SCALE:2 * tile + SCALE, -tile:],
                               as_ink_on_paper(reconstructions[last].reshape(28, 28)),
                               atol=PIXEL_TOLERANCE)
    labels = gray[:, :ROW_LABEL_WIDTH_PIXELS]
    assert labels.min() < 0.5 and np.median(labels) > 0.99  # row labels: text on white


def test_save_reconstructions_with_title_adds_a_strip_on_top(tmp_path):
    rng = np.random.default_rng(5)
    originals, reconstructions = rng.random((12, 28, 28)), rng.random((12, 28, 28))
    plain = read_png(save_reconstructions(tmp_path / "plain.png", originals, reconstructions, 12))
    titled = read_png(save_reconstructions(tmp_path / "titled.png", originals, reconstructions,
                                           12, title="test digits, epoch 3"))
    assert titled.shape[1] == plain.shape[1]
    strip = titled.shape[0] - plain.shape[0]
    assert strip == TITLE_HEIGHT_PIXELS
    # below the strip, the same picture: the digits and the row labels where they were
    np.testing.assert_allclose(titled[strip:], plain, atol=PIXEL_TOLERANCE)
    assert titled[:strip].min() < 0.5 < titled[:strip].max()  # dark text on white


@pytest.mark.parametrize("originals, reconstructions, n, pattern", [
    (np.zeros((4, 784)), np.zeros((3, 784)), 2, "same shape"),
    (np.zeros((4, 784)), np.zeros((4, 28, 28)), 0, "n must be a positive integer"),
    (np.zeros((4, 784)), np.full((4, 784), 2.0), 2, "reconstructions values"),
    (np.zeros((4, 10)), np.zeros((4, 10)), 2, "originals of shape"),
])
def test_save_reconstructions_rejects_bad_input(tmp_path, originals, reconstructions, n,
                                                pattern):
    with pytest.raises(ValueError, match=pattern):
        save_reconstructions(tmp_path / "r.png", originals, reconstructions, n)
    assert os.listdir(tmp_path) == []


def test_save_curve_writes_png(tmp_path):
    epochs = list(range(1, 21))
    series = {"train": [-200 + 5 * e for e in epochs], "test": [-205 + 5 * e for e in epochs]}
    path = save_curve(tmp_path / "elbo.png", epochs, series, title="ELBO")
    gray = read_png(path)
    assert 1.2 < gray.shape[1] / gray.shape[0] < 2.0  # landscape
    assert gray.min() < 0.5 and np.median(gray) > 0.9  # lines and text on white
    assert os.listdir(tmp_path) == ["elbo.png"]


def test_save_curve_draws_diverged_runs_with_gaps(tmp_path):
    path = save_curve(tmp_path / "c.png", [1, 2, 3, 4],
                      {"train": [-100.0, -95.0, float("nan"), float("inf")]})
    assert read_png(path).std() > 0


@pytest.mark.parametrize("epochs, series, error, pattern", [
    ([], {"a": []}, ValueError, "epochs must be a non-empty 1-D"),
    ([[1, 2]], {"a": [1, 2]}, ValueError, "epochs must be a non-empty 1-D"),
    ([1, float("nan")], {"a": [1, 2]}, ValueError, "epochs must be finite"),
    ([1, 2], {}, ValueError, "non-empty dict"),
    ([1, 2], {"train": [1.0]}, ValueError, "series 'train' has shape"),
    ([1, 2], {3: [1.0, 2.0]}, TypeError, "names must be str"),
])
def test_save_curve_rejects_bad_input(tmp_path, epochs, series, error, pattern):
    with pytest.raises(error, match=pattern):
        save_curve(tmp_path / "c.png", epochs, series)
    assert os.listdir(tmp_path) == []


def test_real_digits_render_as_ink_on_paper(tmp_path, shared_data):
    with gzip.open(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz", "rb") as file:
        raw = file.read(16 + 16 * 784)  # 16-byte IDX header, then uint8 pixels
    digits = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(16, 28, 28) / 255.0
    gray = read_png(save_image_grid(tmp_path / "digits.png", digits, ncols=8))
    np.testing.assert_allclose(gray, as_ink_on_paper(image_grid(digits, 8)),
                               atol=PIXEL_TOLERANCE)
    assert np.median(gray) > 0.95 and gray.min() < 0.05


# -- the fuzz contract -------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(images=st.one_of(arrays(), anything()), ncols=COUNTS,
       separator=st.one_of(st.integers(-1, 2), anything()))
def test_image_grid(images, ncols, separator):
    check_contract("image_grid", image_grid, images, ncols, separator)
