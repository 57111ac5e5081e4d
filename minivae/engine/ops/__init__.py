"""The primitives of the engine, grouped by kind; each module keeps forward and VJP together.

``__all__`` lists the primitives.  ``absolute`` and ``exp_taylor_remainder`` are importable
from here too, but they are compositions of primitives (``where``, ``exp``, arithmetic).
"""
from minivae.engine.ops.arithmetic import add, div, matmul, mul, neg, pow, sub
from minivae.engine.ops.elementwise import (  # noqa: F401  (absolute, exp_taylor_remainder)
    absolute,
    exp,
    exp_taylor_remainder,
    leaky_relu,
    log,
    log1p,
    relu,
    sigmoid,
    softplus,
    sqrt,
    tanh,
)
from minivae.engine.ops.linalg import cholesky, diagonal, solve_triangular, tril
from minivae.engine.ops.reduce import logsumexp, max, mean, sum
from minivae.engine.ops.shape import concatenate, getitem, reshape, stack, transpose, where
from minivae.engine.ops.special import digamma, lgamma

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul",
    "exp", "log", "log1p", "sqrt", "tanh", "sigmoid", "relu", "leaky_relu", "softplus",
    "sum", "mean", "max", "logsumexp",
    "reshape", "transpose", "getitem", "concatenate", "stack", "where",
    "lgamma", "digamma", "solve_triangular", "cholesky", "diagonal", "tril",
]
