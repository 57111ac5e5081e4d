"""A Bernoulli VAE whose posterior q(z|x) is a Gaussian with a full covariance matrix.

The diagonal VAE's q(z|x) = N(μ, diag σ²) cannot express correlations between latent
coordinates, yet the true posterior p(z|x) is often tilted: two codes that explain x
equally well trade off against each other.  Here the encoder emits a Cholesky factor instead:

    q(z | x) = N(μ(x), L(x) L(x)ᵀ),   L lower-triangular with a positive diagonal,

from d + d(d+1)/2 outputs per example: μ (d numbers), then the lower triangle of L row by row
(L₁₁, L₂₁, L₂₂, L₃₁, …).  The diagonal goes through softplus (the default) or exp, via
``scale_tril_from_unconstrained``.  Softplus is the default because it grows linearly, so an
encoder output that drifts by a few units moves the scale by a few units, where exp would
multiply it by e per unit (and overflow float32 near 89).

Sampling is z = μ + L ε with ε ~ N(0, I), so Cov(z) = E[L ε εᵀ Lᵀ] = L Lᵀ and z is
differentiable in μ and L.  The KL to the prior N(0, I) is closed-form:

    KL(N(μ, LLᵀ) ‖ N(0, I)) = ½ [tr(LLᵀ) + μᵀμ − d − log |LLᵀ|]
                            = ½ [Σᵢⱼ Lᵢⱼ² + Σᵢ μᵢ² − d] − Σᵢ log Lᵢᵢ.

The generative half (prior, decoder, log p(x|z), sampling, reconstruction) is the VAE's,
inherited unchanged.

Verified by: tests/models/test_full_covariance.py
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.multivariate_normal import (
    MultivariateNormal,
    scale_tril_from_unconstrained,
)
from minivae.engine.ops import concatenate
from minivae.engine.ops.linalg import diagonal
from minivae.engine.tensor import Tensor
from minivae.models.vae import VAE

DIAGONAL_MAPS = ("softplus", "exp")


def tril_positions(d: int) -> np.ndarray:
    """A (d, d) integer array: entry (i, j) of L is read from column positions[i, j] of the
    encoder's triangle outputs (row-major over the lower triangle); above the diagonal it
    points one past the last column, where a zero column is appended.

    Verified by: tests/models/test_full_covariance.py::test_encoder_outputs_fill_the_triangle
    """
    positions = np.full((d, d), d * (d + 1) // 2)
    positions[np.tril_indices(d)] = np.arange(d * (d + 1) // 2)
    return positions


def kl_to_standard_normal(q: MultivariateNormal) -> Tensor:
    """KL(N(μ, LLᵀ) ‖ N(0, I)) = ½ [Σᵢⱼ Lᵢⱼ² + Σᵢ μᵢ² − d] − Σᵢ log Lᵢᵢ, shape batch.

    Math: the Gaussian KL ½ [tr(Σ_p⁻¹Σ_q) + (μ_p − μ_q)ᵀΣ_p⁻¹(μ_p − μ_q) − d + log|Σ_p|/|Σ_q|]
    with p = N(0, I); tr(LLᵀ) = ‖L‖_F² and log|LLᵀ| = 2 Σᵢ log Lᵢᵢ (a triangular matrix's
    determinant is the product of its diagonal).  No solve is needed against the identity.
    Verified by: tests/models/test_full_covariance.py::test_kl_equals_the_distributions_module
    """
    L, loc = q.scale_tril, q.loc
    d = loc.shape[-1]
    squares = 0.5 * ((L * L).sum(axis=(-2, -1)) + (loc * loc).sum(axis=-1) - d)
    return squares - diagonal(L).log().sum(axis=-1)


class FullCovarianceVAE(VAE):
    """A Bernoulli VAE with q(z|x) = N(μ(x), L(x)L(x)ᵀ) and an MLP encoder and decoder.

    Parameters
    ----------
    x_dim, hidden, z_dim, activation, rng, dtype, leaky_slope : as for ``VAE``.
    diagonal : "softplus" (default) or "exp", the map that makes Lᵢᵢ positive.
    soft_targets : accept grey levels x ∈ [0, 1] as Bernoulli targets, as for ``VAE``.
    """

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, diagonal: str = "softplus",
                 soft_targets: bool = False):
        # VAE.__init__ would build an encoder with 2·z_dim outputs; this one needs more.
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        self.diagonal = checks.one_of(diagonal, DIAGONAL_MAPS, "diagonal")
        triangle = self.z_dim * (self.z_dim + 1) // 2
        self._positions = tril_positions(self.z_dim)
        self.build_networks(x_dim, hidden, self.z_dim + triangle, self.z_dim, activation, rng,
                            dtype, leaky_slope, soft_targets)
        self.flatten_parameters()

    def encode(self, x) -> MultivariateNormal:
        """q(z | x) = N(μ(x), L(x)L(x)ᵀ) for a batch x of shape (B, x_dim).

        Math: (μ, t) = encoder(x); Lᵢⱼ = t at (i, j) of the lower triangle for i > j,
        Lᵢᵢ = softplus(tᵢᵢ) (or exp), Lᵢⱼ = 0 for i < j.
        Verified by: tests/models/test_full_covariance.py::test_encoder_outputs_fill_the_triangle
        """
        h = self.encoder(self._check_x(x))  # (B, z_dim + triangle)
        triangle = h[:, self.z_dim:]
        zeros = Tensor(np.zeros((h.shape[0], 1), dtype=self.dtype))
        raw = concatenate([triangle, zeros], axis=1)[:, self._positions]  # (B, z_dim, z_dim)
        scale_tril = scale_tril_from_unconstrained(raw, self.diagonal)
        # L is triangular with a positive diagonal by construction; checking it costs a pass
        return MultivariateNormal(h[:, : self.z_dim], scale_tril, validate_args=False)

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """Per-example ELBO of shape (B,) with one reparameterized sample and the analytic KL.

        Math: log p(x | z) − KL(N(μ, LLᵀ) ‖ N(0, I)),  z = μ + L ε,  ε = rng.standard_normal.
        Verified by: tests/models/test_full_covariance.py::test_objective_matches_numpy
        """
        q_z_given_x = self.encode(x)
        z = q_z_given_x.rsample(rng)  # (B, z_dim)
        log_p_x_given_z = self.decode(z).log_prob(x)  # (B,)
        return log_p_x_given_z - kl_to_standard_normal(q_z_given_x)

    def objective(self, x, rng: np.random.Generator) -> Tensor:
        """The per-example quantity training maximizes: the ELBO (see ``elbo``).

        Verified by: tests/models/test_full_covariance.py::test_objective_matches_numpy
        """
        return self.elbo(x, rng)
