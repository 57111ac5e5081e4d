"""gradcheck itself: it accepts correct VJPs and catches, and locates, wrong ones."""
from __future__ import annotations

import re

import numpy as np
import pytest

import minivae as mv
from minivae import GradcheckError, Tensor, gradcheck
from minivae.engine.gradcheck import ELEMENTWISE_LIMIT


def tanh_with_vjp(make_grad):
    """tanh whose VJP is ``make_grad(g, tanh'(x))``: a hand-made primitive with a chosen VJP."""

    def f(x: Tensor) -> Tensor:
        out = np.tanh(x.data)
        return Tensor.from_op(out, (x,), lambda g: (make_grad(g, 1 - out**2),), "test_tanh")

    return f


def correct_tanh_vjp(g, derivative):
    return g * derivative


def scaled_entry_vjp(index, factor=1.5):
    """A tanh VJP that is right everywhere except at ``index``."""

    def make_grad(g, derivative):
        grad = g * derivative
        grad[index] *= factor
        return grad

    return make_grad


def test_gradcheck_accepts_correct_primitives(rng):
    x = rng.standard_normal((3, 4))
    y = rng.standard_normal((4, 2))
    assert gradcheck(tanh_with_vjp(correct_tanh_vjp), x) is True
    assert gradcheck(lambda a, b: (a @ b).sigmoid(), x, y) is True
    assert gradcheck(lambda a: mv.logsumexp(a * a, axis=1), x) is True
    # beyond the element-wise limit only random directions are compared
    big = rng.standard_normal((ELEMENTWISE_LIMIT + 1,))
    assert gradcheck(lambda a: (a.exp() * a).sum(), big) is True


def test_gradcheck_rejects_a_wrong_vjp_and_says_where(rng):
    wrong_sign = tanh_with_vjp(lambda g, derivative: -g * derivative)
    with pytest.raises(GradcheckError) as raised:
        gradcheck(wrong_sign, rng.standard_normal((2, 3)))
    message = str(raised.value)
    assert re.search(r"random direction \d+|input \d+ entry \(\d+, \d+\)", message), message
    assert "analytic" in message and "numerical" in message


def test_gradcheck_rejects_a_wrong_vjp_on_large_inputs(rng):
    # Too many entries for the entry-by-entry pass: the random directions must catch it alone.
    x = rng.standard_normal((ELEMENTWISE_LIMIT + 4,))
    with pytest.raises(GradcheckError, match=r"random direction \d+"):
        gradcheck(tanh_with_vjp(lambda g, derivative: g * derivative * 1.01), x)


def test_elementwise_mode_localizes_a_wrong_entry(rng):
    x = rng.standard_normal((3, 4))
    with pytest.raises(GradcheckError, match=re.escape("input 0 entry (1, 2)")):
        gradcheck(tanh_with_vjp(scaled_entry_vjp((1, 2))), x, n_directions=0)


def test_elementwise_mode_names_the_input(rng):
    def wrong_for_second_input(a: Tensor, b: Tensor) -> Tensor:
        def vjp(g):
            grad_b = g * a.data
            grad_b[0, 1] += 0.5
            return g * b.data, grad_b

        return Tensor.from_op(a.data * b.data, (a, b), vjp, "test_mul")

    a, b = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    with pytest.raises(GradcheckError, match=re.escape("input 1 entry (0, 1)")):
        gradcheck(wrong_for_second_input, a, b, n_directions=0)


def test_default_gradcheck_localizes_a_wrong_entry(rng):
    x = rng.standard_normal((3, 4))
    with pytest.raises(GradcheckError, match=re.escape("input 0 entry (1, 2)")):
        gradcheck(tanh_with_vjp(scaled_entry_vjp((1, 2))), x)


def test_gradcheck_tolerates_nothing_beyond_its_tolerance(rng):
    # A relative error of 1e-2 is far above rtol=1e-4: caught even at one entry of many.
    x = rng.standard_normal((4, 4))
    with pytest.raises(GradcheckError, match=re.escape("entry (3, 0)")):
        gradcheck(tanh_with_vjp(scaled_entry_vjp((3, 0), factor=1.01)), x, n_directions=0)


def test_gradcheck_works_on_float32_inputs(rng):
    seen_dtypes = set()

    def f(x: Tensor) -> Tensor:
        seen_dtypes.add(x.dtype)
        return (x * x).exp().sum()

    x = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
    # At eps = 1e-6 a float32 central difference would be noise; only float64 passes this.
    assert gradcheck(f, x) is True
    assert gradcheck(f, Tensor(x)) is True
    assert seen_dtypes == {np.dtype(np.float64)}
    assert x.dtype == np.float32  # the caller's array is not converted in place


def test_gradcheck_leaves_inputs_unchanged(rng):
    x = rng.standard_normal((2, 3))
    original = x.copy()
    gradcheck(lambda a: a.tanh(), x)
    np.testing.assert_array_equal(x, original)


def test_gradcheck_needs_an_input():
    with pytest.raises(ValueError, match="at least one input"):
        gradcheck(lambda: Tensor(1.0))


def test_gradcheck_refuses_tolerances_that_cannot_mean_anything(rng):
    # a negative tolerance would report equal numbers as a mismatch; a zero step divides by 0
    x = rng.standard_normal(3)
    for option, value in (("atol", -1e-5), ("rtol", -1.0), ("eps", 0.0), ("eps", np.nan),
                          ("atol", np.inf), ("n_directions", -1)):
        with pytest.raises(ValueError, match=option):
            gradcheck(lambda a: a.tanh(), x, **{option: value})
    with pytest.raises(TypeError, match="f must be"):
        gradcheck("tanh", x)


def test_gradcheck_never_passes_on_nan():
    # a NaN value or gradient verifies nothing: a NaN input is refused, a NaN output fails
    with pytest.raises(ValueError, match="input 0 must be finite"):
        gradcheck(lambda a: a.tanh(), np.array([np.nan]))
    with np.errstate(invalid="ignore"), pytest.raises(GradcheckError, match="nan"):
        gradcheck(lambda a: a.log(), np.array([-1.0]))


def test_an_input_the_output_ignores_has_zero_gradient():
    # y does not reach the output: its analytic gradient is None, compared as zeros
    assert gradcheck(lambda x, y: (x * x).sum(), np.array([1.0, 2.0]), np.array([3.0]))
    # ... but an input that changes the output through a detached path is caught
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, y: (x * x).sum() + Tensor(y.data).sum(), np.array([1.0, 2.0]),
                  np.array([3.0]))
