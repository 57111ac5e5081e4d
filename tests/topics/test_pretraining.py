"""Layer-wise denoising-autoencoder pretraining: the layer's loss and gradient, the masking
noise, stacking into a VaDE, and the fine-tuning loss, against plain NumPy."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from minivae.engine.gradcheck import gradcheck
from minivae.engine.tensor import Tensor
from minivae.models.vade import VaDE
from minivae.stopping import Budget
from minivae.topics.pretraining import (
    DenoisingLayer,
    autoencoder_loss,
    finetune,
    mask_inputs,
    pretrain_layers,
    stack_into,
)


def relu(a):
    return np.maximum(a, 0.0)


def layer_arrays(layer):
    return (layer.encoder.weight.data, layer.encoder.bias.data, layer.decoder.weight.data,
            layer.decoder.bias.data)


@pytest.mark.parametrize("pixels", [False, True])
def test_layer_loss_matches_numpy(pixels):
    rng = np.random.default_rng(0)
    layer = DenoisingLayer(7, 3, rng, pixels=pixels, dtype=np.float64,
                           decode_activation="identity" if pixels else "relu")
    clean = rng.uniform(size=(5, 7))
    noisy = clean * (rng.uniform(size=clean.shape) > 0.3)
    W, b, V, c = layer_arrays(layer)
    out = relu(noisy @ W + b) @ V + c
    if pixels:  # −Σ_j [x_j log σ(l_j) + (1 − x_j) log(1 − σ(l_j))]
        p = expit(out)
        expected = -(clean * np.log(p) + (1 - clean) * np.log1p(-p)).sum(1)
    else:
        expected = ((relu(out) - clean) ** 2).sum(1)
    np.testing.assert_allclose(layer.loss(noisy, clean).data, expected, rtol=1e-10)


@pytest.mark.parametrize("pixels", [False, True])
def test_layer_loss_gradient_passes_gradcheck(pixels):
    rng = np.random.default_rng(1)
    layer = DenoisingLayer(6, 4, rng, pixels=pixels, dtype=np.float64,
                           decode_activation="identity" if pixels else "relu")
    clean = rng.uniform(size=(3, 6))
    noisy = mask_inputs(clean, 0.2, rng)

    def loss(W, b, V, c):
        layer.encoder.weight, layer.encoder.bias = W, b
        layer.decoder.weight, layer.decoder.bias = V, c
        return layer.loss(noisy, clean)

    assert gradcheck(loss, *layer_arrays(layer))


def test_masking_keeps_the_expected_input():
    """Inverted dropout: each entry is 0 with probability p or u/(1 − p), so E[ũ] = u."""
    rng = np.random.default_rng(2)
    u = np.linspace(0.1, 1.0, 10, dtype=np.float32)
    draws = np.stack([mask_inputs(u, 0.2, rng) for _ in range(20_000)])
    assert draws.dtype == np.float32
    kept = draws != 0
    np.testing.assert_allclose(draws[kept], np.broadcast_to(u / 0.8, draws.shape)[kept],
                               rtol=1e-6)
    # the fraction dropped is Binomial(20000, 0.2)/20000: ±5 standard errors
    assert abs(1 - kept.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / kept.size)
    standard_error = u / 0.8 * np.sqrt(0.2 * 0.8 / len(draws))
    assert np.all(np.abs(draws.mean(0) - u) < 5 * standard_error)
    assert mask_inputs(u, 0.0, rng) is u
    with pytest.raises(ValueError, match="drop"):
        mask_inputs(u, 1.0, rng)


def test_stacked_layers_are_the_vade_encoder_mean_and_decoder():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(40, 12)).astype(np.float64)
    layers, curves = pretrain_layers(x, [12, 8, 5, 3], rng, epochs=2, batch_size=16)
    assert [len(c) for c in curves] == [2, 2, 2] and np.all(np.isfinite(curves))
    model = VaDE(12, hidden=(8, 5), z_dim=3, activation="relu", rng=rng, dtype=np.float64,
                 n_clusters=2, soft_targets=True)
    stack_into(model, layers)
    (W1, b1, V1, c1), (W2, b2, V2, c2), (W3, b3, V3, c3) = map(layer_arrays, layers)
    code = (relu(relu(x @ W1 + b1) @ W2 + b2) @ W3 + b3)  # the innermost code is linear
    np.testing.assert_allclose(model.encode(x).loc.data, code, rtol=1e-10)
    logits = relu(relu(code @ V3 + c3) @ V2 + c2) @ V1 + c1
    np.testing.assert_allclose(model.decoder(Tensor(code)).data, logits, rtol=1e-10)
    with pytest.raises(ValueError, match="layers"):
        stack_into(model, layers[:2])


@pytest.mark.parametrize("loss", ["bernoulli", "squared"])
def test_autoencoder_loss_matches_numpy(loss):
    rng = np.random.default_rng(4)
    model = VaDE(9, hidden=(6,), z_dim=2, activation="relu", rng=rng, dtype=np.float64,
                 n_clusters=2, soft_targets=True)
    x = rng.uniform(size=(4, 9))
    logits = model.decoder(model.encode(x).loc).data
    p = expit(logits)
    if loss == "bernoulli":
        expected = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(1)
    else:
        expected = ((p - x) ** 2).sum(1)
    np.testing.assert_allclose(autoencoder_loss(model, x, loss).data, expected, rtol=1e-10)
    before = autoencoder_loss(model, x, loss).data.mean()
    epochs_seen = []
    curve = finetune(model, x, rng, epochs=30, batch_size=4, lr=1e-2, loss=loss,
                     on_epoch=epochs_seen.append)
    assert autoencoder_loss(model, x, loss).data.mean() < before and len(curve) == 30
    assert epochs_seen == list(range(1, 31))
    with pytest.raises(ValueError, match="loss"):
        autoencoder_loss(model, x, "absolute")


def test_squared_autoencoder_loss_passes_gradcheck():
    rng = np.random.default_rng(6)
    model = VaDE(5, hidden=(4,), z_dim=2, activation="relu", rng=rng, dtype=np.float64,
                 n_clusters=2, soft_targets=True)
    x = rng.uniform(size=(3, 5))
    linears = [*model.encoder.layers, *model.decoder.layers]

    def loss(*arrays):  # the weights and biases of every layer, as gradcheck's leaves
        for linear, weight, bias in zip(linears, arrays[::2], arrays[1::2]):
            linear.weight, linear.bias = weight, bias
        return autoencoder_loss(model, x, "squared")

    assert gradcheck(loss, *[a.data.copy() for linear in linears
                             for a in (linear.weight, linear.bias)])


def test_a_spent_budget_leaves_each_stage_one_epoch():
    """Once the wall-clock budget is spent every layer and the fine-tuning train one epoch (a
    stage with no training at all would leave random weights in the stack)."""
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(30, 12))
    spent = Budget(1e-9)
    _, curves = pretrain_layers(x, [12, 8, 5, 3], rng, epochs=5, batch_size=16, budget=spent)
    assert [len(c) for c in curves] == [1, 1, 1]
    model = VaDE(12, hidden=(8, 5), z_dim=3, activation="relu", rng=rng, dtype=np.float64,
                 n_clusters=2, soft_targets=True)
    assert len(finetune(model, x, rng, epochs=5, batch_size=16, budget=spent)) == 1
    assert len(finetune(model, x, rng, epochs=5, batch_size=16, budget=Budget(60))) == 5
