"""The kernels' argument contract, checked once in ``minivae.kernels`` for every backend.

The loops (``reference.py``, its numba compilation, the C twin) trust their arguments: they
read and write without bounds checks.  These helpers turn what a caller passes into what the
loops take, or say precisely what is wrong:

* ``TypeError``: a dtype other than float32/float64, arrays of mixed dtypes (nothing is
  promoted: float32 work must not silently run in float64), an output that is not an array;
* ``ValueError``: a wrong shape or number of dimensions, an unknown activation, a bad block
  size, an in-place buffer that is not 1-D, C-contiguous, writable and apart from the others.

Strided inputs are copied to C-contiguous arrays once, rather than compiled for.

Verified by: tests/kernels/test_contract.py::test_mixed_dtypes_are_rejected_not_promoted,
::test_shapes_are_checked,
tests/kernels/test_optimizers.py::test_optimizer_buffers_must_be_flat_contiguous_and_writable,
tests/kernels/test_bias_act.py::test_outputs_that_overlap_or_are_strided_get_a_scratch_array
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.kernels.reference import ACTIVATIONS

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
# Stand-ins for absent optional arrays, so one compiled version of a loop serves both cases.
_ABSENT = {(dtype, ndim): np.empty((0,) * ndim, dtype) for dtype in FLOAT_DTYPES
           for ndim in (1, 2)}


def float_arrays(optional: tuple[str, ...] = (), **arrays) -> tuple[np.dtype, list]:
    """C-contiguous versions of the named arrays, which must share one dtype, float32 or
    float64 (the first one named sets it); an ``optional`` array given as None stays None."""
    for name, array in arrays.items():
        if array is None and name not in optional:
            raise TypeError(f"{name} must be a float32 or float64 array, got None")
    converted = [None if array is None else np.ascontiguousarray(array)
                 for array in arrays.values()]
    first_name, dtype = next(iter(arrays)), converted[0].dtype
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{first_name} must be a float32 or float64 array, got dtype {dtype}")
    for name, array in zip(arrays, converted):
        if array is not None and array.dtype != dtype:
            raise TypeError(f"{name} must have the dtype of {first_name} ({dtype}), "
                            f"got {array.dtype}")
    return dtype, converted


def matrix(name: str, array: np.ndarray) -> tuple[int, int]:
    """The (rows, columns) of a 2-D array."""
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    return array.shape


def shape(name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if array.shape != expected:
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")


def repeated_rows(name: str, array: np.ndarray, rows: int, cols: int) -> None:
    """A (R, cols) array whose R rows repeat to fill ``rows``: R divides rows (R = rows: one
    target row per row; none only when there are no rows)."""
    if not (array.ndim == 2 and array.shape[1] == cols
            and (array.shape[0] == rows or (array.shape[0] > 0 and rows % array.shape[0] == 0))):
        raise ValueError(f"{name} must have shape ({rows}, {cols}), or (R, {cols}) with R "
                         f"dividing {rows} (repeated rows), got {array.shape}")


def shapes(expected: tuple[int, ...], **arrays: np.ndarray | None) -> None:
    """Each named array has the ``expected`` shape (None, an absent optional array, passes)."""
    for name, array in arrays.items():
        if array is not None:
            shape(name, array, expected)


def activation_code(activation: str, slope) -> tuple[int, float]:
    """The loops' integer code for an activation name, and leaky_relu's slope as a number."""
    try:
        code = _ACTIVATION_CODES[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}") from None
    return code, checks.real(slope, "slope")


def or_absent(array: np.ndarray | None, dtype: np.dtype, ndim: int) -> np.ndarray:
    """``array``, or for None the empty stand-in that the loops take with a False flag."""
    return _ABSENT[dtype, ndim] if array is None else array


def output(name: str, out, expected: tuple[int, ...], dtype: np.dtype,
           *inputs: np.ndarray, may_be: np.ndarray | None = None) -> np.ndarray:
    """Where a loop should write a caller's ``out``: ``out`` itself when it is C-contiguous
    and overlaps none of ``inputs`` (except ``may_be`` when ``out`` is that very array: an
    elementwise loop may overwrite its own input), else a scratch array to copy from."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    shape(name, out, expected)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable")
    direct = out.flags.c_contiguous and all(
        (array is may_be and out is array) or not np.may_share_memory(out, array)
        for array in inputs)
    return out if direct else np.empty(expected, dtype)


def in_place_buffers(written: dict[str, object], read: dict[str, object]) -> np.dtype:
    """The optimizer kernels' buffers: 1-D, C-contiguous, one float dtype, one size; the
    written ones writable and sharing memory with no other argument.  Returns the dtype."""
    arrays = {**written, **read}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    first_name, first = next(iter(written.items()))
    dtype, size = first.dtype, first.size
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{first_name} must be a float32 or float64 array, got dtype {dtype}")
    for name, array in arrays.items():
        if array.dtype != dtype:
            raise TypeError(f"{name} must have the dtype of {first_name} ({dtype}), "
                            f"got {array.dtype}")
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError(f"{name} must be a 1-D C-contiguous buffer, got shape "
                             f"{array.shape} with strides {array.strides}")
        if array.size != size:
            raise ValueError(f"{name} must have {size} elements like {first_name}, "
                             f"got {array.size}")
    for name, array in written.items():
        if not array.flags.writeable:
            raise ValueError(f"{name} must be writable: it is updated in place")
        for other_name, other in arrays.items():
            if other_name != name and np.may_share_memory(array, other):
                raise ValueError(f"{name} and {other_name} must not share memory")
    return dtype


def step_settings(**settings) -> None:
    """The optimizer kernels' numbers, as the optimizers check them: ``lr`` and ``eps``
    positive, ``beta1``, ``beta2`` and ``momentum`` in [0, 1), ``step`` an int ≥ 1 (Adam's bias
    corrections divide by 1 − β^t), ``first_step`` a bool."""
    for name, value in settings.items():
        if name == "step":
            checks.int_at_least(value, name, 1)
        elif name == "first_step":
            checks.flag(value, name)
        elif name in ("lr", "eps"):
            checks.positive(value, name, number=True)
        else:
            checks.real(value, name, 0, 1, high_open=True)


def matmul_operands(a, b) -> tuple[np.dtype, np.ndarray, np.ndarray]:
    dtype, (a, b) = float_arrays(a=a, b=b)
    matrix("a", a)
    matrix("b", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a's columns must match b's rows, got shapes {a.shape} and {b.shape}")
    return dtype, a, b


def block_size(block) -> int:
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    return int(block)
