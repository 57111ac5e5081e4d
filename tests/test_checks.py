"""The argument checks every public function starts with: what each accepts, and that a
refusal is a ValueError or TypeError naming the argument and showing what arrived."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae import Tensor, checks

NAME = "some_argument"


def refuses(kind, call, *args, shown=None, **kwargs):
    """``call`` raises ``kind`` whose message names the argument (and shows ``shown``)."""
    with pytest.raises(kind) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert NAME in message, message
    if shown is not None:
        assert shown in message, message


@given(value=st.integers(-5, 5))
def test_integers_are_accepted_exactly_from_the_minimum(value):
    if value >= 1:
        assert checks.positive_int(value, NAME) == value
        assert checks.positive_int(np.int64(value), NAME) == value
    else:
        refuses(ValueError, checks.positive_int, value, NAME, shown=repr(value))
    if value >= 2:
        assert checks.integer(value, NAME, 2) == value
    else:
        refuses(ValueError, checks.integer, value, NAME, 2, shown="≥ 2")


def test_each_check_names_the_argument():
    for bad in (True, 2.0, "3", None):
        refuses(ValueError, checks.positive_int, bad, NAME)
    assert checks.positive_int(None, NAME, optional=True) is None
    refuses(TypeError, checks.widths, "400", NAME)
    refuses(ValueError, checks.widths, (400, 0), NAME)
    assert checks.widths(7) == (7,) and checks.widths([3, np.int32(4)]) == (3, 4)
    refuses(TypeError, checks.flag, "yes", NAME, shown="'yes'")
    refuses(TypeError, checks.flag, 1, NAME)
    assert checks.flag(np.bool_(True), NAME) is True
    refuses(ValueError, checks.one_of, "gelu", ("tanh", "relu"), NAME, shown="'gelu'")
    refuses(ValueError, checks.one_of, [1], ("tanh",), NAME)  # unhashable
    refuses(TypeError, checks.generator, np.random.RandomState(0), NAME, shown="RandomState")
    assert checks.generator(None, NAME, optional=True) is None
    refuses(TypeError, checks.float_dtype, np.int32, NAME)
    refuses(TypeError, checks.float_dtype, None, NAME)
    assert checks.float_dtype("float32", NAME) == np.float32
    refuses(TypeError, checks.has_methods, object(), ("encode", "prior"), NAME, shown="encode")


@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans()),
       low=st.sampled_from([-math.inf, 0.0, 1.0]), high=st.sampled_from([1.0, 2.0, math.inf]),
       low_open=st.booleans(), high_open=st.booleans())
def test_real_accepts_exactly_the_finite_numbers_of_its_interval(value, low, high, low_open,
                                                                   high_open):
    inside = (not isinstance(value, bool) and math.isfinite(value)
              and (low < value if low_open else low <= value)
              and (value < high if high_open else value <= high))
    if inside:
        assert checks.real(value, NAME, low, high, low_open, high_open) == value
    else:
        refuses(ValueError, checks.real, value, NAME, low, high, low_open, high_open)


def test_finite_and_require_show_where_and_what():
    x = np.zeros((2, 3))
    x[1, 2] = np.nan
    refuses(ValueError, checks.finite, x, NAME, shown="(1, 2)")
    refuses(ValueError, checks.finite, Tensor(x), NAME, shown="(1, 2)")
    checks.finite(np.ones(3), NAME)
    values = np.array([0.5, -1.0, 2.0, -3.0, -4.0, -5.0])
    refuses(ValueError, checks.require, values > 0, NAME, "positive", values,
            shown="(and more)")
    checks.require(values > -10, NAME, "above −10", values)


@pytest.mark.parametrize("support, good, bad", [
    ("binary", [0.0, 1.0], 0.5), ("unit_interval", [0.0, 0.5], 1.5), ("real", [-3.0, 7.0], np.inf)])
def test_batch_accepts_its_support_and_names_the_first_bad_entry(support, good, bad):
    x = np.array([good, good], dtype=np.float32)
    checks.batch(x, 2, np.float32, support)
    checks.batch(Tensor(x), 2, np.float32, support)
    x[1, 0] = bad
    with pytest.raises(ValueError, match="x must"):
        checks.batch(x, 2, np.float32, support)
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"index \(1, 0\)"):
        checks.batch(x, 2, np.float32, support)
    with pytest.raises(TypeError, match="dtype"):
        checks.batch(x.astype(np.float64), 2, np.float32, support)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        checks.batch(x, 3, np.float32, support)


def test_float_array_keeps_float_dtypes_and_refuses_what_is_not_a_number():
    assert checks.float_array(np.ones(2, np.float32)).dtype == np.float32
    assert checks.float_array([1, 2]).dtype == np.float64
    assert checks.float_array(np.ones(2), np.float32).dtype == np.float32
    for bad in (None, "1", np.ones(2, np.float16), object()):
        with pytest.raises(TypeError, match="float32 or float64"):
            checks.float_array(bad)


def test_sample_shape():
    assert checks.sample_shape(3) == (3,) and checks.sample_shape((2, np.int64(0))) == (2, 0)
    with pytest.raises(ValueError, match="non-negative"):
        checks.sample_shape((-1,))
    with pytest.raises(TypeError, match="tuple of ints"):
        checks.sample_shape(2.5)


def test_int_at_least_positive_and_broadcast():
    assert checks.int_at_least(np.int64(3), NAME) == 3 and checks.int_at_least(0, NAME, 0) == 0
    for bad in (2.0, True, "3"):
        refuses(TypeError, checks.int_at_least, bad, NAME, shown="must be an int")
    refuses(ValueError, checks.int_at_least, 0, NAME, shown="at least 1, got 0")
    assert checks.positive(2, NAME, number=True) == 2.0
    assert checks.positive(None, NAME, number=True, optional=True) is None
    x = np.array([1.0, 2.0])
    assert checks.positive(x, NAME) is x and checks.positive(Tensor(x), NAME) is not None
    for bad in ("1", True, None, x):
        refuses(TypeError, checks.positive, bad, NAME, number=True)
    for bad in (0.0, -1.0, np.nan, np.inf, [1.0, 0.0]):
        refuses(ValueError, checks.positive, bad, NAME, shown="positive and finite")
    assert checks.broadcast([(2, 1), (3,)], NAME) == (2, 3)
    refuses(ValueError, checks.broadcast, [(2,), (3,)], NAME, shown="(2,) and (3,)")


def test_number_array_unit_interval_and_same_rows():
    assert checks.number(np.float64(0.25), NAME) == 0.25
    for bad in ("0.5", True, None):
        refuses(TypeError, checks.number, bad, NAME, shown="real number")
    for bad in (np.nan, -np.inf):
        refuses(ValueError, checks.number, bad, NAME, shown="finite")
    images = np.zeros((2, 3, 3), np.uint8)
    assert checks.array(images, NAME, np.uint8, 3, "(N, H, W)") is images
    for bad in (images.astype(np.int16), images[0], [[1]]):
        refuses(TypeError, checks.array, bad, NAME, np.uint8, 3, "(N, H, W)", shown="(N, H, W)")
    pixels = np.array([0.0, 0.5, 1.0], np.float32)
    assert checks.unit_interval(pixels, NAME) is pixels
    for bad in (1.5, -0.1, np.nan):
        refuses(ValueError, checks.unit_interval, np.append(pixels, bad), NAME, shown="[0, 1]")
    refuses(TypeError, checks.unit_interval, pixels.astype(np.float16), NAME)
    rows = (np.zeros((4, 2)), np.arange(4))
    assert checks.same_rows(rows, NAME) == rows
    refuses(ValueError, checks.same_rows, (np.zeros(3), np.zeros(4)), NAME, shown="[3, 4]")
    refuses(TypeError, checks.same_rows, (np.zeros(3), 5), NAME, shown=f"{NAME}[1]")
    refuses(ValueError, checks.same_rows, (), NAME)


def test_finite_float_array_takes_finite_floats_of_either_precision():
    for dtype in (np.float32, np.float64):
        values = np.array([[0.0, -2.5], [1e30, 3.0]], dtype)
        assert checks.finite_float_array(values, NAME) is values
        assert checks.finite_float_array(values, NAME, matrix=True) is values
        for bad in (np.nan, np.inf, -np.inf):
            refuses(ValueError, checks.finite_float_array, np.append(values, bad), NAME,
                    shown="finite")
    for bad in (np.zeros(3, np.float16), np.zeros(3, np.int64), [0.5], None):
        refuses(TypeError, checks.finite_float_array, bad, NAME, shown="float32 or float64")
    for bad in (np.zeros(3), np.zeros((0, 3)), np.zeros((2, 0)), np.zeros((1, 2, 3))):
        refuses(ValueError, checks.finite_float_array, bad, NAME, matrix=True, shown="(N, D)")


def test_shape_same_dtype_and_function():
    checks.shape(True, NAME, "(N, 3)", (2, 3))
    refuses(ValueError, checks.shape, False, NAME, "(N, 3)", (2, 4),
            shown="must have shape (N, 3), got (2, 4)")
    checks.same_dtype(np.zeros(2), Tensor(np.zeros(3)), NAME)
    refuses(TypeError, checks.same_dtype, np.zeros(2, np.float32), np.zeros(2), NAME,
            shown="float32 and float64")
    assert checks.function(len, NAME) is len
    refuses(TypeError, checks.function, "f", NAME, shown="got str")
    refuses(TypeError, checks.function, None, NAME, "x -> Tensor", shown="(x -> Tensor)")
