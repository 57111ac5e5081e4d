"""minivae: variational autoencoders and variational inference, from scratch on NumPy.

The data path, one file each: ``data`` → ``nn`` (encoder) → ``distributions/diagonal_normal``
(sampler, KL) → ``models/vae`` (decoder, ELBO) → ``engine/tensor`` (backward) → ``optim``
(update).
"""
from minivae.distributions import cross_entropy, kl_divergence
from minivae.engine import ops  # noqa: F401  (minivae.ops: every primitive by name)
from minivae.engine.anomaly import AnomalyError, detect_anomaly
from minivae.engine.gradcheck import GradcheckError, gradcheck
from minivae.engine.ops import (
    add,
    concatenate,
    div,
    exp,
    getitem,
    leaky_relu,
    log,
    log1p,
    logsumexp,
    matmul,
    max,
    mean,
    mul,
    neg,
    pow,
    relu,
    reshape,
    sigmoid,
    softplus,
    sqrt,
    stack,
    sub,
    sum,
    tanh,
    transpose,
    where,
)
from minivae.engine.ops.operands import unbroadcast
from minivae.engine.tensor import Tensor, is_grad_enabled, no_grad

__version__ = "0.1.0"

# The subpackages load on first use (``minivae.models.VAE`` after ``import minivae``), so that
# ``import minivae`` stays as quick as the engine: models, CAVI and plotting pull in more.
SUBMODULES = ("cavi", "checks", "config", "data", "distributions", "divergences", "engine",
              "io", "kernels", "models", "nn", "objectives", "optim", "threads", "topics",
              "train")


def __getattr__(name: str):
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f"minivae.{name}")
    raise AttributeError(f"module 'minivae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBMODULES))


def set_num_threads(n: int | None) -> None:
    """Use ``n`` BLAS threads from now on; None returns to the measured choice
    (``minivae.threads``)."""
    from minivae import threads

    threads.set_num_threads(n)


__all__ = [
    "set_num_threads",
    "Tensor", "no_grad", "is_grad_enabled", "unbroadcast", "gradcheck", "GradcheckError",
    "detect_anomaly", "AnomalyError",
    "kl_divergence", "cross_entropy",
    "add", "sub", "mul", "div", "neg", "pow", "matmul",
    "exp", "log", "log1p", "sqrt", "tanh", "sigmoid", "relu", "leaky_relu", "softplus",
    "sum", "mean", "max", "logsumexp",
    "reshape", "transpose", "getitem", "concatenate", "stack", "where",
]
