"""The loops of ``reference.py`` in C (csrc/kernels.c), reached through cffi: pointer handling only.

``_ckernels`` is built when minivae is installed (``setup.py`` → ``_build_c.py``), with
``-O3 -march=native`` and libm calls vectorized where glibc's libmvec allows (csrc/README.md).
Each function here takes the arguments of its ``reference.py`` namesake, which
``minivae.kernels`` has already checked (one float dtype, C-contiguous arrays, preallocated
outputs), turns the arrays into C pointers with ``ffi.from_buffer`` and calls the float32
(``_f32``) or float64 (``_f64``) C function.  An absent optional array becomes ``NULL``.

Verified by: tests/kernels/ (every kernel through this backend against a NumPy oracle)
and tests/kernels/test_c_backend.py (building, the failed-build path, an out-of-date extension)
"""
from __future__ import annotations

import numpy as np

from minivae.kernels.reference import KERNELS

# dtype → (suffix of the C function, cffi type of a pointer to its elements)
_C_TYPES = {np.dtype(np.float32): ("_f32", "float[]"), np.dtype(np.float64): ("_f64", "double[]")}
_extension = None


def check_available() -> None:
    """Import the compiled extension; ``ImportError`` when it was not built or lacks a kernel
    (an extension built from older sources)."""
    functions = dir(_library().lib)
    missing = [name + suffix for name in KERNELS for suffix, _ in _C_TYPES.values()
               if name + suffix not in functions]
    if missing:
        raise ImportError(f"minivae's C kernels are out of date (missing {', '.join(missing)}); "
                          "reinstall minivae to rebuild them")


def _library():
    global _extension
    if _extension is None:
        try:
            from minivae.kernels import _ckernels
        except ImportError as error:
            raise ImportError(
                "minivae's C kernels (minivae.kernels._ckernels) are not built: a C compiler "
                "was missing or failed when minivae was installed; reinstall with one "
                "(pip install -v -e . shows the compiler's output)") from error
        _extension = _ckernels
    return _extension


_kernels: dict[tuple[str, np.dtype], tuple] = {}


def _kernel(name: str, dtype: np.dtype):
    """The C function for ``dtype`` and a converter from arrays to C pointers (cached)."""
    key = (name, dtype)
    if key not in _kernels:
        extension = _library()
        suffix, pointer_type = _C_TYPES[dtype]
        ffi = extension.ffi

        def pointer(array: np.ndarray):
            return ffi.from_buffer(pointer_type, array)

        _kernels[key] = getattr(extension.lib, name + suffix), pointer, ffi.NULL
    return _kernels[key]


def bernoulli_log_prob(logits, x, want_grad, grad_logits, row_sums):
    function, p, null = _kernel("bernoulli_log_prob", logits.dtype)
    rows, cols = logits.shape
    function(p(logits), p(x), rows, cols, x.shape[0], p(row_sums),
             p(grad_logits) if want_grad else null)


def bias_act_forward(h, bias, code, slope, out):
    function, p, _ = _kernel("bias_act_forward", h.dtype)
    rows, cols = h.shape
    function(p(h), p(bias), rows, cols, code, slope, p(out))


def bias_act_backward(y, grad_y, code, slope, grad_h, grad_bias):
    function, p, _ = _kernel("bias_act_backward", y.dtype)
    rows, cols = y.shape
    function(p(y), p(grad_y), rows, cols, code, slope, p(grad_h), p(grad_bias))


def reparameterize_kl_forward(loc, log_var, eps, z, kl, std):
    function, p, _ = _kernel("reparameterize_kl_forward", loc.dtype)
    rows, cols = loc.shape
    function(p(loc), p(log_var), p(eps), rows, cols, p(z), p(kl), p(std))


def reparameterize_kl_backward(loc, eps, std, has_grad_z, grad_z, has_grad_kl, grad_kl,
                               grad_loc, grad_log_var):
    function, p, null = _kernel("reparameterize_kl_backward", loc.dtype)
    rows, cols = loc.shape
    function(p(loc), p(eps), p(std), p(grad_z) if has_grad_z else null,
             p(grad_kl) if has_grad_kl else null, rows, cols, p(grad_loc), p(grad_log_var))


def adam_step(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
              step_size, root_correction):
    function, p, _ = _kernel("adam_step", param.dtype)
    function(p(param), p(grad), p(m), p(v), param.shape[0], beta1, one_minus_beta1, beta2,
             one_minus_beta2, eps, step_size, root_correction)


def sgd_step(param, grad, buf, lr, momentum, restart):
    function, p, _ = _kernel("sgd_step", param.dtype)
    function(p(param), p(grad), p(buf), param.shape[0], lr, momentum, int(restart))


def logsumexp_rows(a, out):
    function, p, _ = _kernel("logsumexp_rows", a.dtype)
    rows, cols = a.shape
    function(p(a), rows, cols, p(out))


def matmul_naive(a, b, c):
    function, p, _ = _kernel("matmul_naive", a.dtype)
    function(p(a), p(b), a.shape[0], a.shape[1], b.shape[1], p(c))


def matmul_blocked(a, b, block, c):
    function, p, _ = _kernel("matmul_blocked", a.dtype)
    function(p(a), p(b), a.shape[0], a.shape[1], b.shape[1], block, p(c))
