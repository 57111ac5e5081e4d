"""A VAE for grey-level images: p(x|z) = N(μ_θ(z), σ² I) instead of Bernoulli pixels.

    z ~ N(0, I),   x | z ~ N(μ_θ(z), diag σ²),   q(z | x) = N(μ(x), diag σ²(x)) as in the VAE.

Per image of D pixels, with one σ shared by all pixels,

    −log p(x | z) = ‖x − μ‖² / (2σ²) + D log(σ √(2π)),

the squared error of an autoencoder, weighted by 1/(2σ²), plus a normalizer; with one σᵢ per
pixel it is Σᵢ [(xᵢ − μᵢ)² / (2σᵢ²) + log(σᵢ √(2π))].  σ is either fixed (then it only sets
how much reconstruction weighs against the KL) or learned: per pixel, or one shared value.
A learned σ is stored through an unconstrained parameter ρ, σ = min_sigma + exp(ρ) (with
min_sigma = 0, ρ is log σ itself), so σ stays positive whatever step the optimizer takes;
maximizing over a shared σ sets σ² to the mean squared reconstruction error.

The decoder mean μ_θ(z) goes through a sigmoid by default, so it lies in (0, 1) like the
pixels; ``mean_activation="identity"`` leaves it unbounded (pictures are then clipped to
[0, 1]).

Train it on grey levels (``load_dataset(...).pixels(np.float32)``), not binarized pixels.
Its log-likelihoods are densities of continuous x, and are not comparable with a Bernoulli
VAE's, which are probabilities of binary x: a density on [0, 1]-valued data can exceed 1,
so log p(x) can be positive, and it grows without bound as σ → 0 on pixels the decoder
predicts almost exactly (MNIST's always-blank border, with a learned per-pixel σ).  The floor
``min_sigma`` keeps that in check.

Verified by: tests/models/test_gaussian_decoder.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import Independent
from minivae.distributions.normal import Normal
from minivae.engine import ops
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.vae import VAE

LOG_2PI = math.log(2.0 * math.pi)
SIGMA_OPTIONS = ("learned_per_pixel", "learned_shared")
MEAN_ACTIVATIONS = ("sigmoid", "identity")


class GaussianPixels(Independent):
    """Independent N(meanᵢ, σᵢ²) over the last axis (the pixels), given log σ.

    mean : (..., D) Tensor.  log_scale : log σ, a Tensor of shape (D,) (one per pixel), ()
    (shared) or the mean's own shape (one per pixel and example), broadcast against the mean.
    """

    def __init__(self, mean: Tensor, log_scale: Tensor):
        self.loc, self.log_scale = mean, log_scale
        # σ = exp(log σ) > 0 by construction, so the Normal need not check it
        super().__init__(Normal(mean, ops.exp(log_scale), validate_args=False), 1)

    def log_prob(self, x) -> Tensor:
        """log p(x) = −Σᵢ (xᵢ − μᵢ)² / (2σᵢ²) − Σᵢ log(σᵢ √(2π)), summed over the last axis;
        with one shared σ: −‖x − μ‖² / (2σ²) − D log(σ √(2π)).

        Written in log σ: the residual is scaled by exp(−log σ) and log σ enters as is, so no
        log(exp(·)) round trip loses precision for tiny σ.
        Verified by: tests/models/test_gaussian_decoder.py::test_density_is_gaussian
        """
        x = self._value(x)
        pixels = self.event_shape[0]
        standardized = (x - self.loc) * ops.exp(-self.log_scale)
        # Σᵢ log σᵢ: D · log σ for a shared σ, the sum over the last axis otherwise
        log_scale_sum = (self.log_scale.sum(axis=-1) if self.log_scale.ndim else
                         self.log_scale * pixels)
        return (-0.5 * (standardized * standardized).sum(axis=-1) - log_scale_sum
                - 0.5 * pixels * LOG_2PI)


class GaussianDecoderVAE(VAE):
    """A VAE with Gaussian pixels p(x|z) = N(μ_θ(z), σ²I), for grey levels in [0, 1].

    Parameters
    ----------
    x_dim, hidden, z_dim, activation, rng, dtype, leaky_slope : as for ``VAE``.
    sigma : "learned_per_pixel" (one σᵢ per pixel), "learned_shared" (one σ, the default) or
        a positive number (σ fixed, not trained).
    mean_activation : "sigmoid" (μ in (0, 1), the default) or "identity" (μ unbounded).
    init_sigma : the starting value of a learned σ.  0.1 is near where it ends up on digits
        (√ of the mean squared error); from σ = 1 it would take many epochs to get there, since
        Adam moves log σ by about lr per step.
    min_sigma : a floor under a learned σ = min_sigma + exp(ρ); 0 gives σ = exp(ρ).  The
        default 10⁻³ is about the standard deviation of 8-bit quantization, 1/(255 √12): finer
        than that, a grey level is not known anyway.
    """

    binary_data = False  # trained on the grey levels themselves, not on binarized pixels
    x_support = "real"  # a Gaussian density takes any finite x

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, sigma="learned_shared",
                 mean_activation: str = "sigmoid", init_sigma: float = 0.1,
                 min_sigma: float = 1e-3):
        learned = isinstance(sigma, str)
        if learned:
            checks.one_of(sigma, SIGMA_OPTIONS, "sigma")
        else:
            checks.real(sigma, "sigma", 0, low_open=True)  # a fixed σ (True is not one)
        checks.one_of(mean_activation, MEAN_ACTIVATIONS, "mean_activation")
        checks.real(min_sigma, "min_sigma", 0)
        checks.real(init_sigma, f"init_sigma (above min_sigma = {min_sigma})", min_sigma,
                    low_open=True)
        super().__init__(x_dim, hidden, z_dim, activation, rng=rng, dtype=dtype,
                         leaky_slope=leaky_slope)
        self.sigma, self.mean_activation = sigma, mean_activation
        self.min_sigma = float(min_sigma)
        if learned:
            shape = (self.x_dim,) if sigma == "learned_per_pixel" else ()
            rho = np.full(shape, np.log(init_sigma - min_sigma), dtype=self.dtype)
            self.sigma_parameter = Tensor(rho, requires_grad=True)  # ρ, with σ = floor + e^ρ
            self.flatten_parameters()  # re-pack encoder, decoder and ρ into one buffer
        else:
            self._fixed_log_sigma = Tensor(np.array(np.log(sigma), dtype=self.dtype))

    def log_sigma(self) -> Tensor:
        """log σ: ρ itself when min_sigma = 0, else log(min_sigma + e^ρ) = m + softplus(ρ − m)
        with m = log min_sigma (a log-sum-exp of two terms, stable for any ρ).

        Verified by: tests/models/test_gaussian_decoder.py::test_sigma_stays_positive
        """
        if not isinstance(self.sigma, str):
            return self._fixed_log_sigma
        if self.min_sigma == 0.0:
            return self.sigma_parameter
        log_floor = math.log(self.min_sigma)
        return log_floor + ops.softplus(self.sigma_parameter - log_floor)

    def decode(self, z) -> GaussianPixels:
        """p(x | z) = N(μ_θ(z), diag σ²) for z of shape (B, z_dim), μ_θ = sigmoid or identity of
        the decoder's output.

        Verified by: tests/models/test_gaussian_decoder.py::test_objective_matches_numpy
        """
        mean = self.decoder(z)
        return GaussianPixels(ops.sigmoid(mean) if self.mean_activation == "sigmoid" else mean,
                              self.log_sigma())

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """Per-example ELBO of shape (B,) with one reparameterized sample and the analytic KL.

        Math: log N(x; μ_θ(z), σ²I) − KL(q(z|x) ‖ N(0, I)),  z = μ + σ_q ⊙ ε.
        Verified by: tests/models/test_gaussian_decoder.py::test_objective_matches_numpy
        """
        q_z_given_x = self.encode(x)
        z, kl_q_prior = q_z_given_x.rsample_and_kl(rng)
        return self.decode(z).log_prob(x) - kl_q_prior

    def objective(self, x, rng: np.random.Generator) -> Tensor:
        """The per-example quantity training maximizes: the ELBO (see ``elbo``).

        Verified by: tests/models/test_gaussian_decoder.py::test_objective_matches_numpy
        """
        return self.elbo(x, rng)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Decoder means μ_θ(z) for n draws z ~ N(0, I), clipped to [0, 1]; shape (n, x_dim).

        The mean image, without the pixel noise σε, which would only add grain.
        Verified by: tests/models/test_gaussian_decoder.py::test_pictures_lie_in_the_unit_interval
        """
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        with no_grad():
            z = rng.standard_normal((n, self.z_dim)).astype(self.dtype)
            return np.clip(self.decode(Tensor(z)).loc.data, 0.0, 1.0)

    def reconstruct(self, x) -> np.ndarray:
        """Decoder means μ_θ(μ(x)) at the posterior mean, clipped to [0, 1]; shape (B, x_dim).

        Verified by: tests/models/test_gaussian_decoder.py::test_pictures_lie_in_the_unit_interval
        """
        with no_grad():
            return np.clip(self.decode(self.encode(x).loc).loc.data, 0.0, 1.0)
