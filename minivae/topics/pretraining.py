"""Greedy layer-wise pretraining of a deep autoencoder by stacked denoising autoencoders.

The recipe of DEC (Xie et al., 2016), which VaDE's clustering accuracy depends on: for a network
x_dim → h₁ → … → h_L (784-500-500-2000-10), train one denoising autoencoder per layer on the
codes of the layers below it, stack the encoders (and, in reverse, the decoders) into one deep
autoencoder, then fine-tune that end to end.  Layer k (input u, the code of layer k − 1):

    ũ = mask(u),   h = a_k(ũ W_k + b_k),   û = a'_k(h W'_k + b'_k),   loss ℓ(û, u),

a_k = ReLU except for the innermost layer (the embedding is linear), a'_k = ReLU except for the
outermost layer, whose output are the decoder's logits.  ℓ is the squared error Σ_j (û_j − u_j)²
for the inner layers, and for the outermost the Bernoulli cross-entropy of the grey levels,
−Σ_j [x_j l_j − softplus(l_j)] at logits l = û: the decoder's own −log p(x | z), so its last
layer is trained for the likelihood that VaDE then uses.  (DEC uses the squared error
everywhere, on a linear output.)  The noise is only in training: codes passed up are computed
from clean inputs, and fine-tuning runs without noise.

Verified by: tests/topics/test_pretraining.py
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.data import minibatches
from minivae.engine.ops import fused
from minivae.engine.tensor import Tensor, no_grad
from minivae.nn import MLP, Linear, Module
from minivae.optim import Adam


def mask_inputs(u: np.ndarray, drop: float, rng: np.random.Generator) -> np.ndarray:
    """Masking noise as inverted dropout: ũ_j = u_j m_j / (1 − p), m_j ~ Bernoulli(1 − p).

    Each entry is zeroed with probability p = ``drop`` and the survivors are scaled by 1/(1 − p),
    so E[ũ | u] = u: the encoder sees inputs of the same expected size in training and after.
    Verified by: tests/topics/test_pretraining.py::test_masking_keeps_the_expected_input
    """
    u, drop = checks.finite_float_array(u, "u"), checks.real(drop, "drop", 0.0, 1.0, high_open=True)
    rng = checks.generator(rng)
    if drop == 0.0:
        return u
    keep = rng.random(u.shape) >= drop
    return (u * keep / (1.0 - drop)).astype(u.dtype)


class DenoisingLayer(Module):
    """One layer of a stacked denoising autoencoder: encoder Linear(n_in, n_out) with activation
    ``encode_activation``, decoder Linear(n_out, n_in) with ``decode_activation``; ``pixels``
    says the decoder emits Bernoulli logits of grey levels (loss: cross-entropy), else values
    compared by squared error."""

    def __init__(self, n_in: int, n_out: int, rng: np.random.Generator, *,
                 encode_activation: str = "relu", decode_activation: str = "relu",
                 pixels: bool = False, dtype=np.float32):
        self.encoder = Linear(n_in, n_out, rng, dtype)
        self.decoder = Linear(n_out, n_in, rng, dtype)
        self.encode_activation, self.decode_activation = encode_activation, decode_activation
        self.pixels = checks.flag(pixels, "pixels")
        self.flatten_parameters()

    def encode(self, u) -> Tensor:
        """h = a(u W + b), (B, n_out)."""
        u = u if isinstance(u, Tensor) else Tensor(np.asarray(u))
        return self.encoder(u, self.encode_activation)

    def loss(self, noisy, clean) -> Tensor:
        """Per-example reconstruction loss of ``clean`` from the code of ``noisy``, (B,):
        Σ_j (û_j − u_j)², or −Σ_j [u_j l_j − softplus(l_j)] with logits l = û if ``pixels``.

        Verified by: tests/topics/test_pretraining.py::test_layer_loss_matches_numpy,
        ::test_layer_loss_gradient_passes_gradcheck
        """
        out = self.decoder(self.encode(noisy), self.decode_activation)
        if self.pixels:
            return -fused.bernoulli_log_prob(out, clean)
        diff = out - Tensor(np.asarray(clean))
        return (diff * diff).sum(axis=-1)


def autoencoder_model(model):
    """``model`` if it is a VAE-like model whose ``encoder`` and ``decoder`` are MLPs (the
    stack is copied into them, and the loss runs through them) and that knows its ``x_dim``,
    ``z_dim`` and ``dtype``."""
    fits = (isinstance(getattr(model, "encoder", None), MLP)
            and isinstance(getattr(model, "decoder", None), MLP)
            and all(hasattr(model, name) for name in ("x_dim", "z_dim", "dtype")))
    if not fits:
        raise TypeError(f"model must be a VAE-like model with MLP encoder and decoder (e.g. "
                        f"minivae.models.VAE or VaDE), got {type(model).__name__}")
    return model


def check_run(epochs, batch_size, lr, progress, budget) -> None:
    """The settings that every stage shares: epochs and batch size ≥ 1, a positive finite
    learning rate, a bool ``progress``, and a ``budget`` with ``spent()`` (or None)."""
    checks.positive_int(epochs, "epochs"), checks.positive_int(batch_size, "batch_size")
    checks.real(lr, "lr", 0.0, low_open=True), checks.flag(progress, "progress")
    if budget is not None:
        checks.has_methods(budget, ["spent"], "budget")


def _train(module: Module, batch_loss, data: np.ndarray, epochs: int, batch_size: int,
           lr: float, rng: np.random.Generator, label: str, progress: bool,
           budget=None, on_epoch=None) -> list[float]:
    """Adam on the mean of batch_loss(batch) over minibatches; the mean loss of each epoch.
    Ends early after the first epoch that finds ``budget`` (a ``minivae.stopping.Budget``)
    spent, so every stage trains at least one epoch; ``on_epoch(epoch)`` runs after each."""
    optimizer = Adam(module.parameters(), lr=lr)
    history = []
    for _ in tqdm(range(epochs), desc=label, disable=not progress, leave=False):
        if history and budget is not None and budget.spent():
            break
        total = 0.0
        for batch in threads.adaptive(minibatches(data, batch_size, rng)):
            value = batch_loss(batch)
            optimizer.zero_grad()
            value.mean().backward()
            optimizer.step()
            total += float(value.data.sum(dtype=np.float64))
        history.append(total / len(data))
        if on_epoch is not None:
            on_epoch(len(history))
    return history


def pretrain_layers(x: np.ndarray, sizes, rng: np.random.Generator, epochs: int = 10,
                    batch_size: int = 256, lr: float = 1e-3, drop: float = 0.2,
                    progress: bool = False,
                    budget=None) -> tuple[list[DenoisingLayer], list[list[float]]]:
    """Train one ``DenoisingLayer`` per consecutive pair of ``sizes`` (sizes[0] = x_dim), each on
    the clean codes of the trained layers below it; returns the layers and their loss curves.
    Once ``budget`` is spent each remaining layer trains one epoch."""
    # grey levels in [0, 1], one image per row: the first layer scores them as Bernoulli means
    x = checks.unit_interval(checks.finite_float_array(x, "x", matrix=True), "x")
    sizes, rng = checks.widths(sizes, "sizes"), checks.generator(rng)
    checks.require(len(sizes) >= 2 and sizes[0] == x.shape[1], "sizes",
                   f"[x_dim = {x.shape[1]}, ...] with at least one layer", np.asarray(sizes))
    checks.real(drop, "drop", 0.0, 1.0, high_open=True)
    check_run(epochs, batch_size, lr, progress, budget)
    layers, curves, u = [], [], x
    depth = len(sizes) - 1
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = DenoisingLayer(n_in, n_out, rng, dtype=x.dtype, pixels=k == 0,
                               encode_activation="identity" if k == depth - 1 else "relu",
                               decode_activation="identity" if k == 0 else "relu")
        curves.append(_train(layer, lambda b, layer=layer: layer.loss(mask_inputs(b, drop, rng), b),
                             u, epochs, batch_size, lr, rng, f"layer {k + 1}/{depth}", progress,
                             budget))
        layers.append(layer)
        with no_grad():
            u = np.concatenate([layer.encode(u[i:i + 4096]).data for i in range(0, len(u), 4096)])
    return layers, curves


def stack_into(model, layers: list[DenoisingLayer]) -> None:
    """Copy the layers' encoders into ``model.encoder`` (the innermost into the first z_dim
    outputs, the mean μ̃ of a VAE's encoder) and their decoders, in reverse, into
    ``model.decoder``.  The model's hidden activation should be ReLU, as the layers'."""
    model = autoencoder_model(model)
    encoders, decoders = model.encoder.layers, model.decoder.layers[::-1]
    if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, DenoisingLayer)
                                                         for layer in layers):
        raise TypeError(f"layers must be a list of DenoisingLayer, got {layers!r:.80}")
    checks.require(len(layers) == len(encoders), "layers", f"{len(encoders)} layers", len(layers))
    for k, (layer, encoder, decoder) in enumerate(zip(layers, encoders, decoders)):
        width = layer.encoder.weight.shape[1]
        n_in, n_out = encoder.weight.shape
        if (layer.encoder.weight.shape[0] != n_in or width > n_out
                or layer.decoder.weight.shape != decoder.weight.shape):
            raise ValueError(f"layers[{k}] must map {n_in} inputs to at most {n_out} outputs "
                             f"and back as the model's layer {k + 1} does, got "
                             f"{layer.encoder.weight.shape} and {layer.decoder.weight.shape}")
        encoder.weight.data[:, :width] = layer.encoder.weight.data
        encoder.bias.data[:width] = layer.encoder.bias.data
        decoder.weight.data[...] = layer.decoder.weight.data
        decoder.bias.data[...] = layer.decoder.bias.data


AUTOENCODER_LOSSES = ("bernoulli", "squared")


def autoencoder_loss(model, x, loss: str = "bernoulli") -> Tensor:
    """The autoencoder's loss per example for grey levels x ∈ [0, 1], (B,), with decoder logits
    l = decoder(μ̃(x)):

        "bernoulli":  −log p(x | z = μ̃(x)) = −Σ_j [x_j l_j − softplus(l_j)]   (cross-entropy)
        "squared":    Σ_j (σ(l_j) − x_j)²    (squared error of the decoded Bernoulli means)

    The squared error is DEC's and IDEC's pretraining loss; taken on σ(l) rather than on a
    linear output, the decoder still emits the logits of the Bernoulli likelihood that VaDE
    trains next.  Unlike the cross-entropy it does not grow without bound for a confident wrong
    pixel, so the codes are shaped by the bulk of each digit rather than by its worst pixels.

    Verified by: tests/topics/test_pretraining.py::test_autoencoder_loss_matches_numpy,
    ::test_squared_autoencoder_loss_passes_gradcheck
    """
    model = autoencoder_model(model)
    checks.batch(x, model.x_dim, model.dtype, "unit_interval")
    checks.one_of(loss, AUTOENCODER_LOSSES, "loss")
    h = model.encoder(Tensor(np.asarray(x)))
    logits = model.decoder(h[:, :model.z_dim])
    if loss == "bernoulli":
        return -fused.bernoulli_log_prob(logits, x)
    error = logits.sigmoid() - Tensor(np.asarray(x))
    return (error * error).sum(axis=-1)


def finetune(model, x: np.ndarray, rng: np.random.Generator, epochs: int = 20,
             batch_size: int = 256, lr: float = 1e-3, progress: bool = False,
             budget=None, loss: str = "bernoulli", on_epoch=None) -> list[float]:
    """Train the whole stacked autoencoder on ``autoencoder_loss`` (no noise); loss per epoch
    (at least one epoch, fewer than ``epochs`` once ``budget`` is spent).  From a random start
    this is IDEC's pretraining (one autoencoder trained end to end).  ``on_epoch(epoch)`` runs
    after each epoch (e.g. to score the codes)."""
    model = autoencoder_model(model)
    checks.batch(x, model.x_dim, model.dtype, "unit_interval")
    rng = checks.generator(rng)
    checks.one_of(loss, AUTOENCODER_LOSSES, "loss")
    check_run(epochs, batch_size, lr, progress, budget)
    return _train(model, lambda b: autoencoder_loss(model, b, loss), x, epochs, batch_size,
                  lr, rng, "fine-tune", progress, budget, on_epoch)
