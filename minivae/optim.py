"""Optimizers: SGD with momentum and Adam, updating parameters in place.

The parameters of a model are views of one flat buffer (``Module.flatten_parameters``), and
``model.parameters()`` says so; an optimizer then updates the whole model with a few
whole-array operations on that buffer (or one compiled kernel pass) instead of a loop over
layers.  Any other list of parameters is updated one parameter at a time.

Verified by: tests/test_optim.py::test_adam_matches_numpy_transcription,
tests/test_optim.py::test_sgd_momentum_matches_numpy_transcription
"""
from __future__ import annotations

import numpy as np

from minivae import checks, kernels
from minivae.engine.tensor import Tensor


class Optimizer:
    def __init__(self, params, lr: float):
        flat = getattr(params, "flat", None)  # (data, grad) buffers of a flattened Module
        self.params, self.lr = list(params), checks.positive(lr, "lr", number=True)
        if not self.params:
            raise ValueError("params must contain at least one parameter")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError("params must be Tensors with requires_grad=True")
            if p.grad is None:
                p.grad = np.zeros_like(p.data)
            if not (p.data.flags.c_contiguous and p.grad.flags.c_contiguous):
                raise ValueError("parameters and their gradients must be C-contiguous arrays")
        # (data, grad) pairs of 1-D views: the model's two buffers, or one pair per parameter
        self.groups = [flat] if flat is not None else [
            (p.data.reshape(-1), p.grad.reshape(-1)) for p in self.params]

    def zero_grad(self) -> None:
        """Set the gradients to zero (lazily: see ``Tensor.clear_grad``)."""
        for p in self.params:
            p.clear_grad()

    def step(self) -> None:
        raise NotImplementedError

    def _gradients_ready(self) -> None:
        """The updates read the gradient buffers directly: write the zeros of gradients still
        cleared (parameters the loss did not use)."""
        for p in self.params:
            p.write_cleared_grad()


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch.

    Math: b ← μ b + g (b = g on the first step);  θ ← θ − η b.   With μ = 0: θ ← θ − η g.
    """

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = checks.real(momentum, "momentum", 0, 1, high_open=True)
        self.buffers = [np.empty_like(grad) for _, grad in self.groups]
        self.first_step = True

    def step(self) -> None:
        self._gradients_ready()
        for (theta, g), b in zip(self.groups, self.buffers):
            if not kernels.enabled("sgd_step"):
                if self.first_step:
                    b[...] = g
                else:
                    b *= self.momentum
                    b += g  # b ← μ b + g
                theta -= self.lr * b  # θ ← θ − η b
                continue
            # The lines above in one pass over the buffer (minivae.kernels.sgd_step).
            kernels.sgd_step(theta, g, b, self.lr, self.momentum, self.first_step)
        self.first_step = False


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction; PyTorch's defaults.

    Math, at step t with gradient g:
        m ← β₁ m + (1 − β₁) g,          v ← β₂ v + (1 − β₂) g²,
        θ ← θ − η · m̂ / (√v̂ + ε),       m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        beta1, beta2 = betas
        self.beta1 = checks.real(beta1, "betas[0]", 0, 1, high_open=True)
        self.beta2 = checks.real(beta2, "betas[1]", 0, 1, high_open=True)
        self.eps = checks.positive(eps, "eps", number=True)
        self.t = 0
        self.m = [np.zeros_like(theta) for theta, _ in self.groups]
        self.v = [np.zeros_like(theta) for theta, _ in self.groups]

    def step(self) -> None:
        self._gradients_ready()
        self.t += 1
        lr, beta1, beta2, eps, t = self.lr, self.beta1, self.beta2, self.eps, self.t
        for (theta, g), m, v in zip(self.groups, self.m, self.v):
            if not kernels.enabled("adam_step"):
                m *= beta1
                m += (1 - beta1) * g  # m ← β₁ m + (1 − β₁) g
                v *= beta2
                v += (1 - beta2) * g * g  # v ← β₂ v + (1 − β₂) g²
                m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)  # bias corrections
                theta -= lr * m_hat / (np.sqrt(v_hat) + eps)
                continue
            # The six lines above in one pass over the buffer (minivae.kernels.adam_step).
            kernels.adam_step(theta, g, m, v, lr, beta1, beta2, eps, t)

    def state_dict(self) -> dict:
        """The optimizer's state as arrays (for checkpoints)."""
        state = {"t": np.array(self.t)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m.{i}"], state[f"v.{i}"] = m.copy(), v.copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Put back a ``state_dict``: t a step count ≥ 0, m finite, v finite and ≥ 0 (a
        negative v or a t of −1 would divide by zero or take √ of a negative number)."""
        expected = {"t"} | {f"{k}.{i}" for i in range(len(self.m)) for k in ("m", "v")}
        if set(state) != expected:
            raise ValueError(f"Adam state keys must be {sorted(expected)}, got {sorted(state)}")
        t = checks.integer(np.asarray(state["t"]).tolist(), "Adam state t", 0)
        for i in range(len(self.m)):
            for name, target in (("m", self.m[i]), ("v", self.v[i])):
                value = np.asarray(state[f"{name}.{i}"])
                if value.shape != target.shape or value.dtype != target.dtype:
                    raise ValueError(f"Adam state {name}.{i}: expected {target.shape} "
                                     f"{target.dtype}, got {value.shape} {value.dtype}")
                checks.require(np.isfinite(value) & ((value >= 0) | (name == "m")),
                               f"Adam state {name}.{i}", "finite" + " and ≥ 0" * (name == "v"),
                               value)
                target[...] = value
        self.t = t
