"""VaDE for real-valued x: the Gaussian-mixture prior of ``VaDE`` with a Gaussian decoder.

Generative model:  c ~ Cat(π),  z | c ~ N(μ_c, diag σ_c²),  x | z ~ N(μ_x, diag σ_x²),
where the decoder emits both halves, [μ_x; log σ_x²] = f(z), one variance per coordinate and
per z.  Inference is VaDE's: q(z, c | x) = N(z; μ̃(x), diag σ̃²(x)) · γ, γ = p(c | z).

Only the likelihood term changes; the KL terms of VaDE depend on q(z|x), γ and the prior alone:

    ELBO(x) = E_q(z|x)[log N(x; μ_x(z), diag σ_x²(z))] − KL(q(z|x) γ ‖ p(z, c)),
    log N(x; μ_x, diag σ_x²) = −½ Σ_i [log 2π + log σ²_xi + (x_i − μ_xi)² / σ²_xi],

the expectation estimated with reparameterized draws z = μ̃ + σ̃ ⊙ ε and the KL in closed form
(``VaDE.kl_to_prior``).  A variance emitted per coordinate can shrink towards 0 on a coordinate
the decoder predicts exactly, and the density grows without bound; so the variance has a floor,
σ_x² ≥ min_sigma², through log σ_x² = m + softplus(h − m), m = log min_sigma², h the raw
output (= log(min_sigma² + e^h), stable for any h).

Verified by: tests/models/test_gaussian_vade.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.engine import ops
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.gaussian_decoder import GaussianPixels
from minivae.models.vade import VaDE
from minivae.nn import MLP

MEAN_ACTIVATIONS = ("identity", "sigmoid")


class GaussianVaDE(VaDE):
    """VaDE with p(x | z) = N(μ_x(z), diag σ_x²(z)) for real-valued x.

    Parameters
    ----------
    x_dim, hidden, z_dim, activation, rng, dtype, leaky_slope, n_clusters, n_samples : as for
        ``VaDE``.
    mean_activation : "identity" (μ_x unbounded, the default, for any real x) or "sigmoid"
        (μ_x in (0, 1), for grey levels).
    min_sigma : the floor under every σ_x (> 0).  The default 10⁻³ is about the standard
        deviation of 8-bit quantization on [0, 1], 1/(255 √12).
    """

    binary_data = False  # trained on the values themselves, never binarized
    x_support = "real"  # a Gaussian density takes any finite x

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, n_clusters: int = 10, n_samples: int = 1,
                 mean_activation: str = "identity", min_sigma: float = 1e-3):
        self.mean_activation = checks.one_of(mean_activation, MEAN_ACTIVATIONS,
                                             "mean_activation")
        self.min_sigma = float(checks.real(min_sigma, "min_sigma", 0, low_open=True))
        super().__init__(x_dim, hidden, z_dim, activation, rng=rng, dtype=dtype,
                         leaky_slope=leaky_slope, n_clusters=n_clusters, n_samples=n_samples)
        # The decoder emits [μ_x; h] side by side: 2 · x_dim numbers (it replaces VaDE's, which
        # emits x_dim logits; assigning the same attribute keeps the parameters' order).
        self.decoder = MLP([self.z_dim, *reversed(self.hidden), 2 * self.x_dim], activation, rng,
                           self.dtype, leaky_slope)
        self.flatten_parameters()

    def decode(self, z) -> GaussianPixels:
        """p(x | z) = N(μ_x, diag σ_x²) with [μ_x; h] = decoder(z) (μ_x through the mean
        activation) and log σ_x² = m + softplus(h − m), m = log min_sigma²; z of shape (B, z_dim).

        Its log density is written in log σ_x (``GaussianPixels.log_prob``), so a huge h, whose
        σ_x² = e^h would overflow, still gives a finite −log σ_x.
        Verified by: tests/models/test_gaussian_vade.py::test_objective_matches_numpy,
        ::test_variance_floor_keeps_the_density_finite
        """
        output = self.decoder(z)
        mean, raw = output[..., :self.x_dim], output[..., self.x_dim:]
        log_floor = 2.0 * math.log(self.min_sigma)
        log_var = log_floor + ops.softplus(raw - log_floor)
        return GaussianPixels(ops.sigmoid(mean) if self.mean_activation == "sigmoid" else mean,
                              0.5 * log_var)

    def pictures(self, z: Tensor) -> np.ndarray:
        """The decoder means μ_x(z), clipped to [0, 1] to be shown as images (without the
        noise σ_x ε, which only adds grain)."""
        return np.clip(self.decode(z).loc.data, 0.0, 1.0)

    def reconstruct(self, x) -> np.ndarray:
        """Decoder means μ_x(μ̃(x)) at the posterior mean, clipped to [0, 1]; (B, x_dim)."""
        with no_grad():
            return self.pictures(self.encode(x).loc)

    def decoder_means(self, z) -> np.ndarray:
        """μ_x(z) unclipped, for codes z (n, z_dim): where real-valued data is decoded to."""
        with no_grad():
            z = z if isinstance(z, Tensor) else Tensor(np.asarray(z, self.dtype))
            return self.decode(z).loc.data
