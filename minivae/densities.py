"""The two densities a Bernoulli VAE needs, as minivae.distributions with fused fast paths.

* ``DiagonalNormal(loc, log_var)`` is q(z|x) = N(μ, diag σ²): the diagonal Gaussian
  ``Independent(Normal(μ, σ), 1)`` of minivae.distributions, parameterized by the log-variance
  the encoder emits (unconstrained; σ = exp(½ log σ²) is always positive).
* ``BernoulliLogits(logits, soft_targets=False)`` is p(x|z): ``Independent(Bernoulli(logits=l),
  1)`` over pixels.  Targets must be 0 or 1 unless ``soft_targets=True`` (grey levels in [0, 1],
  scored by minus the binary cross-entropy).

This is where sampling meets differentiation.  ``rsample`` draws z = μ + σ ⊙ ε with
ε ~ N(0, I) drawn *outside* the graph, so z is a differentiable function of (μ, σ) and
gradients flow through the sample: the reparameterization trick.  The training step calls the
fused kernels (``rsample_and_kl``, the 2-D Bernoulli log-likelihood); everything else
(log_prob, entropy, kl_divergence against any registered distribution) is inherited.

Verified by: tests/test_densities.py
"""
from __future__ import annotations

import math

import numpy as np

import minivae.ops as ops
from minivae.distributions.base import Independent, as_parameters, check_rng, require
from minivae.distributions.bernoulli import Bernoulli, check_targets
from minivae.distributions.normal import Normal
from minivae.ops import fused
from minivae.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class DiagonalNormal(Independent):
    """N(μ, diag σ²) over the last axis, parameterized by mean and log-variance."""

    def __init__(self, loc: Tensor, log_var: Tensor):
        loc, log_var = as_parameters(loc=loc, log_var=log_var)
        if loc.shape != log_var.shape or loc.ndim < 1:
            raise ValueError(f"loc and log_var must have the same shape (..., d), got {loc.shape} "
                             f"and {log_var.shape}")
        # two cheap passes over (batch, latent) arrays: a NaN here would poison the whole step
        require(np.isfinite(loc.data), "loc", "finite", loc)
        finfo = np.finfo(log_var.dtype)  # σ² = exp(log σ²) must be a positive finite float
        low, high = float(np.log(finfo.tiny)), float(np.log(finfo.max))
        require((log_var.data >= low) & (log_var.data <= high), "log_var",
                f"in [{low:.1f}, {high:.1f}] (so that σ² = exp(log σ²) is a positive finite "
                f"{log_var.dtype})", log_var)
        self.loc, self.log_var = loc, log_var
        # σ = exp(½ log σ²) > 0 by construction, so the Normal need not check it
        super().__init__(Normal(loc, ops.exp(0.5 * log_var), validate_args=False), 1)

    @property
    def scale(self) -> Tensor:
        """σ = exp(½ log σ²)."""
        return self.base.scale

    def rsample_and_kl(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``(rsample(rng), kl_to_standard_normal())`` from one fused kernel pass.

        The same ε is drawn as in ``rsample``; the tests check both results and gradients
        against the two separate methods.
        Verified by: tests/test_densities.py::test_fused_rsample_and_kl_equal_separate_methods
        """
        eps = check_rng(rng).standard_normal(self.loc.shape).astype(self.loc.dtype, copy=False)
        return fused.reparameterize_kl(self.loc, self.log_var, eps)

    def kl_to_standard_normal(self) -> Tensor:
        """KL(N(μ, diag σ²) ‖ N(0, I)) in closed form, summed over the last axis.

        Math (Kingma & Welling 2014, appendix B): ½ Σ_j [ μ_j² + σ_j² − 1 − log σ_j² ], the
        Normal ‖ Normal KL of minivae.distributions with q = N(0, 1), written in log σ².
        Verified by: tests/test_densities.py::test_kl_matches_monte_carlo,
        tests/test_densities.py::test_kl_agrees_with_the_registry
        """
        terms = self.loc * self.loc + ops.exp(self.log_var) - 1.0 - self.log_var
        return 0.5 * terms.sum(axis=-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last axis: −½ Σ_j (log 2π + z_j²).

    Verified by: tests/test_densities.py::test_diagonal_normal_log_prob_matches_scipy
    """
    z = z if isinstance(z, Tensor) else Tensor(z)
    return -0.5 * (LOG_2PI + z * z).sum(axis=-1)


class BernoulliLogits(Independent):
    """Independent Bernoulli variables over the last axis, with logits l = log(p / (1 − p)).

    logits : (..., D), any reals or ±∞ (not NaN).
    soft_targets : False (the default): ``log_prob(x)`` accepts only x ∈ {0, 1}; True: any
        x ∈ [0, 1], scored by minus the binary cross-entropy (see ``Bernoulli.log_prob``).
    """

    def __init__(self, logits: Tensor, soft_targets: bool = False):
        (logits,) = as_parameters(logits=logits)
        if logits.ndim < 1:
            raise ValueError(f"logits must have a last axis of pixels, got shape {logits.shape}")
        # one pass: the decoder's logits are finite, and only then is the fused kernel exact
        self._all_finite = bool(np.isfinite(logits.data).all())
        if not self._all_finite:
            require(~np.isnan(logits.data), "logits", "a number (±inf allowed), not NaN", logits)
        self.logits = logits
        super().__init__(Bernoulli(logits=logits, validate_args=False,
                                   soft_targets=soft_targets), 1)
        self.soft_targets = self.base.soft_targets

    @property
    def probs(self) -> Tensor:
        return ops.sigmoid(self.logits)

    def log_prob(self, x) -> Tensor:
        """log p(x) = Σ_i [ x_i log σ(l_i) + (1 − x_i) log(1 − σ(l_i)) ], summed over the last axis.

        Math: since log σ(l) = l − softplus(l) and log(1 − σ(l)) = −softplus(l), each term is
        x·l − softplus(l): finite for any finite logit, and for soft targets x ∈ [0, 1] too
        (this is minus the binary cross-entropy).  2-D finite logits take the fused kernel
        (value and gradient in one pass) when x has their shape; others the general
        Bernoulli.log_prob, which broadcasts and is exact at l = ±∞.  Targets are checked in
        one vectorized pass (ValueError: x must hold 0s and 1s, or lie in [0, 1] with
        soft_targets=True).
        Verified by: tests/test_densities.py::test_bernoulli_log_prob_matches_direct_formula
        """
        fusable = self.logits.ndim == 2 and self._all_finite
        if fusable and not (isinstance(x, Tensor) and x.requires_grad):
            data = np.asarray(x.data if isinstance(x, Tensor) else x)
            if data.dtype.kind in "biu":
                data = data.astype(self.dtype)
            elif data.dtype != self.dtype:
                raise TypeError(f"x must have the logits' dtype {self.dtype} (or be integer), "
                                f"got {data.dtype}")
            if data.shape == self.logits.shape:  # else the general path broadcasts (or says no)
                check_targets(data, self.soft_targets)
                return fused.bernoulli_log_prob(self.logits, data)  # value and gradient at once
        return super().log_prob(x)
