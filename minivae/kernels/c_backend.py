"""The reference kernels in C (csrc/kernels.c), called through cffi's compiled extension.

``_ckernels`` is built when minivae is installed (``setup.py`` → ``_build_c.py``), with
``-O3 -march=native`` and libm calls vectorized where glibc's libmvec allows (csrc/README.md).
Each function here has the signature of its ``reference.py`` namesake and does the Python-side
half of the work: it checks dtypes, shapes and layouts (the C code trusts its arguments and
checks nothing), makes strided inputs contiguous, allocates the outputs and calls the float32
(``_f32``) or float64 (``_f64``) C function.

The contract differs from the reference in one way only: it is enforced.  All arrays of a call
must share one dtype, float32 or float64 (``TypeError`` otherwise: nothing is promoted), and
the in-place optimizer kernels need 1-D C-contiguous writable buffers (``ValueError``).

Verified by: tests/test_kernels.py (every kernel against reference.py) and
tests/test_c_build.py (building, the failed-build path, argument checks)
"""
from __future__ import annotations

import math

import numpy as np

from minivae.kernels.reference import ACTIVATIONS

_ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}
# dtype → (suffix of the C function, cffi type of a pointer to its elements)
_C_TYPES = {np.dtype(np.float32): ("_f32", "float[]"), np.dtype(np.float64): ("_f64", "double[]")}
_extension = None


def check_available() -> None:
    """Import the compiled extension; ``ImportError`` when it was not built or lacks a kernel
    (an extension built from older sources)."""
    from minivae.kernels import KERNELS

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


# -- argument checks ------------------------------------------------------------------------
def _float_inputs(**arrays) -> tuple[np.dtype, list[np.ndarray]]:
    """C-contiguous versions of the arrays, which must all be float32 or all float64."""
    converted = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    first_name, first = next(iter(converted.items()))
    dtype = first.dtype
    if dtype not in _C_TYPES:
        raise TypeError(f"{first_name} must be a float32 or float64 array, got dtype {dtype}")
    for name, array in converted.items():
        if array.dtype != dtype:
            raise TypeError(f"{name} must have the dtype of {first_name} ({dtype}), "
                            f"got {array.dtype}")
    return dtype, list(converted.values())


def _require_ndim(name: str, array: np.ndarray, ndim: int) -> None:
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")


def _require_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")


def _check_out(name: str, out, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {out.dtype}")
    _require_shape(name, out, shape)
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable")


def _direct_target(out: np.ndarray, *inputs: np.ndarray, may_be: np.ndarray | None = None
                   ) -> bool:
    """Can the C code write straight into ``out``?  Yes if it is C-contiguous and overlaps no
    input, except ``may_be`` when ``out`` is that very array (an elementwise kernel may
    overwrite its own input)."""
    if not out.flags.c_contiguous:
        return False
    return all((array is may_be and out is array) or not np.may_share_memory(out, array)
               for array in inputs)


def _in_place_buffers(written: dict[str, object], read: dict[str, object]
                      ) -> tuple[np.dtype, int]:
    """Check the optimizer kernels' buffers: 1-D, C-contiguous, writable, one dtype, one size,
    and no written buffer overlapping another argument."""
    arrays = {**written, **read}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    first_name = next(iter(written))
    dtype = written[first_name].dtype
    if dtype not in _C_TYPES:
        raise TypeError(f"{first_name} must be a float32 or float64 array, got dtype {dtype}")
    size = written[first_name].size
    for name, array in arrays.items():
        if array.dtype != dtype:
            raise TypeError(f"{name} must have the dtype of {first_name} ({dtype}), "
                            f"got {array.dtype}")
        if array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError(f"{name} must be a 1-D C-contiguous buffer, got shape "
                             f"{array.shape} with strides {array.strides}")
        if array.size != size:
            raise ValueError(f"{name} must have {size} elements like {first_name}, "
                             f"got {array.size}")
    for name, array in written.items():
        if not array.flags.writeable:
            raise ValueError(f"{name} must be writable: it is updated in place")
        for other_name, other in arrays.items():
            if other_name != name and np.may_share_memory(array, other):
                raise ValueError(f"{name} and {other_name} must not share memory")
    return dtype, size


_kernels: dict[tuple[str, np.dtype], tuple] = {}


def _kernel(name: str, dtype: np.dtype):
    """The C function for ``dtype`` and a converter from arrays to C pointers (cached)."""
    key = (name, dtype)
    if key not in _kernels:
        extension = _library()
        suffix, pointer_type = _C_TYPES[dtype]
        ffi = extension.ffi

        def pointer(array: np.ndarray | None):
            return ffi.NULL if array is None else ffi.from_buffer(pointer_type, array)

        _kernels[key] = getattr(extension.lib, name + suffix), pointer
    return _kernels[key]


def _activation_code(activation: str) -> int:
    try:
        return _ACTIVATION_CODES[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}") from None


# -- 1. Bernoulli log-likelihood from logits ------------------------------------------------
def bernoulli_log_prob(logits: np.ndarray, x: np.ndarray,
                       grad_logits: np.ndarray | None = None) -> np.ndarray:
    """Row sums of x·l − softplus(l) and, into ``grad_logits`` if given, x − σ(l): one pass.

    Math: log Bernoulli(x; σ(l)) = x·l − softplus(l), softplus(l) = max(l, 0) + log1p(e^(−|l|)),
    d/dl = x − σ(l); per element one exp and one log1p.  ``grad_logits`` must be a (B, D)
    array of the inputs' dtype.

    Verified by: tests/test_kernels.py::test_bernoulli_log_prob_matches_reference
    """
    dtype, (logits, x) = _float_inputs(logits=logits, x=x)
    _require_ndim("logits", logits, 2)
    _require_shape("x", x, logits.shape)
    rows, cols = logits.shape
    target = None
    if grad_logits is not None:
        _check_out("grad_logits", grad_logits, logits.shape, dtype)
        direct = _direct_target(grad_logits, logits, x)
        target = grad_logits if direct else np.empty(logits.shape, dtype)
    row_sums = np.empty(rows, dtype)
    function, pointer = _kernel("bernoulli_log_prob", dtype)
    function(pointer(logits), pointer(x), rows, cols, pointer(row_sums), pointer(target))
    if target is not None and target is not grad_logits:
        grad_logits[...] = target
    return row_sums


# -- 2. bias + activation epilogue after a matmul -------------------------------------------
def bias_act_forward(h: np.ndarray, bias: np.ndarray, activation: str, slope: float = 0.01,
                     out: np.ndarray | None = None) -> np.ndarray:
    """y = act(h + b) for h (B, N) and b (N,), into ``out`` (which may be ``h``) if given.

    Math: act ∈ identity, relu (pre·[pre > 0]), leaky_relu (pre·(1 or slope)), tanh,
    sigmoid (σ via e^(−|pre|)), softplus (max(pre, 0) + log1p(e^(−|pre|))).

    Verified by: tests/test_kernels.py::test_bias_act_matches_reference
    """
    code = _activation_code(activation)
    dtype, (h, bias) = _float_inputs(h=h, bias=bias)
    _require_ndim("h", h, 2)
    _require_shape("bias", bias, (h.shape[1],))
    rows, cols = h.shape
    if out is None:
        target = np.empty(h.shape, dtype)
    else:
        _check_out("out", out, h.shape, dtype)
        # out is h (after conversion) only when h was C-contiguous: then overwrite it directly
        direct = _direct_target(out, h, bias, may_be=h)
        target = out if direct else np.empty(h.shape, dtype)
    function, pointer = _kernel("bias_act_forward", dtype)
    function(pointer(h), pointer(bias), rows, cols, code, float(slope), pointer(target))
    if out is not None and target is not out:
        out[...] = target
        return out
    return target


def bias_act_backward(y: np.ndarray, grad_y: np.ndarray, activation: str,
                      slope: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of y = act(h + b) from the output y: (grad_h, grad_bias).

    Math: grad_h = grad_y · act'(pre) with act' written in y (relu [y > 0], leaky_relu 1 or
    slope, tanh 1 − y², sigmoid y(1 − y), softplus −expm1(−y)); grad_bias = Σ_rows grad_h.

    Verified by: tests/test_kernels.py::test_bias_act_backward_matches_reference
    """
    code = _activation_code(activation)
    dtype, (y, grad_y) = _float_inputs(y=y, grad_y=grad_y)
    _require_ndim("y", y, 2)
    _require_shape("grad_y", grad_y, y.shape)
    rows, cols = y.shape
    grad_h = np.empty(y.shape, dtype)
    grad_bias = np.empty(cols, dtype)
    function, pointer = _kernel("bias_act_backward", dtype)
    function(pointer(y), pointer(grad_y), rows, cols, code, float(slope), pointer(grad_h),
             pointer(grad_bias))
    return grad_h, grad_bias


# -- 3. Gaussian reparameterization fused with the KL to N(0, I) ----------------------------
def reparameterize_kl_forward(loc: np.ndarray, log_var: np.ndarray,
                              eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z = μ + σ ε with σ = exp(½ log σ²), and the per-row KL to N(0, I): (z, kl, σ).

    Math: KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²).

    Verified by: tests/test_kernels.py::test_reparameterize_kl_matches_reference
    """
    dtype, (loc, log_var, eps) = _float_inputs(loc=loc, log_var=log_var, eps=eps)
    _require_ndim("loc", loc, 2)
    _require_shape("log_var", log_var, loc.shape)
    _require_shape("eps", eps, loc.shape)
    rows, cols = loc.shape
    z = np.empty(loc.shape, dtype)
    kl = np.empty(rows, dtype)
    std = np.empty(loc.shape, dtype)
    function, pointer = _kernel("reparameterize_kl_forward", dtype)
    function(pointer(loc), pointer(log_var), pointer(eps), rows, cols, pointer(z), pointer(kl),
             pointer(std))
    return z, kl, std


def reparameterize_kl_backward(loc: np.ndarray, eps: np.ndarray, std: np.ndarray,
                               grad_z: np.ndarray | None,
                               grad_kl: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients with respect to (μ, log σ²) from upstream gradients of z and kl (None: zero).

    Math: ∂z/∂μ = 1, ∂z/∂log σ² = ½ σ ε;  ∂KL/∂μ = μ, ∂KL/∂log σ² = ½ (σ² − 1).

    Verified by: tests/test_kernels.py::test_reparameterize_kl_backward_matches_reference
    """
    arrays = {"loc": loc, "eps": eps, "std": std}
    if grad_z is not None:
        arrays["grad_z"] = grad_z
    if grad_kl is not None:
        arrays["grad_kl"] = grad_kl
    dtype, converted = _float_inputs(**arrays)
    named = dict(zip(arrays, converted))
    loc = named["loc"]
    _require_ndim("loc", loc, 2)
    for name in ("eps", "std", "grad_z"):
        if name in named:
            _require_shape(name, named[name], loc.shape)
    if "grad_kl" in named:
        _require_shape("grad_kl", named["grad_kl"], (loc.shape[0],))
    rows, cols = loc.shape
    grad_loc = np.empty(loc.shape, dtype)
    grad_log_var = np.empty(loc.shape, dtype)
    function, pointer = _kernel("reparameterize_kl_backward", dtype)
    function(pointer(loc), pointer(named["eps"]), pointer(named["std"]),
             pointer(named.get("grad_z")), pointer(named.get("grad_kl")), rows, cols,
             pointer(grad_loc), pointer(grad_log_var))
    return grad_loc, grad_log_var


# -- 4. optimizer updates over one flat buffer ----------------------------------------------
def adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
              beta1: float, beta2: float, eps: float, step: int) -> None:
    """One Adam update of the 1-D buffers param, m, v, in place, in a single loop.

    Math: m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
          θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).

    Verified by: tests/test_kernels.py::test_adam_step_matches_reference
    """
    dtype, size = _in_place_buffers({"param": param, "m": m, "v": v}, {"grad": grad})
    step_size = lr / (1 - beta1**step)
    root_correction = math.sqrt(1 - beta2**step)
    function, pointer = _kernel("adam_step", dtype)
    function(pointer(param), pointer(grad), pointer(m), pointer(v), size, beta1, 1 - beta1,
             beta2, 1 - beta2, eps, step_size, root_correction)


def sgd_step(param: np.ndarray, grad: np.ndarray, buf: np.ndarray, lr: float,
             momentum: float, first_step: bool) -> None:
    """One SGD update with heavy-ball momentum, in place, in a single loop.

    Math: b ← g on the first step (or when μ = 0), else b ← μ b + g;  θ ← θ − lr · b.

    Verified by: tests/test_kernels.py::test_sgd_step_matches_reference
    """
    dtype, size = _in_place_buffers({"param": param, "buf": buf}, {"grad": grad})
    restart = bool(first_step) or momentum == 0
    function, pointer = _kernel("sgd_step", dtype)
    function(pointer(param), pointer(grad), pointer(buf), size, lr, momentum, int(restart))


# -- 5. row-wise log-sum-exp ---------------------------------------------------------------
def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log Σ_j exp(a_ij) per row, shifted by the row maximum (−∞ rows give −∞, +∞ gives +∞).

    Math: logsumexp(a_i) = m_i + log Σ_j exp(a_ij − m_i), m_i = max_j a_ij (0 if not finite).

    Verified by: tests/test_kernels.py::test_logsumexp_rows_matches_reference
    """
    dtype, (a,) = _float_inputs(a=a)
    _require_ndim("a", a, 2)
    rows, cols = a.shape
    if cols == 0:  # the C loop would return log(0) = −∞; every backend raises instead
        raise ValueError(f"a must have at least one column to take a row maximum, got {a.shape}")
    out = np.empty(rows, dtype)
    function, pointer = _kernel("logsumexp_rows", dtype)
    function(pointer(a), rows, cols, pointer(out))
    return out


# -- 6. teaching kernels: matmul without BLAS -----------------------------------------------
def _matmul_operands(a, b) -> tuple[np.dtype, np.ndarray, np.ndarray]:
    dtype, (a, b) = _float_inputs(a=a, b=b)
    _require_ndim("a", a, 2)
    _require_ndim("b", b, 2)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a's columns must match b's rows, got shapes {a.shape} and {b.shape}")
    return dtype, a, b


def matmul_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A B by the definition, three nested loops in the order i, j, k.

    Math: C_ij = Σ_k A_ik B_kj.

    Verified by: tests/test_kernels.py::test_matmul_teaching_kernels_match_numpy
    """
    dtype, a, b = _matmul_operands(a, b)
    (n, k), m = a.shape, b.shape[1]
    c = np.empty((n, m), dtype)
    function, pointer = _kernel("matmul_naive", dtype)
    function(pointer(a), pointer(b), n, k, m, pointer(c))
    return c


def matmul_blocked(a: np.ndarray, b: np.ndarray, block: int = 64) -> np.ndarray:
    """C = A B tile by tile (block × block), i-k-j order inside a tile.

    Math: C_ij = Σ_tiles Σ_{k in tile} A_ik B_kj.

    Verified by: tests/test_kernels.py::test_matmul_teaching_kernels_match_numpy
    """
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    dtype, a, b = _matmul_operands(a, b)
    (n, k), m = a.shape, b.shape[1]
    c = np.empty((n, m), dtype)
    function, pointer = _kernel("matmul_blocked", dtype)
    function(pointer(a), pointer(b), n, k, m, int(block), pointer(c))
    return c
