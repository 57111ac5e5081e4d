"""Active latent units: the coordinates of z that a trained VAE actually uses.

A VAE with more latent dimensions than it needs switches some off: for such a unit u the
posterior q(u | x) equals the prior N(0, 1) whatever x is, so its mean E_q[u | x] barely moves
from image to image.  Burda, Grosse & Salakhutdinov (2016, §5.2) measure each unit's activity
as the variance over the data of its posterior mean,

    A_u = Var_x( E_q(z|x)[z_u] ),

and call the unit active when A_u > 10⁻².  Kingma et al. (2014)'s code for M1+M2 keeps the
same units (posterior means with a standard deviation over the images above 0.1) before M2 is
trained on them: an inactive unit's codes carry no information about x, only its noise.

Verified by: tests/topics/test_active_units.py
"""
from __future__ import annotations

import numpy as np

from minivae import checks

ACTIVITY_THRESHOLD = 1e-2  # Burda et al. (2016): a unit with A_u above it is active


def activity(posterior_means) -> np.ndarray:
    """A_u = Var_x(E_q[z_u | x]) for each unit u, from the posterior means (N, d) of N ≥ 2
    images: the variance of each column, shape (d,), in the means' dtype.  Verified by:
    tests/topics/test_active_units.py::test_activity_is_half_the_mean_squared_difference
    """
    means = checks.finite_float_array(posterior_means, "posterior_means")
    checks.shape(means.ndim == 2 and means.shape[0] >= 2, "posterior_means",
                 "(N, d) with N ≥ 2 images", means.shape)
    return means.var(axis=0)


def active_units(posterior_means, threshold: float = ACTIVITY_THRESHOLD) -> np.ndarray:
    """The units with A_u > threshold, as a boolean mask (d,).

    Verified by: tests/topics/test_active_units.py::test_units_that_ignore_x_are_inactive
    """
    threshold = checks.real(threshold, "threshold", 0.0)
    return activity(posterior_means) > threshold
