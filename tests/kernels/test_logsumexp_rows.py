"""The row-wise log-sum-exp kernel, shifted by the row maximum, on every backend against the
NumPy oracle, at ±1e4, ±∞ and NaN."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from minivae import kernels
from tests.engine.ops.helpers import finite
from tests.kernels.oracles import (
    DTYPES,
    LAYOUTS,
    assert_fresh_output,
    assert_matches,
    cols,
    dtypes,
    in_layout,
    oracle_logsumexp_rows,
    per_backend,
    rows,
)


@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols)
def test_logsumexp_rows_matches_reference(backend, data, dtype, n_rows, n_cols):
    width = 32 if dtype == np.float32 else 64
    elements = st.one_of(st.floats(-1e4, 1e4, width=width),
                         st.sampled_from([-np.inf, np.inf, np.nan]))
    values = data.draw(hnp.arrays(dtype, (n_rows, n_cols), elements=elements), label="a")
    a = in_layout(values, data.draw(st.sampled_from(LAYOUTS), label="layout"))
    expected = oracle_logsumexp_rows(a)
    result = kernels.logsumexp_rows(a)

    assert_fresh_output(result, dtype)
    finite = np.where(np.isfinite(values), np.abs(values.astype(np.float64)), 0)
    assert_matches(result, expected, scale=finite.max(1) + 1, terms=n_cols)
    # The documented special cases, checked on their own.
    has_nan = np.isnan(values).any(1)
    np.testing.assert_array_equal(np.isnan(result), has_nan)
    plus_inf = (values == np.inf).any(1) & ~has_nan
    assert np.all(result[plus_inf] == np.inf)
    all_minus_inf = (values == -np.inf).all(1)
    assert np.all(result[all_minus_inf] == -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_rows_special_rows(backend, dtype):
    inf, nan = np.inf, np.nan
    a = np.array([[-inf, -inf, -inf], [0.0, inf, 1.0], [inf, -inf, 2.0], [nan, 1.0, 2.0],
                  [inf, nan, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -inf], [0.0, 0.0, 0.0]],
                 dtype=dtype)
    result = kernels.logsumexp_rows(a)
    assert result[0] == -inf and result[1] == inf and result[2] == inf
    assert np.isnan(result[3]) and np.isnan(result[4])
    np.testing.assert_allclose(result[5:], [1e4 + np.log(2), -1e4 + np.log(2), np.log(3)],
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_rows_kernel_at_extremes(backend, dtype):
    rows = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [-50.0, 50.0, 0.0]], dtype=dtype)
    out = kernels.logsumexp_rows(rows)
    assert out.dtype == dtype and finite(out)
    np.testing.assert_allclose(out, [1e4, -1e4 + np.log(3), 50.0], rtol=1e-6)


def test_logsumexp_rows_without_columns_raises_on_every_backend(backend):
    with pytest.raises(ValueError, match="a must have at least one column"):
        kernels.logsumexp_rows(np.zeros((3, 0)))
