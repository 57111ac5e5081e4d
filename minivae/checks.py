"""Argument checks: one line per argument at the top of a public function.

Each check returns the value it accepted (converted where that helps, e.g. an ``int`` from a
NumPy integer), or raises ``ValueError``/``TypeError`` with a message that names the argument,
says what was expected and shows what arrived:

    n, rng = checks.positive_int(n, "n"), checks.generator(rng)

``TypeError`` means the wrong kind of thing (a string for a size, a float64 array given to a
float32 model); ``ValueError`` the right kind with a bad value (a negative size, a NaN pixel).
This module imports nothing from minivae, so every layer can use it; Tensors are accepted
wherever an array is, through their ``.data``.

Verified by: tests/test_checks.py::test_each_check_names_the_argument
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SUPPORTS = ("real", "binary", "unit_interval")  # what a model's data may hold


def values(value) -> np.ndarray:
    """The numbers of ``value``: an ndarray as it is, a Tensor's ``.data``, else np.asarray."""
    if isinstance(value, np.ndarray):
        return value
    data = getattr(value, "data", None)
    return data if isinstance(data, np.ndarray) else np.asarray(value)


# -- sizes, flags, choices --------------------------------------------------------------------
def positive_int(value, name: str, optional: bool = False) -> int | None:
    """``value`` as an int ≥ 1 (None too with ``optional``); bools are not sizes."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if optional else ''}, "
                         f"got {value!r}")
    return int(value)


def integer(value, name: str, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum``; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def widths(hidden, name: str = "hidden") -> tuple[int, ...]:
    """Hidden-layer widths as a tuple of ints ≥ 1 (one int means one layer); may be empty."""
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (tuple, list, np.ndarray)):
        raise TypeError(f"{name} must be an int or a sequence of ints (layer widths), got "
                        f"{hidden!r}")
    return tuple(positive_int(width, f"every {name} width") for width in hidden)


def flag(value, name: str) -> bool:
    """``value`` as a bool; no truthy strings or numbers."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def one_of(value, options, name: str):
    """``value`` if it is one of ``options``."""
    try:
        known = value in options
    except TypeError:  # an unhashable value cannot be in a set or dict
        known = False
    if not known:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


def real(value, name: str, low: float = -math.inf, high: float = math.inf,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (ends included
    unless ``low_open``/``high_open``); bools and strings are not numbers."""
    number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    inside = number and math.isfinite(value) and (
        (low < value if low_open else low <= value)
        and (value < high if high_open else value <= high))
    if not inside:
        interval = (f"{'(' if low_open or low == -math.inf else '['}{_end(low)}, "
                    f"{_end(high)}{')' if high_open or high == math.inf else ']'}")
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def number(value, name: str):
    """``value``, unconverted (a NumPy float64 keeps its precision), if it is a finite real
    number: a TypeError for a string, a bool or None, a ValueError for NaN or ±∞."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _end(x: float) -> str:
    return "∞" if x == math.inf else "−∞" if x == -math.inf else f"{x:g}"


def generator(rng, name: str = "rng", optional: bool = False) -> np.random.Generator | None:
    """``rng`` if it is a numpy.random.Generator (None too with ``optional``)."""
    if optional and rng is None:
        return None
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed))"
                        f"{' or None' if optional else ''}, got {type(rng).__name__}")
    return rng


def has_methods(obj, methods, name: str = "model") -> None:
    """A TypeError naming the methods in ``methods`` that ``obj`` lacks."""
    missing = [method for method in methods if not callable(getattr(obj, method, None))]
    if missing:
        raise TypeError(f"{name} must have the methods {', '.join(methods)}; "
                        f"{type(obj).__name__} lacks {', '.join(missing)}")


# -- dtypes and arrays ------------------------------------------------------------------------
def float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """``dtype`` as np.float32 or np.float64 (None, ints and everything else refused)."""
    try:
        # np.dtype(None) means float64; here None is a mistake, not a default.
        resolved = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        resolved = None
    if resolved is None or resolved not in FLOAT_DTYPES:  # (dtype == None is True for float64)
        raise TypeError(f"{name} must be float32 or float64 (np.float32 or np.float64), "
                        f"got {dtype!r}")
    return resolved


def float_array(data, dtype=None) -> np.ndarray:
    """``data`` (numbers, arrays, a Tensor) as a float32 or float64 array: ``dtype`` if given,
    else its own float dtype, else float64 (Python numbers, bools and integers)."""
    dtype = None if dtype is None else float_dtype(dtype)
    # Look at what arrived before converting: np.asarray(None, dtype=float) would be NaN and
    # np.asarray("1", dtype=float) a number, silently.
    array = values(data)
    other_float = array.dtype.kind == "f" and array.dtype not in FLOAT_DTYPES
    if array.dtype.kind not in "fbiu" or (other_float and dtype is None):
        raise TypeError(f"Tensor data must be float32 or float64 (or integers), "
                        f"got {array.dtype} from {type(data).__name__}")
    if dtype is not None:
        return array.astype(dtype, copy=False)
    return array if array.dtype in FLOAT_DTYPES else array.astype(np.float64)


def array(value, name: str, dtype, ndim: int, shape: str) -> np.ndarray:
    """``value`` if it is an ndarray of ``dtype`` with ``ndim`` axes (``shape`` says them in
    words, e.g. "(N, H, W)"), else a TypeError."""
    if not isinstance(value, np.ndarray) or value.dtype != dtype or value.ndim != ndim:
        raise TypeError(f"{name} must be a {np.dtype(dtype)} array of shape {shape}, got "
                        f"{describe(value)}")
    return value


def in_dtype(value, dtype, name: str, whose: str) -> np.ndarray:
    """The numbers of ``value`` (an array, a Tensor, a list) as an array of ``dtype``:
    integers and bools are converted, a float array of another precision is a TypeError
    (``whose`` says whose dtype it must have, e.g. "the logits'")."""
    data = values(value)
    if data.dtype.kind in "biu":
        return data.astype(dtype)
    if data.dtype != dtype:
        raise TypeError(f"{name} must have {whose} dtype {np.dtype(dtype)} (or be integers), "
                        f"got {data.dtype}")
    return data


def describe(value) -> str:
    """What arrived, for a message: an array's dtype and shape, else the type's name."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def require(condition, name: str, expected: str, value) -> None:
    """``ValueError("<name> must be <expected>, got ...")`` unless every entry of
    ``condition`` holds; the message shows up to three offending entries of ``value``.

    NaN fails every comparison, so a NaN is reported by range checks as well.
    """
    if not np.all(condition):
        data = values(value)
        bad = data[~np.broadcast_to(np.asarray(condition), data.shape)] if data.ndim else data
        shown = np.array2string(np.asarray(bad).ravel()[:3], precision=4)
        raise ValueError(f"{name} must be {expected}, got {shown}"
                         f"{' (and more)' if np.size(bad) > 3 else ''}")


def finite(value, name: str) -> None:
    """A ValueError naming ``name`` and the index of its first NaN or ±∞, if there is one."""
    data = values(value)
    is_finite = np.isfinite(data)
    if not is_finite.all():
        index = tuple(int(i) for i in np.argwhere(~is_finite)[0])
        raise ValueError(f"{name} must be finite, got {data[index]} at index {index}")


def log_density(value, name: str) -> np.ndarray:
    """``value`` as a float64 array of log-densities: −∞ (density 0) is a value, NaN and +∞
    are not; a TypeError for what is not real numbers."""
    data = values(value)
    if data.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real numbers (log-densities), got {describe(value)}")
    require(data < np.inf, name, "log-densities (−∞ allowed; no NaN or +∞)", data)
    return data.astype(np.float64)


def finite_float_array(value, name: str, matrix: bool = False) -> np.ndarray:
    """``value`` if it is a float32/float64 array of finite numbers (a TypeError for another
    kind, a ValueError naming the first NaN or ±∞); with ``matrix``, of shape (N, D), N, D ≥ 1."""
    if not isinstance(value, np.ndarray) or value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got {describe(value)}")
    if matrix:
        shape(value.ndim == 2 and min(value.shape) >= 1, name, "(N, D) with N, D ≥ 1",
              value.shape)
    finite(value, name)
    return value


def output_array(out, like: np.ndarray, name: str = "out") -> np.ndarray:
    """``out`` if results shaped like ``like`` can be written into it: a C-contiguous array of
    ``like``'s shape and dtype that shares no memory with it (a fresh one for None)."""
    if out is None:
        return np.empty(like.shape, like.dtype)
    if (not isinstance(out, np.ndarray) or out.shape != like.shape or out.dtype != like.dtype
            or not out.flags.c_contiguous or np.shares_memory(out, like)):
        raise ValueError(f"{name} must be a C-contiguous array of shape {like.shape} and dtype "
                         f"{like.dtype}, apart from the input, got {describe(out)}")
    return out


def unit_interval(pixels, name: str = "pixels") -> np.ndarray:
    """``pixels`` if it is a float32/float64 array with every value in [0, 1].  Two reductions
    rather than an elementwise mask, since this runs on a whole training set every epoch (and
    a NaN makes min and max NaN, which fails both comparisons)."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got {describe(pixels)}")
    if pixels.size and not (pixels.min() >= 0 and pixels.max() <= 1):
        raise ValueError(f"{name} must be finite intensities in [0, 1], got values in "
                         f"[{pixels.min()}, {pixels.max()}]")
    return pixels


def batch(x, x_dim: int, dtype, support: str = "real") -> None:
    """A model's input: a finite (batch, x_dim) array (or Tensor) of the model's dtype,
    batch ≥ 1, with values in ``support``: "real", "binary" ({0, 1}, a Bernoulli decoder's
    outcomes) or "unit_interval" ([0, 1], its soft targets).

    It runs on every training batch, so a valid batch costs one vectorized pass (a value in
    {0, 1} or [0, 1] is finite, and NaN fails every comparison); the slower diagnosis runs
    only to word the error.
    """
    data = x if isinstance(x, np.ndarray) else getattr(x, "data", None)
    if not isinstance(data, np.ndarray):
        raise TypeError(f"x must be a numpy array or Tensor, got {type(x).__name__}")
    if data.ndim != 2 or data.shape[1] != x_dim or data.shape[0] < 1:
        raise ValueError(f"x must have shape (batch, {x_dim}) with batch ≥ 1, got {data.shape}")
    if data.dtype != dtype:
        raise TypeError(f"x must have dtype {dtype} (the model's), got {data.dtype}")
    if support == "binary":
        valid = ((data == 0) | (data == 1)).all()
    elif support == "unit_interval":
        valid = ((data >= 0) & (data <= 1)).all()
    else:
        valid = np.isfinite(data).all()
    if valid:
        return
    finite(data, "x")
    low, high = data.min(), data.max()
    if support == "binary":
        raise ValueError("x must hold binary pixels 0/1 for a Bernoulli decoder; pass "
                         "soft_targets=True to use values in [0, 1]; got values in "
                         f"[{low}, {high}]")
    raise ValueError("x must hold values in [0, 1] for a Bernoulli decoder with "
                     f"soft_targets=True; got values in [{low}, {high}]")


def sample_shape(shape) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints (an int n means (n,))."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    if not all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape):
        raise ValueError(f"shape must contain non-negative ints, got {shape!r}")
    return tuple(int(n) for n in shape)


def int_at_least(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``: a TypeError for what is not an int (a float or a bool
    too), a ValueError for a smaller one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def positive(value, name: str, number: bool = False, optional: bool = False):
    """``value`` if every entry of it (a number, an array, a Tensor) is positive and finite;
    with ``number`` it must be one real number, returned as a float (None too with
    ``optional``).  A TypeError for what is not real numbers (a string, a bool, None), a
    ValueError for an entry ≤ 0, NaN or ±∞."""
    if optional and value is None:
        return None
    data = values(value)
    if data.dtype.kind not in "iuf" or (number and data.ndim > 0):
        raise TypeError(f"{name} must be a positive real number{'' if number else ' or array'}"
                        f"{' or None' if optional else ''}, got {type(value).__name__}")
    require((data > 0) & np.isfinite(data), name, "positive and finite", data)
    return float(data) if number else value


def same_rows(x, name: str = "x") -> tuple[np.ndarray, ...]:
    """``x`` (an array, or a non-empty tuple of arrays) as a tuple of arrays of ≥ 1 dimension
    that share their first dimension N."""
    arrays = x if isinstance(x, tuple) else (x,)
    if not arrays:
        raise ValueError(f"{name} must be an array or a non-empty tuple of arrays, got ()")
    for i, item in enumerate(arrays):
        if not isinstance(item, np.ndarray) or item.ndim == 0:
            where = f"{name}[{i}]" if isinstance(x, tuple) else name
            raise TypeError(f"{where} must be a numpy array with at least one dimension, got "
                            f"{describe(item)}")
    if any(len(item) != len(arrays[0]) for item in arrays):
        raise ValueError(f"the arrays in {name} must have the same length, got "
                         f"{[len(item) for item in arrays]}")
    return arrays


def broadcast(shapes, name: str) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to, or ``ValueError("<name> must broadcast, got
    shapes A and B")``; ``name`` says whose shapes they are ("loc and scale")."""
    try:
        return np.broadcast_shapes(*(tuple(shape) for shape in shapes))
    except ValueError:
        raise ValueError(f"{name} must broadcast, got shapes "
                         f"{' and '.join(str(tuple(shape)) for shape in shapes)}") from None


def shape(condition, name: str, expected: str, got) -> None:
    """``ValueError("<name> must have shape <expected>, got <got>")`` unless ``condition``;
    ``expected`` says the shape in words, e.g. "(N, 3)" or "(..., 4, 2) for x of shape (4, 6)"."""
    if not condition:
        raise ValueError(f"{name} must have shape {expected}, got {got}")


def same_dtype(a, b, names: str) -> None:
    """A TypeError unless ``a`` and ``b`` (arrays or Tensors) share one dtype: nothing is
    promoted, float32 work must not run in float64 silently; ``names`` says them ("p and q")."""
    if a.dtype != b.dtype:
        raise TypeError(f"{names} must share one dtype, got {a.dtype} and {b.dtype}")


def function(value, name: str, signature: str = ""):
    """``value`` if it is callable; ``signature`` says what it maps, e.g. "x -> Tensor"."""
    if not callable(value):
        raise TypeError(f"{name} must be callable{f' ({signature})' if signature else ''}, "
                        f"got {type(value).__name__}")
    return value
