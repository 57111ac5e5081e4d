"""Fused kernels for the hot loops, behind one contract with three backends.

* ``"numpy"`` — ``reference.py``: the readable specification.
* ``"numba"`` — ``jit.py``: the same loops compiled by numba (optional dependency).
* ``"c"`` — ``csrc/kernels.c`` compiled with cffi when minivae is installed (``_ckernels``).

``set_backend("auto")`` (the default) picks, for each kernel, the first available backend in
``AUTO_TABLE``, an order measured by ``bench/kernels.py`` (see docs/PERFORMANCE.md).  A backend
that cannot be loaded (numba not installed, C extension not built) is skipped with one warning;
the NumPy reference is always there.

Verified by: tests/test_kernels.py
"""
from __future__ import annotations

import contextlib
import importlib
import warnings

from minivae.kernels import reference

KERNELS = (
    "bernoulli_log_prob", "bias_act_forward", "bias_act_backward",
    "reparameterize_kl_forward", "reparameterize_kl_backward",
    "adam_step", "sgd_step", "logsumexp_rows", "matmul_naive", "matmul_blocked",
)
BACKENDS = ("numpy", "numba", "c")

# Fastest first, per kernel, as measured by bench/kernels.py on a 2-core x86-64 machine
# (docs/PERFORMANCE.md).  numba calls scalar libm for exp/log/tanh (pip's numba has no vector
# math library), so NumPy's own SIMD loops beat it on the transcendental kernels; for the
# optimizer updates and the backward epilogue numba is the faster fallback.
_TRANSCENDENTAL = ("c", "numpy", "numba")
_ARITHMETIC = ("c", "numba", "numpy")
AUTO_TABLE: dict[str, tuple[str, ...]] = {
    "bernoulli_log_prob": _TRANSCENDENTAL,
    "bias_act_forward": _TRANSCENDENTAL,
    "bias_act_backward": _ARITHMETIC,
    "reparameterize_kl_forward": _TRANSCENDENTAL,
    # numba was a few µs faster here, but listing it first would load numba (and compile) in
    # every process even where the C kernels are built.
    "reparameterize_kl_backward": _ARITHMETIC,
    "adam_step": _ARITHMETIC,
    "sgd_step": _ARITHMETIC,
    "logsumexp_rows": _TRANSCENDENTAL,
    "matmul_naive": ("numpy",),  # BLAS; the C and numba loops are for teaching only
    "matmul_blocked": ("numpy",),
}

_MODULES = {"numpy": "minivae.kernels.reference", "numba": "minivae.kernels.jit",
            "c": "minivae.kernels.c_backend"}
_loaded: dict[str, object] = {"numpy": reference}
_failed: dict[str, str] = {}
_active: dict[str, object] = {}
_backend_name = "auto"


def _load(backend: str):
    """The backend's module, or None (with one warning) when it cannot be loaded."""
    if backend in _loaded:
        return _loaded[backend]
    if backend in _failed:
        return None
    try:
        module = importlib.import_module(_MODULES[backend])
        module.check_available()
    except Exception as error:  # any failure to load means: fall back, never crash
        _failed[backend] = f"{type(error).__name__}: {error}"
        warnings.warn(f"minivae: the {backend!r} kernel backend is unavailable ({error}); "
                      "falling back to the next one", RuntimeWarning, stacklevel=3)
        return None
    _loaded[backend] = module
    return module


def available_backends() -> list[str]:
    """Backends that load on this machine (the NumPy reference always does)."""
    return [name for name in BACKENDS if _load(name) is not None]


def set_backend(name: str) -> None:
    """Use one backend for every kernel (``"numpy"``, ``"numba"``, ``"c"``) or ``"auto"``.

    Asking for a backend that cannot load is an error; ``"auto"`` never fails.
    """
    global _backend_name
    if name not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be 'auto', 'numpy', 'numba' or 'c', got {name!r}")
    if name == "auto":
        table = {}
        for kernel in KERNELS:
            module = next(m for b in AUTO_TABLE[kernel] + ("numpy",)
                          if (m := _load(b)) is not None)
            table[kernel] = getattr(module, kernel)
    else:
        module = _load(name)
        if module is None:
            raise ValueError(f"kernel backend {name!r} is unavailable: {_failed[name]}")
        table = {kernel: getattr(module, kernel) for kernel in KERNELS}
    _active.clear()
    _active.update(table)
    _backend_name = name


def get_backend() -> str:
    """The name given to the last ``set_backend`` call (``"auto"`` by default)."""
    return _backend_name


def backend_of(kernel: str) -> str:
    """Which backend currently runs ``kernel``."""
    _ensure()
    module_name = _active[kernel].__module__
    return next(b for b, m in _MODULES.items() if module_name.startswith(m))


# The call sites that have a kernel as a drop-in (nn.Linear, DiagonalNormal, BernoulliLogits,
# Adam, SGD) ask ``enabled(family)`` and otherwise run their readable composition.
FAMILIES = ("bias_act", "bernoulli_log_prob", "reparameterize_kl", "adam_step", "sgd_step",
            "logsumexp_rows")
_composed = False


def enabled(family: str) -> bool:
    """Whether the call sites of ``family`` run its fused kernel (else their composition)."""
    return not _composed


@contextlib.contextmanager
def composed():
    """Inside this block every call site runs its readable composition instead of a kernel."""
    global _composed
    previous, _composed = _composed, True
    try:
        yield
    finally:
        _composed = previous


def _ensure() -> None:
    if not _active:
        set_backend(_backend_name)


def _dispatch(kernel: str):
    def call(*args, **kwargs):
        _ensure()
        return _active[kernel](*args, **kwargs)

    call.__name__ = kernel
    call.__doc__ = getattr(reference, kernel).__doc__
    return call


bernoulli_log_prob = _dispatch("bernoulli_log_prob")
bias_act_forward = _dispatch("bias_act_forward")
bias_act_backward = _dispatch("bias_act_backward")
reparameterize_kl_forward = _dispatch("reparameterize_kl_forward")
reparameterize_kl_backward = _dispatch("reparameterize_kl_backward")
adam_step = _dispatch("adam_step")
sgd_step = _dispatch("sgd_step")
logsumexp_rows = _dispatch("logsumexp_rows")
matmul_naive = _dispatch("matmul_naive")
matmul_blocked = _dispatch("matmul_blocked")
