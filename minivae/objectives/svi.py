"""Non-amortized inference: one Gaussian per datapoint, fitted by stochastic variational inference.

A VAE's encoder maps every x to its q_φ(z|x) with one shared network (amortized inference).
Stochastic variational inference (SVI; Hoffman et al. 2013) instead gives each datapoint x_i
its own free parameters (μ_i, log σ_i) and maximizes that datapoint's ELBO directly,

    ELBO(q_i) = E_{q_i}[log p(x_i | z)] − KL(q_i ‖ p(z)),   q_i = N(μ_i, diag σ_i²),

with the model p held fixed.  Since the best q_i* of the family is at least as good as any
particular member of it, ELBO(q_i*) ≥ ELBO(q_φ(·|x_i)): the difference is the amortization gap,
and log p(x_i) − ELBO(q_i*) the approximation gap (Cremer, Li & Duvenaud 2018):

    log p(x) − ELBO(q_φ) = [log p(x) − ELBO(q*)] + [ELBO(q*) − ELBO(q_φ)].
                            approximation gap      amortization gap

Verified by: tests/objectives/test_svi.py::test_svi_reaches_the_best_diagonal_gaussian,
::test_amortization_gap_is_nonnegative_on_digits
"""
from __future__ import annotations

import contextlib
import dataclasses
import math

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.distributions import Distribution, Independent, Normal, kl_divergence
from minivae.engine.tensor import Tensor, no_grad
from minivae.optim import Adam

ROWS_PER_CHUNK = 20_000  # samples × datapoints sent through the likelihood at once: bounds memory


def _model_tensors(model) -> list[Tensor]:
    """The model's trainable Tensors: ``model.parameters()`` if it has that method, else the
    Tensor attributes that require a gradient (LinearGaussian's W, b, σ when learnable)."""
    if callable(getattr(model, "parameters", None)):
        return [p for p in model.parameters() if p.requires_grad]
    return [value for value in vars(model).values()
            if isinstance(value, Tensor) and value.requires_grad]


@contextlib.contextmanager
def frozen(model):
    """Hold the model's parameters fixed: ``requires_grad = False`` inside the block.

    Gradients of an ELBO then reach only the variational parameters; the model's ``.grad``
    arrays are never written.  The flags are restored on exit, also when the block raises.
    Verified by: tests/objectives/test_svi.py::test_frozen_restores_requires_grad_after_an_error
    """
    held = _model_tensors(model)
    for p in held:
        p.requires_grad = False
    try:
        yield held
    finally:
        for p in held:
            p.requires_grad = True


def diagonal_gaussian(loc, scale) -> Independent:
    """q = N(μ, diag σ²) over the last axis: ``Independent(Normal(μ, σ), 1)``."""
    return Independent(Normal(loc, scale, validate_args=False), 1)


@dataclasses.dataclass
class SVIResult:
    """The fitted q_i = N(loc_i, diag scale_i²), one per row of x, and the optimization trace.

    q : the fitted diagonal Gaussians (detached: no graph to the optimizer's leaves), batch (B,).
    loc, scale : arrays of shape (B, d), in the model's dtype.
    elbo_history : float64 array (steps,), the mean over the B datapoints of each step's
        Monte Carlo ELBO estimate (before that step's update).
    """

    q: Independent
    loc: np.ndarray
    scale: np.ndarray
    elbo_history: np.ndarray


def _check_x(x, model) -> np.ndarray:
    for name in ("x_dim", "dtype"):
        if not hasattr(model, name):
            raise TypeError(f"model must have x_dim, dtype, prior() and log_likelihood(x, z); "
                            f"{type(model).__name__} has no {name}")
    checks.has_methods(model, ("prior", "log_likelihood"))
    data = x.data if isinstance(x, Tensor) else x
    if not isinstance(data, np.ndarray):
        raise TypeError(f"x must be a numpy array or Tensor, got {type(x).__name__}")
    if data.ndim != 2 or data.shape[1] != model.x_dim or data.shape[0] < 1:
        raise ValueError(f"x must have shape (B, {model.x_dim}) with B ≥ 1 (the model's x_dim), "
                         f"got {data.shape}")
    if data.dtype != model.dtype:
        raise TypeError(f"x must have the model's dtype {model.dtype}, got {data.dtype}")
    checks.finite(data, "x")
    return data


def _initial_parameters(init, batch: int, z_dim: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(μ, log σ) to start from: the prior N(0, I) for None, a Distribution's mean and
    √variance (its diagonal, for a full-covariance Gaussian), or a (loc, scale) pair."""
    if init is None:
        return np.zeros((batch, z_dim), dtype), np.zeros((batch, z_dim), dtype)
    if isinstance(init, Distribution):
        loc, scale = init.mean.data, np.sqrt(init.variance.data)
    elif isinstance(init, tuple) and len(init) == 2:
        loc, scale = (np.asarray(v.data if isinstance(v, Tensor) else v) for v in init)
    else:
        raise TypeError(f"init must be None, a Distribution or a (loc, scale) pair, got "
                        f"{type(init).__name__}")
    if loc.shape != (batch, z_dim) or scale.shape != (batch, z_dim):
        raise ValueError(f"init must give loc and scale of shape ({batch}, {z_dim}), got "
                         f"{loc.shape} and {scale.shape}")
    if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError("init must give a finite loc and a positive finite scale")
    # fresh C-ordered arrays: the optimizer updates them in place
    return np.array(loc, dtype=dtype, order="C"), np.array(np.log(scale), dtype=dtype, order="C")


def _kl_to_prior(q: Independent, prior: Distribution, z: Tensor) -> Tensor:
    """KL(q ‖ p(z)) in closed form where registered, else the one-sample-per-draw estimate
    mean_s [log q(z_s) − log p(z_s)] on the draws z (S, B, d) already taken."""
    try:
        return kl_divergence(q, prior)
    except NotImplementedError:
        return (q.log_prob(z) - prior.log_prob(z)).mean(axis=0)


def _check_lr(lr, final_lr) -> tuple[float, float]:
    """The step sizes, positive; final_lr None means a constant lr."""
    lr = checks.positive(lr, "lr", number=True)
    return lr, checks.positive(final_lr, "final_lr", number=True, optional=True) or lr


def svi_fit(x, model, rng: np.random.Generator, steps: int = 1000, lr: float = 1e-2,
            n_samples: int = 1, init=None, progress: bool = False,
            final_lr: float | None = None) -> SVIResult:
    """Fit q_i = N(μ_i, diag σ_i²) to each row x_i by Adam on its ELBO, the model held fixed.

    Math: per datapoint, with z_s = μ_i + σ_i ⊙ ε_s, ε_s ~ N(0, I), s = 1..S (S = n_samples),

        ELBÔ_i = (1/S) Σ_s log p(x_i | z_s) − KL(q_i ‖ p(z))     (KL in closed form),

    an unbiased estimate of ELBO(q_i) whose gradient in (μ_i, log σ_i) is unbiased for ∇ELBO
    (reparameterization).  Adam ascends Σ_i ELBÔ_i; the q_i share no parameters, so each
    receives exactly the gradient of its own ELBO.  σ = exp(log σ) keeps the scale positive.

    x : (B, D) in the model's dtype.  model : has x_dim, dtype, prior(), log_likelihood(x, z).
    final_lr : if given, the step size decays geometrically, lr_t = lr (final_lr/lr)^(t/(T−1)),
        so that the noisy iterates settle near the optimum (a Robbins–Monro-like schedule);
        with a constant lr they keep jittering around it at a distance of order lr.
    init : None (start at the prior N(0, I)), a Distribution over d-vectors with batch (B,)
        (e.g. ``model.encode(x)``: its mean and marginal standard deviations), or (loc, scale).
    Verified by: tests/objectives/test_svi.py::test_svi_reaches_the_best_diagonal_gaussian,
    ::test_svi_reaches_log_marginal_when_the_posterior_is_diagonal
    """
    x, rng, steps = _check_x(x, model), checks.generator(rng), checks.positive_int(steps, "steps")
    n_samples = checks.positive_int(n_samples, "n_samples")
    lr, final_lr = _check_lr(lr, final_lr)
    prior = model.prior()
    loc0, log_scale0 = _initial_parameters(init, x.shape[0], prior.event_shape[0], model.dtype)
    loc = Tensor(loc0, requires_grad=True)
    log_scale = Tensor(log_scale0, requires_grad=True)
    optimizer = Adam([loc, log_scale], lr=lr)
    history = np.empty(steps, dtype=np.float64)

    with frozen(model):
        bar = tqdm(range(steps), desc="SVI", disable=not progress, leave=False)
        for step in bar:
            # geometric annealing lr → final_lr: large steps first, small ones to settle
            optimizer.lr = lr * (final_lr / lr) ** (step / max(steps - 1, 1))
            q = diagonal_gaussian(loc, log_scale.exp())
            z = q.rsample(rng, (n_samples,))  # (S, B, d)
            elbo = model.log_likelihood(x, z).mean(axis=0) - _kl_to_prior(q, prior, z)  # (B,)
            optimizer.zero_grad()
            (-elbo.sum()).backward()
            optimizer.step()
            history[step] = float(elbo.data.mean(dtype=np.float64))
            if not math.isfinite(history[step]):
                raise ValueError(f"the ELBO became {history[step]} at step {step}: lr = {lr} "
                                 "is too large for this model and data; try a smaller lr")
            bar.set_postfix(elbo=f"{history[step]:.3f}", refresh=False)

    loc_fit, scale_fit = loc.data.copy(), np.exp(log_scale.data)
    return SVIResult(q=diagonal_gaussian(Tensor(loc_fit), Tensor(scale_fit)), loc=loc_fit,
                     scale=scale_fit, elbo_history=history)


def _diagonal_parameters(q, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) of a diagonal Gaussian Independent(Normal(μ, σ), 1) with a (B, d) batch."""
    if not (isinstance(q, Independent) and q.ndims == 1 and isinstance(q.base, Normal)):
        raise TypeError(f"{name} must be a diagonal Gaussian Independent(Normal(μ, σ), 1), got "
                        f"{type(q).__name__}: the gap compares Gaussians of that one family")
    return q.mean.data, np.sqrt(q.variance.data)


def _elbo_samples(model, x: np.ndarray, loc: np.ndarray, scale: np.ndarray,
                  eps: np.ndarray) -> np.ndarray:
    """log p(x_i | μ_i + σ_i ⊙ ε_s) − KL(q_i ‖ p(z)) for each draw: float64 (S, B)."""
    q = diagonal_gaussian(Tensor(loc), Tensor(scale))
    with no_grad():
        kl = kl_divergence(q, model.prior()).data.astype(np.float64)  # (B,)
        chunk = max(1, ROWS_PER_CHUNK // x.shape[0])
        parts = [model.log_likelihood(x, Tensor(loc + scale * eps[s:s + chunk])).data
                 for s in range(0, len(eps), chunk)]
    return np.concatenate(parts).astype(np.float64) - kl


@dataclasses.dataclass
class AmortizationGap:
    """Per-datapoint ELBOs of the encoder's q_φ(·|x_i) and of the SVI optimum q_i*, float64 (B,).

    gap = elbo_svi − elbo_encoder (the amortization gap), each with its Monte Carlo standard
    error (``*_se``); ``svi`` is the fit that produced q_i*.
    """

    gap: np.ndarray
    gap_se: np.ndarray
    elbo_svi: np.ndarray
    elbo_svi_se: np.ndarray
    elbo_encoder: np.ndarray
    elbo_encoder_se: np.ndarray
    svi: SVIResult


def amortization_gap(model, x, rng: np.random.Generator, svi_steps: int = 1000,
                     n_samples: int = 1000, svi_lr: float = 1e-2,
                     svi_final_lr: float | None = 1e-3,
                     svi_samples: int = 10, progress: bool = False) -> AmortizationGap:
    """ELBO(q_i*) − ELBO(q_φ(·|x_i)) per datapoint: what amortization costs (Cremer et al. 2018).

    q_i* is found by ``svi_fit`` started at the encoder's q_φ(·|x_i) (``svi_steps`` Adam steps
    of ``svi_samples`` draws each, the step size annealed from ``svi_lr`` to ``svi_final_lr``).
    Both ELBOs are then estimated with the same n_samples standard-normal draws ε_s (common
    random numbers, so most of the noise cancels in the gap):

        ELBO(q) ≈ (1/S) Σ_s log p(x | μ + σ ⊙ ε_s) − KL(q ‖ p(z)),
        gap_i ≈ (1/S) Σ_s [log p(x_i | z*_s) − log p(x_i | z^φ_s)] − KL(q_i*‖p) + KL(q_φ‖p),

    with standard errors s/√S of the per-draw values (of their differences, for the gap).
    ``progress`` shows a bar over the SVI steps.

    The gap is ≥ 0 up to Monte Carlo and optimization error: q_i* is the best diagonal
    Gaussian for x_i, the encoder's q is one particular diagonal Gaussian, and SVI started there
    only climbs.  The encoder's q must therefore be a diagonal Gaussian (TypeError otherwise).
    Verified by: tests/objectives/test_svi.py::test_amortization_gap_is_nonnegative_on_digits,
    ::test_amortization_gap_is_zero_for_an_optimal_encoder
    """
    x = _check_x(x, model)
    rng, n_samples = checks.generator(rng), checks.positive_int(n_samples, "n_samples")
    with no_grad():
        encoder_q = model.encode(x)
    loc_phi, scale_phi = _diagonal_parameters(encoder_q, "model.encode(x)")
    fit = svi_fit(x, model, rng, steps=svi_steps, lr=svi_lr, n_samples=svi_samples,
                  init=(loc_phi, scale_phi), final_lr=svi_final_lr, progress=progress)
    eps = rng.standard_normal((n_samples, *loc_phi.shape)).astype(model.dtype)
    encoder_values = _elbo_samples(model, x, loc_phi, scale_phi, eps)  # (S, B)
    svi_values = _elbo_samples(model, x, fit.loc, fit.scale, eps)

    def mean_and_se(values):
        se = values.std(axis=0, ddof=1) / math.sqrt(n_samples) if n_samples > 1 else \
            np.full(values.shape[1], np.inf)  # one draw: spread unknown
        return values.mean(axis=0), se

    gap, gap_se = mean_and_se(svi_values - encoder_values)
    elbo_svi, elbo_svi_se = mean_and_se(svi_values)
    elbo_encoder, elbo_encoder_se = mean_and_se(encoder_values)
    return AmortizationGap(gap=gap, gap_se=gap_se, elbo_svi=elbo_svi, elbo_svi_se=elbo_svi_se,
                           elbo_encoder=elbo_encoder, elbo_encoder_se=elbo_encoder_se, svi=fit)
