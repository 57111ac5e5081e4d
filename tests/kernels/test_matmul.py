"""The teaching matmuls (the naive triple loop and the blocked one) on every backend."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from minivae import kernels
from tests.kernels.oracles import (
    LAYOUTS,
    RTOL_ARITHMETIC,
    assert_fresh_output,
    assert_matches,
    dtypes,
    in_layout,
    per_backend,
)


@settings(per_backend, max_examples=25)
@given(data=st.data(), dtype=dtypes, block=st.sampled_from([1, 3, 8, 16, 64]),
       seed=st.integers(0, 2**16),
       layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)))
def test_matmul_teaching_kernels_match_numpy(backend, data, dtype, block, seed, layouts):
    # Values from a seeded generator: hypothesis would be slow to draw 70 × 70 arrays entry by
    # entry, and the shapes and the block (ragged edges) are what matter here.
    side = st.integers(1, 12 if backend == "python" else 70)
    n, k, m = (data.draw(side, label=name) for name in "nkm")
    rng = np.random.default_rng(seed)
    a = in_layout(rng.uniform(-10, 10, (n, k)).astype(dtype), layouts[0])
    b = in_layout(rng.uniform(-10, 10, (k, m)).astype(dtype), layouts[1])
    expected = a @ b
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    for result in (kernels.matmul_naive(a, b), kernels.matmul_blocked(a, b, block)):
        assert_fresh_output(result, dtype)
        assert_matches(result, expected, scale=scale, terms=k, rtol=RTOL_ARITHMETIC)


def test_matmul_blocked_default_block_covers_ragged_edges(backend, rng):
    # Two full 64-tiles and a ragged one in every direction (one full tile for the Python loops).
    n, k, m = (66, 65, 67) if backend == "python" else (130, 67, 129)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    np.testing.assert_allclose(kernels.matmul_blocked(a, b), a @ b, rtol=1e-12, atol=1e-12)
