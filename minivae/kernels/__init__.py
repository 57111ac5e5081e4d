"""Fused kernels: drop-ins for the readable NumPy lines at their call sites, in three backends.

The math is written where it is used: ``nn.Linear`` (y = act(x W + b)), ``DiagonalNormal``
(z = μ + σ ⊙ ε and the KL), ``BernoulliLogits`` (x·l − softplus(l)), ``optim`` (Adam, SGD).
Each kernel here computes the same in one pass over memory.  Every public function checks
its arguments once (``contract.py``), allocates the outputs and calls a loop of the backend:

* ``"python"`` — ``reference.py``: the loops, plain Python (slow; for reading and tests);
* ``"numba"`` — ``jit.py``: the same loops compiled by numba (optional dependency);
* ``"c"`` — ``c_backend.py``: their twin in csrc/kernels.c, built with cffi at install time.

``set_backend("auto")`` (the default) takes C if it loads, else numba, else Python; a backend
that cannot load warns once.  The call sites ask ``enabled(family)`` whether to run the kernel
or their composition; ``composed()`` turns every kernel off for a block.

Verified by: tests/kernels/ (every backend against a NumPy oracle, the dispatcher)
"""
from __future__ import annotations

import contextlib
import importlib
import math
import warnings
from types import SimpleNamespace

import numpy as np

from minivae.kernels import contract
from minivae.kernels.reference import ACTIVATIONS, KERNELS  # noqa: F401  (public names)

BACKENDS = ("python", "numba", "c")
FAMILIES = ("bias_act", "bernoulli_log_prob", "reparameterize_kl", "adam_step", "sgd_step",
            "logsumexp_rows")
# Under "auto", the families whose call sites run the kernel.  With numba, only those where it
# clearly beats the readable composition at the call site (bench/kernels.py; the table is in
# docs/PERFORMANCE.md): pip's numba calls scalar libm for exp/log/tanh where NumPy has SIMD
# loops, so a tanh layer takes ~830 µs in numba against ~30 µs composed, and logsumexp's loop
# only ties NumPy's.  The Python loops never win.
AUTO_FUSED = {
    "c": frozenset(FAMILIES),
    "numba": frozenset({"bernoulli_log_prob", "reparameterize_kl", "adam_step", "sgd_step"}),
    "python": frozenset(),
}

_MODULES = {"python": "minivae.kernels.reference", "numba": "minivae.kernels.jit",
            "c": "minivae.kernels.c_backend"}
_loaded: dict[str, object] = {}
_failed: dict[str, str] = {}
_backend_name = "auto"
_active: list = []  # [name, loops, fused families] once resolved
_composed = False


def _quiet(loop):
    def call(*args):
        with np.errstate(all="ignore"):  # IEEE results without warnings, as compiled loops give
            loop(*args)
    return call


def _load(backend: str):
    """The backend's loops, or None (with one warning) when it cannot be loaded."""
    if backend in _loaded:
        return _loaded[backend]
    if backend in _failed:
        return None
    try:
        module = importlib.import_module(_MODULES[backend])
        if backend == "python":
            module = SimpleNamespace(**{k: _quiet(getattr(module, k)) for k in KERNELS})
        else:
            module.check_available()
    except Exception as error:  # any failure to load means: fall back, never crash
        _failed[backend] = f"{type(error).__name__}: {error}"
        warnings.warn(f"minivae: the {backend!r} kernel backend is unavailable ({error}); "
                      "falling back to the next one", RuntimeWarning, stacklevel=3)
        return None
    _loaded[backend] = module
    return module


def available_backends() -> list[str]:
    """Backends that load on this machine (the Python loops always do)."""
    return [name for name in BACKENDS if _load(name) is not None]


def set_backend(name: str) -> None:
    """Run every kernel on one backend (``"python"``, ``"numba"``, ``"c"``) or ``"auto"``.

    ``"auto"`` takes the first of c, numba, python that loads, and runs a kernel at a call
    site only where it is faster than the composition (``AUTO_FUSED``).  A backend named
    explicitly runs every kernel, so tests can drive it through the models; asking for one
    that cannot load is a ``ValueError`` with the reason.
    """
    global _backend_name
    if name not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be 'auto', 'python', 'numba' or 'c', got {name!r}")
    if name == "auto":
        resolved = next(b for b in ("c", "numba", "python") if _load(b) is not None)
        fused = AUTO_FUSED[resolved]
    else:
        if _load(name) is None:
            raise ValueError(f"kernel backend {name!r} is unavailable: {_failed[name]}")
        resolved, fused = name, frozenset(FAMILIES)
    _active[:] = [resolved, _loaded[resolved], fused]
    _backend_name = name


def get_backend() -> str:
    """The name given to the last ``set_backend`` call (``"auto"`` by default)."""
    return _backend_name


def active_backend() -> str:
    """The backend whose loops run now ("auto" resolved)."""
    return (_active or _resolve())[0]


def backend_of(kernel: str) -> str:
    """Which backend runs ``kernel`` now (one backend runs them all)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return active_backend()


def _resolve() -> list:
    set_backend(_backend_name)
    return _active


def _loops():
    return (_active or _resolve())[1]


def enabled(family: str) -> bool:
    """Whether the call sites of ``family`` run its kernel (else their readable composition)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return not _composed and family in (_active or _resolve())[2]


@contextlib.contextmanager
def composed():
    """Inside this block every call site runs its readable composition instead of a kernel."""
    global _composed
    previous, _composed = _composed, True
    try:
        yield
    finally:
        _composed = previous


# -- the kernels: check the contract once, allocate, call the active backend's loop -----------
def bernoulli_log_prob(logits: np.ndarray, x: np.ndarray,
                       grad_logits: np.ndarray | None = None) -> np.ndarray:
    """Row sums of x·l − softplus(l) for (N, D) logits and (R, D) targets, R dividing N (row i
    is scored against target row i mod R: with N = S·R, S samples of each of R images); x − σ(l)
    into the (N, D) array ``grad_logits`` if given.  Loop and formula:
    ``reference.bernoulli_log_prob``."""
    dtype, (logits, x) = contract.float_arrays(logits=logits, x=x)
    rows, cols = contract.matrix("logits", logits)
    contract.repeated_rows("x", x, rows, cols)
    target = None if grad_logits is None else contract.output(
        "grad_logits", grad_logits, logits.shape, dtype, logits, x)
    row_sums = np.empty(rows, dtype)
    _loops().bernoulli_log_prob(logits, x, grad_logits is not None,
                                contract.or_absent(target, dtype, 2), row_sums)
    if grad_logits is not None and target is not grad_logits:
        grad_logits[...] = target
    return row_sums


def bias_act_forward(h: np.ndarray, bias: np.ndarray, activation: str, slope: float = 0.01,
                     out: np.ndarray | None = None) -> np.ndarray:
    """act(h + b) for h (B, N) and b (N,), into ``out`` (which may be ``h``) if given.
    ``slope`` is leaky_relu's.  Loop and formulas: ``reference.bias_act_forward``."""
    code, slope = contract.activation_code(activation, slope)
    dtype, (h, bias) = contract.float_arrays(h=h, bias=bias)
    contract.matrix("h", h)
    contract.shapes(h.shape[1:], bias=bias)
    target = (np.empty(h.shape, dtype) if out is None
              else contract.output("out", out, h.shape, dtype, h, bias, may_be=h))
    _loops().bias_act_forward(h, bias, code, dtype.type(slope), target)
    if out is None:
        return target
    if target is not out:
        out[...] = target
    return out


def bias_act_backward(y: np.ndarray, grad_y: np.ndarray, activation: str,
                      slope: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(grad_h, grad_bias) of y = act(h + b), from the output y and its upstream gradient.
    Loop and formulas: ``reference.bias_act_backward``."""
    code, slope = contract.activation_code(activation, slope)
    dtype, (y, grad_y) = contract.float_arrays(y=y, grad_y=grad_y)
    contract.matrix("y", y)
    contract.shapes(y.shape, grad_y=grad_y)
    grad_h, grad_bias = np.empty(y.shape, dtype), np.empty(y.shape[1], dtype)
    _loops().bias_act_backward(y, grad_y, code, dtype.type(slope), grad_h, grad_bias)
    return grad_h, grad_bias


def reparameterize_kl_forward(loc: np.ndarray, log_var: np.ndarray,
                              eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, kl, σ): z = μ + σ ε with σ = exp(½ log σ²), and KL(N(μ, σ²) ‖ N(0, I)) per row.
    Loop and formula: ``reference.reparameterize_kl_forward``."""
    dtype, (loc, log_var, eps) = contract.float_arrays(loc=loc, log_var=log_var, eps=eps)
    rows, _ = contract.matrix("loc", loc)
    contract.shapes(loc.shape, log_var=log_var, eps=eps)
    z, kl, std = np.empty(loc.shape, dtype), np.empty(rows, dtype), np.empty(loc.shape, dtype)
    _loops().reparameterize_kl_forward(loc, log_var, eps, z, kl, std)
    return z, kl, std


def reparameterize_kl_backward(loc: np.ndarray, eps: np.ndarray, std: np.ndarray,
                               grad_z: np.ndarray | None,
                               grad_kl: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(grad_loc, grad_log_var) from upstream gradients of z (B, L) and kl (B,); None counts
    as zero.  Loop and formulas: ``reference.reparameterize_kl_backward``."""
    dtype, (loc, eps, std, grad_z, grad_kl) = contract.float_arrays(
        ("grad_z", "grad_kl"), loc=loc, eps=eps, std=std, grad_z=grad_z, grad_kl=grad_kl)
    rows, _ = contract.matrix("loc", loc)
    contract.shapes(loc.shape, eps=eps, std=std, grad_z=grad_z)
    contract.shapes((rows,), grad_kl=grad_kl)
    grad_loc, grad_log_var = np.empty(loc.shape, dtype), np.empty(loc.shape, dtype)
    _loops().reparameterize_kl_backward(
        loc, eps, std, grad_z is not None, contract.or_absent(grad_z, dtype, 2),
        grad_kl is not None, contract.or_absent(grad_kl, dtype, 1), grad_loc, grad_log_var)
    return grad_loc, grad_log_var


def adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
              beta1: float, beta2: float, eps: float, step: int) -> None:
    """One Adam update of the 1-D buffers param, m, v in place, at step t = ``step`` ≥ 1.
    Loop and formula: ``reference.adam_step`` (optim.Adam has the readable form)."""
    real = contract.in_place_buffers({"param": param, "m": m, "v": v}, {"grad": grad}).type
    contract.step_settings(lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=step)
    _loops().adam_step(param, grad, m, v, real(beta1), real(1 - beta1), real(beta2),
                       real(1 - beta2), real(eps), real(lr / (1 - beta1**step)),
                       real(math.sqrt(1 - beta2**step)))


def sgd_step(param: np.ndarray, grad: np.ndarray, buf: np.ndarray, lr: float, momentum: float,
             first_step: bool) -> None:
    """One SGD step with heavy-ball momentum on 1-D buffers in place (b = g on the first step).
    Loop and formula: ``reference.sgd_step`` (optim.SGD has the readable form)."""
    real = contract.in_place_buffers({"param": param, "buf": buf}, {"grad": grad}).type
    contract.step_settings(lr=lr, momentum=momentum, first_step=first_step)
    _loops().sgd_step(param, grad, buf, real(lr), real(momentum),
                      bool(first_step) or momentum == 0)


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log Σ_j exp(a_ij) per row of a 2-D array, shifted by the row maximum; −∞ rows give −∞,
    +∞ gives +∞, NaN propagates.  Loop and formula: ``reference.logsumexp_rows``."""
    dtype, (a,) = contract.float_arrays(a=a)
    rows, cols = contract.matrix("a", a)
    if cols == 0:  # the loop would return log(0) = −∞: there is no maximum to shift by
        raise ValueError(f"a must have at least one column to take a row maximum, got {a.shape}")
    out = np.empty(rows, dtype)
    _loops().logsumexp_rows(a, out)
    return out


def matmul_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A B by the definition, three loops (teaching; ``a @ b`` is the fast way)."""
    dtype, a, b = contract.matmul_operands(a, b)
    c = np.empty((a.shape[0], b.shape[1]), dtype)
    _loops().matmul_naive(a, b, c)
    return c


def matmul_blocked(a: np.ndarray, b: np.ndarray, block: int = 64) -> np.ndarray:
    """C = A B tile by tile, block × block (teaching; ``a @ b`` is the fast way)."""
    block = contract.block_size(block)
    dtype, a, b = contract.matmul_operands(a, b)
    c = np.empty((a.shape[0], b.shape[1]), dtype)
    _loops().matmul_blocked(a, b, block, c)
    return c
