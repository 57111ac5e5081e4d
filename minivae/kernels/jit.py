"""The loops of ``reference.py``, compiled to machine code by numba: the same source, no copy.

numba compiles each loop the first time it meets a new dtype; ``cache=True`` keeps the
machine code in ``__pycache__`` so later processes skip that step.  Two settings matter:

* ``error_model="numpy"``: x/0 gives ±inf or NaN as in NumPy instead of raising; numba's
  default tests every division for zero, and that test stops LLVM from vectorizing a loop.
* ``fastmath=False``: fast-math would let LLVM assume there are no NaNs or infinities, and
  the contract says a NaN input reaches the outputs it touches.

What the compiler makes of each loop, and what that costs next to NumPy and C, is in
docs/PERFORMANCE.md ("numba: what the compiler does with these loops").  Without numba this
module still imports: ``check_available`` raises ``ImportError`` (``minivae.kernels`` then falls
back) and the names below are the plain Python loops.

Verified by: tests/kernels/ (every kernel through this backend against a NumPy oracle)
"""
from __future__ import annotations

from minivae.kernels import reference

try:
    import numba
except ImportError:  # an optional dependency: check_available() reports it
    numba = None


def check_available() -> None:
    """Raise ``ImportError`` when numba is not installed."""
    if numba is None:
        raise ImportError("numba is not installed (pip install 'numba>=0.60')")


def _compile(loop):
    if numba is None:
        return loop
    return numba.njit(cache=True, fastmath=False, error_model="numpy")(loop)


bernoulli_log_prob = _compile(reference.bernoulli_log_prob)
bias_act_forward = _compile(reference.bias_act_forward)
bias_act_backward = _compile(reference.bias_act_backward)
reparameterize_kl_forward = _compile(reference.reparameterize_kl_forward)
reparameterize_kl_backward = _compile(reference.reparameterize_kl_backward)
adam_step = _compile(reference.adam_step)
sgd_step = _compile(reference.sgd_step)
logsumexp_rows = _compile(reference.logsumexp_rows)
matmul_naive = _compile(reference.matmul_naive)
matmul_blocked = _compile(reference.matmul_blocked)
