"""Numerical gradient checking by central differences, in float64.

Math: for f: Rⁿ → Rᵐ with Jacobian J, reverse mode gives the VJP uᵀJ for any u, and central
differences give J v ≈ (f(x + εv) − f(x − εv)) / 2ε with error O(ε²).  The two must satisfy
uᵀ(J v) = (Jᵀu)ᵀ v for every u and v.  We check that identity along random directions, and,
for small inputs, along every coordinate direction v = e_j (which compares the whole VJP
entry by entry and reports the worst entry).

Verified by: tests/engine/test_gradcheck.py (it catches a deliberately wrong VJP)
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.engine.tensor import Tensor

ELEMENTWISE_LIMIT = 256  # inputs with at most this many entries are also checked entry by entry


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree; the message says where and by how much."""


def gradcheck(f, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4,
              n_directions: int = 3, rng: np.random.Generator | None = None) -> bool:
    """Check the VJPs behind ``f(*inputs)`` against central differences.

    Parameters
    ----------
    f : callable taking Tensors and returning a Tensor (any shape).
    inputs : arrays or Tensors; each is copied to float64 and differentiated.
    eps, atol, rtol : step and tolerances; a comparison passes if |a − n| ≤ atol + rtol·|n|.
    n_directions : random directions (u, v) to test.
    rng : source of the random directions (default: a fixed seed, so failures repeat).

    Returns True, or raises ``GradcheckError`` naming the worst mismatch.
    """
    if not inputs:
        raise ValueError("gradcheck needs at least one input")
    eps, atol, rtol = (checks.real(v, n, 0, low_open=o) for v, n, o in
                       ((eps, "eps", True), (atol, "atol", False), (rtol, "rtol", False)))
    checks.integer(n_directions, "n_directions", 0)  # 0: entry by entry only
    checks.function(f, "f")
    rng = np.random.default_rng(0) if rng is None else rng
    xs = [np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64) for x in inputs]
    for i, x in enumerate(xs):
        checks.finite(x, f"input {i}")

    def evaluate(arrays):
        out = f(*[Tensor(a) for a in arrays])
        return np.asarray(out.data if isinstance(out, Tensor) else out, dtype=np.float64)

    def vjp(u):
        leaves = [Tensor(x.copy(), requires_grad=True) for x in xs]
        out = f(*leaves)
        if not isinstance(out, Tensor) or not out.requires_grad:
            return [np.zeros_like(x) for x in xs]
        out.backward(u)
        return [np.zeros_like(t.data) if t.grad is None else t.grad for t in leaves]

    def jvp(vs):
        plus = evaluate([x + eps * v for x, v in zip(xs, vs)])
        minus = evaluate([x - eps * v for x, v in zip(xs, vs)])
        return (plus - minus) / (2 * eps)

    out_shape = evaluate(xs).shape
    worst = {"direction": None, "entry": None}  # kind -> (excess over tolerance, message)

    def compare(kind, analytic, numeric, where):
        excess = abs(analytic - numeric) - (atol + rtol * abs(numeric))
        if not (np.isfinite(analytic) and np.isfinite(numeric)):
            excess = np.inf  # NaN or ±∞ verifies nothing: never a silent pass
        if worst[kind] is None or excess > worst[kind][0]:
            worst[kind] = (excess, f"{where}: analytic {analytic:.10g} vs numerical {numeric:.10g}")

    for trial in range(n_directions):
        u = rng.standard_normal(out_shape)
        vs = [rng.standard_normal(x.shape) for x in xs]
        grads = vjp(u)
        analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, vs))
        compare("direction", analytic, float(np.sum(u * jvp(vs))), f"random direction {trial}")

    if sum(x.size for x in xs) <= ELEMENTWISE_LIMIT:
        u = rng.standard_normal(out_shape)
        grads = vjp(u)
        for i, x in enumerate(xs):
            for j in np.ndindex(x.shape):
                vs = [np.zeros_like(y) for y in xs]
                vs[i][j] = 1.0
                compare("entry", float(grads[i][j]), float(np.sum(u * jvp(vs))),
                        f"input {i} entry {j}")

    # A failing entry says more than a failing random direction, so it is reported first.
    for kind in ("entry", "direction"):
        if worst[kind] is not None and worst[kind][0] > 0:
            raise GradcheckError(f"gradient mismatch (worst) at {worst[kind][1]}")
    return True
