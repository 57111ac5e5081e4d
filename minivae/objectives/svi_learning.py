"""Stochastic variational learning (the lecture's Algorithm 1): a λ_i per datapoint, θ shared.

Learning asks for the θ that maximizes (1/N) Σ_i log p_θ(x_i).  Each log p_θ(x_i) is bounded
below by its ELBO at any λ_i, so the learning problem becomes one joint maximization,

    max_θ max_{λ_1..λ_N} Σ_i ELBO(x_i; θ, λ_i),
    ELBO(x_i; θ, λ_i) = E_{q_λi}[log p_θ(x_i|z)] − KL(q_λi ‖ p(z)),  q_λi = N(μ_i, diag σ_i²).

Its gradients split: λ_i appears in the i-th term only, so ∇_{λ_i} Σ_j ELBO_j = ∇_{λ_i} ELBO_i,
while θ appears in every term, ∇_θ Σ_i ELBO_i = Σ_i ∇_θ ELBO(x_i; θ, λ_i) at the current λ_i.
Algorithm 1 alternates the two block ascents on a random minibatch M of the data:

    repeat:  M ← a random minibatch
             K times:  λ_i ← λ_i + η ∇_{λ_i} ELBO(x_i; θ, λ_i)     for i ∈ M   (θ held fixed)
             θ ← θ + ρ (1/|M|) Σ_{i∈M} ∇_θ ELBO(x_i; θ, λ_i)                   (λ held fixed)

(the lecture takes |M| = 1).  The K inner steps bring each λ_i near its optimum λ_i*(θ), so the
θ-step follows nearly ∇_θ Σ_i max_λ ELBO, the bound tightened first.  Both gradients are
reparameterized Monte Carlo estimates, z = μ_i + σ_i ⊙ ε, ε ~ N(0, I), unbiased; the KL to the
prior is in closed form.  The steps are Adam's: for θ one optimizer across the iterations;
for λ_i a fresh one at each visit (a datapoint is seen once an epoch, old moments would be
stale), its first steps of size about η in every coordinate.

Amortized SVI (the lecture's Algorithm 2, the VAE) replaces the N vectors λ_i by one encoder
λ(x) = F(x; φ): a single step on φ per minibatch, and new data need no optimization.  Here a
held-out point must have its λ fitted from scratch (``svi_fit`` with θ fixed).

Verified by: tests/objectives/test_svi_learning.py
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.engine.tensor import Tensor
from minivae.objectives.svi import (
    _check_x,
    _kl_to_prior,
    _model_tensors,
    diagonal_gaussian,
    frozen,
)
from minivae.optim import Adam


def local_elbo(model, x, loc: Tensor, log_scale: Tensor, rng: np.random.Generator,
               n_samples: int) -> Tensor:
    """ELBÔ(x_i; θ, λ_i) for each row, shape (B,): with z_s = μ_i + σ_i ⊙ ε_s, σ_i = exp(log σ_i),

        ELBÔ_i = (1/S) Σ_s log p_θ(x_i | z_s) − KL(N(μ_i, diag σ_i²) ‖ p(z)).

    Gradients flow to θ (the model's Tensors that require them) and to loc, log_scale if they do.
    Verified by: tests/objectives/test_svi_learning.py::test_theta_step_follows_the_elbo_gradient
    """
    q = diagonal_gaussian(loc, log_scale.exp())
    z = q.rsample(rng, (n_samples,))  # (S, B, d)
    return model.log_likelihood(x, z).mean(axis=0) - _kl_to_prior(q, model.prior(), z)


def lambda_steps(model, x: np.ndarray, loc: np.ndarray, log_scale: np.ndarray,
                 rng: np.random.Generator, steps: int, lr: float,
                 n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """K = ``steps`` Adam ascents of Σ_i ELBÔ_i on λ_i = (μ_i, log σ_i), θ held fixed: the
    new (loc, log_scale).  Each λ_i gets the gradient of its own ELBO (the terms share nothing).

    Verified by: tests/objectives/test_svi_learning.py::test_lambda_steps_leave_theta_alone
    """
    loc, log_scale = Tensor(loc.copy(), requires_grad=True), Tensor(log_scale.copy(),
                                                                     requires_grad=True)
    optimizer = Adam([loc, log_scale], lr=lr)
    with frozen(model):
        for _ in range(steps):
            optimizer.zero_grad()
            (-local_elbo(model, x, loc, log_scale, rng, n_samples).sum()).backward()
            optimizer.step()
    return loc.data, log_scale.data


def theta_step(model, optimizer, x: np.ndarray, loc: np.ndarray, log_scale: np.ndarray,
               rng: np.random.Generator, n_samples: int) -> float:
    """One step of ``optimizer`` (over θ) on −(1/B) Σ_i ELBÔ(x_i; θ, λ_i), λ held fixed (the
    λ_i enter as constants); returns the minibatch's mean ELBÔ before the step.

    Verified by: tests/objectives/test_svi_learning.py::test_theta_step_follows_the_elbo_gradient,
    ::test_theta_step_gradient_is_unbiased_for_the_exact_elbo
    """
    elbo = local_elbo(model, x, Tensor(loc), Tensor(log_scale), rng, n_samples)
    optimizer.zero_grad()
    (-elbo.mean()).backward()
    optimizer.step()
    return float(elbo.data.mean(dtype=np.float64))


class StochasticVariationalLearning:
    """Algorithm 1's state: the data, every λ_i = (loc_i, log_scale_i), the model's θ and its
    optimizer.  ``iterate()`` runs one iteration (K λ-steps on a random minibatch, then one
    θ-step); the step sizes ``local_lr`` and ``model_optimizer.lr`` may be changed between
    iterations.

    parameters : the θ to learn (default: every trainable Tensor of the model; for a VAE pass
        ``model.decoder.parameters()``, its encoder has no part here).
    Verified by: tests/objectives/test_svi_learning.py::test_algorithm_1_reaches_the_mle,
    ::test_algorithm_1_with_diagonal_q_reaches_the_mle_in_two_dimensions
    """

    def __init__(self, model, x, rng: np.random.Generator, batch_size: int = 100,
                 inner_steps: int = 5, local_lr: float = 0.05, model_lr: float = 1e-3,
                 n_samples: int = 1, parameters=None):
        self.model, self.x = model, _check_x(x, model)
        self.rng = checks.generator(rng)
        self.batch_size = min(checks.positive_int(batch_size, "batch_size"), len(self.x))
        self.inner_steps = checks.positive_int(inner_steps, "inner_steps")
        self.n_samples = checks.positive_int(n_samples, "n_samples")
        self.local_lr = checks.positive(local_lr, "local_lr", number=True)
        theta = _model_tensors(model) if parameters is None else parameters
        self.model_optimizer = Adam(theta, lr=checks.positive(model_lr, "model_lr", number=True))
        # every q_i starts at the prior N(0, I)
        d = model.prior().event_shape[0]
        self.loc = np.zeros((len(self.x), d), dtype=model.dtype)
        self.log_scale = np.zeros((len(self.x), d), dtype=model.dtype)
        self.theta_steps = 0

    def iterate(self) -> float:
        """One iteration: λ_i ← K ascent steps for i in a random minibatch M, then θ ← one
        ascent step at those λ_i.  Returns M's mean ELBÔ at the θ-step (before it)."""
        batch = self.rng.choice(len(self.x), size=self.batch_size, replace=False)
        x = self.x[batch]
        loc, log_scale = lambda_steps(self.model, x, self.loc[batch], self.log_scale[batch],
                                      self.rng, self.inner_steps, self.local_lr,
                                      self.n_samples)
        self.loc[batch], self.log_scale[batch] = loc, log_scale
        elbo = theta_step(self.model, self.model_optimizer, x, loc, log_scale, self.rng,
                          self.n_samples)
        self.theta_steps += 1
        if not math.isfinite(elbo):
            raise ValueError(f"the ELBO became {elbo} at θ-step {self.theta_steps}: the step "
                             f"sizes (local_lr = {self.local_lr}, model_lr = "
                             f"{self.model_optimizer.lr}) are too large; try smaller ones")
        return elbo

    @property
    def scale(self) -> np.ndarray:
        """σ_i = exp(log σ_i), shape (N, d)."""
        return np.exp(self.log_scale)


@dataclasses.dataclass
class SVILearningResult:
    """The fitted λ_i (loc, scale: (N, d)) and each iteration's minibatch mean ELBÔ."""

    loc: np.ndarray
    scale: np.ndarray
    elbo_history: np.ndarray


def svi_learn(x, model, rng: np.random.Generator, iterations: int, batch_size: int = 100,
              inner_steps: int = 5, local_lr: float = 0.05, model_lr: float = 1e-3,
              n_samples: int = 1, final_lr_fraction: float = 1.0, parameters=None,
              progress: bool = False) -> SVILearningResult:
    """Algorithm 1 for ``iterations`` θ-steps: max over θ and λ_1..λ_N of Σ_i ELBO(x_i; θ, λ_i).

    The model's θ is updated in place.  ``final_lr_fraction`` < 1 shrinks both step sizes
    geometrically to that fraction of their start by the last iteration, so that the noisy
    iterates settle near the joint optimum instead of jittering around it.
    Verified by: tests/objectives/test_svi_learning.py::test_algorithm_1_reaches_the_mle
    """
    iterations = checks.positive_int(iterations, "iterations")
    fraction = checks.real(final_lr_fraction, "final_lr_fraction", 0.0, 1.0, low_open=True)
    learner = StochasticVariationalLearning(model, x, rng, batch_size, inner_steps, local_lr,
                                            model_lr, n_samples, parameters)
    history = np.empty(iterations, dtype=np.float64)
    for t in tqdm(range(iterations), desc="SVI learning", disable=not progress, leave=False):
        shrink = fraction ** (t / max(iterations - 1, 1))
        learner.local_lr, learner.model_optimizer.lr = local_lr * shrink, model_lr * shrink
        history[t] = learner.iterate()
    return SVILearningResult(loc=learner.loc.copy(), scale=learner.scale, elbo_history=history)
