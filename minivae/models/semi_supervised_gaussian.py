"""M2 for real-valued data: the second half of M1+M2 (Kingma, Rezende, Mohamed & Welling 2014).

M1+M2 stacks two models.  M1 is a VAE trained on the images without labels; each image x is
replaced by its latent mean z₁ = μ(x), a real vector.  M2 is then trained on the z₁, semi-
supervised, with a Gaussian decoder instead of Bernoulli pixels:

    y ~ Cat(1/K),  z₂ ~ N(0, I),  z₁ | y, z₂ ~ N(μ(y, z₂), diag σ²(y, z₂)),

where the decoder emits both halves, [μ; h] = decoder([e_y, z₂]), with a floor under the
variance, log σ² = m + softplus(h − m), m = log min_sigma² (as ``GaussianVaDE``).  Inference is
M2's: q(y | z₁) and q(z₂ | z₁, y).  Only the likelihood term of the bounds changes,

    log p(z₁ | y, z₂) = −½ Σ_i [log 2π + log σ_i² + (z₁ᵢ − μ_i)² / σ_i²],

so L(z₁, y), U(z₁) = Σ_y q(y|z₁) [L(z₁, y) − log q(y|z₁)] and J^α are those of
``SemiSupervisedVAE``; classifying a digit is argmax_y q(y | μ(x)).

Verified by: tests/models/test_semi_supervised.py::test_gaussian_labelled_bound_matches_scipy,
tests/models/test_semi_supervised.py::test_unlabelled_bound_enumerates_the_classes,
tests/models/test_semi_supervised.py::test_unlabelled_bound_is_below_the_evidence,
tests/models/test_semi_supervised.py::test_gaussian_m2_passes_gradcheck
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.engine import ops
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.gaussian_decoder import GaussianPixels
from minivae.models.semi_supervised import SemiSupervisedVAE
from minivae.nn import MLP


class GaussianSemiSupervisedVAE(SemiSupervisedVAE):
    """M2 with p(x | y, z) = N(μ(y, z), diag σ²(y, z)) for real-valued x (M1's latent means).

    Parameters
    ----------
    as for ``SemiSupervisedVAE`` (no ``soft_targets``: any finite x is accepted), and
    min_sigma : the floor under every σ (> 0).
    """

    binary_data = False  # trained on the values themselves, never binarized
    x_support = "real"  # a Gaussian density takes any finite x

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "softplus",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, n_classes: int = SemiSupervisedVAE.N_CLASSES,
                 alpha_scale: float = 0.1, min_sigma: float = 1e-3,
                 labelled_weighting: str = "balanced"):
        self.min_sigma = float(checks.real(min_sigma, "min_sigma", 0, low_open=True))
        rng = checks.generator(rng)
        super().__init__(x_dim, hidden, z_dim, activation, rng=rng, dtype=dtype,
                         leaky_slope=leaky_slope, n_classes=n_classes, alpha_scale=alpha_scale,
                         labelled_weighting=labelled_weighting)
        # the decoder emits [μ; h] side by side (replacing M2's, in the same place)
        self.decoder = MLP([self.n_classes + self.z_dim, *self.hidden[::-1], 2 * self.x_dim],
                           activation, rng, self.dtype, leaky_slope)
        self.flatten_parameters()

    def _decode_one_hot(self, e_y: np.ndarray, z) -> GaussianPixels:
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z, self.dtype))
        output = self.decoder(ops.concatenate([Tensor(e_y), z], axis=-1))
        mean, raw = output[..., :self.x_dim], output[..., self.x_dim:]
        log_floor = 2.0 * math.log(self.min_sigma)
        return GaussianPixels(mean, 0.5 * (log_floor + ops.softplus(raw - log_floor)))

    def generate(self, y, z) -> np.ndarray:
        """The decoder means μ(y, z) for labels y (B,) and z (B, z_dim)."""
        with no_grad():
            return self.decode(y, z).loc.data
