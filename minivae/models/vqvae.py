"""The vector-quantized VAE of van den Oord, Vinyals & Kavukcuoglu (2017), with MLP networks.

The encoder emits n_codes vectors z_e ∈ R^D per image; each is replaced by its nearest codeword
of a codebook e_1 … e_K ∈ R^D, so an image is summarized by n_codes discrete symbols:

    k_j = argmin_k ‖z_e,j − e_k‖²,    z_q,j = e_{k_j},    x | z_q ~ Bernoulli(σ(decoder(z_q))).

argmin has no useful derivative, so the decoder's gradient is copied to the encoder
(straight-through): the decoder sees z = z_e + sg[z_q − z_e], whose value is z_q and whose
gradient with respect to z_e is the identity.  The loss per example is

    loss = −log p(x | z_q) + Σ_j ‖sg[z_e,j] − e_{k_j}‖² + β Σ_j ‖z_e,j − sg[e_{k_j}]‖²,

reconstruction, codebook term (moves the chosen codewords toward the encoder outputs) and
commitment term (keeps the encoder near its codewords); objective = −loss.

EMA codebook (``ema=True``): the codebook term is dropped and each codeword instead tracks the
mean of the encoder outputs assigned to it, by exponential moving averages (``codebook_step``).
The codebook is then a buffer, not a parameter: Adam never sees it.

Dead codewords: a codeword that no encoder output picks gets no gradient and no EMA mass, so it
never returns; with an MLP encoder whole positions can collapse onto one codeword (then they
carry no information).  ``restart_dead=True`` counts the codewords picked during an epoch and,
in ``on_epoch_end``, moves each unpicked one onto a random encoder output of the last training
batch (``restart_codes`` does the same on demand for given data).

Training steps: ``objective`` updates the EMA codebook and the usage counts only when
``self.training`` is True and gradients are being recorded, i.e. exactly in a training step;
under ``no_grad`` (evaluation) or with ``training = False`` it is a pure function.

Prior: none is learned here.  Read as a latent-variable model with a uniform prior over codes,
q(k | x) is a point mass, KL(q ‖ uniform) = n_codes log K, and −loss's reconstruction part gives
the ELBO log p(x | z_q) − n_codes log K (``elbo``).  ``sample`` decodes uniformly drawn codes, so
samples are poor: the paper fits an autoregressive prior over codes afterwards.

Verified by: tests/models/test_vqvae.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions import BernoulliLogits
from minivae.engine.tensor import Tensor, is_grad_enabled, no_grad
from minivae.models.base import ImageModel


def nearest_codewords(z: np.ndarray, codebook: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """k_i = argmin_k ‖z_i − e_k‖² for rows z (N, D) and codebook (K, D): (codes (N,), d² (N,)).

    ‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖² turns the N×K distances into one matrix product; the
    difference of large terms only blurs near-ties, and d² is clipped at 0 for the same reason.
    Ties go to the smallest index.
    Verified by: tests/models/test_vqvae.py::test_nearest_codewords_match_brute_force
    """
    squared = ((z * z).sum(axis=1, keepdims=True) - 2.0 * (z @ codebook.T)
               + (codebook * codebook).sum(axis=1))  # (N, K)
    codes = np.argmin(squared, axis=1)
    return codes, np.maximum(squared[np.arange(len(z)), codes], 0.0)


def straight_through_estimator(z_e: Tensor, z_q: np.ndarray) -> Tensor:
    """Forward: z_q (the quantized values); VJP: g passes to z_e unchanged.

    This is z_e + sg[z_q − z_e] as one primitive: the value is z_q, ∂/∂z_e is taken to be the
    identity, and the codebook receives nothing from the decoder through this path.
    Verified by:
    tests/models/test_vqvae.py::test_straight_through_gradient_is_the_decoder_gradient_at_z_q
    """
    if z_q.shape != z_e.shape or z_q.dtype != z_e.dtype:
        raise ValueError(f"z_q must match z_e's shape {z_e.shape} and dtype {z_e.dtype}, got "
                         f"{z_q.shape} and {z_q.dtype}")
    return Tensor.from_op(z_q, (z_e,), lambda g: (g,), "straight_through_estimator")


def perplexity(counts) -> float:
    """exp(H(p)) with p_k = c_k / Σ c and H(p) = −Σ_{p_k > 0} p_k log p_k (0 log 0 = 0).

    It is the number of equally used codewords that would give the same entropy: K for uniform
    use, 1 when a single codeword takes everything.
    Verified by: tests/models/test_vqvae.py::test_perplexity_of_uniform_usage_is_k
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(f"counts must be a non-empty 1-D array of non-negative numbers with a "
                         f"positive sum, got {counts!r}")
    p = counts[counts > 0] / counts.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


class VQVAE(ImageModel):
    """A Bernoulli VQ-VAE: MLP encoder → n_codes vectors → nearest codewords → MLP decoder.

    Parameters
    ----------
    x_dim, hidden, leaky_slope, rng, dtype : as for ``VAE``.
    activation : as for ``VAE``, but "relu" by default: with tanh units the encoder, on binarized
        digits, kept mapping every image to the same codewords for hundreds of steps.
    z_dim : n_codes when ``n_codes`` is not given (so the CLI's --z-dim means n_codes here).
    n_codes : symbols per image; the encoder emits n_codes · code_dim numbers.
    codebook_size : K codewords, shared by all n_codes positions.
    code_dim : D, the length of each codeword.
    beta : β ≥ 0, the weight of the commitment term.
    ema : update the codebook by moving averages instead of by gradient.
    decay : γ ∈ (0, 1), the moving averages' decay; ema_epsilon : ε > 0, the Laplace smoothing.
    restart_dead : after each epoch, move the codewords unused in it onto encoder outputs.
    soft_targets : accept grey levels x ∈ [0, 1] as Bernoulli targets, as for ``VAE``.
    """

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "relu",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, n_codes: int | None = None, codebook_size: int = 64,
                 code_dim: int = 8, beta: float = 0.25, ema: bool = False, decay: float = 0.99,
                 ema_epsilon: float = 1e-5, restart_dead: bool = False,
                 soft_targets: bool = False):
        checks.positive_int(z_dim, "z_dim")
        self.n_codes = checks.positive_int(z_dim if n_codes is None else n_codes, "n_codes")
        self.codebook_size = checks.positive_int(codebook_size, "codebook_size")
        self.code_dim = checks.positive_int(code_dim, "code_dim")
        self.beta = checks.real(beta, "beta", 0)
        self.decay = checks.real(decay, "decay", 0, 1, low_open=True, high_open=True)
        self.ema_epsilon = checks.positive(ema_epsilon, "ema_epsilon", number=True)
        self.ema = checks.flag(ema, "ema")
        self.restart_dead, self.training = checks.flag(restart_dead, "restart_dead"), True
        width = self.n_codes * self.code_dim
        rng = self.build_networks(x_dim, hidden, width, width, activation, rng, dtype,
                                  leaky_slope, soft_targets)
        dtype = self.dtype
        # e_k ~ N(0, I): wider than the untrained encoder's outputs (std ≈ 0.1), so that z_e,
        # growing fast in the first steps, meets codewords in every direction instead of
        # leaving the whole codebook behind (then one codeword per position takes everything).
        initial = rng.standard_normal((self.codebook_size, self.code_dim)).astype(dtype)
        self.codebook = Tensor(initial, requires_grad=not self.ema)
        if self.ema:
            # N_k = 1 and m_k = e_k: as if each codeword had one point at its start, so that
            # e_k = m_k / N_k holds from the first step on.
            self.ema_cluster_size = np.ones(self.codebook_size, dtype=dtype)
            self.ema_codeword_sum = initial.copy()
        self._epoch_counts = np.zeros(self.codebook_size, dtype=np.int64)
        self._last_z_e, self._restart_rng = None, rng.spawn(1)[0]
        self.flatten_parameters()

    # --- the pieces ----------------------------------------------------------------------
    def encode(self, x) -> Tensor:
        """z_e(x), shape (B, n_codes, code_dim)."""
        x = self._check_x(x)
        return self.encoder(x).reshape(x.shape[0], self.n_codes, self.code_dim)

    def quantize(self, z_e) -> tuple[np.ndarray, np.ndarray]:
        """(codes k (B, n_codes), z_q = e_k (B, n_codes, D)) for z_e of shape (B, n_codes, D)."""
        data = z_e.data if isinstance(z_e, Tensor) else np.asarray(z_e)
        codes, _ = nearest_codewords(data.reshape(-1, self.code_dim), self.codebook.data)
        codes = codes.reshape(data.shape[:-1])
        return codes, self.codebook.data[codes]

    def decode(self, z) -> BernoulliLogits:
        """p(x | z) = Bernoulli(σ(decoder(z))) for z of shape (B, n_codes, code_dim)."""
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z, self.dtype))
        if z.ndim != 3 or z.shape[1:] != (self.n_codes, self.code_dim):
            raise ValueError(f"z must have shape (batch, {self.n_codes}, {self.code_dim}), "
                             f"got {z.shape}")
        return self.bernoulli_pixels(self.decoder(z.reshape(z.shape[0], -1)))

    def loss_terms(self, x) -> dict:
        """The loss's terms per example, each (B,), plus the codes (B, n_codes) and z_e:

            reconstruction = −log p(x | z_q), decoder input z_q, gradient straight through to z_e,
            codebook = Σ_j ‖sg[z_e,j] − e_{k_j}‖²   (gradient 2(e_k − z_e) to the codewords only;
                        zeros with ``ema``: the codebook is not trained by gradient then),
            commitment = Σ_j ‖z_e,j − sg[e_{k_j}]‖²  (gradient 2(z_e − e_k) to the encoder only).
        Verified by: tests/models/test_vqvae.py::test_codebook_gradient_moves_codewords_toward_z_e,
        ::test_commitment_gradient_is_two_beta_times_z_e_minus_e
        """
        z_e = self.encode(x)
        codes, z_q = self.quantize(z_e)
        reconstruction = -self.decode(straight_through_estimator(z_e, z_q)).log_prob(x)
        offset = z_e - z_q  # z_q enters as a constant: sg[e]
        commitment = (offset * offset).sum(axis=(1, 2))
        if self.ema:
            codebook = Tensor(np.zeros(len(codes), dtype=self.dtype))
        else:
            offset = Tensor(z_e.data) - self.codebook[codes]  # z_e enters as a constant: sg[z_e]
            codebook = (offset * offset).sum(axis=(1, 2))
        return {"reconstruction": reconstruction, "codebook": codebook,
                "commitment": commitment, "codes": codes, "z_e": z_e}

    def objective(self, x, rng: np.random.Generator | None = None) -> Tensor:
        """−loss = log p(x | z_q) − Σ_j ‖sg[z_e,j] − e_{k_j}‖² − β Σ_j ‖z_e,j − sg[e_{k_j}]‖², (B,).

        Deterministic (``rng`` is accepted for the common model interface and not used).  With
        ``ema``, the codebook term is absent and, in a training step, the codebook then moves
        by ``codebook_step`` (after the codes are chosen; the returned value uses the old one).
        Verified by: tests/models/test_vqvae.py::test_training_on_real_digits_lowers_the_loss,
        ::test_objective_gradient_is_the_frozen_offset_gradient
        """
        terms = self.loss_terms(x)
        if self.training and is_grad_enabled():
            z_e, codes = terms["z_e"].data.reshape(-1, self.code_dim), terms["codes"].reshape(-1)
            if self.ema:
                self.codebook_step(z_e, codes)
            if self.restart_dead:
                self._epoch_counts += np.bincount(codes, minlength=self.codebook_size)
                self._last_z_e = z_e
        return -(terms["reconstruction"] + terms["codebook"] + self.beta * terms["commitment"])

    def forward(self, x, rng: np.random.Generator | None = None) -> Tensor:
        return self.objective(x, rng)

    def on_epoch_end(self, epoch) -> None:
        """With ``restart_dead``: move the codewords no training step picked this epoch onto
        random encoder outputs of the last training batch, and start counting afresh."""
        if self.restart_dead and self._last_z_e is not None:
            self._move_codewords(np.flatnonzero(self._epoch_counts == 0), self._last_z_e,
                                 self._restart_rng)
        self._epoch_counts[:], self._last_z_e = 0, None

    def codebook_step(self, z_e: np.ndarray, codes: np.ndarray) -> None:
        """One moving-average codebook update from encoder outputs z_e (N, D) and their codes (N,):

            n_k = #{i : k_i = k},   s_k = Σ_{i : k_i = k} z_e,i,
            N_k ← γ N_k + (1 − γ) n_k,   m_k ← γ m_k + (1 − γ) s_k,
            Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j   (Laplace smoothing: never 0),
            e_k = m_k / Ñ_k.
        A codeword nobody picks keeps e_k ≈ m_k / N_k while N_k ≫ ε and drifts toward 0 after.
        Verified by: tests/models/test_vqvae.py::test_ema_update_matches_a_direct_transcription
        """
        z_e, codes = self._check_ema_batch(z_e, codes)  # (N, D), (N,)
        counts = np.bincount(codes, minlength=self.codebook_size).astype(self.dtype)
        sums = np.zeros_like(self.ema_codeword_sum)
        np.add.at(sums, codes, z_e)
        gamma = self.dtype.type(self.decay)
        self.ema_cluster_size *= gamma
        self.ema_cluster_size += (1 - gamma) * counts
        self.ema_codeword_sum *= gamma
        self.ema_codeword_sum += (1 - gamma) * sums
        total, eps = self.ema_cluster_size.sum(), self.dtype.type(self.ema_epsilon)
        smoothed = (self.ema_cluster_size + eps) / (total + self.codebook_size * eps) * total
        self.codebook.data[...] = self.ema_codeword_sum / smoothed[:, None]

    def _check_ema_batch(self, z_e, codes) -> tuple[np.ndarray, np.ndarray]:
        if not self.ema:
            raise ValueError("codebook_step needs a model built with ema=True")
        z_e, codes = np.asarray(z_e, dtype=self.dtype), np.asarray(codes)
        checks.shape(z_e.shape[1:] == (self.code_dim,) and codes.shape == z_e.shape[:1], "z_e",
                     f"(N, {self.code_dim}) and codes shape (N,)", f"{z_e.shape} and {codes.shape}")
        return z_e, codes

    def restart_codes(self, x, rng: np.random.Generator, codes=None) -> np.ndarray:
        """Move codewords (default: those no row of x picks) onto encoder outputs z_e of x.

        A dead codeword gets no gradient and no EMA mass, so it never comes back on its own;
        placing it on a random z_e of the data makes it somebody's nearest codeword again.  With
        ``ema`` its averages restart as one point there (N_k = 1, m_k = e_k); without, Adam's
        moment estimates for it are kept.  Returns the indices moved.
        Verified by: tests/models/test_vqvae.py::test_restart_codes_revives_dead_codewords
        """
        with no_grad():
            z_e = self.encode(x).data.reshape(-1, self.code_dim)
        if codes is None:
            used = np.bincount(self.quantize(z_e)[0], minlength=self.codebook_size)
            codes = np.flatnonzero(used == 0)
        return self._move_codewords(np.asarray(codes, dtype=np.intp), z_e, checks.generator(rng))

    def _move_codewords(self, codes: np.ndarray, z_e: np.ndarray, rng) -> np.ndarray:
        """e_k ← a random row of z_e (N, D) for each k in codes, distinct rows while N allows."""
        picks = rng.choice(len(z_e), size=len(codes), replace=len(codes) > len(z_e))
        self.codebook.data[codes] = z_e[picks]
        if self.ema:
            self.ema_cluster_size[codes] = 1
            self.ema_codeword_sum[codes] = z_e[picks]
        return codes

    # --- evaluation ----------------------------------------------------------------------
    def elbo(self, x, rng: np.random.Generator | None = None) -> Tensor:
        """log p(x | z_q) − n_codes log K: the ELBO under a uniform prior over codes, (B,).

        q(k | x) is a point mass at the nearest codes, so KL(q ‖ Uniform(K)^n_codes) =
        n_codes log K; the bound is on the log-likelihood of the model ``sample`` draws from.
        Verified by: tests/models/test_vqvae.py::test_elbo_is_below_the_exact_evidence
        """
        with no_grad():
            return -self.loss_terms(x)["reconstruction"] - self.n_codes * math.log(
                self.codebook_size)

    def codebook_usage(self, x, batch_size: int = 1000) -> tuple[np.ndarray, float]:
        """(counts c_k of each codeword over all rows and positions of x, perplexity exp(H(c/Σc))).

        Verified by: tests/models/test_vqvae.py::test_codebook_usage_counts_every_symbol
        """
        counts = np.zeros(self.codebook_size, dtype=np.int64)
        with no_grad():
            for start in range(0, len(x), batch_size):
                codes, _ = self.quantize(self.encode(x[start:start + batch_size]))
                counts += np.bincount(codes.ravel(), minlength=self.codebook_size)
        return counts, perplexity(counts)

    def reconstruct(self, x) -> np.ndarray:
        """Pixel probabilities σ(decoder(z_q(x))); shape (B, x_dim)."""
        with no_grad():
            return self.decode(self.quantize(self.encode(x))[1]).probs.data

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Pixel probabilities σ(decoder(e_k)) for codes k drawn uniformly; shape (n, x_dim).

        Without a learned prior over codes most of these combinations never occur for real
        digits, so expect blurry or broken images.
        """
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        codes = rng.integers(self.codebook_size, size=(n, self.n_codes))
        with no_grad():
            return self.decode(self.codebook.data[codes]).probs.data

    # --- checkpoints: the EMA codebook is state, though not a parameter -------------------
    _BUFFERS = ("codebook", "ema_cluster_size", "ema_codeword_sum")

    def state_dict(self):
        state = super().state_dict()
        if self.ema:
            for name in self._BUFFERS:
                value = getattr(self, name)
                state[name] = (value.data if isinstance(value, Tensor) else value).copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        buffers = self._BUFFERS if self.ema else ()
        missing = [name for name in buffers if name not in state]
        if missing:
            raise ValueError(f"state dict keys do not match: missing {missing}")
        super().load_state_dict({k: v for k, v in state.items() if k not in buffers})
        for name in buffers:
            target = getattr(self, name)
            target = target.data if isinstance(target, Tensor) else target
            value = np.asarray(state[name])
            if value.shape != target.shape or value.dtype != target.dtype:
                raise ValueError(f"state dict entry {name!r}: expected shape {target.shape} and "
                                 f"dtype {target.dtype}, got {value.shape} and {value.dtype}")
            target[...] = value

