"""PixelCNN masks A/B and the receptive fields of stacked masked convolutions.

Expected fields are derived here without the code under test: from the notes' literal mask
matrices, from raster order, from sums of kernel offsets, and by perturbing a real (linear,
positive-weight) masked network built in this file.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae.topics.masks import (
    allowed_offsets,
    causal_mask,
    masked_cross_correlation,
    receptive_field,
)
from tests.helpers import demo

# The notes' masks, indexed from 1 with centre (2, 2): copied from the definition, not the code.
NOTES_MASK = {"A": np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]]),
              "B": np.array([[1, 1, 1], [1, 1, 0], [0, 0, 0]])}


def label(row, col):
    """The notes' 1-based name of a 0-based pixel: (2, 2) → "33"."""
    return f"{row + 1}{col + 1}"


def field_labels(field):
    return {label(r, c) for r, c in zip(*np.nonzero(field))}


def raster_mask(k, mask_type):
    """Mask from raster order alone: kernel cells before the centre (A) or up to it (B)."""
    centre_index = (k * k - 1) // 2  # the centre is the middle cell of the flattened kernel
    order = np.arange(k * k).reshape(k, k)
    return (order < centre_index) if mask_type == "A" else (order <= centre_index)


odd_sizes = st.sampled_from([1, 3, 5, 7, 9])


stacks = st.lists(st.sampled_from("AB"), min_size=1, max_size=4).map("".join)


@st.composite
def maps_and_pixels(draw, max_side=7):
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    pixel = (draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1)))
    return height, width, pixel


def test_masks_match_the_notes_for_k3():
    for mask_type, expected in NOTES_MASK.items():
        np.testing.assert_array_equal(causal_mask(3, mask_type), expected)


@given(odd_sizes)
def test_mask_is_raster_causal_for_every_odd_size(k):
    centre = (k - 1) // 2
    a_mask, b_mask = causal_mask(k, "A"), causal_mask(k, "B")
    assert a_mask[centre, centre] == 0 and b_mask[centre, centre] == 1
    np.testing.assert_array_equal(a_mask, raster_mask(k, "A"))
    np.testing.assert_array_equal(b_mask, raster_mask(k, "B"))
    # B differs from A only at the centre; nothing at or after the centre survives in A
    difference = b_mask.astype(int) - a_mask.astype(int)
    assert difference.sum() == 1 and difference[centre, centre] == 1
    assert not a_mask.ravel()[centre * k + centre:].any()
    assert not b_mask.ravel()[centre * k + centre + 1:].any()
    assert a_mask.sum() == (k * k - 1) // 2  # exactly the cells before the centre


def test_mask_dtype_keeps_kernel_dtype():
    mask = causal_mask(3, "A")
    assert mask.dtype == np.int8
    for dtype in (np.float32, np.float64):
        assert (np.ones((4, 2, 3, 3), dtype=dtype) * mask).dtype == dtype
    assert causal_mask(5, "B", dtype=bool).dtype == np.bool_
    assert causal_mask(5, "B", dtype=np.float32).dtype == np.float32


@given(odd_sizes, st.sampled_from("AB"))
def test_allowed_offsets_are_the_mask_support(k, mask_type):
    centre = (k - 1) // 2
    expected = {(a - centre, b - centre) for a in range(k) for b in range(k)
                if raster_mask(k, mask_type)[a, b]}
    offsets = allowed_offsets(k, mask_type)
    assert set(offsets) == expected and len(offsets) == len(expected)


def naive_masked_layer(x, kernel, mask):
    """y[r, s] = Σ_{a,b} M[a,b] W[a,b] x[r + a − c, s + b − c], skipping positions off the map."""
    height, width = x.shape
    k = kernel.shape[0]
    centre = (k - 1) // 2
    y = np.zeros_like(x)
    for r, s, a, b in itertools.product(range(height), range(width), range(k), range(k)):
        i, j = r + a - centre, s + b - centre
        if mask[a, b] and 0 <= i < height and 0 <= j < width:
            y[r, s] += kernel[a, b] * x[i, j]
    return y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,mask_type", [(1, "B"), (3, "A"), (3, "B"), (5, "A")])
def test_masked_cross_correlation_matches_the_sum(k, mask_type, dtype):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(4, 6)).astype(dtype)
    kernel = rng.normal(size=(k, k)).astype(dtype)
    out = masked_cross_correlation(x, kernel, mask_type)
    assert out.dtype == dtype and out.shape == x.shape
    expected = naive_masked_layer(x, kernel, raster_mask(k, mask_type))
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def layer_matrix(height, width, kernel, mask):
    """The masked layer as a (HW × HW) matrix: row = output pixel, column = input pixel."""
    k = kernel.shape[0]
    centre = (k - 1) // 2
    matrix = np.zeros((height * width, height * width))
    for r, s, a, b in itertools.product(range(height), range(width), range(k), range(k)):
        i, j = r + a - centre, s + b - centre
        if mask[a, b] and 0 <= i < height and 0 <= j < width:
            matrix[r * width + s, i * width + j] += kernel[a, b]
    return matrix


@settings(max_examples=60)
@given(maps_and_pixels(), stacks, st.sampled_from([1, 3, 5]), st.integers(0, 2**31))
def test_receptive_field_matches_perturbing_a_real_network(map_and_pixel, stack, k, seed):
    height, width, pixel = map_and_pixel
    rng = np.random.default_rng(seed)
    # integer weights ≥ 1 and integer inputs: every sum below is exact in float64, so "changed"
    # is decided without rounding, whatever order the matrix products add in
    kernels = [rng.integers(1, 4, (k, k)).astype(np.float64) for _ in stack]
    layers = [layer_matrix(height, width, kernel, raster_mask(k, t))
              for kernel, t in zip(kernels, stack)]

    def network(x_flat):  # the stack applied to each column, first layer first
        for matrix in layers:
            x_flat = matrix @ x_flat
        return x_flat

    x = rng.integers(-5, 6, height * width).astype(np.float64)
    base = network(x)
    # column j: the input with pixel j raised by 1. Positive weights, no nonlinearity: an
    # output moves iff some path of kept weights joins it to pixel j (no cancellation).
    perturbed = network(x[:, None] + np.eye(height * width))
    row = pixel[0] * width + pixel[1]
    depends = (perturbed[row] != base[row]).reshape(height, width)
    np.testing.assert_array_equal(receptive_field(height, width, pixel, stack, k), depends)
    # the library's own layer, stacked, computes the same network
    image = x.reshape(height, width)
    for kernel, t in zip(kernels, stack):
        image = masked_cross_correlation(image, kernel, t)
    np.testing.assert_array_equal(image.ravel(), base)


def test_notes_question_four_by_offset_sums():
    """Receptive field of "33" on the 5×5 map, for first/second layer masks AA, AB, BA, BB."""
    def offsets(mask):  # 1-based (i, j) with centre (2, 2) reads input at (i − 2, j − 2)
        return [(i - 2, j - 2) for i in (1, 2, 3) for j in (1, 2, 3) if mask[i - 1, j - 1]]

    pixel = (2, 2)  # "33"; pixel ± 2 stays on the map, so no path is cut by padding
    fields = {}
    for first, second in itertools.product("AB", repeat=2):
        expected = {label(pixel[0] + o2[0] + o1[0], pixel[1] + o2[1] + o1[1])
                    for o2 in offsets(NOTES_MASK[second]) for o1 in offsets(NOTES_MASK[first])}
        fields[first + second] = field_labels(receptive_field(5, 5, pixel, first + second))
        assert fields[first + second] == expected, first + second

    # Facts checkable by hand.  Layer 2 at 33 reads layer 1 at 22 23 24 32 (A), plus 33 (B).
    # Layer 1 (A) at 22 reads 11 12 13 21; at 23: 12 13 14 22; at 24: 13 14 15 23; at 32: 21 22
    # 23 31; at 33: 22 23 24 32.  So AA = row 1, 21 22 23, 31 — nine pixels.
    assert fields["AA"] == {"11", "12", "13", "14", "15", "21", "22", "23", "31"}
    assert "33" not in fields["AA"] | fields["AB"] | fields["BA"] and "33" in fields["BB"]
    assert fields["AB"] == fields["BA"]  # offset sums commute: layer order does not matter here
    assert fields["BB"] == fields["AB"] | {"33"}
    # a second A layer loses the left neighbour 32 and 24 (both need a zero offset, B's centre)
    assert {"32", "24"} <= fields["AB"] and not {"32", "24"} & fields["AA"]
    # blind spot: 25 is offset (−1, +2); two offsets with column +1 each also have row −1, so
    # reaching column +2 forces row −2.  15 = (−2, +2) is inside, 25 outside, in every case.
    for field in fields.values():
        assert "15" in field and "25" not in field
        assert not {"34", "35"} & field and not any(name[0] in "45" for name in field)


@settings(max_examples=80)
@given(maps_and_pixels(max_side=9), stacks, odd_sizes)
def test_any_mask_a_hides_the_pixel_and_all_b_keeps_it(map_and_pixel, stack, k):
    height, width, pixel = map_and_pixel
    field = receptive_field(height, width, pixel, stack, k)
    raster = np.arange(height * width).reshape(height, width)
    here = pixel[0] * width + pixel[1]
    assert not field[raster > here].any()  # nothing after the pixel, ever
    assert field[pixel] == (stack == "B" * len(stack))
    if stack[0] == "A":
        assert not field[raster >= here].any()


@given(st.integers(1, 6), st.integers(0, 6), odd_sizes)
def test_field_never_enters_the_blind_spot(n_a_after_first, n_b, k):
    """With radius c = (k − 1)/2 every offset moves at most c columns right and, if it moves
    right at all, at least one row up; so an offset (−u, v) with v > c·u is never reached."""
    stack = "A" + "B" * n_b + "A" * (n_a_after_first - 1)
    radius = (k - 1) // 2
    reach = radius * len(stack)
    height, width = reach + 1, 2 * reach + radius + 2  # room for the checked pixel below
    pixel = (reach, reach)
    field = receptive_field(height, width, pixel, stack, k)
    for r, s in zip(*np.nonzero(field)):
        up, right = pixel[0] - r, s - pixel[1]
        assert right <= radius * up
    if k > 1:  # one row up, radius + 1 columns right: before the pixel, yet never seen
        assert not field[pixel[0] - 1, pixel[1] + radius + 1]


@given(st.integers(0, 4), st.integers(0, 4))
def test_closed_form_for_three_by_three_stacks(n_a, n_b):
    """k = 3, a layers A and b layers B, L = a + b, away from the borders.  An offset sum is u
    moves up (column −1, 0 or +1 each), h moves left (0, −1) and z stays (0, 0), with
    u + h + z = L and z ≤ b.  Row −u is reached at columns −L … u − max(0, L − u − b)."""
    length = n_a + n_b
    if length == 0:
        return
    stack = "A" * n_a + "B" * n_b
    height, width, pixel = length + 1, 2 * length + 1, (length, length)
    expected = np.zeros((height, width), dtype=bool)
    for up in range(length + 1):
        rightmost = up - max(0, length - up - n_b)
        for column in range(-length, rightmost + 1):
            expected[pixel[0] - up, pixel[1] + column] = True
    np.testing.assert_array_equal(receptive_field(height, width, pixel, stack), expected)


@pytest.mark.parametrize("call,error,words", [
    (lambda: causal_mask(4, "A"), ValueError, "kernel_size"),
    (lambda: causal_mask(0, "B"), ValueError, "kernel_size"),
    (lambda: causal_mask(3.0, "A"), TypeError, "kernel_size"),
    (lambda: causal_mask(3, "C"), ValueError, "mask_type"),
    (lambda: causal_mask(3, 1), TypeError, "mask_type"),
    (lambda: causal_mask(3, "A", dtype=object), TypeError, "dtype"),
    (lambda: receptive_field(5, 5, (2, 2), ""), ValueError, "mask_types"),
    (lambda: receptive_field(5, 5, (2, 2), []), ValueError, "mask_types"),
    (lambda: receptive_field(5, 5, (2, 2), "AX"), ValueError, "mask_types[1]"),
    (lambda: receptive_field(5, 5, (2, 2), 7), TypeError, "mask_types"),
    (lambda: receptive_field(5, 5, (5, 2), "AB"), ValueError, "pixel"),
    (lambda: receptive_field(5, 5, (-1, 2), "AB"), ValueError, "pixel"),
    (lambda: receptive_field(5, 5, (2,), "AB"), TypeError, "pixel"),
    (lambda: receptive_field(5, 5, (2.0, 2), "AB"), TypeError, "pixel"),
    (lambda: receptive_field(0, 5, (0, 0), "AB"), ValueError, "height"),
    (lambda: receptive_field(5, 5.5, (0, 0), "AB"), TypeError, "width"),
    (lambda: receptive_field(5, 5, (2, 2), "AB", kernel_size=2), ValueError, "kernel_size"),
    (lambda: masked_cross_correlation(np.ones((3, 3)), np.ones((2, 2)), "A"), ValueError,
     "kernel_size"),
    (lambda: masked_cross_correlation(np.ones(3), np.ones((3, 3)), "A"), ValueError, "image"),
    (lambda: masked_cross_correlation(np.ones((3, 3), np.float32), np.ones((3, 3)), "A"),
     TypeError, "dtype"),
    (lambda: masked_cross_correlation(np.ones((3, 3), int), np.ones((3, 3), int), "A"),
     TypeError, "image"),
])
def test_bad_arguments_are_named(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_demo_writes_pictures(tmp_path, capsys):
    import matplotlib.image

    fields_demo = demo("masked_receptive_fields")
    paths = fields_demo.main(fields_demo.parse_args(["--out", str(tmp_path)]))
    assert {p.name for p in paths} == {"receptive_fields.png", "blind_spot.png"}
    for path in paths:
        assert matplotlib.image.imread(path).std() > 0.05
    assert not list(tmp_path.glob("*.tmp*"))
    printed = capsys.readouterr().out
    assert "AA" in printed and "BB" in printed
