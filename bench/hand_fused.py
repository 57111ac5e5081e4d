"""The VAE training step written out by hand, with no autodiff engine: the floor for minivae.

Same model, same kernels (minivae.kernels), same BLAS calls as minivae's engine makes, but the
backward pass is hand-written and every gradient is computed straight into the flat gradient
buffer (``np.matmul(..., out=...)``), so nothing is zeroed, copied or added twice.  The gap
between this and minivae's epoch is what the engine costs; the gap between this and the GEMMs
alone is what the element-wise work and Adam cost.  Used by bench/epoch.py.
"""
from __future__ import annotations

import numpy as np

from minivae import kernels
from minivae.data import minibatches


class HandFusedVAE:
    """A Bernoulli VAE (MLP encoder/decoder, weights (in, out) as in minivae) with Adam."""

    def __init__(self, hidden, z_dim: int, activation: str, slope: float, rng, lr=1e-3):
        encoder, decoder = [784, *hidden, 2 * z_dim], [z_dim, *reversed(hidden), 784]
        shapes = list(zip(encoder[:-1], encoder[1:])) + list(zip(decoder[:-1], decoder[1:]))
        total = sum(i * o + o for i, o in shapes)
        self.params, self.grads = np.empty(total, np.float32), np.zeros(total, np.float32)
        self.m, self.v = np.zeros(total, np.float32), np.zeros(total, np.float32)
        self.weights, self.biases, self.weight_grads, self.bias_grads = [], [], [], []
        offset = 0
        for i, o in shapes:
            bound = 1.0 / np.sqrt(i)
            for size, shape, params, grads in ((i * o, (i, o), self.weights, self.weight_grads),
                                               (o, (o,), self.biases, self.bias_grads)):
                view = self.params[offset:offset + size].reshape(shape)
                view[...] = rng.uniform(-bound, bound, shape)
                params.append(view)
                grads.append(self.grads[offset:offset + size].reshape(shape))
                offset += size
        self.n_encoder = len(encoder) - 1
        self.z_dim, self.activation, self.slope, self.lr, self.t = z_dim, activation, slope, lr, 0

    def _forward(self, h, layers):
        outputs = [h]
        for k in layers:
            y = h @ self.weights[k]
            last = k in (self.n_encoder - 1, len(self.weights) - 1)
            kernels.bias_act_forward(y, self.biases[k], "identity" if last else self.activation,
                                     self.slope, out=y)
            outputs.append(y)
            h = y
        return outputs

    def _backward(self, outputs, g, layers, need_input_grad: bool):
        for position in reversed(range(len(layers))):
            k = layers[position]
            if position == len(layers) - 1:  # output layer: identity activation
                grad_pre = g
                np.sum(g, axis=0, out=self.bias_grads[k])
            else:
                grad_pre, self.bias_grads[k][...] = kernels.bias_act_backward(
                    outputs[position + 1], g, self.activation, self.slope)
            np.matmul(outputs[position].T, grad_pre, out=self.weight_grads[k])
            if position or need_input_grad:
                g = grad_pre @ self.weights[k].T
        return g

    def step(self, x: np.ndarray, rng) -> float:
        batch, d = x.shape[0], self.z_dim
        encoder = range(self.n_encoder)
        decoder = range(self.n_encoder, len(self.weights))
        h = self._forward(x, encoder)
        loc, log_var = h[-1][:, :d], h[-1][:, d:]
        eps = rng.standard_normal(loc.shape).astype(np.float32)  # the draws minivae makes
        z, kl, std = kernels.reparameterize_kl_forward(loc, log_var, eps)
        outputs = self._forward(z, decoder)
        grad_logits = np.empty_like(outputs[-1])
        log_px = kernels.bernoulli_log_prob(outputs[-1], x, grad_logits)
        loss = float(np.mean(kl - log_px))
        grad_logits *= np.float32(-1.0 / batch)  # d loss / d logits = −(x − σ(l)) / B
        grad_z = self._backward(outputs, grad_logits, decoder, True)
        grad_kl = np.full(batch, 1.0 / batch, np.float32)
        grad_loc, grad_log_var = kernels.reparameterize_kl_backward(loc, eps, std, grad_z, grad_kl)
        self._backward(h, np.concatenate([grad_loc, grad_log_var], axis=1), encoder, False)
        self.t += 1
        kernels.adam_step(self.params, self.grads, self.m, self.v, self.lr, 0.9, 0.999, 1e-8,
                          self.t)
        return loss


def hand_fused_epoch(arch: dict, x: np.ndarray, seed: int) -> float:
    import time

    rng = np.random.default_rng(seed)
    model = HandFusedVAE(arch["hidden"], arch["z_dim"], arch["activation"], arch["leaky_slope"],
                         rng)
    start = time.perf_counter()
    for batch in minibatches(x, arch["batch_size"], rng):
        model.step(batch, rng)
    return time.perf_counter() - start
