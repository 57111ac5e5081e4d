"""Neural-network building blocks: Module, Linear and MLP (the encoder and decoder bodies).

Parameters live as views into one flat, contiguous buffer, and so do their gradients.  The
optimizer then updates every parameter of a model with a handful of array operations over that
one buffer instead of a Python loop over layers (and a compiled kernel can do it in one call).

Verified by: tests/test_nn.py
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from minivae import checks, kernels
from minivae.engine import ops
from minivae.engine.ops import fused
from minivae.engine.tensor import Tensor


class Parameters(list):
    """A module's parameters, in order; ``flat`` is the pair (data, grad) of 1-D buffers they
    are views of after ``flatten_parameters`` (what an optimizer updates in one pass), else
    None."""

    flat: tuple[np.ndarray, np.ndarray] | None = None


class Module:
    """A container of parameters (Tensors with ``requires_grad``) and sub-modules.

    Parameters and children are discovered from the instance's attributes, in the order they
    were assigned; lists and tuples of modules count as children named by position.
    """

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def named_parameters(self, prefix: str = ""):
        """Yield ``(dotted_name, parameter)`` pairs, depth first, in assignment order."""
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(f"{prefix}{name}.")
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item.named_parameters(f"{prefix}{name}.{i}.")

    def parameters(self) -> Parameters:
        params = Parameters(p for _, p in self.named_parameters())
        flat = getattr(self, "flat_data", None)
        # The buffers are this module's while its parameters are still views of them (an
        # enclosing module that flattened everything again owns the buffers then).
        if flat is not None and all(p.data.base is flat for p in params):
            params.flat = (flat, self._flat_grad)
        return params

    def flatten_parameters(self) -> None:
        """Move every parameter (and a zeroed gradient) into one contiguous buffer, as views.

        After this, ``self.flat_data`` and ``self.flat_grad`` are 1-D arrays whose slices are the
        parameters' ``.data`` and ``.grad``.  Calling it again on an enclosing module re-packs
        everything into that module's buffer (values are kept).
        """
        params = self.parameters()
        if not params:
            raise ValueError("flatten_parameters: the module has no parameters")
        dtypes = {p.dtype for p in params}
        if len(dtypes) != 1:
            raise TypeError(f"all parameters must share one dtype, got {sorted(map(str, dtypes))}")
        total = sum(p.size for p in params)
        self.flat_data = np.empty(total, dtype=dtypes.pop())
        self._flat_grad = np.zeros_like(self.flat_data)
        self._flat_parameters = params
        offset = 0
        for p in params:
            n = p.size
            self.flat_data[offset:offset + n] = p.data.ravel()
            p.data = self.flat_data[offset:offset + n].reshape(p.shape)
            p.grad = self._flat_grad[offset:offset + n].reshape(p.shape)
            offset += n

    @property
    def flat_grad(self) -> np.ndarray:
        """All parameters' gradients as one 1-D buffer (after ``flatten_parameters``)."""
        for p in self._flat_parameters:
            p.write_cleared_grad()
        return self._flat_grad

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (lazily: see ``Tensor.clear_grad``)."""
        for p in self.parameters():
            p.clear_grad()

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of all parameter arrays, keyed by dotted name."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the parameters in place (views stay views); names, shapes and dtypes
        must match exactly."""
        params = dict(self.named_parameters())
        missing, unexpected = params.keys() - state.keys(), state.keys() - params.keys()
        if missing or unexpected:
            raise ValueError(
                f"state dict keys do not match: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for name, p in params.items():
            value = np.asarray(state[name])
            if value.shape != p.shape or value.dtype != p.dtype:
                raise ValueError(
                    f"state dict entry {name!r}: expected shape {p.shape} and dtype {p.dtype}, "
                    f"got shape {value.shape} and dtype {value.dtype}"
                )
            p.data[...] = value


# The activations by name; a hidden layer's is applied by the fused bias + activation kernel.
ACTIVATIONS = {
    "identity": lambda h, slope: h,
    "tanh": lambda h, slope: ops.tanh(h),
    "relu": lambda h, slope: ops.relu(h),
    "leaky_relu": ops.leaky_relu,
    "sigmoid": lambda h, slope: ops.sigmoid(h),
    "softplus": lambda h, slope: ops.softplus(h),
}
HIDDEN_ACTIVATIONS = tuple(name for name in ACTIVATIONS if name != "identity")


class Linear(Module):
    """An affine map y = x W + b for a batch of row vectors x of shape (B, in_features).

    Initialization: W and b are drawn from U(−1/√in_features, 1/√in_features), the default of
    PyTorch's ``nn.Linear``, so that runs compare like for like with PyTorch.  It keeps the
    pre-activation variance of order 1/3 for inputs of unit variance.
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator,
                 dtype=np.float32):
        in_features = checks.positive_int(in_features, "in_features")
        out_features = checks.positive_int(out_features, "out_features")
        rng, dtype = checks.generator(rng), checks.float_dtype(dtype)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Tensor(rng.uniform(-bound, bound, (in_features, out_features)).astype(dtype),
                             requires_grad=True)
        self.bias = Tensor(rng.uniform(-bound, bound, out_features).astype(dtype),
                           requires_grad=True)

    def forward(self, x: Tensor, activation: str = "identity", slope: float = 0.01) -> Tensor:
        """act(x W + b): (B, in) @ (in, out) + (out,) → (B, out)."""
        if not kernels.enabled("bias_act"):
            return ACTIVATIONS[activation](x @ self.weight + self.bias, slope)
        # The line above as one BLAS product and one bias + activation kernel pass, with one
        # hand-written VJP (engine/ops/fused.py).
        return fused.linear(x, self.weight, self.bias, activation, slope)


class MLP(Module):
    """Linear layers with an activation between them (none after the last layer).

    ``MLP([784, 400, 20], "tanh")`` is Linear(784, 400) → tanh → Linear(400, 20).
    ``slope`` is leaky_relu's slope for negative inputs.
    """

    def __init__(self, sizes, activation: str = "tanh", rng: np.random.Generator | None = None,
                 dtype=np.float32, slope: float = 0.01):
        sizes = [checks.positive_int(size, "every layer size") for size in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output size, got {sizes}")
        self.activation = checks.one_of(activation, HIDDEN_ACTIVATIONS, "activation")
        self.slope = checks.real(slope, "slope")
        self.layers = [Linear(a, b, rng, dtype) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x, self.activation, self.slope)  # (B, width)
        return self.layers[-1](x)

    def after_first_layer(self, x: Tensor) -> Tensor:
        """The rest of ``forward`` given the first layer's output x (activated, unless the MLP
        has one layer and x is its output).  For callers that compute the first layer in
        another way (``SemiSupervisedVAE``'s encoder)."""
        if len(self.layers) == 1:
            return x
        for layer in self.layers[1:-1]:
            x = layer(x, self.activation, self.slope)
        return self.layers[-1](x)


# How ``initialize`` redraws every Linear layer's weights: "default" leaves Linear's own
# U(±1/√fan_in) draw (PyTorch's), the others are the schemes of Glorot & Bengio (2010) and
# He et al. (2015).
INITIALIZATIONS = ("default", "glorot", "he")


def linear_layers(module: Module):
    """Every Linear inside ``module`` (itself included), depth first, in assignment order."""
    if isinstance(module, Linear):
        yield module
    for value in vars(module).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, Module):
                yield from linear_layers(item)


def initialize(module: Module, scheme: str, rng: np.random.Generator) -> None:
    """Redraw the weights of every Linear layer of ``module`` in place (views stay views),
    drawing from ``rng`` layer by layer; biases become 0.  Other parameters are left as built.

    Math: "glorot" (Xavier uniform): W_ij ~ U(−a, a), a = √(6 / (fan_in + fan_out)), so
          Var W_ij = a²/3 = 2 / (fan_in + fan_out);
          "he" (He normal): W_ij ~ N(0, 2 / fan_in);  "default": nothing is redrawn.
    Verified by: tests/test_nn.py::test_glorot_and_he_draw_weights_with_their_moments
    """
    checks.one_of(scheme, INITIALIZATIONS, "init")
    if scheme == "default":
        return
    rng = checks.generator(rng)
    for layer in linear_layers(module):
        fan_in, fan_out = layer.weight.shape
        if scheme == "glorot":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            weight = rng.uniform(-bound, bound, (fan_in, fan_out))
        else:
            weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
        layer.weight.data[...] = weight
        layer.bias.data[...] = 0
