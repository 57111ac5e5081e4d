"""Which KL direction can be estimated, or minimized over q, from a given kind of access to p and q.

    forward KL(p‖q) = E_p[log p − log q],        reverse KL(q‖p) = E_q[log q − log p].

Each is an average over one distribution of log densities of both, so an estimator needs a way
to average over the outer distribution (its samples, or the other one's samples reweighted by a
density ratio) and log densities at those points.  ``estimate_kl`` takes whatever access a
scenario grants (samples of p, log p, log p̃ = log p + log Z, samples of q, log q), picks the
estimator that access allows, and refuses, naming what is missing, when none does:

* forward, samples xᵢ ~ p and log p:   (1/n) Σ [log p(xᵢ) − log q(xᵢ)]                 unbiased
* forward, samples of p only:          (1/n) Σ −log q(xᵢ) = KL(p‖q) + H(p)      up to −H(p)
* forward, zᵢ ~ q and normalized log p: (1/n) Σ wᵢ [log p(zᵢ) − log q(zᵢ)], wᵢ = p/q   unbiased
* forward, zᵢ ~ q and log p̃:  Σ w̄ᵢ log wᵢ − log ŵ, wᵢ = p̃/q, w̄ᵢ = wᵢ/Σwⱼ, ŵ = (1/n) Σ wᵢ:
  self-normalized importance sampling; ŵ estimates Z, so the estimate is consistent (O(1/n) bias)
* reverse, zᵢ ~ q and log p:           (1/n) Σ [log q(zᵢ) − log p(zᵢ)]                 unbiased
* reverse, zᵢ ~ q and log p̃:  (1/n) Σ [log q − log p̃] + log ŵ: the first term alone is
  KL(q‖p) − log Z, whose argmin over q does not depend on Z                          consistent
* reverse, xᵢ ~ p, log p and log q:    (1/n) Σ vᵢ [log q(xᵢ) − log p(xᵢ)], vᵢ = q/p       unbiased

Standard errors come from each estimator's per-draw terms (by the delta method for the ratio
estimators: influence ψᵢ = (wᵢ/ŵ)(log wᵢ − Ê) − (wᵢ/ŵ − 1) for the forward SNIS estimate).
Weights need q (resp. p) to have heavier tails than the other, else their variance is infinite.

Verified by:
tests/divergences/test_kl_access.py::test_every_computable_row_estimates_the_closed_form,
::test_every_row_marked_no_is_refused_for_what_it_lacks
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minivae import checks

ACCESS = ("samples of p", "log p", "log p̃", "samples of q", "log q")
VERDICTS = ("unbiased", "consistent", "up to −H(p)", "no")


@dataclass(frozen=True)
class KLAccess:
    """One scenario: what is accessible of p and of q, and what each KL direction allows."""
    scenario: str
    access: frozenset
    forward: str
    forward_why: str
    reverse: str
    reverse_why: str

    @property
    def label(self) -> str:
        return ", ".join(name for name in ACCESS if name in self.access)


def _row(scenario, access, forward, forward_why, reverse, reverse_why) -> KLAccess:
    return KLAccess(scenario, frozenset(access), forward, forward_why, reverse, reverse_why)


KL_ACCESS_TABLE = (
    _row("notes scenario 1", ACCESS[:2] + ACCESS[3:],
         "unbiased", "(1/n) Σ log p(xᵢ)/q(xᵢ) over xᵢ ~ p",
         "unbiased", "(1/n) Σ log q(zᵢ)/p(zᵢ) over zᵢ ~ q; reparameterized gradients"),
    _row("notes scenario 2", ("samples of p", "log q"),
         "up to −H(p)", "−(1/n) Σ log q(xᵢ) = KL + H(p), H(p) fixed: minimize it (maximum "
                        "likelihood); the value needs log p",
         "no", "E_q[log q − log p] needs log p, and no draws of q (nor a density of p to "
               "reweight p's draws) are available"),
    _row("notes scenario 3", ("log p̃", "samples of q", "log q"),
         "consistent", "self-normalized weights p̃/q over zᵢ ~ q; O(1/n) bias, and the weights' "
                       "variance explodes where q misses p's mass",
         "consistent", "(1/n) Σ log q/p̃ = KL − log Z: minimize it (log Z does not move the "
                       "argmin); log Z ≈ log mean(p̃/q) gives the value"),
    _row("data, model with samples", ("samples of p", "samples of q", "log q"),
         "up to −H(p)", "as scenario 2: samples of q add nothing to E_p[−log q]",
         "no", "q's draws are there but log p at them is not"),
    _row("normalized target density", ("log p", "samples of q", "log q"),
         "unbiased", "(1/n) Σ (p/q)(zᵢ) log p/q(zᵢ) over zᵢ ~ q: importance weights",
         "unbiased", "(1/n) Σ log q(zᵢ)/p(zᵢ) over zᵢ ~ q (variational inference)"),
    _row("no draws of q", ("samples of p", "log p", "log q"),
         "unbiased", "(1/n) Σ log p(xᵢ)/q(xᵢ) over xᵢ ~ p",
         "unbiased", "(1/n) Σ (q/p)(xᵢ) log q/p(xᵢ) over xᵢ ~ p: importance weights"),
    _row("densities only", ("log p̃", "log q"),
         "no", "no draws of p or q: no Monte Carlo average exists (quadrature only in low "
               "dimension)",
         "no", "the same: E_q needs draws of q, or draws of p with a normalized p"),
)


@dataclass(frozen=True)
class KLEstimate:
    """An estimate of KL (or of KL + H(p) where ``kind`` says so), its standard error, and the
    kind of estimate: "unbiased", "consistent" or "up to −H(p)"."""
    value: float
    standard_error: float
    kind: str


def _log_values(function, points, name: str) -> np.ndarray:
    values = np.asarray(checks.function(function, name, "points (n, ...) -> (n,)")(points),
                        dtype=np.float64)
    checks.shape(values.shape == points.shape[:1], name, f"a ({points.shape[0]},) array of "
                 "log densities, one per point", values.shape)
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise ValueError(f"{name} returned NaN or +inf")
    return values


def _draws(samples, name: str) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    checks.shape(array.ndim >= 1 and array.shape[0] >= 2, name, "n ≥ 2 draws along axis 0",
                 array.shape)
    checks.finite(array, name)
    return array


def _mean_and_error(terms: np.ndarray, kind: str) -> KLEstimate:
    return KLEstimate(float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(terms.size)), kind)


def _weights(log_ratio: np.ndarray) -> tuple[np.ndarray, float]:
    """w/ŵ (relative weights, mean 1) and log ŵ, computed without overflow."""
    shift = log_ratio.max()
    scaled = np.exp(log_ratio - shift)
    return scaled / scaled.mean(), float(shift + np.log(scaled.mean()))


def _missing(direction: str, needs: str, have) -> ValueError:
    given = ", ".join(name for name in ACCESS if name in have) or "nothing"
    return ValueError(f"{direction} needs {needs}; the access given is: {given}")


def estimate_kl(direction: str, *, p_samples=None, log_p=None, log_p_tilde=None,
                q_samples=None, log_q=None) -> KLEstimate:
    """Estimate KL(p‖q) (``direction="forward"``) or KL(q‖p) (``"reverse"``) from only the
    access given, by the estimator of the module docstring that this access allows.

    p_samples, q_samples : arrays of n ≥ 2 draws along axis 0.
    log_p, log_p_tilde, log_q : callables mapping such an array to its (n,) log densities
    (log_p normalized, log_p_tilde = log p + log Z for an unknown Z).
    Verified by:
    tests/divergences/test_kl_access.py::test_every_computable_row_estimates_the_closed_form,
    ::test_every_row_marked_no_is_refused_for_what_it_lacks
    """
    checks.one_of(direction, ("forward", "reverse"), "direction")
    given = dict(zip(ACCESS, (p_samples, log_p, log_p_tilde, q_samples, log_q)))
    have = {name for name, value in given.items() if value is not None}
    x = None if p_samples is None else _draws(p_samples, "p_samples")
    z = None if q_samples is None else _draws(q_samples, "q_samples")
    if log_q is None:
        raise _missing(f"{direction} KL", "log q (both directions average log q)", have)
    if direction == "forward":
        if x is not None and log_p is not None:
            return _mean_and_error(_log_values(log_p, x, "log_p")
                                   - _log_values(log_q, x, "log_q"), "unbiased")
        if x is not None:
            return _mean_and_error(-_log_values(log_q, x, "log_q"), "up to −H(p)")
        if z is not None and log_p is not None:
            log_ratio = _log_values(log_p, z, "log_p") - _log_values(log_q, z, "log_q")
            return _mean_and_error(np.exp(log_ratio) * log_ratio, "unbiased")
        if z is not None and log_p_tilde is not None:
            log_ratio = _log_values(log_p_tilde, z, "log_p_tilde") - _log_values(log_q, z, "log_q")
            relative, log_mean = _weights(log_ratio)
            expectation = float(np.mean(relative * log_ratio))
            influence = relative * (log_ratio - expectation) - (relative - 1.0)
            return KLEstimate(expectation - log_mean,
                              float(influence.std(ddof=1) / np.sqrt(z.shape[0])), "consistent")
        raise _missing("forward KL(p‖q)", "draws of p, or draws of q with log p or log p̃", have)
    if log_p is None and log_p_tilde is None:
        raise _missing("reverse KL(q‖p)", "log p or log p̃ (samples of p do not give log p)",
                       have)
    if z is not None and log_p is not None:
        return _mean_and_error(_log_values(log_q, z, "log_q") - _log_values(log_p, z, "log_p"),
                               "unbiased")
    if z is not None:
        log_ratio = _log_values(log_p_tilde, z, "log_p_tilde") - _log_values(log_q, z, "log_q")
        relative, log_mean = _weights(log_ratio)
        estimate = _mean_and_error(relative - log_ratio, "consistent")  # influence of the sum
        return KLEstimate(float(np.mean(-log_ratio)) + log_mean, estimate.standard_error,
                          "consistent")
    if x is not None and log_p is not None:
        log_ratio = _log_values(log_q, x, "log_q") - _log_values(log_p, x, "log_p")
        return _mean_and_error(np.exp(log_ratio) * log_ratio, "unbiased")
    raise _missing("reverse KL(q‖p)", "draws of q, or draws of p with a normalized log p", have)


def format_kl_access_table(rows=KL_ACCESS_TABLE) -> str:
    """The access table as aligned text, one line per scenario, reasons underneath."""
    if not all(isinstance(row, KLAccess) for row in rows):
        raise TypeError("rows must be KLAccess entries")
    width = max(len(row.scenario) + len(row.label) for row in rows) + 3
    lines = [f"{'scenario (access)':<{width}}  KL(p‖q)        KL(q‖p)", "-" * (width + 32)]
    for row in rows:
        lines.append(f"{f'{row.scenario} ({row.label})':<{width}}  {row.forward:<13}  "
                     f"{row.reverse}")
        lines.append(f"{'':<4}forward: {row.forward_why}")
        lines.append(f"{'':<4}reverse: {row.reverse_why}")
    return "\n".join(lines)
