"""What the image models share: an MLP encoder and decoder, the input check, Bernoulli pixels.

Every model of ``minivae.models`` (but the linear-Gaussian one) reads a batch x of shape
(B, x_dim), encodes it with an MLP and decodes with the mirrored MLP.  ``build_networks``
checks the arguments they have in common and builds the two networks; the subclass says how
many numbers the encoder emits and the decoder reads.
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions import BernoulliLogits
from minivae.engine.tensor import Tensor
from minivae.nn import MLP, Module
from minivae.training_data import TrainingData


class ImageModel(Module):
    """A model of images x of shape (B, x_dim) whose decoder is Bernoulli over the pixels
    (unless a subclass says otherwise): what x may hold, and the two networks.

    x must be 0/1 (binary pixels), or any value in [0, 1] when the model was built with
    ``soft_targets=True``; then training feeds it the grey levels instead of binarizing them.
    """

    soft_targets = False

    @classmethod
    def training_data(cls, config, rng: np.random.Generator) -> TrainingData:
        """What ``train`` feeds a model of this class (minivae/training_data.py): for most,
        the images alone; ``rng`` is the stream of the run kept for the training data."""
        return TrainingData(config, rng)

    @classmethod
    def step_networks(cls, config, x_dim: int) -> list[tuple[list[int], int]]:
        """The layer widths of each MLP a training step of ``config`` runs, with how many rows
        it runs per image (``minivae.config.memory_needs``): the encoder x_dim → hidden →
        2·z_dim and the decoder z_dim → hidden → x_dim, once each (the other models differ
        from these in their latent layer only)."""
        hidden = list(config.hidden)
        return [([x_dim, *hidden, 2 * config.z_dim], 1),
                ([config.z_dim, *hidden[::-1], x_dim], 1)]

    def build_networks(self, x_dim: int, hidden, encoder_outputs: int, decoder_inputs: int,
                       activation: str, rng: np.random.Generator, dtype, leaky_slope: float,
                       soft_targets: bool = False) -> np.random.Generator:
        """Encoder MLP x_dim → hidden → encoder_outputs, decoder MLP decoder_inputs → reversed
        hidden → x_dim, both in ``dtype``, initialized from ``rng`` (returned, checked)."""
        self.x_dim, self.hidden = checks.positive_int(x_dim, "x_dim"), checks.widths(hidden)
        rng, self.dtype = checks.generator(rng), checks.float_dtype(dtype)
        self.soft_targets = checks.flag(soft_targets, "soft_targets")
        self.encoder = MLP([x_dim, *self.hidden, encoder_outputs], activation, rng, self.dtype,
                           leaky_slope)
        self.decoder = MLP([decoder_inputs, *reversed(self.hidden), x_dim], activation, rng,
                           self.dtype, leaky_slope)
        return rng

    @property
    def x_support(self) -> str:
        """The values x may hold: "binary" (0/1), or "unit_interval" with soft targets."""
        return "unit_interval" if self.soft_targets else "binary"

    @property
    def binary_data(self) -> bool:
        """Whether training binarizes the images: not when soft targets take grey levels."""
        return not self.soft_targets

    def _check_x(self, x) -> Tensor:
        checks.batch(x, self.x_dim, self.dtype, self.x_support)
        return x if isinstance(x, Tensor) else Tensor(x)

    def bernoulli_pixels(self, logits: Tensor) -> BernoulliLogits:
        """p(x | ·) = Π_i Bernoulli(x_i; σ(l_i)) over the last axis of the decoder's logits l.

        With ``soft_targets`` its log_prob also takes grey levels x ∈ [0, 1] (then it is minus
        the binary cross-entropy, not a log-probability).
        Verified by:
        tests/models/test_base.py::test_soft_target_likelihood_is_minus_the_binary_cross_entropy
        """
        return BernoulliLogits(logits, soft_targets=self.soft_targets)
