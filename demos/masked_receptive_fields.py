"""Demo: which input pixels a PixelCNN output pixel can see through masked 3×3 convolutions.

Writes two pictures to ``--out`` and prints the fields as text grids:

* receptive_fields.png — masks A and B, and the receptive field of pixel "33" on a 5×5 map
  (cells numbered 11 … 55 from 1, as in the notes) for the layer pairs AA, AB, BA, BB;
* blind_spot.png — deeper stacks (A first, then B's) on a 9×9 map: the field grows upward
  and to the left, but a wedge above and to the right of the pixel stays unseen however deep
  the stack, although every pixel in it comes earlier in raster order.

    python demos/masked_receptive_fields.py --out runs/masked_receptive_fields
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch, Rectangle

from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import demo_parser, run_reporting_errors
from minivae.topics.masks import causal_mask, receptive_field

FIELD_COLOUR = "#4c8bd6"
BLIND_COLOUR = "#e8827a"
BEFORE_COLOUR = "#e6e6e6"
PAIRS = ("AA", "AB", "BA", "BB")


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/masked_receptive_fields",
                        help="output folder for the pictures")
    return parser.parse_args(argv)


def text_grid(field: np.ndarray, pixel: tuple[int, int]) -> str:
    """The field as rows of 1-based labels; '·' outside it, the output pixel in brackets."""
    lines = []
    for r in range(field.shape[0]):
        cells = []
        for c in range(field.shape[1]):
            name = f"{r + 1}{c + 1}" if field[r, c] else " ·"
            cells.append(f"[{name}]" if (r, c) == pixel else f" {name} ")
        lines.append("".join(cells))
    return "\n".join(lines)


def blind_wedge(shape, pixel, radius: int) -> np.ndarray:
    """Pixels (−u, +v) from ``pixel`` with u ≥ 1 and v > radius·u: unreachable by any stack."""
    rows, cols = np.indices(shape)
    up, right = pixel[0] - rows, cols - pixel[1]
    return (up >= 1) & (right > radius * up)


def draw_map(axes, field, pixel, title, radius=1, labels=True):
    height, width = field.shape
    raster = np.arange(height * width).reshape(height, width)
    before = raster < pixel[0] * width + pixel[1]
    wedge = blind_wedge(field.shape, pixel, radius)
    for r in range(height):
        for c in range(width):
            colour = (FIELD_COLOUR if field[r, c] else BLIND_COLOUR if wedge[r, c]
                      else BEFORE_COLOUR if before[r, c] else "white")
            axes.add_patch(Rectangle((c, r), 1, 1, facecolor=colour, edgecolor="grey", lw=0.8))
            if labels:
                axes.text(c + 0.5, r + 0.5, f"{r + 1}{c + 1}", ha="center", va="center",
                          fontsize=11 if height <= 5 else 7,
                          color="white" if field[r, c] else "black")
    axes.add_patch(Rectangle((pixel[1], pixel[0]), 1, 1, fill=False, edgecolor="black", lw=3))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)  # row 1 at the top, as the map is written
    axes.set_aspect("equal")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=10)


def draw_mask(axes, mask, title):
    size = mask.shape[0]
    for a in range(size):
        for b in range(size):
            axes.add_patch(Rectangle((b, a), 1, 1, edgecolor="grey", lw=0.8,
                                     facecolor="#333333" if mask[a, b] else "white"))
            axes.text(b + 0.5, a + 0.5, str(mask[a, b]), ha="center", va="center", fontsize=14,
                      color="white" if mask[a, b] else "black")
    centre = (size - 1) / 2
    axes.add_patch(Rectangle((centre, centre), 1, 1, fill=False, edgecolor="tab:red", lw=2.5))
    axes.set_xlim(0, size)
    axes.set_ylim(size, 0)
    axes.set_aspect("equal")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(title, fontsize=10)


def legend_handles():
    return [Patch(facecolor=FIELD_COLOUR, label="receptive field"),
            Patch(facecolor=BLIND_COLOUR, label="blind spot: earlier in raster order, never seen"),
            Patch(facecolor=BEFORE_COLOUR,
                  label="earlier in raster order, not reached by this stack"),
            Patch(facecolor="white", edgecolor="black", lw=2, label="output pixel")]


def receptive_fields_figure(path: Path) -> Path:
    pixel = (2, 2)  # "33"
    figure = new_figure(1250, 720)
    grid = figure.add_gridspec(2, 3, width_ratios=[0.7, 1, 1], left=0.02, right=0.98,
                               top=0.86, bottom=0.12, wspace=0.12, hspace=0.25)
    for row, mask_type in enumerate("AB"):
        note = "centre excluded" if mask_type == "A" else "centre included"
        draw_mask(figure.add_subplot(grid[row, 0]), causal_mask(3, mask_type),
                  f"mask {mask_type} ({note})")
    for index, pair in enumerate(PAIRS):
        field = receptive_field(5, 5, pixel, pair)
        axes = figure.add_subplot(grid[index // 2, 1 + index % 2])
        sees = "sees 33" if field[pixel] else "33 unseen"
        draw_map(axes, field, pixel, f"layer 1: {pair[0]}, layer 2: {pair[1]} — "
                 f"{int(field.sum())} pixels, {sees}")
    figure.suptitle("Receptive field of output pixel 33 through two masked 3×3 layers "
                    "(cross-correlation, padding 1)\n25 is never seen (two columns right takes "
                    "two steps up); with A on both layers 24 and 32 are lost too (no zero "
                    "offset)", fontsize=12)
    figure.legend(handles=legend_handles(), loc="lower center", ncol=4, fontsize=9,
                  frameon=False)
    return save_png(figure, path)


def blind_spot_figure(path: Path) -> tuple[Path, list[tuple[str, int, np.ndarray]]]:
    size, pixel = 9, (7, 4)
    cases = [("A" + "B" * 4, 3), ("A" + "B" * 8, 3), ("A" + "B" * 2, 5)]
    figure = new_figure(1250, 520)
    fields = []
    for index, (stack, k) in enumerate(cases):
        field = receptive_field(size, size, pixel, stack, kernel_size=k)
        fields.append((stack, k, field))
        radius = (k - 1) // 2
        unseen = int(blind_wedge(field.shape, pixel, radius).sum())
        axes = figure.add_subplot(1, len(cases), index + 1)
        draw_map(axes, field, pixel, f"{len(stack)} layers {stack}, {k}×{k} kernels\n"
                 f"field {int(field.sum())} pixels, blind spot {unseen}", radius=radius)
    figure.suptitle(f"PixelCNN blind spot for pixel {pixel[0] + 1}{pixel[1] + 1} on a "
                    f"{size}×{size} map: offsets (−u, +v) with v > ((k−1)/2)·u are never reached",
                    fontsize=12)
    figure.legend(handles=legend_handles(), loc="lower center", ncol=4, fontsize=9,
                  frameon=False)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.8, bottom=0.1, wspace=0.08)
    return save_png(figure, path), fields


def main(args: argparse.Namespace) -> list[Path]:
    out = output_folder(args.out)
    pixel = (2, 2)
    for mask_type in "AB":
        print(f"mask {mask_type}:\n{causal_mask(3, mask_type)}\n")
    for pair in PAIRS:
        field = receptive_field(5, 5, pixel, pair)
        print(f"{pair} (layer 1 mask {pair[0]}, layer 2 mask {pair[1]}): "
              f"{int(field.sum())} pixels\n{text_grid(field, pixel)}\n")
    paths = [receptive_fields_figure(out / "receptive_fields.png")]
    path, fields = blind_spot_figure(out / "blind_spot.png")
    paths.append(path)
    for stack, k, field in fields:
        print(f"{stack} with {k}×{k} kernels on 9×9, pixel 85: {int(field.sum())} pixels\n"
              f"{text_grid(field, (7, 4))}\n")
    for path in paths:
        print(path.resolve())
    return paths


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
