"""Active units (Burda et al. 2016): the variance over images of each posterior mean, against
an independent route to it, and units that ignore x found inactive."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae.topics.active_units import ACTIVITY_THRESHOLD, active_units, activity


@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), d=st.integers(1, 6))
def test_activity_is_half_the_mean_squared_difference(seed, n, d):
    """Var(a) = ½ E[(a_i − a_j)²] over independent pairs (i, j) of images: no mean needed."""
    means = np.random.default_rng(seed).standard_normal((n, d)) * np.arange(1, d + 1)
    differences = means[:, None, :] - means[None, :, :]  # (n, n, d), every ordered pair
    expected = 0.5 * (differences ** 2).mean(axis=(0, 1))
    np.testing.assert_allclose(activity(means), expected, rtol=1e-10, atol=1e-14)


def test_units_that_ignore_x_are_inactive():
    """Units whose posterior mean moves with x by a standard deviation of 1 or 0.5 are active;
    those that move by 0.05 (A_u = 0.0025) or not at all are not."""
    rng = np.random.default_rng(0)
    spreads = np.array([1.0, 0.05, 0.5, 0.0])
    means = (rng.standard_normal((20_000, 4)) * spreads + 0.3).astype(np.float32)
    assert active_units(means).tolist() == [True, False, True, False]
    assert activity(means).dtype == np.float32
    assert ACTIVITY_THRESHOLD == 1e-2  # Burda et al.'s
    assert active_units(means, threshold=1e-3).tolist() == [True, True, True, False]


def test_bad_means_are_named():
    with pytest.raises(ValueError, match=r"posterior_means must have shape \(N, d\) with N ≥ 2"):
        activity(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="posterior_means"):
        activity(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(TypeError, match="posterior_means must be a float32 or float64 array"):
        activity(np.zeros((4, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="threshold"):
        active_units(np.zeros((4, 2)), threshold=-1.0)
