"""Inputs for the primitives' tests: hypothesis strategies for float64 arrays inside a
domain, and the extreme logits and log-variances."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np

from minivae import Tensor

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def values(shape, low: float = -3.0, high: float = 3.0):
    """float64 arrays of ``shape`` with entries in [low, high]."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return hnp.arrays(np.float64, shape, elements=elements)


def away_from_zero(x: np.ndarray, margin: float) -> np.ndarray:
    """Push every entry at least ``margin`` away from 0 (0 itself goes to +margin)."""
    return np.where(x >= 0, x + margin, x - margin)


# logits ±1e4 and log-variances ±50: the edges of what a VAE meets in training
DTYPES = (np.float32, np.float64)
LOGITS = np.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4])
LOG_VARS = np.array([-50.0, -1.0, 0.0, 1.0, 50.0])


def finite(array) -> bool:
    """Whether every entry is finite (no NaN, no ±∞)."""
    return bool(np.isfinite(np.asarray(array)).all())


def value_and_grad(op, data):
    """``op`` on a leaf made of ``data``, backward from ones: (the value, the leaf's gradient)."""
    x = Tensor(data, requires_grad=True)
    out = op(x)
    out.backward(np.ones(out.shape, dtype=out.dtype))
    return out.data, x.grad
