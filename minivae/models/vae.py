"""The variational autoencoder of Kingma & Welling (2014) for binary images.

Generative model:  z ~ N(0, I),  x | z ~ Bernoulli(σ(decoder(z))).
Inference model:   q(z | x) = N(μ(x), diag σ²(x)), with (μ, log σ²) = encoder(x).
Objective, per example (the ELBO, a lower bound on log p(x)):

    ELBO(x) = E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I))
            ≈ log p(x | z),  z = μ + σ ⊙ ε,  ε ~ N(0, I)   (one reparameterized sample)
              − ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)         (the KL in closed form)

Verified by: tests/test_vae.py (KL against Monte Carlo, ELBO ≤ log p(x) estimate, training
lowers −ELBO on real digits)
"""
from __future__ import annotations

import numpy as np

import minivae.ops as ops
from minivae.densities import BernoulliLogits, DiagonalNormal, standard_normal_log_prob
from minivae.distributions import Independent, Normal
from minivae.nn import (
    MLP,
    Module,
    _check_dtype,
    _check_rng,
    check_batch,
    check_flag,
    check_hidden,
    check_positive_int,
)
from minivae.tensor import Tensor, no_grad


def bernoulli_pixels(logits: Tensor, soft_targets: bool = False) -> BernoulliLogits:
    """p(x | z) = Π_i Bernoulli(x_i; σ(l_i)) over the last axis of the decoder's logits l.

    With ``soft_targets`` its log_prob also takes grey levels x ∈ [0, 1] (then it is minus the
    binary cross-entropy, not a log-probability).
    Verified by:
    tests/test_bernoulli_targets.py::test_soft_target_likelihood_is_minus_the_binary_cross_entropy
    """
    return BernoulliLogits(logits, soft_targets=soft_targets)


class BernoulliPixelModel(Module):
    """A model whose decoder is Bernoulli over pixels: what its data x may hold.

    x must be 0/1 (binary pixels), or any value in [0, 1] when the model was built with
    ``soft_targets=True``; then training feeds it the grey levels instead of binarizing them.
    Subclasses set ``x_dim``, ``dtype`` and ``soft_targets``.
    """

    soft_targets = False

    @property
    def x_support(self) -> str:
        """The values x may hold: "binary" (0/1), or "unit_interval" with soft targets."""
        return "unit_interval" if self.soft_targets else "binary"

    @property
    def binary_data(self) -> bool:
        """Whether training binarizes the images: not when soft targets take grey levels."""
        return not self.soft_targets

    def _check_x(self, x) -> Tensor:
        return check_batch(x, self.x_dim, self.dtype, self.x_support)


class VAE(BernoulliPixelModel):
    """A Bernoulli VAE with MLP encoder and decoder.

    Parameters
    ----------
    x_dim : number of pixels (784 for 28×28 images).
    hidden : hidden layer widths of the encoder; the decoder mirrors them.
    z_dim : latent dimension.
    activation : "tanh", "relu", "leaky_relu", "sigmoid" or "softplus".
    leaky_slope : leaky_relu's slope for negative inputs.
    likelihood : "bernoulli" (the only one here).
    rng : numpy Generator used for the initial weights.
    dtype : float32 (fast) or float64 (for gradient checks).
    soft_targets : accept grey levels x ∈ [0, 1] as targets of the Bernoulli decoder (its
        log p(x|z) is then minus the binary cross-entropy, not a log-probability), and train on
        grey levels from the command line; by default x must be binary, 0 or 1.
    """

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 likelihood: str = "bernoulli", rng: np.random.Generator | None = None,
                 dtype=np.float32, leaky_slope: float = 0.01, soft_targets: bool = False):
        if likelihood != "bernoulli":
            raise ValueError(f"likelihood must be 'bernoulli', got {likelihood!r}")
        x_dim, z_dim = check_positive_int(x_dim, "x_dim"), check_positive_int(z_dim, "z_dim")
        hidden = check_hidden(hidden)
        rng, dtype = _check_rng(rng), _check_dtype(dtype)
        self.x_dim, self.z_dim, self.hidden = x_dim, z_dim, hidden
        self.dtype = dtype
        self.soft_targets = check_flag(soft_targets, "soft_targets")
        # The encoder's last layer emits [μ, log σ²] side by side: 2 · z_dim numbers.
        self.encoder = MLP([x_dim, *hidden, 2 * z_dim], activation, rng, dtype, leaky_slope)
        self.decoder = MLP([z_dim, *reversed(hidden), x_dim], activation, rng, dtype, leaky_slope)
        self.flatten_parameters()

    def encode(self, x) -> DiagonalNormal:
        """q(z | x) = N(μ(x), diag σ²(x)) for a batch x of shape (B, x_dim)."""
        h = self.encoder(self._check_x(x))  # (B, 2 · z_dim)
        return DiagonalNormal(loc=h[:, : self.z_dim], log_var=h[:, self.z_dim:])

    def decode(self, z) -> BernoulliLogits:
        """p(x | z) = Bernoulli(σ(logits(z))) for z of shape (B, z_dim)."""
        return bernoulli_pixels(self.decoder(z), self.soft_targets)

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """Per-example ELBO of shape (B,) with one reparameterized sample and the analytic KL.

        Math: log p(x | z) − KL(q(z|x) ‖ N(0, I)),  z = μ + σ ⊙ ε,  ε = rng.standard_normal.
        Verified by: tests/test_vae.py::test_elbo_is_reconstruction_minus_kl
        """
        q_z_given_x = self.encode(x)
        # z = μ + σ ⊙ ε (B, z_dim) and the closed-form KL (B,), fused into one kernel pass
        z, kl_q_prior = q_z_given_x.rsample_and_kl(_check_rng(rng))
        log_p_x_given_z = self.decode(z).log_prob(x)  # (B,)
        return log_p_x_given_z - kl_q_prior

    def forward(self, x, rng: np.random.Generator) -> Tensor:
        return self.elbo(x, rng)

    def objective(self, x, rng: np.random.Generator) -> Tensor:
        """What training maximizes: the ELBO (see ``minivae.models.registry``)."""
        return self.elbo(x, rng)

    def prior(self) -> Independent:
        """p(z) = N(0, I) over z_dim-vectors."""
        zeros = np.zeros(self.z_dim, dtype=self.dtype)
        return Independent(Normal(zeros, np.ones_like(zeros)), 1)

    def log_likelihood(self, x, z) -> Tensor:
        """log p(x | z) = Σ_i x_i l_i − softplus(l_i), l = decoder(z).

        z may carry leading sample axes: z (..., B, z_dim) with x (B, x_dim) gives (..., B).
        Verified by: tests/test_vae.py::test_log_joint_is_likelihood_plus_prior
        """
        x = self._check_x(x)
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z))
        if z.ndim < 2 or z.shape[-1] != self.z_dim or z.shape[-2] != x.shape[0]:
            raise ValueError(f"z must have shape (..., {x.shape[0]}, {self.z_dim}) for x of "
                             f"shape {x.shape}, got {z.shape}")
        samples = z.shape[:-1]  # (..., B)
        targets = np.broadcast_to(x.data, (*samples, self.x_dim)).reshape(-1, self.x_dim)
        return self.decode(z.reshape(-1, self.z_dim)).log_prob(targets).reshape(samples)

    def log_joint(self, x, z) -> Tensor:
        """log p(x, z) = log p(x | z) + log N(z; 0, I), with z as in ``log_likelihood``.

        Verified by: tests/test_vae.py::test_log_joint_is_likelihood_plus_prior
        """
        return self.log_likelihood(x, z) + standard_normal_log_prob(z)

    def log_importance_weights(self, x, k: int, rng: np.random.Generator) -> np.ndarray:
        """log w_i = log p(x, z_i) − log q(z_i | x) for z_1..z_k ~ q(z|x); shape (k, B).

        Math: p(x) = E_q[p(x, z) / q(z|x)], so log-mean-exp of these weights estimates log p(x)
        from below in expectation and converges to it as k grows (Burda et al. 2016).
        Verified by: tests/test_vae.py::test_importance_sampling_bounds
        """
        k, rng = check_positive_int(k, "k"), _check_rng(rng)
        with no_grad():
            q = self.encode(x)
            z = q.rsample(rng, (k,))  # (k, B, z_dim)
            log_w = self.log_joint(x, z) - q.log_prob(z)
        return log_w.data

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Pixel probabilities σ(decoder(z)) for n draws z ~ N(0, I); shape (n, x_dim)."""
        n, rng = check_positive_int(n, "n"), _check_rng(rng)
        with no_grad():
            z = rng.standard_normal((n, self.z_dim)).astype(self.dtype)
            return self.decode(Tensor(z)).probs.data

    def reconstruct(self, x) -> np.ndarray:
        """Pixel probabilities decoded from the posterior mean μ(x); shape (B, x_dim)."""
        with no_grad():
            return ops.sigmoid(self.decoder(self.encode(x).loc)).data

