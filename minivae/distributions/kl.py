"""KL divergence and cross-entropy between distributions, by closed form, looked up by type.

    KL(p ‖ q) = E_p[log p(x) − log q(x)]        cross_entropy(p, q) = −E_p[log q(x)]
    cross_entropy(p, q) = H(p) + KL(p ‖ q)

Each family's module registers the closed forms it knows with ``@register_kl(P, Q)`` (and
``@register_cross_entropy(P, Q)`` where the cross-entropy has a direct form).  ``kl_divergence``
looks up the most specific registered pair along both types' MROs; a pair nobody registered is
an error, never a silent Monte Carlo estimate.  Where the support of p is not inside the
support of q, KL(p ‖ q) = +∞ (p puts mass where log q = −∞); those pairs are registered too.

Verified by: tests/distributions/test_base.py::test_registry_lookup_and_errors,
::test_independent_kl_sums_the_base_kl
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, Independent
from minivae.engine.tensor import Tensor

_KL: dict[tuple[type, type], object] = {}
_CROSS_ENTROPY: dict[tuple[type, type], object] = {}


def _register(table: dict, type_p: type, type_q: type):
    for name, t in (("type_p", type_p), ("type_q", type_q)):
        if not (isinstance(t, type) and issubclass(t, Distribution)):
            raise TypeError(f"{name} must be a Distribution subclass, got {t!r}")

    def decorator(function):
        table[(type_p, type_q)] = function
        return function

    return decorator


def register_kl(type_p: type, type_q: type):
    """Decorator: ``function(p, q)`` computes KL(p ‖ q) for p of ``type_p``, q of ``type_q``."""
    return _register(_KL, type_p, type_q)


def register_cross_entropy(type_p: type, type_q: type):
    """Decorator: ``function(p, q)`` computes −E_p[log q] in closed form."""
    return _register(_CROSS_ENTROPY, type_p, type_q)


def _lookup(table: dict, p, q, required: str | None = None):
    """The function registered for the closest pair of ancestors of (type(p), type(q)); None if
    there is none, or with ``required`` (what it computes) a NotImplementedError naming both."""
    best, best_rank = None, None
    for i, type_p in enumerate(type(p).__mro__):
        for j, type_q in enumerate(type(q).__mro__):
            function = table.get((type_p, type_q))
            if function is not None and (best_rank is None or (i + j, i) < best_rank):
                best, best_rank = function, (i + j, i)
    if best is None and required:
        raise NotImplementedError(f"no closed-form {required} is registered for "
                                  f"{type(p).__name__} ‖ {type(q).__name__}")
    return best


def _check_pair(p, q) -> None:
    for name, d in (("p", p), ("q", q)):
        if not isinstance(d, Distribution):
            raise TypeError(f"{name} must be a Distribution, got {type(d).__name__}")
    if p.event_shape != q.event_shape:
        raise ValueError(f"p and q must have the same event shape, got {p.event_shape} and "
                         f"{q.event_shape}")
    if p.dtype != q.dtype:
        raise TypeError(f"p and q must share a dtype, got {p.dtype} and {q.dtype}")
    checks.broadcast((p.batch_shape, q.batch_shape), "the batch shapes of p and q")


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p ‖ q) = E_p[log p − log q] in closed form, one value per batch entry.

    Raises NotImplementedError naming both types when no closed form is registered.
    Verified by: tests/distributions/test_base.py::test_registry_lookup_and_errors
    """
    _check_pair(p, q)
    return _lookup(_KL, p, q, required="KL")(p, q)


def cross_entropy(p: Distribution, q: Distribution) -> Tensor:
    """−E_p[log q(x)]: a registered closed form, else H(p) + KL(p ‖ q).

    Verified by: tests/distributions/test_base.py::test_cross_entropy_is_entropy_plus_kl
    """
    _check_pair(p, q)
    function = _lookup(_CROSS_ENTROPY, p, q)
    if function is not None:
        return function(p, q)
    return p.entropy() + kl_divergence(p, q)


def infinite(p: Distribution, q: Distribution) -> Tensor:
    """+∞ for every batch entry: the KL of a pair whose supports do not nest."""
    shape = np.broadcast_shapes(p.batch_shape, q.batch_shape)
    return Tensor(np.full(shape, np.inf, dtype=p.dtype))


@register_kl(Independent, Independent)
def _kl_independent(p: Independent, q: Independent) -> Tensor:
    """Independent coordinates: KL(Π_j p_j ‖ Π_j q_j) = Σ_j KL(p_j ‖ q_j)."""
    if p.ndims != q.ndims:
        raise NotImplementedError(f"KL between Independent distributions with different "
                                  f"event ranks ({p.ndims} and {q.ndims})")
    return p._sum_event(kl_divergence(p.base, q.base))
