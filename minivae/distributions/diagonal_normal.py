"""q(z | x) = N(μ, diag σ²): the encoder's Gaussian, its reparameterized draw and its KL.

The encoder emits the mean μ and the log-variance log σ² (unconstrained: σ = exp(½ log σ²) is
positive whatever the network outputs).  This is ``Independent(Normal(μ, σ), 1)`` of this
package, so ``log_prob``, ``entropy`` and ``kl_divergence`` against any registered
distribution are inherited; what is written here is the pair the training step needs:

    z = μ + σ ⊙ ε,   ε ~ N(0, I) drawn outside the graph        (the reparameterization trick)
    KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)     (in closed form)

Because ε does not depend on (μ, σ), z is a differentiable function of them and gradients of
E_q[f(z)] flow through the sample: ∂z/∂μ = 1, ∂z/∂ log σ² = ½ σ ε.

Verified by: tests/distributions/test_diagonal_normal.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks, kernels
from minivae.distributions.base import Independent, as_parameters
from minivae.distributions.normal import Normal
from minivae.engine.ops import exp, fused
from minivae.engine.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class DiagonalNormal(Independent):
    """N(μ, diag σ²) over the last axis, parameterized by mean and log-variance."""

    def __init__(self, loc: Tensor, log_var: Tensor):
        loc, log_var = as_parameters(loc=loc, log_var=log_var)
        if loc.shape != log_var.shape or loc.ndim < 1:
            raise ValueError(f"loc and log_var must have the same shape (..., d), got {loc.shape} "
                             f"and {log_var.shape}")
        # two cheap passes over (batch, latent) arrays: a NaN here would poison the whole step
        checks.require(np.isfinite(loc.data), "loc", "finite", loc)
        finfo = np.finfo(log_var.dtype)  # σ² = exp(log σ²) must be a positive finite float
        low, high = float(np.log(finfo.tiny)), float(np.log(finfo.max))
        checks.require((log_var.data >= low) & (log_var.data <= high), "log_var",
                       f"in [{low:.1f}, {high:.1f}] (so that σ² = exp(log σ²) is a positive "
                       f"finite {log_var.dtype})", log_var)
        self.loc, self.log_var = loc, log_var
        # σ = exp(½ log σ²) > 0 by construction, so the Normal need not check it
        super().__init__(Normal(loc, exp(0.5 * log_var), validate_args=False), 1)

    @property
    def scale(self) -> Tensor:
        """σ = exp(½ log σ²)."""
        return self.base.scale

    def rsample_and_kl(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """(z, KL): one reparameterized draw and KL(q ‖ N(0, I)) per row.

        Math: z = μ + σ ⊙ ε with ε = rng.standard_normal; KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²).
        Verified by:
        tests/distributions/test_diagonal_normal.py::test_fused_rsample_and_kl_equal_separate_methods
        """
        eps = checks.generator(rng).standard_normal(self.loc.shape).astype(self.dtype,
                                                                           copy=False)
        if not kernels.enabled("reparameterize_kl"):
            z = self.loc + self.scale * eps  # z = μ + σ ⊙ ε
            return z, self.kl_to_standard_normal()
        # The two lines above in one kernel pass, with one hand-written VJP (engine/ops/fused.py).
        return fused.reparameterize_kl(self.loc, self.log_var, eps)

    def kl_to_standard_normal(self) -> Tensor:
        """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, summed over the last axis.

        Math (Kingma & Welling 2014, appendix B): ½ Σ_j [ μ_j² + σ_j² − 1 − log σ_j² ], the
        Normal ‖ Normal KL of minivae.distributions with q = N(0, 1), written in log σ².
        Verified by: tests/distributions/test_diagonal_normal.py::test_kl_matches_monte_carlo,
        ::test_kl_agrees_with_the_registry
        """
        terms = self.loc * self.loc + self.log_var.exp() - 1.0 - self.log_var
        return 0.5 * terms.sum(axis=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last axis: −½ Σ_j (log 2π + z_j²).

    Verified by:
    tests/distributions/test_diagonal_normal.py::test_diagonal_normal_log_prob_matches_scipy
    """
    z = z if isinstance(z, Tensor) else Tensor(z)
    return -0.5 * (LOG_2PI + z * z).sum(axis=-1)
