"""Anomaly detection: stop at the first primitive that turns finite numbers into NaN or ±inf.

A NaN in a loss is usually born many operations before anyone sees it: a ``log`` of a negative
number in the forward pass, or a ``sqrt`` at 0 whose derivative 1/(2√x) is infinite in the
backward pass.  Inside ``with detect_anomaly():`` every primitive checks its result as it is
made, so the error points at the culprit instead of at the loss:

* forward: an output holding NaN or ±inf although every input (every parent Tensor) was
  finite raises ``AnomalyError`` naming the primitive, the shapes and dtypes of its inputs and
  output, and the index of the first bad entry;
* backward: a VJP returning a NaN or ±inf gradient from a finite upstream gradient (and
  finite inputs) raises
  ``AnomalyError`` naming "backward of <primitive>", the parent's position and the first bad
  index.

Non-finite values that *arrive* (a NaN pixel in the data, an inf gradient from upstream) are
let through: the primitive that made them was checked when it ran, or they came from outside.
Note that an infinity which is the exact answer, log(0) = −∞ or exp(1e4) = +∞ (overflow), is
also reported: inside this block any non-finite number made from finite ones counts as an
anomaly.

``AnomalyError`` subclasses ``FloatingPointError`` (a NaN is an arithmetic fault, not a bad
argument), so it is deliberately *not* a ``ValueError``: code that validates arguments and
catches ``ValueError`` will not swallow it.

Outside the block the only cost is one flag test per primitive and per backward call.  Blocks
nest; each restores the state it found, and ``detect_anomaly(enabled=False)`` switches the
checks off inside an enclosing block.

Verified by: tests/engine/test_anomaly.py::test_log_of_negative_number_raises_naming_the_op,
::test_sqrt_at_zero_raises_only_in_backward
"""
from __future__ import annotations

import contextlib

import numpy as np


class AnomalyError(FloatingPointError):
    """A primitive produced NaN or ±inf from finite inputs (or finite upstream gradients)."""


class AnomalyMode:
    """The one global flag that ``Tensor.from_op`` and ``Tensor.backward`` test."""

    enabled = False


@contextlib.contextmanager
def detect_anomaly(enabled: bool = True):
    """Inside this block, raise ``AnomalyError`` at the first primitive whose forward output or
    VJP turns finite numbers into NaN or ±inf (see the module docstring).

    >>> import minivae as mv
    >>> with mv.detect_anomaly():
    ...     mv.Tensor([-1.0]).log()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    minivae.engine.anomaly.AnomalyError: log produced NaN at index (0,) from finite inputs ...
    """
    previous = AnomalyMode.enabled
    AnomalyMode.enabled = bool(enabled)
    try:
        yield
    finally:
        AnomalyMode.enabled = previous


def is_anomaly_enabled() -> bool:
    return AnomalyMode.enabled


def _all_finite(array) -> bool:
    array = np.asarray(array)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def _first_bad(array: np.ndarray) -> tuple[str, tuple]:
    bad = ~np.isfinite(array)
    index = tuple(int(i) for i in np.argwhere(bad)[0]) if array.ndim else ()
    value = array[index]
    kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    return kind, index


def _describe(arrays) -> str:
    return ", ".join(f"{np.shape(a)} {np.asarray(a).dtype}" for a in arrays)


def check_forward(data, parents: tuple, op: str) -> None:
    """Raise ``AnomalyError`` if ``data`` is not finite although every parent's data is."""
    data = np.asarray(data)
    if _all_finite(data) or not all(_all_finite(p.data) for p in parents):
        return
    kind, index = _first_bad(data)
    raise AnomalyError(
        f"{op} produced {kind} at index {index} from finite inputs "
        f"(inputs: {_describe([p.data for p in parents]) or 'none'}; "
        f"output: {_describe([data])})")


def check_backward(g: np.ndarray, parents: tuple, parent_grads, op: str) -> None:
    """Raise ``AnomalyError`` if a VJP returned a non-finite gradient from a finite ``g`` and
    finite inputs (a NaN input legitimately gives a NaN gradient, e.g. d(x²)/dx = 2x)."""
    if not _all_finite(g) or not all(_all_finite(p.data) for p in parents):
        return
    for position, grad in enumerate(parent_grads):
        if grad is None or _all_finite(grad):
            continue
        grad = np.asarray(grad)
        kind, index = _first_bad(grad)
        raise AnomalyError(
            f"backward of {op} produced a {kind} gradient at index {index} for input "
            f"{position} from a finite upstream gradient (upstream: {_describe([g])}; "
            f"inputs: {_describe([p.data for p in parents])})")
