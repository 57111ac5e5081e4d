"""Semi-supervised learning with a deep generative model: M2 of Kingma, Rezende, Mohamed &
Welling (2014), for a few labelled images among many unlabelled ones.

Generative model:  y ~ Cat(1/K),  z ~ N(0, I),  x | y, z ~ Bernoulli(σ(decoder([e_y, z]))),
with e_y the one-hot vector of the class y.
Inference model:   q(y | x) = Cat(π(x)),  π = softmax(classifier(x)),
                   q(z | x, y) = N(μ(x, y), diag σ²(x, y)),  (μ, log σ²) = encoder([x, e_y]).

For a labelled pair (x, y) the bound on log p(x, y) is

    L(x, y) = E_q(z|x,y)[log p(x | y, z) + log p(y) + log p(z) − log q(z | x, y)]
            = E_q(z|x,y)[log p(x | y, z)] − log K − KL(q(z | x, y) ‖ N(0, I)),

estimated with one draw z = μ + σ ⊙ ε and the KL in closed form, as for the VAE.  For an
unlabelled x the class is one more latent variable, summed out exactly over the K classes:

    U(x) = Σ_y q(y | x) L(x, y) + H(q(y | x)) = Σ_y q(y | x) [L(x, y) − log q(y | x)],

which is the ELBO of the joint posterior q(y, z | x) = q(y | x) q(z | x, y), so U(x) ≤ log p(x).
Training maximizes, over labelled pairs and unlabelled images,

    J^α = Σ_(x,y) labelled L(x, y) + Σ_x unlabelled U(x) + α' Σ_(x,y) labelled log q(y | x),

where the last term trains the classifier on the labels directly (otherwise q(y | x) learns only
through U).  Kingma et al. (eq. 9) minimize the negated bounds, J = Σ_l L + Σ_u U, plus
α E_p̃l[−log q(y | x)]: α multiplies the classification term alone, a mean over the labelled
set, with α = 0.1 · N, N the training images; per labelled example this is the weight
α' = 0.1 · N / N_l, which ``classification_weight`` returns (``alpha_scale`` = 0.1).

``train`` feeds the model through ``LabelledTrainingData`` (minivae/training_data.py): each
minibatch of B unlabelled images comes with B labelled pairs drawn uniformly, so an epoch draws
each labelled pair N / N_l times; ``objective`` weights the labelled terms of each row by
N_l / N so that an epoch's rows sum to J^α in expectation.

Verified by: tests/models/test_semi_supervised.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks, kernels
from minivae.distributions import BernoulliLogits, DiagonalNormal, standard_normal_log_prob
from minivae.engine import ops
from minivae.engine.ops import fused
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.base import ImageModel
from minivae.nn import MLP
from minivae.training_data import LabelledTrainingData


class SemiSupervisedVAE(ImageModel):
    """The M2 model: a classifier q(y|x), an encoder q(z|x, y) and a decoder p(x|y, z).

    Parameters
    ----------
    x_dim, hidden, z_dim, activation, leaky_slope, rng, dtype, soft_targets : as for ``VAE``;
        the classifier, the encoder and the decoder each have hidden layers ``hidden``
        (reversed for the decoder).
    n_classes : K, the classes y (10 for digits).
    alpha_scale : the 0.1 of α = 0.1 · N, the weight of the classification term.
    labelled_weighting : how a step's labelled rows count (``objective``): "balanced" (the
        default: each row U + L + α' log q, so labelled and unlabelled rows weigh alike in a
        step and the labels count N / N_l times in an epoch) or "paper" (the labelled terms
        scaled by N_l / N, so that an epoch is the paper's J^α in expectation).
    """

    semi_supervised = True  # trained from labelled and unlabelled images (``train --labels``)
    N_CLASSES = 10  # the digits

    @classmethod
    def training_data(cls, config, rng: np.random.Generator) -> LabelledTrainingData:
        """``config.labels`` labelled images among the unlabelled ones, chosen by ``rng``."""
        n_classes = config.model_options.get("n_classes", cls.N_CLASSES)
        return LabelledTrainingData(config, rng, n_classes)

    @classmethod
    def step_networks(cls, config, x_dim: int) -> list[tuple[list[int], int]]:
        """The classifier runs on the unlabelled and the labelled images (2 rows per image);
        the encoder and the decoder on the K classes of each unlabelled image and on the
        labelled one (K + 1 rows)."""
        k, hidden = config.model_options.get("n_classes", cls.N_CLASSES), list(config.hidden)
        return [([x_dim, *hidden, k], 2), ([x_dim + k, *hidden, 2 * config.z_dim], k + 1),
                ([k + config.z_dim, *hidden[::-1], x_dim], k + 1)]

    def __init__(self, x_dim: int, hidden=(400,), z_dim: int = 20, activation: str = "softplus",
                 rng: np.random.Generator | None = None, dtype=np.float32,
                 leaky_slope: float = 0.01, n_classes: int = N_CLASSES, alpha_scale: float = 0.1,
                 soft_targets: bool = False, labelled_weighting: str = "balanced"):
        self.n_classes = checks.int_at_least(n_classes, "n_classes", 2)
        self.alpha_scale = checks.positive(alpha_scale, "alpha_scale", number=True)
        self.labelled_weighting = checks.one_of(labelled_weighting, ("balanced", "paper"),
                                                "labelled_weighting")
        self.z_dim = checks.positive_int(z_dim, "z_dim")
        self.x_dim, self.hidden = checks.positive_int(x_dim, "x_dim"), checks.widths(hidden)
        rng, self.dtype = checks.generator(rng), checks.float_dtype(dtype)
        self.soft_targets = checks.flag(soft_targets, "soft_targets")
        k, widths = self.n_classes, list(self.hidden)
        self.classifier = MLP([self.x_dim, *widths, k], activation, rng, self.dtype,
                              leaky_slope)
        self.encoder = MLP([self.x_dim + k, *widths, 2 * self.z_dim], activation, rng,
                           self.dtype, leaky_slope)
        self.decoder = MLP([k + self.z_dim, *widths[::-1], self.x_dim], activation, rng,
                           self.dtype, leaky_slope)
        self.flatten_parameters()

    # --- the three networks --------------------------------------------------------------
    def class_log_probs(self, x) -> Tensor:
        """log q(y | x) = classifier(x)_y − logsumexp_y' classifier(x)_y', shape (B, K)."""
        logits = self.classifier(self._check_x(x))
        return logits - logits.logsumexp(axis=-1, keepdims=True)

    def one_hot(self, y) -> np.ndarray:
        """e_y, shape (B, K) in the model's dtype, for labels y of shape (B,) in [0, K)."""
        return np.eye(self.n_classes, dtype=self.dtype)[self._check_labels(y)]

    def encode(self, x, y) -> DiagonalNormal:
        """q(z | x, y) = N(μ(x, y), diag σ²(x, y)) for x (B, x_dim) and labels y (B,)."""
        return self._encode_one_hot(self._check_x(x), self.one_hot(y))

    def decode(self, y, z) -> BernoulliLogits:
        """p(x | y, z) = Bernoulli(σ(decoder([e_y, z]))) for labels y (B,) and z (B, z_dim)."""
        return self._decode_one_hot(self.one_hot(y), z)

    def _encode_one_hot(self, x: Tensor, e_y: np.ndarray) -> DiagonalNormal:
        h = self.encoder(ops.concatenate([x, Tensor(e_y)], axis=-1))  # (B, 2 · z_dim)
        return DiagonalNormal(loc=h[:, : self.z_dim], log_var=h[:, self.z_dim:])

    def _encode_every_class(self, x: Tensor) -> DiagonalNormal:
        """q(z | x, y) for every class y of every row of x: ``_encode_one_hot`` of the K · B
        rows [x_b, e_y] (row y · B + b), with x's share of the first layer computed once.
        For the first layer's weights W = [W_x; W_y] (x_dim and K rows) and bias b,

            [x, e_y] W + b = x W_x + (W_y[y] + b),

        so the first layer's product takes B · x_dim · H multiply-adds instead of
        K · B · (x_dim + K) · H (timed in bench/m2_step.py).  Verified by:
        tests/models/test_semi_supervised.py::test_every_class_encoder_is_the_concatenated_one
        """
        rows, k = x.shape[0], self.n_classes
        if not kernels.enabled("bias_act"):  # the readable form: the concatenated rows
            every_class = self.one_hot(np.repeat(np.arange(k), rows))
            return self._encode_one_hot(ops.concatenate([x] * k, axis=0), every_class)
        first = self.encoder.layers[0]
        shared = x @ first.weight[: self.x_dim]  # (B, H): x W_x
        per_class = first.weight[self.x_dim:] + first.bias  # (K, H): W_y[y] + b
        activation = "identity" if len(self.encoder.layers) == 1 else self.encoder.activation
        # act(x W_x + W_y[y] + b) for row y · B + b, (K · B, H)
        h = fused.every_class_activation(shared, per_class, activation, self.encoder.slope)
        h = self.encoder.after_first_layer(h)  # (K · B, 2 · z_dim)
        return DiagonalNormal(loc=h[:, : self.z_dim], log_var=h[:, self.z_dim:])

    def _decode_one_hot(self, e_y: np.ndarray, z) -> BernoulliLogits:
        z = z if isinstance(z, Tensor) else Tensor(np.asarray(z, self.dtype))
        return self.bernoulli_pixels(self.decoder(ops.concatenate([Tensor(e_y), z], axis=-1)))

    # --- the bounds ----------------------------------------------------------------------
    def _labelled_bound_one_hot(self, x: Tensor, e_y: np.ndarray, rng,
                                q_z: DiagonalNormal | None = None) -> Tensor:
        q_z = self._encode_one_hot(x, e_y) if q_z is None else q_z  # q(z | x, y), or given
        # z = μ + σ ⊙ ε and KL(q(z|x,y) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)
        z, kl_q_prior = q_z.rsample_and_kl(rng)
        log_p_y = -math.log(self.n_classes)  # the uniform prior over the classes
        return self._decode_one_hot(e_y, z).log_prob(x) + log_p_y - kl_q_prior

    def labelled_bound(self, x, y, rng: np.random.Generator) -> Tensor:
        """L(x, y) per example, shape (B,), one reparameterized draw z = μ + σ ⊙ ε:

            L(x, y) = log p(x | y, z) − log K − ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²),

        ε = rng.standard_normal((B, z_dim)).
        Verified by: tests/models/test_semi_supervised.py::test_labelled_bound_matches_numpy
        """
        x = self._check_x(x)
        return self._labelled_bound_one_hot(x, self.one_hot(self._check_labels(y, x)), rng)

    def unlabelled_bound(self, x, rng: np.random.Generator) -> Tensor:
        """U(x) = Σ_y q(y | x) [L(x, y) − log q(y | x)] per example, shape (B,): the sum over
        the K classes in closed form, each L(x, y) with one draw of z.

        The K · B draws ε come from one rng.standard_normal((K · B, z_dim)), class by class
        (row y · B + b belongs to class y and example b).
        Verified by:
        tests/models/test_semi_supervised.py::test_unlabelled_bound_enumerates_the_classes,
        ::test_unlabelled_bound_is_below_the_evidence
        """
        x = self._check_x(x)
        rows, k = x.shape[0], self.n_classes
        every_class = np.repeat(np.arange(k), rows)  # (K · B,): class y for rows y·B … y·B+B−1
        x_per_class = ops.concatenate([x] * k, axis=0)  # (K · B, x_dim)
        bounds = self._labelled_bound_one_hot(x_per_class, self.one_hot(every_class), rng,
                                              q_z=self._encode_every_class(x))
        log_q_y = self.class_log_probs(x)  # (B, K)
        bounds = bounds.reshape(k, rows).transpose(1, 0)  # (B, K)
        return (log_q_y.exp() * (bounds - log_q_y)).sum(axis=-1)

    def objective(self, x, rng: np.random.Generator, x_labelled=None, y_labelled=None,
                  labelled_fraction: float | None = None) -> Tensor:
        """U(x), the bound of an unlabelled image (``unlabelled_bound``); given one labelled
        pair per row, drawn uniformly from the N_l labelled training images, and their share
        f = N_l / N of the N training images, the rows

            "balanced":  U(x_b) + L(x_l, y_l)_b + α' log q(y_l | x_l)_b,    α' = alpha_scale / f,
            "paper":     U(x_b) + f · [L(x_l, y_l)_b + α' log q(y_l | x_l)_b].

        An epoch steps once through the N images x_b and draws N labelled pairs, so each pair
        is drawn N / N_l = 1 / f times in expectation.  Summed over an epoch, "paper"'s rows
        have the expectation

            Σ_x U(x) + N · f · mean_l [L + α' log q] = Σ_x U(x) + Σ_l L(x, y) + α' Σ_l log q(y|x),

        the paper's J^α (the unlabelled sum runs over every training image, its label hidden);
        "balanced"'s is J^α with both labelled terms counted 1 / f times (600 for 100 of 60,000
        MNIST digits): labelled and unlabelled rows weigh alike in each step.  On full MNIST
        with 100 labels "balanced" reached 32.3% test error in 23 epochs and "paper" 44.1% in
        24 (docs/RESULTS.md): with "paper" the decoder learned to ignore y.  Verified by:
        tests/models/test_semi_supervised.py::test_an_epoch_of_paired_rows_is_j_alpha_in_expectation
        """
        if x_labelled is None:
            return self.unlabelled_bound(x, rng)
        share = checks.real(labelled_fraction, "labelled_fraction", 0.0, 1.0, low_open=True)
        scale = share if self.labelled_weighting == "paper" else 1.0
        return self.semi_supervised_objective(
            x, x_labelled, y_labelled, rng, labelled_weight=scale,
            classification_weight=scale * self.classification_weight(share))

    def forward(self, x, rng: np.random.Generator) -> Tensor:
        return self.unlabelled_bound(x, rng)

    def elbo(self, x, rng: np.random.Generator) -> Tensor:
        """U(x): a lower bound on log p(x) with p(x) = Σ_y p(y) ∫ p(x | y, z) p(z) dz.

        Verified by:
        tests/models/test_semi_supervised.py::test_unlabelled_bound_is_below_the_evidence
        """
        return self.unlabelled_bound(x, rng)

    def classification_weight(self, labelled_fraction: float) -> float:
        """α' = alpha_scale · N / N_l = alpha_scale / labelled_fraction: the weight of
        log q(y | x) per labelled example, for α = alpha_scale · N in front of the mean over
        the N_l labelled examples of the N training images.

        Verified by:
        tests/models/test_semi_supervised.py::test_paired_objective_adds_the_three_terms
        """
        fraction = checks.real(labelled_fraction, "labelled_fraction", 0.0, 1.0, low_open=True)
        return self.alpha_scale / fraction

    def semi_supervised_objective(self, x, x_labelled, y_labelled, rng: np.random.Generator,
                                  labelled_weight: float, classification_weight: float) -> Tensor:
        """One weighted term of J^α per row, shape (B,), for an unlabelled image x_b paired
        with a labelled pair (x_l, y_l)_b (as many rows of each):

            U(x_b) + labelled_weight · L(x_l, y_l)_b + classification_weight · log q(y_l | x_l)_b.

        Verified by:
        tests/models/test_semi_supervised.py::test_paired_objective_adds_the_three_terms
        """
        labelled_weight = checks.real(labelled_weight, "labelled_weight", 0.0)
        classification_weight = checks.real(classification_weight, "classification_weight", 0.0)
        x, x_labelled = self._check_x(x), self._check_x(x_labelled)
        checks.shape(x_labelled.shape[0] == x.shape[0], "x_labelled",
                     f"{x.shape[0]} rows, as many as x", x_labelled.shape)
        e_y = self.one_hot(self._check_labels(y_labelled, x_labelled))
        log_q_y = (self.class_log_probs(x_labelled) * Tensor(e_y)).sum(axis=-1)  # log q(y_l|x_l)
        unlabelled = self.unlabelled_bound(x, rng)  # U's draws first, then L's
        return (unlabelled + labelled_weight * self._labelled_bound_one_hot(x_labelled, e_y, rng)
                + classification_weight * log_q_y)

    # --- evaluation ----------------------------------------------------------------------
    def predict(self, x) -> np.ndarray:
        """The class of each image: argmax_y q(y | x); (B,) int64."""
        with no_grad():
            return np.argmax(self.class_log_probs(x).data, axis=-1).astype(np.int64)

    def log_importance_weights(self, x, k: int, rng: np.random.Generator) -> np.ndarray:
        """log w_i = log p(x, y_i, z_i) − log q(y_i | x) − log q(z_i | x, y_i) for k draws
        y_i ~ q(y | x), z_i ~ q(z | x, y_i); shape (k, B), with no graph recorded.

        Math: p(x) = E_q[p(x, y, z) / (q(y|x) q(z|x,y))], with
        log p(x, y, z) = log p(x | y, z) − log K + log N(z; 0, I).
        Verified by:
        tests/models/test_semi_supervised.py::test_unlabelled_bound_is_below_the_evidence
        """
        k, rng = checks.positive_int(k, "k"), checks.generator(rng)
        x = self._check_x(x)
        rows = x.shape[0]
        with no_grad():
            q_y = np.exp(self.class_log_probs(x).data.astype(np.float64))  # (B, K)
            cumulative = np.cumsum(q_y, axis=-1)
            u = rng.random((k, rows)) * cumulative[:, -1]
            y = (u[..., None] > cumulative).sum(axis=-1).reshape(-1)  # (k · B,) inverse CDF
            xs = np.tile(x.data, (k, 1))
            q_z = self._encode_one_hot(Tensor(xs), self.one_hot(y))
            z = q_z.rsample(rng)
            log_p = (self._decode_one_hot(self.one_hot(y), z).log_prob(xs).data
                     - math.log(self.n_classes) + standard_normal_log_prob(z).data)
            log_q = np.log(q_y[np.tile(np.arange(rows), k), y]) + q_z.log_prob(z).data
            return (log_p - log_q).reshape(k, rows)

    def generate(self, y, z) -> np.ndarray:
        """Pixel probabilities σ(decoder([e_y, z])) for labels y (B,) and z (B, z_dim)."""
        with no_grad():
            return self.decode(y, z).probs.data

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Pixel probabilities for n draws y ~ Cat(1/K), z ~ N(0, I); shape (n, x_dim)."""
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        y = rng.integers(0, self.n_classes, n)
        return self.generate(y, rng.standard_normal((n, self.z_dim)).astype(self.dtype))

    def reconstruct(self, x) -> np.ndarray:
        """Pixel probabilities decoded from the predicted class ŷ and the mean μ(x, ŷ)."""
        y = self.predict(x)
        with no_grad():
            return self.generate(y, self.encode(x, y).loc)

    def _check_labels(self, y, x: Tensor | None = None) -> np.ndarray:
        """y as int64 class indices in [0, K), one per row of x when x is given."""
        data = y.data if isinstance(y, Tensor) else np.asarray(y)
        if data.dtype.kind not in "iu":
            raise TypeError(f"y must hold integer class labels, got {checks.describe(data)}")
        expected = "(B,)" if x is None else f"({x.shape[0]},), one label per row of x"
        checks.shape(data.ndim == 1 and (x is None or len(data) == x.shape[0]), "y", expected,
                     data.shape)
        checks.require((data >= 0) & (data < self.n_classes), "y",
                       f"class labels in [0, {self.n_classes})", data)
        return data.astype(np.int64)

