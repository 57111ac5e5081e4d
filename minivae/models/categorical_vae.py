"""A VAE with discrete latents: N categorical variables of K classes each (Jang et al., 2017).

Generative model:  c_n ~ Uniform{1, …, K} independently (n = 1 … N),
                   x | c ~ Bernoulli(σ(decoder(onehot(c_1) ‖ … ‖ onehot(c_N)))).
Inference model:   q(c | x) = Π_n Categorical(c_n; softmax(l_n(x))),
                   with logits l = encoder(x) of shape (B, N, K).

The ELBO of this discrete model, per example, is

    ELBO(x) = E_q[log p(x | c)] − KL(q(c | x) ‖ Uniform),
    KL = Σ_n Σ_k q_nk log(q_nk K) = Σ_n (log K − H[q_n]).

A sample c cannot carry a gradient back to the encoder, so training replaces the one-hot code by
the Gumbel-softmax (Concrete) relaxation y_n = softmax((l_n + G_n)/τ), G i.i.d. standard Gumbel,
which is a differentiable function of the logits for fixed noise and tends to onehot(c_n) as
τ → 0 (``RelaxedOneHotCategorical``).  The training objective is

    objective(x) = log p(x | y) − KL(q(c | x) ‖ Uniform),   y ~ Concrete(l, τ)

(the KL is the discrete one, in closed form, as in Jang et al.).  It mixes a relaxed likelihood
with a discrete KL, so it is not a bound on log p(x) of either model; the number to report is
``elbo``, which decodes exact one-hot draws.  With ``straight_through`` the decoder sees the
exact one-hot argmax of y and the gradient passes as if it had seen y (biased, by design).

Temperature: τ is annealed as τ(t) = max(τ_min, τ₀ exp(−rate · t)).  The unit of t is the
epoch: ``on_epoch_end(epoch)`` sets τ = τ(epoch), so epoch 1 trains at τ₀ and epoch e + 1 at
τ(e).  A loop that anneals per step calls ``anneal(step)`` instead (then rate is per step).

Verified by: tests/models/test_categorical_vae.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions import BernoulliLogits
from minivae.distributions.categorical import Categorical
from minivae.distributions.relaxed import RelaxedOneHotCategorical
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.base import ImageModel


def annealed_temperature(t, tau0: float = 1.0, tau_min: float = 0.5,
                         anneal_rate: float = 0.03) -> float:
    """τ(t) = max(τ_min, τ₀ exp(−rate · t)) for t ≥ 0: non-increasing in t, never below τ_min.

    Verified by:
    tests/models/test_categorical_vae.py::test_temperature_schedule_is_monotone_and_clipped
    """
    t = checks.real(t, "t", 0)
    return max(float(tau_min), float(tau0) * math.exp(-float(anneal_rate) * float(t)))


def kl_categorical_to_uniform(logits: Tensor) -> Tensor:
    """KL(Categorical(softmax l) ‖ Uniform(K)) along the last axis (the K classes):

        KL = Σ_k q_k log(q_k K) = Σ_k q_k (log q_k + log K) = log K − H[q],

    with log q = l − logsumexp(l) (never log of an underflowed q) and q = exp(log q), so a
    class of probability ≈ 0 contributes q log q ≈ 0, not NaN.  Shape: logits.shape[:-1].
    Verified by:
    tests/models/test_categorical_vae.py::test_kl_to_uniform_matches_the_distributions_module,
    ::test_kl_to_uniform_matches_a_direct_sum
    """
    logits = logits if isinstance(logits, Tensor) else Tensor(np.asarray(logits))
    log_q = logits - logits.logsumexp(axis=-1, keepdims=True)
    return (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(axis=-1)


class CategoricalVAE(ImageModel):
    """A Bernoulli VAE whose latent code is N one-hot vectors of K classes.

    Parameters
    ----------
    x_dim : number of pixels.
    hidden : encoder hidden widths; the decoder mirrors them.
    z_dim : the number of latent variables N when ``n_latents`` is not given (so the CLI's
        --z-dim means N here); the decoder's input has N · K entries.
    activation, leaky_slope, rng, dtype : as for ``VAE``.
    n_latents : N, the number of categorical latent variables (default: z_dim).
    n_classes : K ≥ 2, the classes of each variable.
    tau0, tau_min, anneal_rate : the temperature schedule τ(t) = max(τ_min, τ₀ e^{−rate·t}),
        t in epochs (see the module docstring); 0 < τ_min ≤ τ₀, rate ≥ 0.
    straight_through : decode the one-hot argmax of the relaxed sample, with the relaxed gradient.
    soft_targets : accept grey levels x ∈ [0, 1] as Bernoulli targets, as for ``VAE``.
    """

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "tanh",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, n_latents: int | None = None, n_classes: int = 10,
                 tau0: float = 1.0, tau_min: float = 0.5, anneal_rate: float = 0.03,
                 straight_through: bool = False, soft_targets: bool = False):
        checks.positive_int(z_dim, "z_dim")
        self.n_latents = checks.positive_int(z_dim if n_latents is None else n_latents,
                                             "n_latents")
        self.n_classes = checks.integer(n_classes, "n_classes", 2)
        self.tau0 = checks.positive(tau0, "tau0", number=True)
        self.tau_min = checks.real(tau_min, f"tau_min (at most tau0 = {tau0!r})", 0, self.tau0,
                                   low_open=True)
        self.anneal_rate = checks.real(anneal_rate, "anneal_rate", 0)
        self.straight_through = checks.flag(straight_through, "straight_through")
        self.temperature = self.tau0
        self.code_dim = self.n_latents * self.n_classes
        self.build_networks(x_dim, hidden, self.code_dim, self.code_dim, activation, rng, dtype,
                            leaky_slope, soft_targets)
        self.flatten_parameters()

    # --- the temperature schedule --------------------------------------------------------
    def anneal(self, t) -> float:
        """Set and return τ = max(τ_min, τ₀ exp(−rate · t)).

        Verified by:
        tests/models/test_categorical_vae.py::test_temperature_schedule_is_monotone_and_clipped
        """
        self.temperature = annealed_temperature(t, self.tau0, self.tau_min, self.anneal_rate)
        return self.temperature

    def on_epoch_end(self, epoch) -> None:
        """After epoch ``epoch`` (1, 2, …), the next epoch trains at τ(epoch)."""
        self.anneal(epoch)

    # --- the two networks ----------------------------------------------------------------
    def encode_logits(self, x) -> Tensor:
        """The logits l(x) of q(c | x), shape (B, N, K)."""
        x = self._check_x(x)
        return self.encoder(x).reshape(x.shape[0], self.n_latents, self.n_classes)

    def encode(self, x) -> Categorical:
        """q(c | x) = Π_n Categorical(softmax l_n(x)): batch shape (B, N), K classes."""
        return Categorical(logits=self.encode_logits(x), validate_args=False)

    def decode(self, codes) -> BernoulliLogits:
        """p(x | c) = Bernoulli(σ(decoder(c))) for codes (B, N, K) (one-hot or relaxed)."""
        codes = codes if isinstance(codes, Tensor) else Tensor(np.asarray(codes, self.dtype))
        if codes.ndim != 3 or codes.shape[1:] != (self.n_latents, self.n_classes):
            raise ValueError(f"codes must have shape (batch, {self.n_latents}, "
                             f"{self.n_classes}), got {codes.shape}")
        logits = self.decoder(codes.reshape(codes.shape[0], self.code_dim))
        return self.bernoulli_pixels(logits)

    # --- objectives ----------------------------------------------------------------------
    def objective(self, x, rng: np.random.Generator) -> Tensor:
        """The relaxed ELBO that training maximizes, per example (B,):

            log p(x | y) − Σ_n KL(q(c_n | x) ‖ Uniform(K)),   y_n = softmax((l_n + G_n)/τ),

        y made one-hot in the forward pass when ``straight_through`` (gradient as for y).
        Verified by:
        tests/models/test_categorical_vae.py::test_objective_is_relaxed_likelihood_minus_kl,
        ::test_objective_gradient_matches_central_differences,
        ::test_straight_through_codes_are_exactly_one_hot,
        ::test_straight_through_gradient_is_the_relaxed_chain_rule
        """
        logits = self.encode_logits(x)
        relaxed = RelaxedOneHotCategorical(self.temperature, logits=logits,
                                           straight_through=self.straight_through,
                                           validate_args=False)
        codes = relaxed.rsample(rng)  # (B, N, K)
        return self.decode(codes).log_prob(x) - kl_categorical_to_uniform(logits).sum(axis=-1)

    def forward(self, x, rng: np.random.Generator) -> Tensor:
        return self.objective(x, rng)

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """One-sample estimate of the discrete model's ELBO (no relaxation), per example (B,):

            log p(x | c) − Σ_n KL(q(c_n | x) ‖ Uniform(K)),   c_n ~ q(c_n | x) exactly (Gumbel-max).

        Its expectation is a lower bound on log p(x) of the model ``sample`` draws from, so it
        is the number to report; no gradient reaches the encoder through c (use ``objective``).
        Verified by:
        tests/models/test_categorical_vae.py::test_elbo_and_importance_weights_match_exact_enumeration
        """
        logits = self.encode_logits(x)
        classes = Categorical(logits=logits, validate_args=False).sample(rng)
        codes = self._one_hot(classes)
        return self.decode(codes).log_prob(x) - kl_categorical_to_uniform(logits).sum(axis=-1)

    def log_importance_weights(self, x, k: int, rng: np.random.Generator) -> np.ndarray:
        """log w_i = log p(x | c_i) + log p(c_i) − log q(c_i | x), c_1..c_k ~ q(c | x); (k, B).

        log p(c) = −N log K (the uniform prior); logsumexp_i(log w_i) − log k estimates log p(x)
        from below in expectation, tightening as k grows.
        Verified by:
        tests/models/test_categorical_vae.py::test_elbo_and_importance_weights_match_exact_enumeration
        """
        k, x = checks.positive_int(k, "k"), self._check_x(x)
        with no_grad():
            q = self.encode(x)
            classes = q.sample(rng, (k,))  # (k, B, N)
            batch = x.shape[0]
            codes = self._one_hot(classes.reshape(k * batch, self.n_latents))
            targets = np.broadcast_to(x.data, (k, batch, self.x_dim)).reshape(k * batch, -1)
            log_likelihood = self.decode(codes).log_prob(targets).data.reshape(k, batch)
            log_q = q.log_prob(classes).data.sum(axis=-1)  # (k, B)
        return log_likelihood - self.n_latents * math.log(self.n_classes) - log_q

    # --- pictures ------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Pixel probabilities σ(decoder(c)) for n exact one-hot codes c_n ~ Uniform(K); (n, x_dim).

        Verified by:
        tests/models/test_categorical_vae.py::test_sample_and_reconstruct_decode_exact_one_hot_codes
        """
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        classes = rng.integers(self.n_classes, size=(n, self.n_latents))
        with no_grad():
            return self.decode(self._one_hot(classes)).probs.data

    def reconstruct(self, x) -> np.ndarray:
        """Pixel probabilities decoded from the most probable code argmax_k q(c_n = k | x).

        Verified by:
        tests/models/test_categorical_vae.py::test_sample_and_reconstruct_decode_exact_one_hot_codes
        """
        with no_grad():
            classes = np.argmax(self.encode_logits(x).data, axis=-1)
            return self.decode(self._one_hot(classes)).probs.data

    def _one_hot(self, classes: np.ndarray) -> Tensor:
        """(..., N) class indices → (..., N, K) one-hot codes in the model's dtype."""
        return Tensor((np.arange(self.n_classes) == classes[..., None]).astype(self.dtype))

