"""The optimal discriminator between two samples, and the density ratio it reveals.

Given x ~ P₁ (density f₁) and x ~ P₀ (density f₀), a discriminator D(x) ∈ (0, 1) is trained to
maximize

    J[D] = E_{x~P₁}[log D(x)] + E_{x~P₀}[log(1 − D(x))]
         = ∫ f₁(x) log D(x) + f₀(x) log(1 − D(x)) dx.

The integrand can be maximized point by point: for fixed a = f₁(x), b = f₀(x) the function
t ↦ a log t + b log(1 − t) on (0, 1) is concave, with derivative a/t − b/(1 − t) vanishing at
t = a/(a + b).  So

    D*(x) = f₁(x) / (f₀(x) + f₁(x)),   f₁(x) = f₀(x) D*(x)/(1 − D*(x)),
    logit D*(x) = log D* − log(1 − D*) = log f₁(x) − log f₀(x).

A discriminator written as D = σ(ℓ) with a logit ℓ therefore estimates the log density ratio
directly: ℓ ≈ log f₁ − log f₀, and log f₁ ≈ log f₀ + ℓ.  Working with ℓ avoids ever forming
D/(1 − D), which overflows as D → 1 and loses every digit as D → 0.  In the logit the objective
reads J = −E₁[softplus(−ℓ)] − E₀[softplus(ℓ)], since log σ(ℓ) = −softplus(−ℓ) and
log(1 − σ(ℓ)) = −softplus(ℓ).

Sample sizes: J is estimated here by the mean over each sample separately, so n₁ ≠ n₀ does not
change the maximizer.  A pooled sum Σ₁ log D + Σ₀ log(1 − D) (logistic regression on the
pooled data) weights the two terms by n₁ and n₀ and is maximized by D = n₁f₁/(n₁f₁ + n₀f₀),
whose logit is log f₁/f₀ + log(n₁/n₀): it would need that prior log-odds subtracted.

Two families of logits: ``LogisticDiscriminator`` (ℓ linear in the features x, x², …, x^degree of
each coordinate; degree 2 contains the exact log ratio of two Gaussians) and
``MLPDiscriminator`` (ℓ an MLP of x).
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.engine.ops.elementwise import stable_sigmoid
from minivae.engine.tensor import Tensor, no_grad
from minivae.nn import MLP, Module
from minivae.optim import Adam


def discriminator_objective(logits_p1: Tensor, logits_p0: Tensor) -> Tensor:
    """J = mean₁ log σ(ℓ) + mean₀ log(1 − σ(ℓ)) = −mean₁ softplus(−ℓ) − mean₀ softplus(ℓ).

    logits_p1 : logits at the draws from P₁;  logits_p0 : logits at the draws from P₀.  Each
    sample is averaged on its own, so the maximizer does not depend on the sample sizes.

    Verified by: tests/divergences/test_discriminator.py::test_d_star_maximizes_the_objective
    """
    for name, logits in (("logits_p1", logits_p1), ("logits_p0", logits_p0)):
        _check_logits(logits, name)
    checks.same_dtype(logits_p1, logits_p0, "logits_p1 and logits_p0")
    return -(-logits_p1).softplus().mean() - logits_p0.softplus().mean()


def _check_logits(logits, name: str) -> None:
    if not isinstance(logits, Tensor) or logits.data.size == 0:
        raise TypeError(f"{name} must be a non-empty Tensor of logits, got "
                        f"{checks.describe(logits)}")
    checks.require(~np.isnan(logits.data), name, "logits (±∞ allowed, no NaN)", logits)


def optimal_logit(log_f1, log_f0) -> np.ndarray:
    """logit D*(x) = log f₁(x) − log f₀(x), from the two log densities at the same points.

    Where only f₀ is 0 it is +∞ (D* = 1), where only f₁ is 0 it is −∞ (D* = 0); where both are 0
    the objective does not depend on D and 0 (D* = ½) is returned.

    Verified by: tests/divergences/test_discriminator.py::test_d_star_maximizes_the_objective
    """
    log_f1, log_f0 = checks.log_density(log_f1, "log_f1"), checks.log_density(log_f0, "log_f0")
    log_f1, log_f0 = np.broadcast_arrays(log_f1, log_f0)
    both_zero = (log_f1 == -np.inf) & (log_f0 == -np.inf)
    with np.errstate(invalid="ignore"):
        return np.where(both_zero, 0, log_f1 - log_f0)


def optimal_discriminator(log_f1, log_f0) -> np.ndarray:
    """D*(x) = f₁/(f₀ + f₁) = σ(log f₁ − log f₀), computed from the logs (no overflow).

    Verified by: tests/divergences/test_discriminator.py::test_d_star_maximizes_the_objective
    """
    return stable_sigmoid(optimal_logit(log_f1, log_f0))


class Discriminator(Module):
    """D(x) = σ(ℓ(x)) with a trainable logit ℓ; subclasses define ``forward(x) → ℓ``.

    Inputs are arrays of shape (n,) (one-dimensional data) or (n, dim).  The inputs are shifted
    and scaled by the pooled training sample's mean and standard deviation before the logit is
    computed; this changes the parametrization, not the family of functions, and keeps Adam's
    steps well scaled.
    """

    def __init__(self, dim: int, dtype):
        self.dim, self.dtype = checks.positive_int(dim, "dim"), checks.float_dtype(dtype)
        self._shift = np.zeros(self.dim, dtype=self.dtype)
        self._scale = np.ones(self.dim, dtype=self.dtype)

    def _points(self, x, name: str = "x") -> np.ndarray:
        """``x`` as a (n, dim) array of the model's dtype, after checking it."""
        array = checks.in_dtype(x, self.dtype, name, "the discriminator's")
        if array.ndim == 1 and self.dim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] != self.dim or array.shape[0] < 1:
            raise ValueError(f"{name} must have shape (n,) or (n, {self.dim}) with n ≥ 1, got "
                             f"{array.shape}")
        checks.finite(array, name)
        return array

    def _encode(self, points: np.ndarray) -> Tensor:
        """The network's input for (n, dim) points: here the standardized points."""
        return Tensor((points - self._shift) / self._scale)

    def logit(self, x) -> np.ndarray:
        """ℓ(x) = logit D(x) = log D(x) − log(1 − D(x)), shape (n,).

        Verified by: tests/divergences/test_discriminator.py::test_logistic_ratio_converges
        """
        with no_grad():
            return self.forward(self._encode(self._points(x))).data[:, 0]

    def probability(self, x) -> np.ndarray:
        """D(x) = σ(ℓ(x)) = 1/(1 + e^(−ℓ(x))), the probability that x came from P₁.

        Verified by: tests/divergences/test_discriminator.py::test_probability_matches_d_star
        """
        return stable_sigmoid(self.logit(x))

    def log_density_ratio(self, x) -> np.ndarray:
        """The estimate of log f₁(x) − log f₀(x): the logit ℓ(x) (exact when D = D*).

        Verified by: tests/divergences/test_discriminator.py::test_logistic_ratio_converges
        """
        return self.logit(x)

    def log_density_estimate(self, x, log_f0) -> np.ndarray:
        """log f₁(x) ≈ log f₀(x) + ℓ(x), i.e. f₁ ≈ f₀ D/(1 − D) without forming D/(1 − D).

        log_f0 : a callable giving log f₀ at the points x (shape (n,)), or those values.

        Verified by: tests/divergences/test_discriminator.py::test_log_density_estimate_recovers_f1
        """
        points = self._points(x)
        values = log_f0(x) if callable(log_f0) else log_f0
        values = np.asarray(values)
        if values.shape != (points.shape[0],):
            raise ValueError(f"log_f0 must give one value per point, shape ({points.shape[0]},), "
                             f"got {values.shape}")
        return values + self.logit(points)

    def fit(self, x1, x0, steps: int = 2000, lr: float = 0.05, batch_size: int | None = None,
            rng: np.random.Generator | None = None, progress: bool = False) -> list[float]:
        """Maximize J (``discriminator_objective``) on x1 ~ P₁ and x0 ~ P₀ with Adam.

        batch_size None uses every draw at every step (the exact empirical objective); otherwise
        each step averages ``batch_size`` draws from each sample (needs ``rng``).  Returns the
        objective after each step.

        Verified by: tests/divergences/test_discriminator.py::test_fit_reaches_the_empirical_maximum
        """
        x1, x0 = self._points(x1, "x1"), self._points(x0, "x0")
        steps = checks.positive_int(steps, "steps")
        batch_size = checks.positive_int(batch_size, "batch_size", optional=True)
        if batch_size is not None:
            rng = checks.generator(rng)
        pooled = np.concatenate([x1, x0])
        self._shift = pooled.mean(axis=0)
        self._scale = np.maximum(pooled.std(axis=0), np.finfo(self.dtype).tiny).astype(self.dtype)
        inputs1, inputs0 = self._encode(x1).data, self._encode(x0).data  # fixed: encode once
        optimizer = Adam(self.parameters(), lr=lr)
        steps_iter = range(steps)
        if progress:
            from tqdm.auto import tqdm
            steps_iter = tqdm(steps_iter, desc="discriminator", leave=False)
        history = []
        for _ in steps_iter:
            if batch_size is None:
                batch1, batch0 = inputs1, inputs0
            else:
                batch1 = inputs1[rng.integers(0, len(inputs1), batch_size)]
                batch0 = inputs0[rng.integers(0, len(inputs0), batch_size)]
            optimizer.zero_grad()
            objective = discriminator_objective(self.forward(Tensor(batch1)),
                                                self.forward(Tensor(batch0)))
            (-objective).backward()
            optimizer.step()
            history.append(float(objective.data))
        return history


def polynomial_features(z: np.ndarray, degree: int) -> np.ndarray:
    """[z, z², …, z^degree] per coordinate: (n, dim) → (n, dim·degree)."""
    return np.concatenate([z ** k for k in range(1, degree + 1)], axis=1)


class LogisticDiscriminator(Discriminator):
    """ℓ(x) = b + Σⱼ Σₖ wⱼₖ zⱼᵏ, k = 1 … degree, z the standardized x: logistic regression.

    With degree 2 and one dimension the family contains the exact log ratio of two Gaussians,
    log N(x; μ₁, σ₁²) − log N(x; μ₀, σ₀²) = log(σ₀/σ₁) − (x − μ₁)²/(2σ₁²) + (x − μ₀)²/(2σ₀²),
    a quadratic in x; J is then concave in (b, w), so Adam finds its single maximum.
    """

    def __init__(self, degree: int = 2, dim: int = 1, dtype=np.float64):
        super().__init__(dim, dtype)
        self.degree = checks.positive_int(degree, "degree")
        self.weight = Tensor(np.zeros((self.dim * self.degree, 1), dtype=self.dtype),
                             requires_grad=True)
        self.bias = Tensor(np.zeros(1, dtype=self.dtype), requires_grad=True)

    def _encode(self, points: np.ndarray) -> Tensor:
        """The features φ(z) of the standardized points (they hold no parameter)."""
        return Tensor(polynomial_features(super()._encode(points).data, self.degree))

    def forward(self, features: Tensor) -> Tensor:
        """ℓ = φ(z) w + b, shape (n, 1)."""
        return features @ self.weight + self.bias


class MLPDiscriminator(Discriminator):
    """ℓ(x) = MLP(z), z the standardized x: a flexible logit for ratios with no known form."""

    def __init__(self, hidden=(32, 32), activation: str = "tanh", dim: int = 1,
                 rng: np.random.Generator | None = None, dtype=np.float64):
        super().__init__(dim, dtype)
        hidden = list(hidden)
        self.network = MLP([self.dim, *hidden, 1], activation, rng=checks.generator(rng),
                           dtype=self.dtype)

    def forward(self, z: Tensor) -> Tensor:
        """ℓ = MLP(z), shape (n, 1)."""
        return self.network(z)
