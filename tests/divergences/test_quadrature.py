"""The trapezoid rule that the exact 1-D divergences rest on."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from minivae.divergences.quadrature import trapezoid, uniform_grid


@given(loc=st.floats(-3, 3), scale=st.floats(0.2, 3))
def test_trapezoid_integrates_a_gaussian_density(loc, scale):
    grid = uniform_grid(loc - 12 * scale, loc + 12 * scale, 4001)
    density = stats.norm(loc, scale).pdf(grid)
    assert trapezoid(density, grid) == pytest.approx(1.0, abs=1e-10)
    assert trapezoid(grid * density, grid) == pytest.approx(loc, abs=1e-9)
    assert trapezoid((grid - loc) ** 2 * density, grid) == pytest.approx(scale**2, rel=1e-9)


def test_trapezoid_works_along_the_last_axis():
    grid = uniform_grid(0.0, 1.0, 101)
    values = np.stack([np.ones_like(grid), 2 * grid])
    np.testing.assert_allclose(trapezoid(values, grid), [1.0, 1.0], rtol=1e-12)


def test_bad_grids_are_rejected():
    with pytest.raises(ValueError, match="low and high"):
        uniform_grid(1.0, 0.0)
    with pytest.raises(ValueError, match="n must be"):
        uniform_grid(0.0, 1.0, 2)
    with pytest.raises(ValueError, match="strictly increasing"):
        trapezoid(np.ones(3), np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="last axis"):
        trapezoid(np.ones(4), np.linspace(0, 1, 3))
