"""Pictures of samples, reconstructions and learning curves, written as PNG files.

Figures are drawn with ``matplotlib.figure.Figure`` on an Agg canvas directly rather than through
``pyplot``: no window opens, no global backend is switched, and nothing is left registered in
pyplot's figure list.  Images are shown as ink on paper (value 0 white, 1 black, colormap
``gray_r``), the usual way to look at digits.  Every file is written with
``minivae.io.atomic.atomic_write``, so a reader never sees half a picture.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from minivae import checks
from minivae.io.atomic import PathLike, atomic_write
from minivae.io.lock import make_folder

SCREEN_PIXELS_PER_IMAGE_PIXEL = 3  # a 28x28 digit becomes 84x84 on screen
SEPARATOR_VALUE = 0.25  # light grey under gray_r: visible between tiles, not mistaken for ink
TITLE_HEIGHT_PIXELS = 28
ROW_LABEL_WIDTH_PIXELS = 110
RECONSTRUCTION_PAIRS_PER_ROW = 10


def _as_image_stack(images: np.ndarray, argument: str = "images") -> np.ndarray:
    """Return ``images`` as a float64 array of shape (N, H, W) with values in [0, 1].

    Accepts (N, H, W), or (N, D) with D a perfect square, which is read as (N, √D, √D)
    (flattened images, the way the models see them).

    Verified by: tests/io/test_plots.py::test_flat_images_are_reshaped_to_squares
    """
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{argument} must be a numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim == 2:
        side = math.isqrt(array.shape[1])
        if side * side != array.shape[1] or side == 0:
            raise ValueError(f"{argument} of shape {array.shape} is (N, D) with D not a perfect "
                             f"square; pass (N, H, W) instead")
        array = array.reshape(array.shape[0], side, side)
    if array.ndim != 3:
        raise ValueError(f"{argument} must have shape (N, H, W) or (N, D), got {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{argument} must hold at least one non-empty image, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{argument} contains NaN or infinity")
    low, high = array.min(), array.max()
    if low < 0.0 or high > 1.0:
        hint = " (uint8 pixels? divide by 255)" if high > 1.0 and high <= 255.0 else ""
        raise ValueError(f"{argument} values must lie in [0, 1], got range [{low}, {high}]"
                         f"{hint}")
    return array


def image_grid(images: np.ndarray, ncols: int, separator: int = 1,
               separator_value: float = SEPARATOR_VALUE) -> np.ndarray:
    """Tile N images of shape (H, W) into one 2-D array, row by row.

    Image ``k`` lands in grid row ``k // ncols`` and column ``k % ncols``, i.e. at rows
    ``r (H + s) : r (H + s) + H`` and columns ``c (W + s) : c (W + s) + W`` with ``s`` the
    separator width.  The grid has ``min(ncols, N)`` columns and ``⌈N / ncols⌉`` rows, so its
    shape is (rows·H + (rows − 1)·s, cols·W + (cols − 1)·s).  Separators hold
    ``separator_value``; the unused cells of the last row are blank (0).

    Parameters
    ----------
    images : (N, H, W), or (N, D) with D a perfect square; values in [0, 1].
    ncols : images per grid row, >= 1.
    separator : width in pixels of the lines between tiles, >= 0.
    separator_value : value of those lines, in [0, 1].

    Verified by: tests/io/test_plots.py::test_image_grid_places_image_k_at_row_k_div_ncols
    """
    stack, ncols = _as_image_stack(images), checks.positive_int(ncols, "ncols")
    separator = checks.integer(separator, "separator", 0)
    separator_value = checks.real(separator_value, "separator_value", 0.0, 1.0)
    count, height, width = stack.shape
    cols = min(ncols, count)
    rows = -(-count // cols)
    grid = np.full((rows * height + (rows - 1) * separator, cols * width + (cols - 1) * separator),
                   separator_value, dtype=np.float64)
    for k in range(rows * cols):
        top = (k // cols) * (height + separator)
        left = (k % cols) * (width + separator)
        grid[top:top + height, left:left + width] = stack[k] if k < count else 0.0
    return grid


def new_figure(width_pixels: int, height_pixels: int, dpi: int = 100) -> Figure:
    """A figure of an exact pixel size, attached to an Agg canvas (no pyplot involved)."""
    figure = Figure(figsize=(width_pixels / dpi, height_pixels / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: PathLike, tight_layout: bool = False) -> Path:
    """Write ``figure`` as PNG, atomically, at the pixel size it was created with; with
    ``tight_layout`` the axes are first packed so that no label is cut off."""
    if tight_layout:
        figure.tight_layout()
    return atomic_write(path, lambda tmp_path: figure.savefig(tmp_path, format="png",
                                                              dpi=figure.dpi))


def output_folder(path: PathLike) -> Path:
    """``path`` as a Path to a folder that exists (created with its parents if missing; a
    NotADirectoryError naming it when it or a folder above it is a file)."""
    return make_folder(path)


def _show_grid(figure: Figure, grid: np.ndarray, rect: Sequence[float]):
    """Draw ``grid`` as ink on paper into a new axes at ``rect``, with pixel-exact sampling."""
    axes = figure.add_axes(rect)
    axes.imshow(grid, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest",
                aspect="auto")
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)
    return axes


def save_image_grid(path: PathLike, images: np.ndarray, ncols: int = 10,
                    title: str | None = None) -> Path:
    """Write images as a PNG grid: white background, dark strokes (``gray_r``, 0 → white).

    Each image pixel becomes a 3×3 block of screen pixels; ``title`` adds a strip on top.

    Verified by: tests/io/test_plots.py::test_save_image_grid_renders_pixels_as_ink_on_paper
    """
    grid = image_grid(images, ncols)
    scale = SCREEN_PIXELS_PER_IMAGE_PIXEL
    title_pixels = TITLE_HEIGHT_PIXELS if title else 0
    width, grid_height = grid.shape[1] * scale, grid.shape[0] * scale
    height = grid_height + title_pixels
    figure = new_figure(width, height)
    _show_grid(figure, grid, [0.0, 0.0, 1.0, grid_height / height])
    if title:
        figure.text(0.5, 1.0 - title_pixels / 2 / height, title, ha="center", va="center",
                    fontsize=10)
    return save_png(figure, path)


def save_reconstructions(path: PathLike, originals: np.ndarray, reconstructions: np.ndarray,
                         n: int = 10, title: str | None = None) -> Path:
    """Write the first ``n`` images and their reconstructions as a labelled PNG.

    Pairs are laid out in blocks of up to 10: a row labelled "data" with the originals and,
    directly below it, a row labelled "reconstruction" with the same images decoded.
    ``title`` adds a strip on top, as in ``save_image_grid``.

    Verified by: tests/io/test_plots.py::test_save_reconstructions_layout,
    ::test_save_reconstructions_with_title_adds_a_strip_on_top
    """
    data = _as_image_stack(originals, "originals")
    decoded = _as_image_stack(reconstructions, "reconstructions")
    checks.shape(decoded.shape == data.shape, "reconstructions",
                 f"{data.shape}, the same shape as originals", decoded.shape)
    pairs = min(checks.positive_int(n, "n"), data.shape[0])
    per_row = min(RECONSTRUCTION_PAIRS_PER_ROW, pairs)
    blank = np.zeros(data.shape[1:])

    tiles, labels = [], []
    for start in range(0, pairs, per_row):
        stop = min(start + per_row, pairs)
        filler = [blank] * (per_row - (stop - start))
        tiles += list(data[start:stop]) + filler + list(decoded[start:stop]) + filler
        labels += ["data", "reconstruction"]
    grid = image_grid(np.stack(tiles), per_row)

    scale = SCREEN_PIXELS_PER_IMAGE_PIXEL
    grid_width, grid_height = grid.shape[1] * scale, grid.shape[0] * scale
    title_pixels = TITLE_HEIGHT_PIXELS if title else 0
    width, height = grid_width + ROW_LABEL_WIDTH_PIXELS, grid_height + title_pixels
    figure = new_figure(width, height)
    axes = _show_grid(figure, grid, [ROW_LABEL_WIDTH_PIXELS / width, 0.0, grid_width / width,
                                     grid_height / height])
    image_height = data.shape[1]
    axes.set_yticks([row * (image_height + 1) + (image_height - 1) / 2
                     for row in range(len(labels))], labels, fontsize=9)
    axes.tick_params(axis="y", length=0)
    if title:
        figure.text(0.5, 1.0 - title_pixels / 2 / height, title, ha="center", va="center",
                    fontsize=10)
    return save_png(figure, path)


def _check_curve(epochs, series) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = np.asarray(epochs, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"epochs must be a non-empty 1-D sequence, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("epochs must be finite numbers")
    if not isinstance(series, Mapping) or not series:
        raise ValueError("series must be a non-empty dict of name -> values")
    lines = {}
    for name, values in series.items():
        if not isinstance(name, str):
            raise TypeError(f"series names must be str, got {name!r}")
        y = np.asarray(values, dtype=np.float64)
        if y.shape != x.shape:
            raise ValueError(f"series {name!r} has shape {y.shape}, but epochs has {x.shape}")
        lines[name] = np.where(np.isfinite(y), y, np.nan)
    return x, lines


def save_curve(path: PathLike, epochs: Sequence[float], series: Mapping[str, Sequence[float]],
               ylabel: str = "ELBO (nats)", title: str | None = None) -> Path:
    """Write a line plot of each named series against epoch, with legend and grid.

    NaN or infinite values (a diverged run) are drawn as gaps rather than refused, so the
    plot of a failed run can still be inspected.

    Verified by: tests/io/test_plots.py::test_save_curve_writes_png
    """
    x, lines = _check_curve(epochs, series)  # lines: name -> values, NaN where not finite
    figure = new_figure(640, 420)
    axes = figure.add_subplot()
    marker = "o" if x.size <= 50 else None  # with few epochs the points themselves matter
    for name, y in lines.items():
        axes.plot(x, y, marker=marker, markersize=3, label=name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.25"
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.4)
    axes.legend()
    figure.tight_layout()
    return save_png(figure, path)
