"""Optimizers: SGD with momentum and Adam, updating parameters in place.

When the parameters are consecutive views of one flat buffer (see ``Module.flatten_parameters``)
an optimizer works on that buffer directly, so a step is a few whole-array operations.

Verified by: tests/test_optim.py::test_adam_matches_numpy_transcription,
tests/test_optim.py::test_sgd_momentum_matches_numpy_transcription
"""
from __future__ import annotations

import numpy as np

from minivae import kernels
from minivae.engine.tensor import Tensor


def _flat_buffers(params: list) -> tuple[np.ndarray, np.ndarray] | None:
    """The (data, grad) buffers that ``params`` tile exactly, in order, or None."""
    data_base, grad_base = params[0].data.base, getattr(params[0].grad, "base", None)
    if data_base is None or grad_base is None:
        return None
    for buffer in (data_base, grad_base):
        if buffer.ndim != 1 or not buffer.flags.c_contiguous:
            return None
    if data_base.size != sum(p.size for p in params):
        return None
    offset = 0
    for p in params:
        for array, base in ((p.data, data_base), (p.grad, grad_base)):
            if array.base is not base or not array.flags.c_contiguous:
                return None
            start = (array.__array_interface__["data"][0] - base.__array_interface__["data"][0])
            if start != offset * base.itemsize:
                return None
        offset += p.size
    return data_base, grad_base


class Optimizer:
    def __init__(self, params, lr: float):
        params = list(params)
        if not params:
            raise ValueError("params must contain at least one parameter")
        for p in params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError("params must be Tensors with requires_grad=True")
        if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        self.params, self.lr = params, float(lr)
        for p in params:
            if p.grad is None:
                p.grad = np.zeros_like(p.data)
            if not (p.data.flags.c_contiguous and p.grad.flags.c_contiguous):
                raise ValueError("parameters and their gradients must be C-contiguous arrays")
        flat = _flat_buffers(params)
        # One (data, grad) pair of 1-D views per parameter, or a single pair covering them all;
        # the update kernels work on 1-D contiguous buffers.
        self._groups = [flat] if flat is not None else [
            (p.data.reshape(-1), p.grad.reshape(-1)) for p in params]

    def zero_grad(self) -> None:
        """Set the gradients to zero (lazily: see ``Tensor.clear_grad``)."""
        for p in self.params:
            p.clear_grad()

    def _gradients_ready(self) -> None:
        """Fill in the zeros of gradients still cleared (parameters the loss did not use),
        since the update kernels read the gradient buffers directly."""
        for p in self.params:
            if p._grad_cleared:
                p.grad  # noqa: B018  (reading it writes the zeros)

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch.

    Math: b ← μ b + g (b = g on the first step);  θ ← θ − η b.   With μ = 0: θ ← θ − η g.
    """

    def __init__(self, params, lr: float = 1e-2, momentum: float = 0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.buffers = [None] * len(self._groups)

    def step(self) -> None:
        self._gradients_ready()
        for i, (data, grad) in enumerate(self._groups):
            first_step = self.buffers[i] is None
            if first_step:
                self.buffers[i] = np.empty_like(grad)
            kernels.sgd_step(data, grad, self.buffers[i], self.lr, self.momentum, first_step)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction; PyTorch's defaults.

    Math, at step t with gradient g:
        m ← β₁ m + (1 − β₁) g,          v ← β₂ v + (1 − β₂) g²,
        θ ← θ − η · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        beta1, beta2 = betas
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0
        self.m = [np.zeros_like(data) for data, _ in self._groups]
        self.v = [np.zeros_like(data) for data, _ in self._groups]

    def step(self) -> None:
        self._gradients_ready()
        self.t += 1
        for (data, grad), m, v in zip(self._groups, self.m, self.v):
            # One fused pass over the flat buffer (minivae.kernels.adam_step has the formula).
            kernels.adam_step(data, grad, m, v, self.lr, self.beta1, self.beta2, self.eps, self.t)

    def state_dict(self) -> dict:
        """The optimizer's state as arrays (for checkpoints)."""
        state = {"t": np.array(self.t)}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m.{i}"], state[f"v.{i}"] = m.copy(), v.copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        expected = {"t"} | {f"{k}.{i}" for i in range(len(self.m)) for k in ("m", "v")}
        if set(state) != expected:
            raise ValueError(f"Adam state keys must be {sorted(expected)}, got {sorted(state)}")
        for i in range(len(self.m)):
            for name, target in (("m", self.m[i]), ("v", self.v[i])):
                value = np.asarray(state[f"{name}.{i}"])
                if value.shape != target.shape or value.dtype != target.dtype:
                    raise ValueError(f"Adam state {name}.{i}: expected {target.shape} "
                                     f"{target.dtype}, got {value.shape} {value.dtype}")
                target[...] = value
        self.t = int(state["t"])
