"""bench/hand_fused.py must compute exactly minivae's step, or its timings compare nothing."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from minivae.models import VAE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from hand_fused import HandFusedVAE  # noqa: E402


@pytest.mark.parametrize("hidden, z_dim, activation, slope",
                         [((400,), 20, "tanh", 0.01), ((400, 400), 200, "leaky_relu", 0.2)])
def test_hand_fused_step_has_minivaes_loss_and_gradient(hidden, z_dim, activation, slope):
    x = (np.random.default_rng(0).random((32, 784)) < 0.2).astype(np.float32)
    hand = HandFusedVAE(hidden, z_dim, activation, slope, np.random.default_rng(1))
    model = VAE(784, hidden, z_dim, activation, rng=np.random.default_rng(1), leaky_slope=slope)
    np.testing.assert_array_equal(hand.params, model.flat_data)
    loss = -model.elbo(x, np.random.default_rng(2)).mean()
    loss.backward()
    hand_loss = hand.step(x, np.random.default_rng(2))
    np.testing.assert_allclose(hand_loss, loss.item(), rtol=1e-6)
    scale = np.abs(model.flat_grad).max()
    np.testing.assert_allclose(hand.grads, model.flat_grad, atol=1e-6 * scale)
