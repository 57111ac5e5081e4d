"""The contract every public entry point keeps, and the inputs that probe it.

Whatever arrives — wrong shapes, the wrong dtype, NaN, ±inf, huge or tiny numbers — a call to
minivae either returns values with no NaN in them (and no ±inf unless infinity is the exact
answer), or raises ValueError or TypeError with a message.  Anything else (a NaN that slips
through, an IndexError from deep inside NumPy, a FloatingPointError, a crash) breaks it.

``check_contract`` runs one call and enforces this; it also counts the cases, and
tests/conftest.py prints the totals at the end of the run (docs/RELIABILITY.md quotes them).
"""
from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae.engine.tensor import Tensor

# entry point → Counter({"finite": n, "raised": m})
CASES: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

EXTREMES = (0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 1e-30, 1e4, -1e4, 50.0, -50.0, 1e30, -1e30,
            1e300, -1e300)
NON_FINITE = (math.nan, math.inf, -math.inf)


def _walk(value, path="result"):
    """Yield (path, float ndarray) for every floating-point array or number inside ``value``."""
    if isinstance(value, Tensor):
        yield path, value.data
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            yield path, value
    elif isinstance(value, (float, np.floating)):
        yield path, np.asarray(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name), f"{path}.{field.name}")


def assert_no_nan(value, allow_inf: bool = False, name: str = "result") -> None:
    """Fail if any floating-point number inside ``value`` is NaN (or ±inf, unless allowed)."""
    for path, array in _walk(value, name):
        if np.isnan(array).any():
            raise AssertionError(f"{path} holds NaN")
        if not allow_inf and np.isinf(array).any():
            raise AssertionError(f"{path} holds ±inf")


def check_contract(name: str, call, *args, allow_inf: bool = False, **kwargs):
    """Run ``call(*args, **kwargs)``: it must return NaN-free values or raise ValueError/TypeError.

    Returns the result, or None when the call raised (the error's message must not be empty).
    ``allow_inf`` admits ±inf in the result where infinity is the exact answer (a log-density
    outside the support, a KL against a bounded support).
    """
    try:
        with np.errstate(all="ignore"):  # a warning is not the contract; the values are
            result = call(*args, **kwargs)
    except (ValueError, TypeError) as error:
        assert str(error).strip(), f"{name} raised {type(error).__name__} with no message"
        CASES[name]["raised"] += 1
        return None
    assert_no_nan(result, allow_inf=allow_inf, name=name)
    CASES[name]["finite"] += 1
    return result


def floats(allow_non_finite: bool = True, width: int = 64):
    """Any float, with the extremes and (optionally) NaN/±inf drawn often."""
    info = np.finfo(np.float32 if width == 32 else np.float64)
    # only numbers the dtype holds, so drawing them does not itself overflow or underflow
    tiny, largest = float(info.tiny), float(info.max)
    representable = tuple(x for x in EXTREMES if x == 0 or tiny <= abs(x) <= largest)
    special = st.sampled_from(representable + (NON_FINITE if allow_non_finite else ()))
    ordinary = st.floats(allow_nan=allow_non_finite, allow_infinity=allow_non_finite,
                         width=width)
    return st.one_of(special, ordinary)


def arrays(dtype=None, shape=None, min_dims: int = 0, max_dims: int = 3, max_side: int = 4,
           allow_non_finite: bool = True):
    """Float arrays of a random (or given) shape and dtype, with extreme and non-finite entries."""
    dtypes = st.sampled_from([np.float32, np.float64]) if dtype is None else st.just(dtype)
    shapes = (hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0,
                               max_side=max_side) if shape is None else st.just(shape))

    @st.composite
    def build(draw):
        kind = np.dtype(draw(dtypes))
        width = 32 if kind == np.float32 else 64
        elements = floats(allow_non_finite, width=width)
        return draw(hnp.arrays(kind, draw(shapes), elements=elements))

    return build()


def anything():
    """Values of the wrong kind altogether: None, strings, ints, bools, lists, objects."""
    return st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5), st.booleans(),
                     st.lists(st.floats(allow_nan=True), max_size=3), st.just(object()))


# sizes, counts and iterations: a few valid ones, zero and −1, and values of the wrong kind
COUNTS = st.one_of(st.integers(-1, 4), st.integers(1, 3), anything(), floats())
# three valid batches of 4 binary pixels
BINARY = (np.arange(12).reshape(3, 4) % 2).astype(np.float64)


def batches(binary: np.ndarray = BINARY):
    """Mostly well shaped batches (``binary``, or random rows with extreme or non-finite
    values), or anything else."""
    shaped = arrays(np.float64, shape=st.integers(0, 3).map(lambda b: (b, binary.shape[1])))
    return st.one_of(st.just(binary), st.just(binary[:1]), shaped, arrays(), anything())


def summary() -> str:
    """One line per entry point and a total, for the end of the test run."""
    if not CASES:
        return ""
    finite = sum(c["finite"] for c in CASES.values())
    raised = sum(c["raised"] for c in CASES.values())
    return (f"fuzz contract: {finite + raised} cases over {len(CASES)} entry points "
            f"({finite} returned NaN-free values, {raised} raised ValueError/TypeError)")


def wild():
    """Any value an argument might receive by mistake: wrong kinds, odd counts, extreme or
    non-finite floats and arrays of any shape."""
    return st.one_of(anything(), COUNTS, floats(), arrays())


@dataclasses.dataclass(frozen=True)
class Entry:
    """One public entry point for the fuzz: ``call(**valid)`` is a valid call; the fuzz swaps
    any of its arguments for a value from ``wild[name]`` (default ``wild()``)."""
    name: str
    call: object
    valid: dict
    wild: dict = dataclasses.field(default_factory=dict)
    allow_inf: bool = False

    def __repr__(self) -> str:  # the test id
        return self.name


def variants(entry: Entry):
    """Keyword arguments for ``entry.call``: each argument keeps its valid value (three times
    in four) or is replaced by a wild one, so single and combined mistakes are both drawn."""
    keep = st.sampled_from([True, True, True, False])

    @st.composite
    def build(draw):
        return {name: value if draw(keep) else draw(entry.wild.get(name, wild()))
                for name, value in entry.valid.items()}

    return build()


def _fresh(kwargs: dict) -> dict:
    # kernels and optimizers write into their arrays: every call gets its own copies
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


def check_entry(entry: Entry, kwargs: dict):
    """``check_contract`` for one drawn call of ``entry``."""
    return check_contract(entry.name, lambda: entry.call(**_fresh(kwargs)),
                          allow_inf=entry.allow_inf)


def check_valid_entry(entry: Entry):
    """The valid call itself returns NaN-free values (so a fuzz that only ever raised would not
    pass unnoticed)."""
    result = entry.call(**_fresh(entry.valid))
    assert_no_nan(result, allow_inf=entry.allow_inf, name=entry.name)
    return result
