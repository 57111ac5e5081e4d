"""A learnable latent prior p(z) = N(μ_z, σ_z² I), trained with the rest of a VAE.

The lecture's general model takes θ = {μ_z, σ_z², α, β}: the prior's mean and (isotropic)
variance are parameters like the decoder's weights.  Its ELBO keeps the KL in closed form; for
q(z|x) = N(μ, diag σ²) in m dimensions,

    KL(q ‖ p) = ½ Σ_j [ (σ_j² + (μ_j − μ_zj)²) / σ_z² − 1 − log σ_j² + log σ_z² ],

which is the standard-normal KL ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²) at μ_z = 0, σ_z² = 1.
σ_z² is stored as log σ_z², so any optimizer step leaves it positive.

For a fixed encoder, the prior that maximizes the mean ELBO over N examples (only the KL
depends on it) matches the first two moments of the aggregate posterior (1/N) Σ_n q(z|x_n):

    μ_z = mean_n μ_n,      σ_z² = (1/m) Σ_j [ mean_n (σ_nj² + μ_nj²) − μ_zj² ]

(∂/∂μ_zj of the mean KL is mean_n (μ_zj − μ_nj) / σ_z²; ∂/∂σ_z² is
½ Σ_j [1/σ_z² − mean_n (σ_nj² + (μ_nj − μ_zj)²) / σ_z⁴]; both vanish there, and the mean KL is
convex in μ_z and in 1/σ_z²).  Over all parameters together the best ELBO is the same as with
N(0, I): the encoder's output layer and the decoder's first layer are affine and can absorb
z ↦ μ_z + σ_z z; a learnable prior changes the path training takes, not the model class.

Verified by: tests/models/test_learnable_prior.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions import DiagonalNormal, Independent, Normal
from minivae.engine import ops
from minivae.engine.tensor import Tensor
from minivae.nn import Module

LOG_2PI = math.log(2.0 * math.pi)


class LearnablePrior(Module):
    """p(z) = N(μ_z, σ_z² I) over z_dim-vectors, with μ_z (z_dim,) and log σ_z² () learned,
    starting at N(0, I)."""

    def __init__(self, z_dim: int, dtype=np.float32):
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        dtype = checks.float_dtype(dtype)
        self.mean = Tensor(np.zeros(self.z_dim, dtype), requires_grad=True)
        self.log_var = Tensor(np.zeros((), dtype), requires_grad=True)

    def distribution(self) -> Independent:
        """p(z) as a distribution of ``minivae.distributions`` (its graph reaches μ_z, σ_z)."""
        scale = ops.exp(0.5 * self.log_var) * np.ones(self.z_dim, self.mean.dtype)
        return Independent(Normal(self.mean, scale, validate_args=False), 1)

    def kl(self, q: DiagonalNormal) -> Tensor:
        """KL(q ‖ p) per row of q = N(μ, diag σ²):
        ½ Σ_j [ (σ_j² + (μ_j − μ_zj)²) / σ_z² − 1 − log σ_j² + log σ_z² ].

        σ_j² / σ_z² is taken as exp(log σ_j² − log σ_z²), one exp of a difference.
        Verified by:
        tests/models/test_learnable_prior.py::test_kl_matches_quadrature_and_monte_carlo,
        ::test_kl_gradients_pass_gradcheck
        """
        difference = q.loc - self.mean
        terms = ((q.log_var - self.log_var).exp() + difference * difference
                 * ops.exp(-self.log_var) - 1.0 - q.log_var + self.log_var)
        return 0.5 * terms.sum(axis=-1)

    def log_prob(self, z) -> Tensor:
        """log N(z; μ_z, σ_z² I) = −½ Σ_j [log 2π + log σ_z² + (z_j − μ_zj)² / σ_z²], over the
        last axis.

        Verified by: tests/models/test_learnable_prior.py::test_log_prob_matches_scipy
        """
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z))
        difference = z - self.mean
        squares = (difference * difference).sum(axis=-1) * ops.exp(-self.log_var)
        return -0.5 * (squares + self.z_dim * (LOG_2PI + self.log_var))

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws μ_z + σ_z ε, ε ~ N(0, I), as an array (n, z_dim) without a graph."""
        eps = rng.standard_normal((n, self.z_dim)).astype(self.mean.dtype, copy=False)
        return self.mean.data + np.exp(0.5 * self.log_var.data) * eps


def moment_matched_prior(loc, log_var) -> tuple[np.ndarray, float]:
    """(μ_z, σ_z²): the N(μ_z, σ_z² I) that maximizes the mean ELBO of the posteriors
    N(loc_n, diag exp(log_var_n)), rows n of two (N, m) arrays: μ_z = mean_n μ_n,
    σ_z² = (1/m) Σ_j [mean_n (σ_nj² + μ_nj²) − μ_zj²] (the module docstring derives it).

    Verified by:
    tests/models/test_learnable_prior.py::test_training_only_the_prior_reaches_the_moment_match
    """
    loc, variance = np.asarray(loc, np.float64), np.exp(np.asarray(log_var, np.float64))
    mean = loc.mean(axis=0)
    # mean_n (σ² + (μ − μ_z)²) rather than mean(σ² + μ²) − μ_z²: no cancellation when |μ_z| ≫ σ
    return mean, float((variance + (loc - mean) ** 2).mean())
