"""The few densities a Bernoulli VAE needs: a diagonal Gaussian q(z|x) and a Bernoulli p(x|z).

This is where sampling meets differentiation.  ``DiagonalNormal.rsample`` draws
z = μ + σ ⊙ ε with ε ~ N(0, I) drawn *outside* the graph, so z is a differentiable function of
(μ, σ) and gradients flow through the sample: the reparameterization trick.

Verified by: tests/test_densities.py
"""
from __future__ import annotations

import math

import numpy as np

import minivae.ops as ops
from minivae.ops import fused
from minivae.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class DiagonalNormal:
    """N(μ, diag σ²) over the last axis, parameterized by mean and log-variance.

    The encoder emits log σ² (unconstrained); σ = exp(½ log σ²) is then always positive.
    """

    def __init__(self, loc: Tensor, log_var: Tensor):
        if loc.shape != log_var.shape:
            raise ValueError(f"loc and log_var must have the same shape, got {loc.shape} "
                             f"and {log_var.shape}")
        self.loc, self.log_var = loc, log_var
        self._scale = None

    @property
    def scale(self) -> Tensor:
        """σ = exp(½ log σ²), computed on first use (the fused training path never needs it)."""
        if self._scale is None:
            self._scale = ops.exp(0.5 * self.log_var)
        return self._scale

    def rsample(self, rng: np.random.Generator) -> Tensor:
        """z = μ + σ ⊙ ε, ε ~ N(0, I): a sample that gradients flow through."""
        eps = rng.standard_normal(self.loc.shape).astype(self.loc.dtype, copy=False)
        return self.loc + self.scale * eps

    def rsample_and_kl(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``(rsample(rng), kl_to_standard_normal())`` from one fused kernel pass.

        The same ε is drawn as in ``rsample``; the tests check both results and gradients
        against the two separate methods.
        Verified by: tests/test_densities.py::test_fused_rsample_and_kl_equal_separate_methods
        """
        eps = rng.standard_normal(self.loc.shape).astype(self.loc.dtype, copy=False)
        return fused.reparameterize_kl(self.loc, self.log_var, eps)

    def log_prob(self, z) -> Tensor:
        """log N(z; μ, diag σ²), summed over the last axis.

        Math: −½ Σ_j [ log 2π + log σ²_j + (z_j − μ_j)² / σ²_j ].
        Verified by: tests/test_densities.py::test_diagonal_normal_log_prob_matches_scipy
        """
        standardized = (z - self.loc) / self.scale
        return -0.5 * (LOG_2PI + self.log_var + standardized * standardized).sum(axis=-1)

    def kl_to_standard_normal(self) -> Tensor:
        """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, summed over the last axis.

        Math (Kingma & Welling 2014, appendix B): ½ Σ_j [ μ_j² + σ_j² − 1 − log σ_j² ].
        Verified by: tests/test_densities.py::test_kl_matches_monte_carlo
        """
        terms = self.loc * self.loc + ops.exp(self.log_var) - 1.0 - self.log_var
        return 0.5 * terms.sum(axis=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last axis: −½ Σ_j (log 2π + z_j²).

    Verified by: tests/test_densities.py::test_diagonal_normal_log_prob_matches_scipy
    """
    z = z if isinstance(z, Tensor) else Tensor(z)
    return -0.5 * (LOG_2PI + z * z).sum(axis=-1)


class BernoulliLogits:
    """Independent Bernoulli variables over the last axis, with logits l = log(p / (1 − p))."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    @property
    def probs(self) -> Tensor:
        return ops.sigmoid(self.logits)

    def log_prob(self, x) -> Tensor:
        """log p(x) = Σ_i [ x_i log σ(l_i) + (1 − x_i) log(1 − σ(l_i)) ], summed over the last axis.

        Math: since log σ(l) = l − softplus(l) and log(1 − σ(l)) = −softplus(l), each term is
        x·l − softplus(l): finite for any finite logit, and for soft targets x ∈ [0, 1] too
        (this is minus the binary cross-entropy).
        Verified by: tests/test_densities.py::test_bernoulli_log_prob_matches_direct_formula
        """
        if self.logits.ndim == 2 and not (isinstance(x, Tensor) and x.requires_grad):
            return fused.bernoulli_log_prob(self.logits, x)  # one kernel, value and gradient
        return (x * self.logits - ops.softplus(self.logits)).sum(axis=-1)
