"""Lower bounds on KL(p‖q) through a critic T: R1 (convex conjugate) and R2 (Donsker–Varadhan).

For any measurable T: 𝒳 → ℝ,

    R1[T] = E_p[T(x)] − E_q[e^(T(x)−1)],
    R2[T] = E_p[T(x)] − log E_q[e^(T(x))],

and R1[T] ≤ R2[T] ≤ KL(p‖q).

* R1 ≤ KL: f(u) = u log u has the conjugate f*(t) = sup_u (ut − u log u) = e^(t−1) (the supremum
  is at log u = t − 1), and f** = f.  So u log u ≥ ut − e^(t−1) for every t; put u = p(x)/q(x),
  t = T(x), multiply by q(x) and integrate: KL ≥ R1[T], with equality iff T = log(p/q) + 1.
* R2 ≤ KL: r = e^T / E_q[e^T] makes g = r q a density, and
  KL(p‖q) − R2[T] = E_p[log(p/q) − log r] = KL(p‖g) ≥ 0, zero iff g = p, i.e. T = log(p/q) + c.
* R1 ≤ R2: with y = E_q[e^(T−1)] > 0, log E_q[e^T] = 1 + log y ≤ y because log y ≤ y − 1.

Both are maximized over a critic (a small MLP here) from samples of p and q alone; neither
needs a density.  The maximized R2 estimates KL; R1 is looser for a critic off by a constant
c from the optimum: R1[log(p/q) + c] = KL − (e^(c−1) − c), while R2 does not see c.

Verified by: tests/divergences/test_bounds.py::test_r1_below_r2_below_kl
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minivae import checks
from minivae.checks import FLOAT_DTYPES
from minivae.engine.ops import exp, logsumexp, reshape
from minivae.engine.ops import sum as tensor_sum
from minivae.engine.tensor import Tensor, no_grad
from minivae.nn import MLP
from minivae.optim import Adam

BOUNDS = ("r1", "r2")


def _critic_values(values, name: str) -> Tensor:
    """``values`` as a 1-D float Tensor of finite critic values; (n, 1) is read as (n,)."""
    tensor = values if isinstance(values, Tensor) else None
    if tensor is None:
        if not isinstance(values, np.ndarray):
            raise TypeError(f"{name} must be a Tensor or a float numpy array of critic values, "
                            f"got {type(values).__name__}")
        tensor = Tensor(values)
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {tensor.dtype}")
    if tensor.ndim == 2 and tensor.shape[1] == 1:
        tensor = reshape(tensor, (tensor.shape[0],))
    if tensor.ndim != 1 or tensor.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n,) or (n, 1) with n ≥ 1, got {tensor.shape}")
    if not np.all(np.isfinite(tensor.data)):
        raise ValueError(f"{name} contains NaN or infinity")
    return tensor


def _log_weights(weights, n: int, dtype, name: str) -> np.ndarray:
    """log of the weights normalized to sum to one, in ``dtype``; uniform 1/n when None.

    Normalizing lets quadrature weights p(xᵢ)Δxᵢ (which sum to 1 only up to the rule's error)
    and unnormalized discrete masses be passed as they are.
    """
    if weights is None:
        return np.full(n, -np.log(n), dtype=dtype)
    weights = np.asarray(weights.data if isinstance(weights, Tensor) else weights)
    if weights.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {weights.dtype}")
    if weights.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one weight per critic value, "
                         f"got {weights.shape}")
    weights = weights.astype(np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"{name} must be finite, non-negative and not all zero")
    with np.errstate(divide="ignore"):
        return np.log(weights / weights.sum()).astype(dtype)


def _operands(t_p, t_q, p_weights, q_weights):
    t_p, t_q = _critic_values(t_p, "t_p"), _critic_values(t_q, "t_q")
    checks.same_dtype(t_p, t_q, "t_p and t_q")
    log_w_p = _log_weights(p_weights, t_p.shape[0], t_p.dtype, "p_weights")
    log_w_q = _log_weights(q_weights, t_q.shape[0], t_q.dtype, "q_weights")
    return t_p, t_q, log_w_p, log_w_q


def _expectation(values: Tensor, log_weights: np.ndarray) -> Tensor:
    """Σᵢ wᵢ vᵢ; a zero weight drops its value (its gradient is zero, never NaN)."""
    return tensor_sum(values * Tensor(np.exp(log_weights)))


def _log_expectation_of_exp(values: Tensor, log_weights: np.ndarray) -> Tensor:
    """log Σᵢ wᵢ e^(vᵢ) = logsumexp(vᵢ + log wᵢ): no exponent exceeds the largest one."""
    return logsumexp(values + Tensor(log_weights))


def r1_bound(t_p, t_q, p_weights=None, q_weights=None) -> Tensor:
    """R1[T] = E_p[T(x)] − E_q[e^(T(x)−1)] ≤ KL(p‖q), the convex-conjugate bound.

    t_p : (n,) or (n, 1) critic values T(xᵢ) at points xᵢ drawn from p (or weighted by p).
    t_q : (m,) or (m, 1) critic values T(yⱼ) at points from q.
    p_weights, q_weights : optional non-negative weights, normalized to sum to one, for exact
        expectations E_p[T] = Σᵢ wᵢ T(xᵢ) (discrete supports, quadrature grids); None gives the
        Monte Carlo mean.  They are constants: gradients flow into t_p and t_q only.
    Returns a scalar Tensor of the critic values' dtype.  Sup over T is KL, at T = log(p/q) + 1.

    E_q[e^(T−1)] is computed as exp(log Σⱼ wⱼ e^(T(yⱼ)) − 1), which overflows only when the
    expectation itself exceeds the dtype's range; that raises FloatingPointError.
    Verified by: tests/divergences/test_bounds.py::test_r1_below_r2_below_kl,
    ::test_optimal_critics_attain_kl_on_discrete_supports, ::test_bounds_pass_gradcheck
    """
    t_p, t_q, log_w_p, log_w_q = _operands(t_p, t_q, p_weights, q_weights)
    log_mean = _log_expectation_of_exp(t_q, log_w_q) - 1  # log E_q[e^(T−1)]
    return _expectation(t_p, log_w_p) - _exp_unless_overflow(log_mean, t_q)


def _exp_unless_overflow(log_mean: Tensor, t_q: Tensor) -> Tensor:
    """exp(log_mean), or a FloatingPointError where that overflows the critic's dtype."""
    if log_mean.data > np.log(np.finfo(t_q.dtype).max):
        raise FloatingPointError(
            f"E_q[e^(T−1)] = e^{float(log_mean.data):.4g} overflows {t_q.dtype} "
            f"(largest critic value on q: {float(t_q.data.max()):.4g}); R1 is −∞ in this dtype")
    return exp(log_mean)


def r2_bound(t_p, t_q, p_weights=None, q_weights=None) -> Tensor:
    """R2[T] = E_p[T(x)] − log E_q[e^(T(x))] ≤ KL(p‖q), the Donsker–Varadhan bound.

    Arguments as for ``r1_bound``.  log E_q[e^T] = logsumexp(T(yⱼ) + log wⱼ), stable for any
    finite critic values.  Equality iff T = log(p/q) + c for a constant c (R2 ignores c).
    Verified by: tests/divergences/test_bounds.py::test_r1_below_r2_below_kl,
    ::test_optimal_critics_attain_kl_on_discrete_supports, ::test_bounds_pass_gradcheck
    """
    t_p, t_q, log_w_p, log_w_q = _operands(t_p, t_q, p_weights, q_weights)
    return _expectation(t_p, log_w_p) - _log_expectation_of_exp(t_q, log_w_q)


@dataclass
class BoundHistory:
    """R1 and R2 of the critic on held-out samples after each evaluated step.

    step : the optimizer steps at which the critic was evaluated (step 0 = before training).
    r1, r2 : the held-out estimates of R1[T] and R2[T] at those steps (float64).
    trained_on : "r1" or "r2", the bound the critic maximized on the training batches.
    """

    step: np.ndarray
    r1: np.ndarray
    r2: np.ndarray
    trained_on: str


def _as_points(samples, name: str) -> np.ndarray:
    if not isinstance(samples, np.ndarray) or samples.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 numpy array, got "
                        f"{getattr(samples, 'dtype', type(samples).__name__)}")
    points = samples.reshape(-1, 1) if samples.ndim == 1 else samples
    if points.ndim != 2 or points.shape[0] < 4:
        raise ValueError(f"{name} must have shape (n,) or (n, d) with n ≥ 4, got {samples.shape}")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} contains NaN or infinity")
    return points


def _check_samples(samples_p, samples_q) -> tuple[np.ndarray, np.ndarray]:
    """Both sample sets as (n, d) points of one dtype and one dimension d."""
    points_p, points_q = _as_points(samples_p, "samples_p"), _as_points(samples_q, "samples_q")
    checks.same_dtype(points_p, points_q, "samples_p and samples_q")
    if points_p.shape[1] != points_q.shape[1]:
        raise ValueError(f"samples_p and samples_q must have the same dimension d, got shapes "
                         f"{points_p.shape} and {points_q.shape}")
    return points_p, points_q


def _check_schedule(steps, eval_every, held_out, batch_size) -> tuple[int, int, float, int | None]:
    """train_critic's steps and eval_every ≥ 1, held_out in (0, 1), batch_size ≥ 1 or None."""
    return (checks.positive_int(steps, "steps"), checks.positive_int(eval_every, "eval_every"),
            checks.real(held_out, "held_out", 0.0, 1.0, low_open=True, high_open=True),
            checks.positive_int(batch_size, "batch_size", optional=True))


def train_critic(samples_p, samples_q, bound: str = "r2", hidden=(32, 32), steps: int = 1000,
                 lr: float = 1e-3, batch_size: int | None = 256, held_out: float = 0.5,
                 activation: str = "tanh", eval_every: int = 1,
                 rng: np.random.Generator | None = None,
                 progress: bool = False) -> tuple[MLP, BoundHistory]:
    """Maximize R1 or R2 over an MLP critic T: ℝᵈ → ℝ with Adam, from samples of p and q.

    samples_p, samples_q : (n, d) or (n,) float arrays of one dtype; the critic takes that dtype.
    bound : "r1" or "r2", the objective maximized on the training points.
    held_out : fraction of each sample set kept out of training; R1 and R2 are reported on it,
        so the history estimates the bounds of the learned T rather than rewarding overfit.
    batch_size : training points of each set drawn per step (None: all of them).  On a fixed
        sample the supremum of either bound is +∞ (T can grow without limit where p's points
        have no q points near them), and full-batch Adam finds that; the noise of small batches
        keeps the critic near log(p/q) + c, and the held-out history shows whether it stayed.
        Large steps speed that escape up too (R2 at lr = 3e-3 degrades after a few hundred
        steps on 2-D Gaussians), hence the small default learning rate.
    eval_every : evaluate the held-out bounds after every this many steps (and the last).
    Returns (critic, history); history has held-out R1 and R2 before training and at every
    evaluated step.
    Verified by: tests/divergences/test_bounds.py::test_trained_critic_reaches_the_true_kl
    """
    checks.one_of(bound, BOUNDS, "bound")
    points_p, points_q = _check_samples(samples_p, samples_q)
    steps, eval_every, held_out, batch_size = _check_schedule(steps, eval_every, held_out,
                                                              batch_size)
    rng = checks.generator(rng, optional=True) or np.random.default_rng(0)

    def split(points):
        order = rng.permutation(points.shape[0])
        n_test = min(max(2, int(round(held_out * points.shape[0]))), points.shape[0] - 2)
        return points[order[n_test:]], points[order[:n_test]]

    (train_p, test_p), (train_q, test_q) = split(points_p), split(points_q)
    dtype, dim = points_p.dtype, points_p.shape[1]
    critic = MLP([dim, *hidden, 1], activation, rng=rng, dtype=dtype)
    critic.flatten_parameters()
    optimizer = Adam(critic.parameters(), lr=lr)
    objective = r1_bound if bound == "r1" else r2_bound

    def held_out_bounds():
        with no_grad():
            t_p, t_q = critic(Tensor(test_p)), critic(Tensor(test_q))
            r2 = float(r2_bound(t_p, t_q).data)
            try:
                r1 = float(r1_bound(t_p, t_q).data)
            except FloatingPointError:  # an R2 critic's free constant drifted up: R1 = −∞
                r1 = -np.inf
            return r1, r2

    def batch(points):
        if batch_size is None or batch_size >= points.shape[0]:
            return points
        return points[rng.choice(points.shape[0], batch_size, replace=False)]

    history, evaluated = [held_out_bounds()], [0]
    loop = range(1, steps + 1)
    if progress:
        from tqdm.auto import tqdm
        loop = tqdm(loop, desc=f"critic on {bound.upper()}", leave=False)
    for step in loop:
        optimizer.zero_grad()
        value = objective(critic(Tensor(batch(train_p))), critic(Tensor(batch(train_q))))
        (-value).backward()  # Adam minimizes; the critic maximizes the bound
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            history.append(held_out_bounds())
            evaluated.append(step)
    r1, r2 = np.array(history, dtype=np.float64).T
    return critic, BoundHistory(np.array(evaluated), r1, r2, bound)
