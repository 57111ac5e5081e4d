"""Variational deep embedding, VaDE (Jiang et al., 2017): a VAE whose prior is a Gaussian mixture.

Generative model:  c ~ Cat(π),  z | c ~ N(μ_c, diag σ_c²),  x | z ~ Bernoulli(σ(decoder(z))),
with π = softmax(prior_logits), μ_c = prior_means[c], log σ_c² = prior_log_vars[c] learned.
Inference model:   q(z, c | x) = q(z | x) q(c | x),  q(z | x) = N(μ̃(x), diag σ̃²(x)),
and q(c | x) = γ(z) = p(c | z) (Bayes' rule in the prior), evaluated at the sampled z.

The ELBO splits as E_q[log p(x | z)] − KL(q(z|x) γ ‖ p(z, c)), and for any γ with Σ_c γ_c = 1

    KL(q(z|x) γ ‖ p(z, c)) = Σ_c γ_c [log(γ_c / π_c) + KL(N(μ̃, σ̃²) ‖ N(μ_c, σ_c²))],
    KL(N(μ̃, σ̃²) ‖ N(μ_c, σ_c²))
        = ½ Σ_j [log σ²_cj − log σ̃²_j + σ̃²_j/σ²_cj + (μ̃_j − μ_cj)²/σ²_cj − 1].

Multiplied out this is Jiang et al.'s closed form: the −½ J log 2π of E_q[log p(z|c)] and the
+½ J log 2π of the entropy of q(z|x) cancel, so nothing is dropped and it is a true ELBO.
For fixed q(z|x) the bound is largest at γ*_c ∝ π_c exp(−KL(q(z|x) ‖ N(μ_c, σ_c²))), where the
KL term equals −log Σ_c π_c exp(−KL_c); VaDE's γ = p(c | z) at a draw is not that maximizer, so
on average its objective is ≤ the bound at γ* ≤ log p(x): still a lower bound.

Initialization (the model is hard to train from scratch: the clusters must first exist in z):
pretrain encoder mean and decoder as a deterministic autoencoder (``autoencoder_objective``),
then ``initialize_prior`` fits a diagonal GMM to the encoder means by EM (k-means++ seeds).

Verified by: tests/models/test_vade.py
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from minivae import checks
from minivae.distributions import DiagonalNormal
from minivae.distributions.mixture import GaussianMixture
from minivae.engine import ops
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.vae import VAE
from minivae.topics.clustering import DiagonalGMM, fit_diagonal_gmm

LOG_2PI = math.log(2.0 * math.pi)


class ElboTerms(NamedTuple):
    """Per-draw integrands of ELBO = E[reconstruction] − E[latent_kl] − E[cluster_kl]."""

    reconstruction: Tensor  # log p(x | z)
    latent_kl: Tensor  # log q(z|x) − log p(z), mean KL(q(z|x) ‖ p(z))
    cluster_kl: Tensor  # KL(q(c|x) ‖ p(c|z))


class VaDE(VAE):
    """A Bernoulli VAE with a learned K-component diagonal Gaussian-mixture prior.

    Parameters
    ----------
    x_dim, hidden, z_dim, activation, leaky_slope, rng, dtype : as for ``VAE``.
    n_clusters : K, the mixture components (clusters), default 10.
    n_samples : L, the z draws per example averaged in ``objective`` (each with its own γ).
    soft_targets : accept grey levels x ∈ [0, 1] as Bernoulli targets, as for ``VAE``.
    """

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, n_clusters: int = 10, n_samples: int = 1,
                 soft_targets: bool = False):
        self.n_clusters = checks.positive_int(n_clusters, "n_clusters")
        self.n_samples = checks.positive_int(n_samples, "n_samples")
        # The VAE's encoder (q(z|x) = N(μ̃(x), diag σ̃²(x))) and decoder (Bernoulli pixels).
        super().__init__(x_dim, hidden, z_dim, activation, rng=rng, dtype=dtype,
                         leaky_slope=leaky_slope, soft_targets=soft_targets)
        dtype = self.dtype
        # Until initialize_prior: uniform π, unit variances, means spread like N(0, I) draws.
        self.prior_logits = Tensor(np.zeros(n_clusters, dtype), requires_grad=True)
        self.prior_means = Tensor(rng.standard_normal((n_clusters, z_dim)).astype(dtype),
                                  requires_grad=True)
        self.prior_log_vars = Tensor(np.zeros((n_clusters, z_dim), dtype), requires_grad=True)
        self.flatten_parameters()  # re-pack encoder, decoder and the prior into one buffer

    # --- the mixture prior ---------------------------------------------------------------
    def log_mixture_weights(self) -> Tensor:
        """log π = logits − logsumexp(logits), shape (K,)."""
        return self.prior_logits - self.prior_logits.logsumexp()

    def cluster_log_joint(self, z) -> Tensor:
        """log p(z, c) = log π_c − ½ Σ_j [log 2π + log σ²_cj + (z_j − μ_cj)²/σ²_cj];
        z of shape (..., z_dim) gives (..., K).

        Verified by: tests/models/test_vade.py::test_prior_densities_match_scipy
        """
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z, self.dtype))
        z = z.reshape(*z.shape[:-1], 1, self.z_dim)  # a cluster axis, for broadcasting
        diff = z - self.prior_means  # (..., K, J)
        inverse_var = (-self.prior_log_vars).exp()
        log_normal = -0.5 * (LOG_2PI + self.prior_log_vars + diff * diff * inverse_var)
        return self.log_mixture_weights() + log_normal.sum(axis=-1)

    def log_responsibilities(self, z) -> Tensor:
        """log γ_c(z) = log p(c | z) = log p(z, c) − logsumexp_c' log p(z, c'); (..., K).

        Verified by: tests/models/test_vade.py::test_prior_densities_match_scipy
        """
        joint = self.cluster_log_joint(z)
        return joint - joint.logsumexp(axis=-1, keepdims=True)

    def prior(self) -> GaussianMixture:
        """p(z) = Σ_c π_c N(z; μ_c, diag σ_c²) as a distribution (log_prob, sample)."""
        return GaussianMixture(self.prior_logits, self.prior_means,
                               (0.5 * self.prior_log_vars).exp(), validate_args=False)

    # --- the objective -------------------------------------------------------------------
    def kl_to_prior(self, q: DiagonalNormal, log_gamma) -> Tensor:
        """KL(q(z|x) γ ‖ p(z, c)) = Σ_c γ_c [log γ_c − log π_c
            + ½ Σ_j (log σ²_cj − log σ̃²_j + σ̃²_j/σ²_cj + (μ̃_j − μ_cj)²/σ²_cj − 1)].

        q has batch shape (B,); log_gamma (..., B, K) (log q(c|x), normalized) gives (..., B).
        Ratios of variances are exponentials of differences of log-variances, and γ log γ is
        exp(log γ)·log γ, which is 0, never NaN, for an underflowed γ.
        Verified by: tests/models/test_vade.py::test_closed_form_elbo_matches_monte_carlo,
        ::test_kl_gradients_pass_gradcheck, ::test_kl_is_smallest_at_the_optimal_gamma
        """
        log_gamma = log_gamma if isinstance(log_gamma, Tensor) else Tensor(np.asarray(log_gamma))
        q_loc = q.loc.reshape(*q.loc.shape[:-1], 1, self.z_dim)  # (B, 1, J)
        q_log_var = q.log_var.reshape(*q.log_var.shape[:-1], 1, self.z_dim)
        diff = q_loc - self.prior_means  # (B, K, J)
        kl_gauss = 0.5 * (self.prior_log_vars - q_log_var - 1.0
                          + (q_log_var - self.prior_log_vars).exp()
                          + diff * diff * (-self.prior_log_vars).exp()).sum(axis=-1)  # (B, K)
        terms = log_gamma - self.log_mixture_weights() + kl_gauss
        return (log_gamma.exp() * terms).sum(axis=-1)

    def objective(self, x, rng: np.random.Generator) -> Tensor:
        """The VaDE ELBO per example (B,), with L = ``n_samples`` draws z_l = μ̃ + σ̃ ⊙ ε_l:

            (1/L) Σ_l [log p(x | z_l) − KL(q(z|x) γ(z_l) ‖ p(z, c))],   γ(z) = p(c | z).

        With L = 1 this is Jiang et al.'s estimator; gradients also flow through γ(z_l).
        Verified by: tests/models/test_vade.py::test_objective_is_reconstruction_minus_kl,
        ::test_objective_gradient_matches_central_differences
        """
        q = self.encode(x)
        z = q.rsample(rng, (self.n_samples,))  # (L, B, J)
        log_gamma = self.log_responsibilities(z)  # (L, B, K)
        return (self.log_likelihood(x, z) - self.kl_to_prior(q, log_gamma)).mean(axis=0)

    def forward(self, x, rng: np.random.Generator) -> Tensor:
        return self.objective(x, rng)

    def elbo_terms(self, x, log_q_c, z) -> ElboTerms:
        """The three integrands of the ELBO of q(z, c | x) = q(z|x) q(c|x), at draws z ~ q(z|x):

            ELBO = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)) − E_q(z|x)[KL(q(c|x) ‖ p(c|z))].

        From p(z, c) = p(z) p(c|z): log p(x, z, c) − log q(z, c|x) = log p(x|z)
        − [log q(z|x) − log p(z)] − [log q(c|x) − log p(c|z)], whose mean over c ~ q(c|x) gives
        the three terms for each z exactly.  p(z) = Σ_c π_c N(z; μ_c, σ_c²) is a mixture, so the
        middle KL has no closed form; the last term vanishes only where q(c|x) = p(c|z) for
        almost every z.  Over q(c|x) it is smallest at q(c|x) ∝ exp(E_q(z|x) log p(c|z))
        ∝ π_c exp(−KL(q(z|x) ‖ N(μ_c, σ_c²))), the γ* of ``kl_to_prior`` (the geometric, not
        the arithmetic, mean of p(c|z) over q(z|x)).

        x (B, x_dim); log_q_c (B, K), log q(c|x), normalized; z (..., B, z_dim).  Returns
        ``ElboTerms(reconstruction, latent_kl, cluster_kl)``, each (..., B): log p(x|z),
        log q(z|x) − log p(z) and KL(q(c|x) ‖ p(c|z)); their means over z estimate the terms.
        Verified by: tests/models/test_vade.py::test_elbo_terms_add_up_to_the_elbo_at_every_draw,
        ::test_elbo_terms_average_to_the_closed_form,
        ::test_cluster_kl_is_smallest_at_the_geometric_mean_of_p_c_given_z
        """
        log_q_c = log_q_c if isinstance(log_q_c, Tensor) else Tensor(np.asarray(log_q_c))
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z))
        q = self.encode(x)
        log_prior = self.cluster_log_joint(z).logsumexp(axis=-1)  # log p(z), (..., B)
        cluster_kl = (log_q_c.exp() * (log_q_c - self.log_responsibilities(z))).sum(axis=-1)
        return ElboTerms(self.log_likelihood(x, z), q.log_prob(z) - log_prior, cluster_kl)

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """Same as ``objective``: a one-draw estimate of a lower bound on log p(x).

        Verified by: tests/models/test_vade.py::test_elbo_is_below_the_evidence
        """
        return self.objective(x, rng)

    def autoencoder_objective(self, x) -> Tensor:
        """log p(x | z = μ̃(x)) per example (B,): the pretraining objective, a deterministic
        autoencoder through the encoder mean (minus the binary cross-entropy).

        Verified by: tests/models/test_vade.py::test_autoencoder_objective_decodes_the_mean
        """
        return self.decode(self.encode(x).loc).log_prob(x)

    def initialize_prior(self, z_means, rng: np.random.Generator,
                         posterior_scale: float | None = 0.1, **em_options) -> DiagonalGMM:
        """Set π, μ_c, σ_c² to a diagonal GMM fitted by EM to z_means (N, z_dim), e.g. the
        encoder means μ̃(x) of the training set after pretraining; returns the fit.

        Autoencoder pretraining leaves the log σ̃² half of the encoder's last layer untrained,
        and its arbitrary σ̃ (≈ 1) can dwarf the clusters, whose spread depends on the scale
        the autoencoder chose.  So, unless ``posterior_scale`` is None, that half restarts as
        the constant log σ̃²_j = log(s² · mean_c σ²_cj) (zero weights, this bias), s =
        posterior_scale: at first a draw z stays near μ̃(x), inside its cluster.
        Verified by: tests/models/test_vade.py::test_initialize_prior_copies_the_fitted_gmm
        """
        z_means = np.asarray(z_means.data if isinstance(z_means, Tensor) else z_means)
        checks.shape(z_means.shape[1:] == (self.z_dim,), "z_means", f"(N, {self.z_dim})",
                     z_means.shape)
        posterior_scale = checks.positive(posterior_scale, "posterior_scale", number=True,
                                          optional=True)
        gmm = fit_diagonal_gmm(z_means, self.n_clusters, rng, **em_options)  # which checks rng
        self.prior_logits.data[...] = np.log(gmm.weights)
        self.prior_means.data[...] = gmm.means
        self.prior_log_vars.data[...] = np.log(gmm.variances)
        if posterior_scale is not None:
            last = self.encoder.layers[-1]
            last.weight.data[:, self.z_dim:] = 0.0
            last.bias.data[self.z_dim:] = np.log(posterior_scale**2 * gmm.variances.mean(0))
        return gmm

    # --- evaluation ----------------------------------------------------------------------
    def log_joint(self, x, z) -> Tensor:
        """log p(x, z) = log p(x | z) + logsumexp_c log p(z, c); z as in ``log_likelihood``.

        Verified by: tests/models/test_vade.py::test_elbo_is_below_the_evidence
        """
        return self.log_likelihood(x, z) + self.cluster_log_joint(z).logsumexp(axis=-1)

    def predict(self, x) -> np.ndarray:
        """Cluster of each example: argmax_c γ_c(μ̃(x)), γ at the posterior mean; (B,) int64."""
        with no_grad():
            return np.argmax(self.log_responsibilities(self.encode(x).loc).data, axis=-1)

    def sample(self, n: int, rng: np.random.Generator, cluster: int | None = None) -> np.ndarray:
        """``pictures(z)`` (pixel probabilities σ(decoder(z)) here) for n draws z ~ p(z), or
        z ~ N(μ_c, σ_c²) for one cluster c; shape (n, x_dim)."""
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        with no_grad():
            if cluster is None:
                z = self.prior().sample(rng, (int(n),)).data
            else:
                if not isinstance(cluster, (int, np.integer)) \
                        or not 0 <= cluster < self.n_clusters:
                    raise ValueError(f"cluster must be an integer in [0, {self.n_clusters}), "
                                     f"got {cluster!r}")
                noise = rng.standard_normal((int(n), self.z_dim)).astype(self.dtype)
                z = self.prior_means.data[cluster] \
                    + np.exp(0.5 * self.prior_log_vars.data[cluster]) * noise
            return self.pictures(Tensor(z.astype(self.dtype)))

    def pictures(self, z: Tensor) -> np.ndarray:
        """What ``sample`` shows for codes z (n, z_dim): the pixel probabilities σ(decoder(z))."""
        return ops.sigmoid(self.decoder(z)).data
