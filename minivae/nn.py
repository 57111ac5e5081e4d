"""Neural-network building blocks: Module, Linear and MLP (the encoder and decoder bodies).

Parameters live as views into one flat, contiguous buffer, and so do their gradients.  The
optimizer then updates every parameter of a model with a handful of array operations over that
one buffer instead of a Python loop over layers (and a compiled kernel can do it in one call).

Verified by: tests/test_nn.py
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from minivae.ops.fused import linear
from minivae.tensor import FLOAT_DTYPES, Tensor


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

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

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
        dtype = dtypes.pop()
        total = sum(p.size for p in params)
        self.flat_data = np.empty(total, dtype=dtype)
        self._flat_grad = np.zeros(total, dtype=dtype)
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
            if p._grad_cleared:
                p.grad  # noqa: B018  (reading a cleared gradient writes its zeros)
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


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


# What a model's data may hold: any finite number, pixels exactly 0 or 1 (a Bernoulli
# decoder's outcomes), or grey levels in [0, 1] (a Bernoulli decoder's soft targets).
SUPPORTS = ("real", "binary", "unit_interval")


def check_batch(x, x_dim: int, dtype, support: str = "real") -> Tensor:
    """``x`` as a Tensor after checking it is a finite (batch, x_dim) array of the model's
    dtype, batch ≥ 1, with values in ``support`` ("real", "binary" {0, 1} or "unit_interval"
    [0, 1]).  It runs on every training batch, so each support costs one vectorized pass over
    x on valid data (a value in {0, 1} or [0, 1] is finite, NaN fails every comparison); the
    slower diagnosis runs only to word the error."""
    data = x.data if isinstance(x, Tensor) else x
    if not isinstance(data, np.ndarray):
        raise TypeError(f"x must be a numpy array or Tensor, got {type(x).__name__}")
    if data.ndim != 2 or data.shape[1] != x_dim or data.shape[0] < 1:
        raise ValueError(f"x must have shape (batch, {x_dim}) with batch ≥ 1, got {data.shape}")
    if data.dtype != dtype:
        raise TypeError(f"x must have dtype {dtype} (the model's), got {data.dtype}")
    if support == "binary":
        valid = ((data == 0) | (data == 1)).all()
    elif support == "unit_interval":
        valid = ((data >= 0) & (data <= 1)).all()
    else:
        valid = np.isfinite(data).all()
    if not valid:
        _explain_bad_batch(data, support)
    return x if isinstance(x, Tensor) else Tensor(x)


def _explain_bad_batch(data: np.ndarray, support: str) -> None:
    """Raise the ValueError that says why ``data`` failed ``check_batch``'s value check."""
    check_finite(data, "x")
    low, high = data.min(), data.max()
    if support == "binary":
        raise ValueError("x must hold binary pixels 0/1 for a Bernoulli decoder; pass "
                         "soft_targets=True to use values in [0, 1]; got values in "
                         f"[{low}, {high}]")
    raise ValueError("x must hold values in [0, 1] for a Bernoulli decoder with "
                     f"soft_targets=True; got values in [{low}, {high}]")


def check_positive_int(value, name: str) -> int:
    """``value`` as an int ≥ 1, or a ValueError naming ``name`` (bools are not sizes)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_hidden(hidden) -> tuple:
    """Hidden-layer widths as a tuple of ints ≥ 1 (one int means one layer); may be empty."""
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, (tuple, list, np.ndarray)):
        raise TypeError(f"hidden must be an int or a sequence of ints (layer widths), got "
                        f"{hidden!r}")
    for width in hidden:
        check_positive_int(width, "every hidden width")
    return tuple(int(width) for width in hidden)


def check_finite(data: np.ndarray, name: str) -> None:
    """A ValueError naming ``name`` and the first non-finite entry's index, if there is one."""
    finite = np.isfinite(data)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"{name} must be finite, got {data[index]} at index {index}")


def check_flag(value, name: str) -> bool:
    """``value`` as a bool, or a TypeError naming ``name`` (no truthy strings or numbers)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}")
    return bool(value)


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


class Linear(Module):
    """An affine map y = x W + b for a batch of row vectors x of shape (B, in_features).

    Initialization: W and b are drawn from U(−1/√in_features, 1/√in_features), the default of
    PyTorch's ``nn.Linear``, so that runs compare like for like with PyTorch.  It keeps the
    pre-activation variance of order 1/3 for inputs of unit variance.
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator,
                 dtype=np.float32):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        rng, dtype = _check_rng(rng), _check_dtype(dtype)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Tensor(rng.uniform(-bound, bound, (in_features, out_features)).astype(dtype),
                             requires_grad=True)
        self.bias = Tensor(rng.uniform(-bound, bound, out_features).astype(dtype),
                           requires_grad=True)

    def forward(self, x: Tensor, activation: str = "identity", slope: float = 0.01) -> Tensor:
        """act(x W + b): (B, in) @ (in, out) + (out,) -> (B, out), one fused primitive."""
        return linear(x, self.weight, self.bias, activation, slope)


# The hidden-layer activations; each is applied by the fused bias + activation kernel.
ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid", "softplus")


class MLP(Module):
    """Linear layers with an activation between them (none after the last layer).

    ``MLP([784, 400, 20], "tanh")`` is Linear(784, 400) → tanh → Linear(400, 20).
    ``slope`` is leaky_relu's slope for negative inputs.
    """

    def __init__(self, sizes, activation: str = "tanh", rng: np.random.Generator | None = None,
                 dtype=np.float32, slope: float = 0.01):
        sizes = list(sizes)
        for size in sizes:
            check_positive_int(size, "every layer size")
        if isinstance(slope, bool) or not isinstance(slope, (int, float, np.integer,
                                                             np.floating)) \
                or not np.isfinite(slope):
            raise ValueError(f"slope must be a finite number, got {slope!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output size, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation, self.slope = activation, float(slope)
        self.layers = [Linear(a, b, rng, dtype) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers[:-1]:
            x = layer(x, self.activation, self.slope)  # (B, width)
        return self.layers[-1](x)
