"""The linear-Gaussian latent model: a VAE whose every quantity has a closed form.

    p(z) = N(0, I_d),    p(x | z) = N(W z + b, σ² I_D),    W of shape (D, d).

Because x is a linear function of a Gaussian plus Gaussian noise, x is Gaussian too:

    p(x) = N(x; b, C),   C = W Wᵀ + σ² I_D             (E[x] = b, Cov[x] = W Cov[z] Wᵀ + σ² I)

and Bayes' rule for Gaussians gives the posterior (complete the square in z):

    p(z | x) = N(m, S),  S = (I_d + WᵀW/σ²)⁻¹,  m = S Wᵀ (x − b) / σ².

So log p(x), the exact posterior and KL(q ‖ p(z|x)) are all available, and the identities of
variational inference (log p(x) = ELBO(q) + KL(q ‖ p(z|x)), L_1 ≤ L_k ≤ log p(x), ...) can be
checked exactly.  Probabilistic PCA (Tipping & Bishop 1999) is this model.

Covariances are handled through Cholesky factors: log p(x) through chol(C), the posterior
through chol of its precision P = I + WᵀW/σ² = L_P L_Pᵀ: S = L_P⁻ᵀ L_P⁻¹, so with
M = L_P⁻ᵀ (one triangular solve) S = M Mᵀ.

Verified by: tests/models/test_linear_gaussian.py::test_log_marginal_matches_scipy,
::test_posterior_is_bayes_rule
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions import Distribution, Independent, MultivariateNormal, Normal
from minivae.distributions.base import as_parameters
from minivae.engine.ops import cholesky, matmul, solve_triangular
from minivae.engine.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class LinearGaussian:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I) with W (D, d), b (D,), σ > 0 (a scalar).

    ``encoder``: optional callable x ↦ q(z|x) (a Distribution over d-vectors); by default
    ``encode`` returns the exact posterior.  W, b, σ may be Tensors with ``requires_grad`` to
    learn them.
    """

    def __init__(self, W, b, sigma, encoder=None):
        self.W, self.b, self.sigma = as_parameters(W=W, b=b, sigma=sigma)
        if self.W.ndim != 2:
            raise ValueError(f"W must have shape (D, d), got {self.W.shape}")
        self.x_dim, self.z_dim = self.W.shape
        if self.b.shape != (self.x_dim,):
            raise ValueError(f"b must have shape ({self.x_dim},), got {self.b.shape}")
        if self.sigma.ndim != 0:
            raise ValueError(f"sigma must be a scalar, got shape {self.sigma.shape}")
        checks.require(np.isfinite(self.W.data), "W", "finite", self.W)
        checks.require(np.isfinite(self.b.data), "b", "finite", self.b)
        checks.require((self.sigma.data > 0) & np.isfinite(self.sigma.data), "sigma",
                "positive and finite", self.sigma)
        if encoder is not None and not callable(encoder):
            raise TypeError(f"encoder must be callable (x -> Distribution), got "
                            f"{type(encoder).__name__}")
        self.encoder = encoder
        self.dtype = self.W.dtype

    def _check_x(self, x) -> Tensor:
        return self._check_vectors(x, "x", self.x_dim)

    def _check_vectors(self, v, name: str, dim: int) -> Tensor:
        """v as a Tensor of the model's dtype, shape (..., dim), finite."""
        v = v if isinstance(v, Tensor) else Tensor(np.asarray(v, dtype=self.dtype))
        if v.dtype != self.dtype:
            raise TypeError(f"{name} must have dtype {self.dtype}, got {v.dtype}")
        if v.ndim < 1 or v.shape[-1] != dim:
            raise ValueError(f"{name} must have shape (..., {dim}), got {v.shape}")
        checks.finite(v.data, name)
        return v

    def marginal(self) -> MultivariateNormal:
        """p(x) = N(b, W Wᵀ + σ² I), as a MultivariateNormal with L = chol(C)."""
        C = matmul(self.W, self.W.T) + self.sigma * self.sigma * np.eye(self.x_dim,
                                                                          dtype=self.dtype)
        return MultivariateNormal(self.b, cholesky(C), validate_args=False)

    def log_marginal(self, x) -> Tensor:
        """log p(x) = log N(x; b, W Wᵀ + σ² I), one value per example (shape x.shape[:-1]).

        Verified by: tests/models/test_linear_gaussian.py::test_log_marginal_matches_scipy
        """
        return self.marginal().log_prob(self._check_x(x))

    def posterior(self, x) -> MultivariateNormal:
        """p(z | x) = N(m, S): S = (I + WᵀW/σ²)⁻¹ = M Mᵀ with M = L_P⁻ᵀ, m = S Wᵀ(x − b)/σ².

        Verified by: tests/models/test_linear_gaussian.py::test_posterior_is_bayes_rule
        """
        x = self._check_x(x)
        precision_factor = cholesky(
            np.eye(self.z_dim, dtype=self.dtype)
            + matmul(self.W.T, self.W) / (self.sigma * self.sigma))
        # M = L_P⁻ᵀ: solve L_Pᵀ M = I, one triangular solve for all d columns
        M = solve_triangular(precision_factor, np.eye(self.z_dim, dtype=self.dtype),
                             vector=False, transpose=True)
        S = matmul(M, M.T)
        residual = (x - self.b) / (self.sigma * self.sigma)  # (..., D)
        mean = matmul(matmul(residual, self.W), S)  # (S Wᵀ r)ᵀ = rᵀ W S (S symmetric)
        # chol(S) for the MultivariateNormal; ½(S + Sᵀ) removes rounding asymmetry
        return MultivariateNormal(mean, cholesky(0.5 * (S + S.T)), validate_args=False)

    def encode(self, x) -> Distribution:
        """q(z | x): the given encoder's, or the exact posterior."""
        return self.encoder(x) if self.encoder is not None else self.posterior(x)

    def prior(self) -> Independent:
        """p(z) = N(0, I) over d-vectors."""
        zeros = np.zeros(self.z_dim, dtype=self.dtype)
        return Independent(Normal(zeros, np.ones_like(zeros)), 1)

    def _check_z(self, z) -> Tensor:
        return self._check_vectors(z, "z", self.z_dim)

    def log_likelihood(self, x, z) -> Tensor:
        """log p(x | z) = log N(x; Wz + b, σ² I) = −(D/2) log 2π − D log σ − ‖x − Wz − b‖²/(2σ²).

        z may carry leading sample axes: z (..., B, d) with x (B, D) gives (..., B).
        Verified by: tests/models/test_linear_gaussian.py::test_log_joint_matches_scipy
        """
        x, z = self._check_x(x), self._check_z(z)
        standardized = (x - (matmul(z, self.W.T) + self.b)) / self.sigma
        return (-0.5 * self.x_dim * LOG_2PI - self.x_dim * self.sigma.log()
                - 0.5 * (standardized * standardized).sum(axis=-1))

    def log_joint(self, x, z) -> Tensor:
        """log p(x, z) = log N(z; 0, I) + log N(x; Wz + b, σ² I), z as in ``log_likelihood``.

        Verified by: tests/models/test_linear_gaussian.py::test_log_joint_matches_scipy
        """
        z = self._check_z(z)
        return -0.5 * (LOG_2PI + z * z).sum(axis=-1) + self.log_likelihood(x, z)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n draws (x, z) from the joint: z ~ N(0, I), x = Wz + b + σε."""
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        z = rng.standard_normal((n, self.z_dim)).astype(self.dtype)
        noise = rng.standard_normal((n, self.x_dim)).astype(self.dtype)
        x = z @ self.W.data.T + self.b.data + self.sigma.data * noise
        return x, z
