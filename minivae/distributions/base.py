"""What every distribution shares: shapes, parameter checks, sample vs rsample, Independent.

Shapes follow the convention of torch.distributions:

* ``batch_shape``: independent, not necessarily identical distributions side by side
  (``Normal(loc=zeros(3), scale=1)`` has batch shape (3,));
* ``event_shape``: the shape of one draw of one distribution (() for scalars, (d,) for a
  d-dimensional Gaussian or a one-hot over d classes);
* ``sample(rng, shape)`` returns ``shape + batch_shape + event_shape``; ``log_prob(x)``
  returns one number per distribution in the batch (the event axes are summed over).

``rsample`` is the reparameterized sampler: the draw is a differentiable function
z = g(θ, ε) of the parameters θ and of noise ε that does not depend on θ, so gradients of
E[f(z)] flow into θ through z.  ``sample`` draws without recording a graph.

Verified by: tests/distributions/test_base.py
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.checks import FLOAT_DTYPES
from minivae.engine.ops.operands import as_tensor
from minivae.engine.tensor import Tensor, no_grad


def probs_or_logits(probs, logits) -> str:
    """The name of the one parameterization given, "probs" or "logits" (ValueError unless
    exactly one of them is)."""
    if (probs is None) == (logits is None):
        raise ValueError("exactly one of probs and logits must be given, got "
                         f"{'both' if probs is not None else 'neither'}")
    return "probs" if probs is not None else "logits"


def as_parameters(**values) -> tuple[Tensor, ...]:
    """The parameters as Tensors of one float dtype, in the order given.

    The dtype comes from the first float ndarray, NumPy float scalar or Tensor among them
    (Python numbers follow it, as in NumPy); with none, float64.  Mixing float32 and float64 is
    a TypeError: nothing is upcast silently.  Integer arrays become the common float dtype.
    """
    def typed(value) -> bool:  # carries its own float dtype (Python numbers do not)
        return isinstance(value, (Tensor, np.floating)) or (
            isinstance(value, np.ndarray) and value.dtype.kind == "f")

    like = next((value for value in values.values() if typed(value)), None)
    dtype = np.dtype(np.float64) if like is None else np.dtype(like.dtype)
    out = []
    for name, value in values.items():
        if typed(value):
            tensor = as_tensor(np.asarray(value) if isinstance(value, np.floating) else value)
        else:
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a number or a float array, got {array.dtype}")
            tensor = Tensor(array.astype(dtype))
        if tensor.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float32 or float64, got {tensor.dtype}")
        if tensor.dtype != dtype:
            raise TypeError(f"{name} has dtype {tensor.dtype} but the other parameters have "
                            f"{dtype}; convert one explicitly (nothing is upcast silently)")
        out.append(tensor)
    return tuple(out)


def broadcast_to(value: Tensor, shape: tuple) -> Tensor:
    """``value`` broadcast to ``shape`` by adding zeros (the VJP of the sum unbroadcasts)."""
    if value.shape == tuple(shape):
        return value
    return value + np.zeros(shape, dtype=value.dtype)


def log_of_weight(p: Tensor, complement: bool = False) -> Tensor:
    """log p (or log(1 − p) = log1p(−p) with ``complement``) for p ∈ [0, 1]; −∞ at the edge.

    For probabilities given as parameters (Bernoulli, Categorical): a weight 0 is the log −∞.

    VJP: g/p (or −g/(1 − p)), except that a zero cotangent gives 0 even where the slope is
    infinite: a term dropped by 0 · log 0 = 0 must not send 0 · ∞ = NaN back to p.
    """
    with np.errstate(divide="ignore"):
        value = np.log1p(-p.data) if complement else np.log(p.data)
    base = 1 - p.data if complement else p.data

    def vjp(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (-g if complement else g) / base
        return (np.where(g == 0, 0, slope).astype(p.dtype),)

    return Tensor.from_op(value, (p,), vjp, "log1p_neg" if complement else "log_weight")


def require_log_gamma_finite(value, name: str) -> None:
    """Raise ValueError where log Γ(value) would overflow the dtype (x log x > the largest
    float, about 4e36 in float32): the densities subtract such terms, and ∞ − ∞ is NaN.

    The bound max/(4 log max) leaves room for sums of two such values (α + β in a Beta).
    """
    data = checks.values(value)
    finfo = np.finfo(data.dtype)
    bound = float(finfo.max) / (4 * float(np.log(finfo.max)))
    checks.require(data <= bound, name,
                   f"at most {bound:.3g} (log Γ of more overflows {data.dtype})", data)


class Distribution:
    """Base class: subclasses set the shapes in ``__init__`` and implement the methods below."""

    has_rsample = False  # True where rsample is a reparameterized (differentiable) sampler

    def __init__(self, batch_shape: tuple, event_shape: tuple, dtype: np.dtype):
        self.batch_shape, self.event_shape = tuple(batch_shape), tuple(event_shape)
        self.dtype = np.dtype(dtype)

    def sample_shape(self, shape) -> tuple[int, ...]:
        """shape + batch_shape + event_shape: the shape of ``sample(rng, shape)``."""
        return checks.sample_shape(shape) + self.batch_shape + self.event_shape

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no reparameterized sampler; "
                                  "use sample() (no gradient) or a score-function estimator")

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """A draw with no gradient: the reparameterized sampler run without recording a graph."""
        with no_grad():
            return self.rsample(rng, shape)

    def log_prob(self, x) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError

    def _value(self, x, name: str = "x") -> Tensor:
        """``x`` as a Tensor of this distribution's dtype whose trailing axes are the event's.

        Checked: a real dtype (float of this precision, or ints/bools), no NaN (±∞ is allowed:
        it has an exact log-density), and a shape that broadcasts against the batch and ends
        in the event shape.  ValueError/TypeError naming ``name`` otherwise.
        """
        if not isinstance(x, Tensor):
            # Python numbers and lists, integers and booleans (counts, class indices, coin flips)
            # take the dtype; a float array of the other precision is an error, as everywhere
            array = np.asarray(x)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"{name} must be a real number or array, got "
                                f"{type(x).__name__} of dtype {array.dtype}")
            x = Tensor(array if array.dtype.kind == "f" else array.astype(self.dtype))
        if x.dtype != self.dtype:
            raise TypeError(f"{name} must have dtype {self.dtype}, got {x.dtype}")
        n = len(self.event_shape)
        if n and tuple(x.shape[-n:]) != self.event_shape:
            raise ValueError(f"{name} must end in the event shape {self.event_shape}, "
                             f"got shape {x.shape}")
        checks.broadcast((x.shape, self.batch_shape + self.event_shape),
                         f"{name} and the batch and event shape")
        checks.require(~np.isnan(x.data), name, "free of NaN", x)
        return x

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch_shape={self.batch_shape}, "
                f"event_shape={self.event_shape}, dtype={self.dtype})")


class LocationScale(Distribution):
    """A scalar family with a location ``loc`` (finite) and a scale ``scale`` (> 0), element-wise
    over the broadcast of the two: the shared constructor of Normal, Laplace and Gumbel."""

    def __init__(self, loc, scale, validate_args: bool = True):
        self.loc, self.scale = as_parameters(loc=loc, scale=scale)
        if validate_args:
            checks.finite(self.loc, "loc")
            checks.positive(self.scale, "scale")
        batch_shape = np.broadcast_shapes(self.loc.shape, self.scale.shape)
        super().__init__(batch_shape, (), self.loc.dtype)


class Independent(Distribution):
    """Treat the last ``ndims`` batch axes of ``base`` as event axes.

    ``Independent(Normal(loc, scale), 1)`` with loc of shape (B, d) is a diagonal Gaussian over
    d-vectors: its log_prob and entropy are the base's summed over that axis, because the
    coordinates are independent:  log p(x) = Σ_j log p_j(x_j),  H = Σ_j H_j.

    Verified by: tests/distributions/test_base.py::test_independent_sums_the_base
    """

    def __init__(self, base: Distribution, ndims: int = 1):
        if not isinstance(base, Distribution):
            raise TypeError(f"base must be a Distribution, got {type(base).__name__}")
        if not isinstance(ndims, (int, np.integer)) or not 0 <= ndims <= len(base.batch_shape):
            raise ValueError(f"ndims must be an int in [0, {len(base.batch_shape)}] (the base's "
                             f"batch rank), got {ndims!r}")
        self.base, self.ndims = base, int(ndims)
        cut = len(base.batch_shape) - self.ndims
        super().__init__(base.batch_shape[:cut], base.batch_shape[cut:] + base.event_shape,
                         base.dtype)
        self.has_rsample = base.has_rsample

    def _sum_event(self, value: Tensor) -> Tensor:
        if self.ndims == 0:
            return value
        return value.sum(axis=tuple(range(-self.ndims, 0)))

    def rsample(self, rng, shape=()) -> Tensor:
        return self.base.rsample(rng, shape)

    def sample(self, rng, shape=()) -> Tensor:
        return self.base.sample(rng, shape)

    def log_prob(self, x) -> Tensor:
        return self._sum_event(self.base.log_prob(x))

    def entropy(self) -> Tensor:
        return self._sum_event(self.base.entropy())

    @property
    def mean(self) -> Tensor:
        return self.base.mean

    @property
    def variance(self) -> Tensor:
        return self.base.variance
