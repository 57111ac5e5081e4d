"""The variational autoencoder of Kingma & Welling (2014) for binary images.

Generative model:  z ~ N(0, I),  x | z ~ Bernoulli(σ(decoder(z))).
Inference model:   q(z | x) = N(μ(x), diag σ²(x)), with (μ, log σ²) = encoder(x).
Objective, per example (the ELBO, a lower bound on log p(x)):

    ELBO(x) = E_q[log p(x | z)] − KL(q(z | x) ‖ N(0, I))
            ≈ log p(x | z),  z = μ + σ ⊙ ε,  ε ~ N(0, I)   (one reparameterized sample)
              − ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)         (the KL in closed form)

With ``prior="learnable"`` the prior is the lecture's N(μ_z, σ_z² I), μ_z and σ_z² trained with
the networks, and the KL term is the closed form against it (``minivae.models.learnable_prior``).

Verified by: tests/models/test_vae.py (KL against Monte Carlo, ELBO ≤ log p(x) estimate, training
lowers −ELBO on real digits), tests/models/test_learnable_prior.py
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions import (
    BernoulliLogits,
    DiagonalNormal,
    Independent,
    Normal,
    standard_normal_log_prob,
)
from minivae.engine import ops
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.base import ImageModel
from minivae.models.learnable_prior import LearnablePrior
from minivae.objectives import iwae

PRIORS = ("standard", "learnable")


class VAE(ImageModel):
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
    prior : "standard" (p(z) = N(0, I), the default) or "learnable" (N(μ_z, σ_z² I) with μ_z
        and log σ_z² trained with the networks, starting at N(0, I)).
    """

    latent_prior = None  # N(0, I), without parameters, unless the prior is learnable

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 likelihood: str = "bernoulli", rng: np.random.Generator | None = None,
                 dtype=np.float32, leaky_slope: float = 0.01, soft_targets: bool = False,
                 prior: str = "standard"):
        checks.one_of(likelihood, ("bernoulli",), "likelihood")
        self.prior_kind = checks.one_of(prior, PRIORS, "prior")
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        # The encoder's last layer emits [μ, log σ²] side by side: 2 · z_dim numbers.
        self.build_networks(x_dim, hidden, 2 * self.z_dim, self.z_dim, activation, rng, dtype,
                            leaky_slope, soft_targets)
        if prior == "learnable":  # assigned after the networks: checkpoints list it last
            self.latent_prior = LearnablePrior(self.z_dim, self.dtype)
        self.flatten_parameters()

    def encode(self, x) -> DiagonalNormal:
        """q(z | x) = N(μ(x), diag σ²(x)) for a batch x of shape (B, x_dim)."""
        h = self.encoder(self._check_x(x))  # (B, 2 · z_dim)
        return DiagonalNormal(loc=h[:, : self.z_dim], log_var=h[:, self.z_dim:])

    def decode(self, z) -> BernoulliLogits:
        """p(x | z) = Bernoulli(σ(logits(z))) for z of shape (B, z_dim)."""
        return self.bernoulli_pixels(self.decoder(z))

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """Per-example ELBO of shape (B,) with one reparameterized sample and the analytic KL.

        Math: log p(x | z) − KL(q(z|x) ‖ p(z)),  z = μ + σ ⊙ ε,  ε = rng.standard_normal.
        Verified by: tests/models/test_vae.py::test_elbo_is_reconstruction_minus_kl,
        tests/models/test_learnable_prior.py::test_elbo_with_a_learnable_prior_matches_numpy
        """
        log_p_x_given_z, kl_q_prior = self.reconstruction_and_kl(x, rng)  # (B,), (B,)
        return log_p_x_given_z - kl_q_prior

    def reconstruction_and_kl(self, x, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """The ELBO's two terms, each of shape (B,): (log p(x | z), KL(q(z|x) ‖ p(z))) with one
        reparameterized z = μ + σ ⊙ ε, so that a KL warm-up can weight the second
        (``minivae.train.kl_weighted_elbo``).

        Verified by: tests/test_training_options.py::test_kl_weighted_bound_at_beta_one_is_the_elbo
        """
        q_z_given_x = self.encode(x)
        z, kl_q_prior = self.rsample_and_kl(q_z_given_x, rng)  # (B, z_dim), (B,)
        # log p(x | z) = Σ_i x_i l_i − softplus(l_i) with logits l = decoder(z) (B,)
        return self.decode(z).log_prob(x), kl_q_prior

    def rsample_and_kl(self, q_z_given_x: DiagonalNormal, rng: np.random.Generator):
        """(z, KL(q ‖ p(z))): z = μ + σ ⊙ ε, ε = rng.standard_normal, and the KL in closed form;
        against N(0, I) it is ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²) (one fused pass).

        Verified by:
        tests/models/test_learnable_prior.py::test_elbo_with_a_learnable_prior_matches_numpy
        """
        if self.latent_prior is None:
            return q_z_given_x.rsample_and_kl(rng)
        eps = checks.generator(rng).standard_normal(q_z_given_x.loc.shape)
        z = q_z_given_x.loc + q_z_given_x.scale * eps.astype(self.dtype, copy=False)
        return z, self.latent_prior.kl(q_z_given_x)

    def forward(self, x, rng: np.random.Generator) -> Tensor:
        return self.elbo(x, rng)

    def objective(self, x, rng: np.random.Generator) -> Tensor:
        """What training maximizes: the ELBO (see ``minivae.models.registry``)."""
        return self.elbo(x, rng)

    def prior(self) -> Independent:
        """p(z) = N(0, I) over z_dim-vectors, or the learnable N(μ_z, σ_z² I)."""
        if self.latent_prior is not None:
            return self.latent_prior.distribution()
        zeros = np.zeros(self.z_dim, dtype=self.dtype)
        return Independent(Normal(zeros, np.ones_like(zeros)), 1)

    def log_likelihood(self, x, z) -> Tensor:
        """log p(x | z) = Σ_i x_i l_i − softplus(l_i), l = decoder(z).

        z may carry leading sample axes: z (..., B, z_dim) with x (B, x_dim) gives (..., B).
        Verified by: tests/models/test_vae.py::test_log_joint_is_likelihood_plus_prior
        """
        x = self._check_x(x)
        z = self._check_z(z, x)
        samples = z.shape[:-1]  # (..., B)
        pixels = self.decode(z.reshape(-1, self.z_dim))  # one decoder pass over every sample
        if isinstance(pixels, BernoulliLogits):  # x broadcasts over the samples, uncopied
            logits = pixels.logits.reshape(*samples, self.x_dim)
            return BernoulliLogits(logits, pixels.soft_targets).log_prob(x.data)
        targets = np.broadcast_to(x.data, (*samples, self.x_dim)).reshape(-1, self.x_dim)
        return pixels.log_prob(targets).reshape(samples)

    def _check_z(self, z, x: Tensor) -> Tensor:
        """z as a Tensor of shape (..., B, z_dim), B = the rows of x."""
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z))
        checks.shape(z.shape[-2:] == (x.shape[0], self.z_dim), "z",
                     f"(..., {x.shape[0]}, {self.z_dim}) for x of shape {x.shape}", z.shape)
        return z

    def log_joint(self, x, z) -> Tensor:
        """log p(x, z) = log p(x | z) + log p(z), with z as in ``log_likelihood`` and p(z) =
        N(0, I) or the learnable N(μ_z, σ_z² I).

        Verified by: tests/models/test_vae.py::test_log_joint_is_likelihood_plus_prior,
        tests/models/test_learnable_prior.py::test_log_prob_matches_scipy
        """
        if self.latent_prior is not None:
            return self.log_likelihood(x, z) + self.latent_prior.log_prob(z)
        return self.log_likelihood(x, z) + standard_normal_log_prob(z)

    def prior_draws(self, n: int, rng: np.random.Generator) -> Tensor:
        """n codes z ~ p(z) (N(0, I) or the learnable prior), shape (n, z_dim), no graph."""
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        if self.latent_prior is not None:
            return Tensor(self.latent_prior.draw(n, rng))
        return Tensor(rng.standard_normal((n, self.z_dim)).astype(self.dtype))

    def log_importance_weights(self, x, k: int, rng: np.random.Generator) -> np.ndarray:
        """log w_i = log p(x, z_i) − log q(z_i | x) for z_1..z_k ~ q(z|x); shape (k, B), with
        no graph recorded (``minivae.objectives.iwae.log_importance_weights`` computes them).

        Math: p(x) = E_q[p(x, z) / q(z|x)], so log-mean-exp of these weights estimates log p(x)
        from below in expectation and converges to it as k grows (Burda et al. 2016).
        Verified by: tests/models/test_vae.py::test_importance_sampling_bounds
        """
        with no_grad():
            return iwae.log_importance_weights(self, x, k, rng).data

    def log_importance_weight_chunks(self, x, k: int, rng: np.random.Generator, chunk: int):
        """The weights of ``log_importance_weights`` for k draws, ``chunk`` draws at a time:
        arrays of shape (≤ chunk, B) in the model's dtype, the same draws from ``rng`` in the
        same order, so the same numbers up to rounding, computed without the engine's graph.

        Math: with z = μ + σ ⊙ ε the Gaussian constants of log p(z) and log q(z|x) cancel,

            log w = [Σ_i x_i l_i − softplus(l_i)] − ½ Σ_j z_j² + ½ Σ_j ε_j² + Σ_j log σ_j,

        l = decoder(z).  The encoder runs once for all k draws, the c·B codes of a chunk go
        through the decoder as one stack of rows (one matrix product per layer), and
        ``BernoulliLogits.log_prob`` scores them against x without copying x per draw.
        A model with a learnable prior, or a subclass with its own encoder, decoder or joint
        (full covariance, Gaussian pixels, VaDE), takes its own readable form chunk by chunk.
        Verified by:
        tests/objectives/test_likelihood.py::test_fast_vae_weights_are_a_drop_in_for_the_readable_form
        """
        k, rng = checks.positive_int(k, "k"), checks.generator(rng)
        chunk = checks.positive_int(chunk, "chunk")
        if self.latent_prior is not None or not self._has_the_plain_vae_density():
            for done in range(0, k, chunk):
                yield self.log_importance_weights(x, min(chunk, k - done), rng)
            return
        with no_grad():
            q = self.encode(x)  # checks x, and that μ is finite and σ² a positive float
            loc, scale = q.loc.data, q.scale.data
            x = self._check_x(x).data
            log_scale_sum = np.log(scale).sum(axis=-1)  # Σ_j log σ_j, (B,)
            for done in range(0, k, chunk):
                eps = rng.standard_normal((min(chunk, k - done), *loc.shape)).astype(self.dtype)
                z = loc + scale * eps  # (c, B, d)
                logits = self.decoder(Tensor(z.reshape(-1, self.z_dim))).data  # (c·B, D)
                log_p_x_given_z = self.bernoulli_pixels(  # x broadcast over the c draws
                    Tensor(logits.reshape(*z.shape[:-1], self.x_dim))).log_prob(x).data
                yield (log_p_x_given_z - 0.5 * (z * z).sum(axis=-1)
                       + 0.5 * (eps * eps).sum(axis=-1) + log_scale_sum)

    def _has_the_plain_vae_density(self) -> bool:
        """Whether the weights are this class's: diagonal Gaussian q, N(0, I) prior, Bernoulli
        pixels (a subclass that redefines any of them gets no shortcut written for them)."""
        return all(getattr(type(self), name) is getattr(VAE, name) for name in (
            "encode", "decode", "log_likelihood", "log_joint", "log_importance_weights"))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Pixel probabilities σ(decoder(z)) for n draws z ~ p(z); shape (n, x_dim)."""
        with no_grad():
            return self.decode(self.prior_draws(n, rng)).probs.data

    def reconstruct(self, x) -> np.ndarray:
        """Pixel probabilities decoded from the posterior mean μ(x); shape (B, x_dim)."""
        with no_grad():
            return ops.sigmoid(self.decoder(self.encode(x).loc)).data

