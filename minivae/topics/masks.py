"""Masked convolutions (PixelCNN masks A and B) and the receptive fields they produce.

An autoregressive image model factorizes p(x) = Πᵢ p(xᵢ | x₁ … xᵢ₋₁) over the pixels in
raster order (row by row, left to right).  A convolution can respect that order if every kernel
weight that would look at the current pixel or a later one is multiplied by zero.  For a k×k
kernel with centre c = (k − 1)/2 (0-based) the two masks are

    M^A[a, b] = 1  if a < c,  or a = c and b < c      (centre excluded)
    M^B[a, b] = 1  if a < c,  or a = c and b ≤ c      (centre included)

and 0 elsewhere.  Mask A goes on the first layer, where the output at a pixel must not see that
pixel's own input value; mask B on later layers, where the feature at a pixel already summarizes
only earlier pixels and may be reused.

Conventions (the whole module):

* cross-correlation, no kernel flipping:  y[r, s] = Σ_{a,b} (M ⊙ W)[a, b] · x[r + a − c, s + b − c];
  so kernel entry (a, b) reads the input at offset (a − c, b − c) from the output pixel;
* zero padding of (k − 1)/2 on each border: the output has the input's size, and positions
  outside the map hold constants, never an input value;
* indices are 0-based (row, col).  The notes number a 5×5 map 11 … 55 from 1, so their pixel
  "33" is (2, 2) here.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from minivae import checks

MASK_TYPES = ("A", "B")


def _check_kernel_size(kernel_size) -> int:
    kernel_size = checks.int_at_least(kernel_size, "kernel_size")
    checks.require(kernel_size % 2 == 1, "kernel_size", "odd (a kernel needs a centre)",
                   kernel_size)
    return kernel_size


def _check_mask_type(mask_type, argument: str = "mask_type") -> str:
    if not isinstance(mask_type, str):
        raise TypeError(f"{argument} must be the string 'A' or 'B', "
                        f"got {type(mask_type).__name__}")
    if mask_type not in MASK_TYPES:
        raise ValueError(f"{argument} must be 'A' or 'B', got {mask_type!r}")
    return mask_type


def _check_mask_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"dtype must be a boolean, integer or float dtype, got {dtype}")
    return dtype


def causal_mask(kernel_size: int, mask_type: str, dtype=np.int8) -> np.ndarray:
    """The (k, k) PixelCNN mask of type 'A' or 'B', entries 0 and 1.

    With c = (k − 1)/2 (0-based centre):
        M^A[a, b] = 1 ⇔ a < c or (a = c and b < c)
        M^B[a, b] = 1 ⇔ a < c or (a = c and b ≤ c)
    so M^B = M^A + e_c e_cᵀ.  For k = 3 (the notes' 1-based i, j < 2 is 0-based a, b < 1):
        M^A = [[1 1 1], [1 0 0], [0 0 0]],   M^B = [[1 1 1], [1 1 0], [0 0 0]].

    dtype: int8 by default.  It prints as the 0/1 matrix of the notes, and multiplying a kernel
    by it keeps the kernel's dtype (float32 ⊙ int8 → float32, float64 ⊙ int8 → float64), so
    masking never upcasts.  Pass dtype=bool to index with it, or a float dtype to match a kernel.
    The (k, k) mask broadcasts over leading (out-channel, in-channel) axes of a kernel.

    Verified by: tests/topics/test_masks.py::test_masks_match_the_notes_for_k3
    Verified by: ::test_mask_is_raster_causal_for_every_odd_size
    """
    kernel_size, mask_type = _check_kernel_size(kernel_size), _check_mask_type(mask_type)
    dtype = _check_mask_dtype(dtype)
    centre = (kernel_size - 1) // 2
    rows, cols = np.indices((kernel_size, kernel_size))
    allowed = (rows < centre) | ((rows == centre) & (cols < centre))
    if mask_type == "B":
        allowed |= (rows == centre) & (cols == centre)
    return allowed.astype(dtype)


def allowed_offsets(kernel_size: int, mask_type: str) -> list[tuple[int, int]]:
    """The offsets (a − c, b − c) from an output pixel to the inputs a masked layer reads.

    {(a − c, b − c) : M[a, b] = 1}; for k = 3 mask A gives (−1, −1), (−1, 0), (−1, 1), (0, −1)
    and mask B adds (0, 0).

    Verified by: tests/topics/test_masks.py::test_allowed_offsets_are_the_mask_support
    """
    mask = causal_mask(kernel_size, mask_type, dtype=bool)
    centre = (mask.shape[0] - 1) // 2
    return [(int(a) - centre, int(b) - centre) for a, b in zip(*np.nonzero(mask))]


def _check_mask_types(mask_types) -> tuple[str, ...]:
    if isinstance(mask_types, str):
        mask_types = tuple(mask_types)  # "AB" is the stack A then B
    if not isinstance(mask_types, Sequence):
        raise TypeError(f"mask_types must be a string such as 'AB' or a sequence of 'A'/'B', "
                        f"got {type(mask_types).__name__}")
    if len(mask_types) == 0:
        raise ValueError("mask_types must name at least one layer, got an empty stack")
    return tuple(_check_mask_type(t, f"mask_types[{i}]") for i, t in enumerate(mask_types))


def _check_pixel(pixel, height: int, width: int) -> tuple[int, int]:
    if (not isinstance(pixel, Sequence) or len(pixel) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pixel)):
        raise TypeError(f"pixel must be a (row, col) pair of ints, got {pixel!r}")
    row, col = int(pixel[0]), int(pixel[1])
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"pixel must lie in the {height}×{width} map with 0-based indices "
                         f"0 ≤ row < {height}, 0 ≤ col < {width}; got {(row, col)}")
    return row, col


def receptive_field(height: int, width: int, pixel: tuple[int, int], mask_types,
                    kernel_size: int = 3) -> np.ndarray:
    """Which input pixels the output at ``pixel`` depends on, through a stack of masked layers.

    ``mask_types`` lists the layers from the input side: "AB" (or ["A", "B"]) is mask A on the
    first layer and mask B on the second.  ``pixel`` is a 0-based (row, col).  Returns a boolean
    (height, width) array over the input map, True where the input value can change the output.

    Dependence is propagated backwards.  Let D_L = {pixel} at the last layer's output.  Layer ℓ
    with allowed offsets O_ℓ (see ``allowed_offsets``) makes its output at q depend on its
    input at q + o, o ∈ O_ℓ, so
        D_{ℓ−1} = {q + o : q ∈ D_ℓ, o ∈ O_ℓ} ∩ map,
    and the field is D_0.  The intersection is taken at every layer: a zero-padded position
    holds a constant, so no path through it carries an input value.  Away from the borders
    D_0 = p + O_1 + … + O_L (a Minkowski sum, so the order of the layers does not matter there).

    Verified by: tests/topics/test_masks.py::test_receptive_field_matches_perturbing_a_real_network
    Verified by: ::test_notes_question_four_by_offset_sums
    Verified by: ::test_any_mask_a_hides_the_pixel_and_all_b_keeps_it
    """
    height, width = checks.int_at_least(height, "height"), checks.int_at_least(width, "width")
    kernel_size, layers = _check_kernel_size(kernel_size), _check_mask_types(mask_types)
    row, col = _check_pixel(pixel, height, width)

    depends = np.zeros((height, width), dtype=bool)
    depends[row, col] = True
    for mask_type in reversed(layers):
        earlier = np.zeros_like(depends)
        for di, dj in allowed_offsets(kernel_size, mask_type):
            if abs(di) >= height or abs(dj) >= width:
                continue  # the kernel reaches past the whole map: only padding there
            # earlier[q + o] |= depends[q], for every q with q + o inside the map
            earlier[max(di, 0):height + min(di, 0), max(dj, 0):width + min(dj, 0)] |= \
                depends[max(-di, 0):height + min(-di, 0), max(-dj, 0):width + min(-dj, 0)]
        depends = earlier
    return depends


def _check_image_and_kernel(image, kernel) -> tuple[np.ndarray, np.ndarray]:
    """An (H, W) image and a (k, k) kernel, float arrays of one dtype."""
    image, kernel = np.asarray(image), np.asarray(kernel)
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"image must be a non-empty 2-D array (H, W), got shape {image.shape}")
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        raise ValueError(f"kernel must be a square 2-D array (k, k), got shape {kernel.shape}")
    for name, array in (("image", image), ("kernel", kernel)):
        if array.dtype.kind != "f":
            raise TypeError(f"{name} must be a float array, got dtype {array.dtype}")
    checks.same_dtype(image, kernel, "image and kernel")
    return image, kernel


def masked_cross_correlation(image: np.ndarray, kernel: np.ndarray, mask_type: str) -> np.ndarray:
    """One masked single-channel layer: y = (M ⊙ W) ⋆ x with zero padding (k − 1)/2.

        y[r, s] = Σ_{a,b} M[a, b] · W[a, b] · x̃[r + a, s + b],
    where x̃ is x padded by c = (k − 1)/2 zeros on each border, so y has x's shape.  No kernel
    flip (cross-correlation, as in the notes).  The output has the inputs' common float dtype.

    Verified by: tests/topics/test_masks.py::test_masked_cross_correlation_matches_the_sum
    """
    image, kernel = _check_image_and_kernel(image, kernel)
    kernel_size = kernel.shape[0]
    masked = kernel * causal_mask(kernel_size, mask_type)  # which checks that k is odd
    centre = (kernel_size - 1) // 2
    padded = np.pad(image, centre)
    height, width = image.shape
    out = np.zeros_like(image)
    for a, b in zip(*np.nonzero(masked)):  # a sum of shifted copies, one per kept weight
        out += masked[a, b] * padded[a:a + height, b:b + width]
    return out
