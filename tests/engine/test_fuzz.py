"""Fuzzing the engine's public ops against the contract of tests/fuzzing.py.

Three properties, each over hypothesis-drawn inputs with the extremes (±1e4, ±50, 0, ±1, tiny,
huge up to the dtype's largest finite number):

1. ``Tensor(...)`` given something that is not float/integer data (strings, None, objects,
   object arrays, complex, float16) raises TypeError/ValueError with a message; float32 and
   float64 operands are never mixed by an op (TypeError).
2. On finite inputs inside an op's domain, the op's value and its gradient (backward from an
   upstream gradient of ones, so each op is judged alone) hold no NaN.  ±inf is admitted only
   where it is the exact answer or IEEE overflow of a finite but unrepresentable result:

   ======================================  ==========================================
   op                                      ±inf admitted?
   ======================================  ==========================================
   tanh sigmoid softplus relu leaky_relu   no (bounded or ≤ |x|; derivatives bounded)
   neg max logsumexp                       no
   exp                                     yes: e^x overflows for x > ~88 (f32) / 709
   log, log1p, sqrt  (domain x ≥ 0, ≥ −1)  yes: log 0 = −∞, d/dx √x = +∞ at 0
   pow  (x ≥ 0 for fractional exponents)   yes: 0⁻¹ = ∞ and overflow of xᵖ
   add sub mul div  (div: b ≠ 0)           yes: overflow of the exact result
   sum mean  (|x| ≤ 1e30)                  no: partial sums cannot overflow there
   matmul  (|x| ≤ 1e4)                     no: products and sums cannot overflow there
   lgamma digamma                          yes (overflow of log Γ, ψ′ at tiny x);
                                           x ≤ 0 raises ValueError
   ======================================  ==========================================

   Outside those domains NaN is the only answer (log of a negative number, 0/0, ∞ − ∞ when a
   sum of huge numbers overflows both ways); that is what ``detect_anomaly`` is for:
3. inside ``detect_anomaly()``, an op that turns finite inputs into NaN/±inf raises
   ``AnomalyError`` naming the op, while the same op on NaN input passes it on.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae import AnomalyError, Tensor, detect_anomaly, ops
from tests.fuzzing import CASES, anything, arrays, check_contract, floats

FAST = settings(max_examples=40)
# tests/fuzzing.py casts float64 extremes such as 1e300 into float32 arrays, where they become
# ±inf on purpose; NumPy warns about that cast.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")


def finite(array: np.ndarray, bound: float | None = None) -> np.ndarray:
    """``array`` with ±inf/NaN replaced by the largest finite numbers (or clipped to ±bound)."""
    info = np.finfo(array.dtype)
    array = np.nan_to_num(array, nan=0.0, posinf=info.max, neginf=info.min)
    return array if bound is None else np.clip(array, -bound, bound).astype(array.dtype)


def value_and_grads(op, *datas):
    """Run ``op`` on leaves made of ``datas``; backward with ones; return (value, grads)."""
    leaves = [Tensor(d, requires_grad=True) for d in datas]
    out = op(*leaves)
    out.backward(np.ones(out.shape, dtype=out.dtype))
    return (out, *[leaf.grad for leaf in leaves])


# -- 1. construction and dtypes ----------------------------------------------------------------

NOT_NUMBERS = st.one_of(
    st.none(), st.text(max_size=3), st.just(object()), st.dictionaries(st.text(max_size=1),
                                                                         st.integers()),
    st.lists(st.text(min_size=1, max_size=2), min_size=1, max_size=3),
    st.just(np.array([1.0, None], dtype=object)), st.complex_numbers(allow_nan=False),
    st.just(np.ones(2, np.float16)), st.just([[1.0], [1.0, 2.0]]))


@FAST
@given(value=NOT_NUMBERS, dtype=st.sampled_from([None, np.float32, np.float64]))
def test_tensor_of_non_numeric_data_raises_with_a_message(value, dtype):
    if isinstance(value, np.ndarray) and value.dtype == np.float16 and dtype is not None:
        return  # an explicit dtype converts float16 on purpose
    assert check_contract("Tensor", Tensor, value, dtype=dtype) is None


@FAST
@given(value=anything())
def test_tensor_accepts_numbers_and_rejects_the_rest(value):
    result = check_contract("Tensor(anything)", lambda v: Tensor(v).data, value, allow_inf=True) \
        if not isinstance(value, list) else None
    if result is not None:  # ints and bools are numbers: they become float64 of equal value
        assert result.dtype == np.float64 and result == float(value)


BINARY = {"add": ops.add, "sub": ops.sub, "mul": ops.mul, "div": ops.div, "matmul": ops.matmul,
          "where": lambda a, b: ops.where(np.ones(a.shape, bool), a, b),
          "concatenate": lambda a, b: ops.concatenate([a, b]),
          "stack": lambda a, b: ops.stack([a, b])}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_mixing_float32_and_float64_raises_type_error(name):
    a32, b64 = np.ones((2, 2), np.float32), np.ones((2, 2), np.float64)
    for a, b in [(Tensor(a32), Tensor(b64)), (Tensor(b64), Tensor(a32)), (Tensor(a32), b64)]:
        with pytest.raises(TypeError, match="dtype"):
            BINARY[name](a, b)
        assert check_contract(f"ops.{name}(mixed dtypes)", BINARY[name], a, b) is None


# -- 2. finite inputs: NaN-free values and gradients ---------------------------------------------

UNARY = {  # name: (op, map of the input into the domain, inf admitted)
    "exp": (ops.exp, finite, True),
    "log": (ops.log, lambda a: np.abs(finite(a)), True),
    "log1p": (ops.log1p, lambda a: np.abs(finite(a)) - a.dtype.type(1), True),
    "sqrt": (ops.sqrt, lambda a: np.abs(finite(a)), True),
    "tanh": (ops.tanh, finite, False),
    "sigmoid": (ops.sigmoid, finite, False),
    "softplus": (ops.softplus, finite, False),
    "relu": (ops.relu, finite, False),
    "leaky_relu": (ops.leaky_relu, finite, False),
    "neg": (ops.neg, finite, False),
    "pow2": (lambda t: ops.pow(t, 2), finite, True),
    "pow3": (lambda t: ops.pow(t, 3), finite, True),
    "pow_half": (lambda t: ops.pow(t, 0.5), lambda a: np.abs(finite(a)), True),
    "pow_minus_one": (lambda t: ops.pow(t, -1), finite, True),
    "pow_zero": (lambda t: ops.pow(t, 0), finite, False),
    "sum": (lambda t: ops.sum(t, axis=-1), lambda a: finite(a, 1e30), False),
    "mean": (lambda t: ops.mean(t, axis=-1), lambda a: finite(a, 1e30), False),
    "max": (lambda t: ops.max(t, axis=-1), finite, False),
    "logsumexp": (lambda t: ops.logsumexp(t, axis=-1), finite, False),
    "lgamma": (ops.lgamma, finite, True),
    "digamma": (ops.digamma, finite, True),
    "transpose": (ops.transpose, finite, False),
    "reshape": (lambda t: ops.reshape(t, -1), finite, False),
    "getitem": (lambda t: t[..., ::-1], finite, False),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=25)
@given(data=arrays(min_dims=1, max_dims=2, max_side=4))
def test_unary_op_on_finite_input_gives_nan_free_value_and_gradient(name, data):
    op, into_domain, allow_inf = UNARY[name]
    with np.errstate(all="ignore"):
        x = into_domain(data)
    assert np.isfinite(x).all()
    result = check_contract(f"ops.{name}", value_and_grads, op, x, allow_inf=allow_inf)
    if result is not None:
        assert result[0].dtype == x.dtype and result[1].dtype == x.dtype  # nothing upcast


@st.composite
def operand_pairs(draw, bound=None):
    """Two finite arrays of one dtype whose shapes broadcast (equal, trailing axis, scalar)."""
    a = draw(arrays(min_dims=1, max_dims=2, max_side=4))
    shape = draw(st.sampled_from([a.shape, a.shape[-1:], ()]))
    b = draw(arrays(dtype=a.dtype, shape=shape))
    with np.errstate(all="ignore"):
        return finite(a, bound), finite(b, bound)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@settings(max_examples=30)
@given(pair=operand_pairs())
def test_binary_op_on_finite_input_gives_nan_free_value_and_gradient(name, pair):
    a, b = pair
    if name == "div":
        b = np.where(b == 0, b.dtype.type(1), b)  # b = 0 is outside the domain (0/0, a/0)
    check_contract(f"ops.{name}", value_and_grads, BINARY[name], a, b, allow_inf=True)
    check_contract(f"ops.{name}", value_and_grads, BINARY[name], b, a if name != "div"
                   else np.where(a == 0, a.dtype.type(1), a), allow_inf=True)


@settings(max_examples=30)
@given(a=arrays(min_dims=2, max_dims=2, max_side=4), m=st.integers(1, 3), data=st.data())
def test_matmul_on_bounded_input_gives_finite_value_and_gradient(a, m, data):
    b = data.draw(arrays(dtype=a.dtype, shape=(a.shape[1], m)))
    with np.errstate(all="ignore"):
        a, b = finite(a, 1e4), finite(b, 1e4)
    check_contract("ops.matmul", value_and_grads, ops.matmul, a, b)


@settings(max_examples=40)
@given(data=arrays(min_dims=1, max_dims=2, max_side=4))
def test_logsumexp_and_max_of_infinite_entries_have_nan_free_gradients(data):
    x = np.where(np.isnan(data), data.dtype.type(0), data)  # ±inf stays: exact limits exist
    for name, op in [("logsumexp", ops.logsumexp), ("max", ops.max)]:
        check_contract(f"ops.{name}(with ±inf)", value_and_grads,
                       lambda t, op=op: op(t, axis=-1), x,
                       allow_inf=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_valid_cases_really_are_finite(dtype):
    # Not vacuous: ordinary inputs give finite values and the gradients known from calculus.
    x = np.array([-1e4, -50.0, -1.0, 0.5, 1.0, 50.0, 1e4], dtype=dtype)
    for name in ("tanh", "sigmoid", "softplus", "max", "logsumexp"):
        out, grad = value_and_grads(UNARY[name][0], x)
        assert np.isfinite(out.data).all() and np.isfinite(grad).all(), name
    out, grad = value_and_grads(ops.log, np.abs(x))
    np.testing.assert_allclose(grad, 1 / np.abs(x.astype(np.float64)), rtol=1e-6)
    assert sum(CASES[f"ops.{name}"]["finite"] for name in UNARY) > 0


# -- 3. detect_anomaly names the op that made NaN/±inf -------------------------------------------

MAKES_NON_FINITE = {  # name: (op, map of any finite input to one that makes NaN/±inf)
    "log": (ops.log, lambda a: -np.abs(a) - 1),
    "sqrt": (ops.sqrt, lambda a: -np.abs(a) - 1),
    "log1p": (ops.log1p, lambda a: -np.abs(a) - 2),
    "exp": (ops.exp, lambda a: np.abs(a) + np.log(np.finfo(a.dtype).max) + 1),
    "pow": (lambda t: ops.pow(t, 0.5), lambda a: -np.abs(a) - 1),
    "div": (lambda t: ops.div(t, np.zeros_like(t.data)), lambda a: a),
}


@pytest.mark.parametrize("name", sorted(MAKES_NON_FINITE))
@settings(max_examples=15)
@given(data=arrays(min_dims=1, max_dims=2, max_side=3, allow_non_finite=False),
       value=floats(allow_non_finite=False, width=32))
def test_anomaly_inside_detect_anomaly_raises_naming_the_op(name, data, value):
    op, make_bad = MAKES_NON_FINITE[name]
    with np.errstate(all="ignore"):
        x = make_bad(finite(np.concatenate([data.ravel(), [value]]).astype(data.dtype), 1e4))
    x = x.astype(data.dtype)
    assert np.isfinite(x).all()
    with np.errstate(all="ignore"), detect_anomaly():
        with pytest.raises(AnomalyError, match=rf"^{name} produced (NaN|[+-]inf) at index"):
            op(Tensor(x))
        op(Tensor(np.full_like(x, np.nan)))  # NaN that arrives is passed on, not blamed
