"""A random linear-Gaussian model, whose evidence log p(x) scipy gives exactly."""
from __future__ import annotations

import numpy as np
from scipy import stats

from minivae.models import LinearGaussian


def linear_gaussian(seed: int, x_dim: int = 4, z_dim: int = 2, batch: int = 3,
                    sigmas: tuple[float, float] = (0.4, 1.0)):
    """(W, b, σ, x, log p(x)): x = Wz + b + σε, a batch of draws, σ uniform in sigmas."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((x_dim, z_dim))
    b = rng.standard_normal(x_dim)
    sigma = rng.uniform(*sigmas)
    x, _ = LinearGaussian(W, b, sigma).sample(batch, rng)
    truth = stats.multivariate_normal(b, W @ W.T + sigma**2 * np.eye(x_dim)).logpdf(x)
    return W, b, sigma, x, np.reshape(truth, batch)
