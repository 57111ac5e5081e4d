"""The optimal discriminator D* = f₁/(f₀ + f₁) and the density ratio a trained one recovers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from minivae import Tensor
from minivae.divergences.discriminator import (
    LogisticDiscriminator,
    MLPDiscriminator,
    discriminator_objective,
    optimal_discriminator,
    optimal_logit,
)
from minivae.divergences.quadrature import trapezoid, uniform_grid
from tests.helpers import demo

P1, P0 = stats.norm(1.0, 0.8), stats.norm(0.0, 1.3)


CENTRAL = np.linspace(-1.5, 2.5, 81)  # where both densities hold most of their mass
TRUE_LOG_RATIO = P1.logpdf(CENTRAL) - P0.logpdf(CENTRAL)


def softplus(x):
    return np.logaddexp(0, x)


@settings(max_examples=30)
@given(data=st.data(), size=st.integers(1, 6))
def test_d_star_maximizes_the_objective(data, size):
    weights = st.lists(st.floats(0.05, 1.0), min_size=size, max_size=size)
    f1, f0 = np.array(data.draw(weights)), np.array(data.draw(weights))
    f1, f0 = f1 / f1.sum(), f0 / f0.sum()

    def exact_objective(logits):  # Σ f₁ log σ(ℓ) + Σ f₀ log(1 − σ(ℓ)), exact expectations
        return np.sum(-f1 * softplus(-logits) - f0 * softplus(logits))

    best = optimal_logit(np.log(f1), np.log(f0))
    np.testing.assert_allclose(optimal_discriminator(np.log(f1), np.log(f0)), f1 / (f0 + f1),
                               rtol=1e-12)
    rng = np.random.default_rng(size)
    for _ in range(5):
        perturbed = best + rng.normal(0, 0.3, size)
        assert exact_objective(perturbed) < exact_objective(best)
    # Two samples of different sizes on the same support points: the per-sample means of
    # ``discriminator_objective`` have zero gradient at the logit of the empirical frequencies,
    # log(c₁/n₁) − log(c₀/n₀), with no log(n₁/n₀) offset.
    counts1 = rng.integers(1, 5, size)
    counts0 = 3 * rng.integers(1, 5, size)  # a larger sample
    freq1, freq0 = counts1 / counts1.sum(), counts0 / counts0.sum()
    logits = Tensor(optimal_logit(np.log(freq1), np.log(freq0)), requires_grad=True)
    objective = discriminator_objective(logits[np.repeat(np.arange(size), counts1)],
                                        logits[np.repeat(np.arange(size), counts0)])
    objective.backward()
    np.testing.assert_allclose(logits.grad, 0.0, atol=1e-12)
    assert float(objective.data) == pytest.approx(
        np.sum(-freq1 * softplus(-logits.data) - freq0 * softplus(logits.data)), rel=1e-12)


def test_optimal_discriminator_handles_zero_densities():
    log_f1 = np.array([0.0, -np.inf, -np.inf, 800.0])
    log_f0 = np.array([-np.inf, 0.0, -np.inf, -800.0])
    np.testing.assert_array_equal(optimal_discriminator(log_f1, log_f0), [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(optimal_logit(log_f1, log_f0), [np.inf, -np.inf, 0.0, 1600.0])


def sample(n1, n0, seed):
    rng = np.random.default_rng(seed)
    return P1.rvs(n1, random_state=rng), P0.rvs(n0, random_state=rng)


def standard_error_of_log_ratio(n1, n0, x):
    """The asymptotic standard error of the fitted logit at x for logistic regression on
    φ = (1, x, x²): θ̂ − θ* ≈ −H⁻¹ ∇L̂(θ*) with Cov ∇L̂ = C₁/n₁ + C₀/n₀, where Cₖ is the
    covariance under Pₖ of one draw's loss gradient and H the Hessian of the expected loss
    (expectations by quadrature).  SE(x)² = φ(x)ᵀ H⁻¹ (C₁/n₁ + C₀/n₀) H⁻¹ φ(x)."""
    grid = uniform_grid(-12.0, 12.0, 24001)
    features = np.stack([np.ones_like(grid), grid, grid**2])
    logit = P1.logpdf(grid) - P0.logpdf(grid)
    d_star = 1 / (1 + np.exp(-logit))
    densities = {1: P1.pdf(grid), 0: P0.pdf(grid)}
    gradients = {1: -(1 - d_star) * features, 0: d_star * features}  # of softplus(∓ℓ)
    hessian = sum(trapezoid(d_star * (1 - d_star) * features[:, None] * features[None] * f, grid)
                  for f in densities.values())
    covariance = 0
    for k, n in ((1, n1), (0, n0)):
        mean = trapezoid(gradients[k] * densities[k], grid)
        second = trapezoid(gradients[k][:, None] * gradients[k][None] * densities[k], grid)
        covariance = covariance + (second - np.outer(mean, mean)) / n
    sandwich = np.linalg.solve(hessian, np.linalg.solve(hessian, covariance).T)
    phi = np.stack([np.ones_like(x), x, x**2])
    return np.sqrt(np.einsum("in,ij,jn->n", phi, sandwich, phi))


@pytest.fixture(scope="module")
def large_fit():
    x1, x0 = sample(20_000, 20_000, seed=1)
    model = LogisticDiscriminator(degree=2)
    model.fit(x1, x0, steps=500, lr=0.05)
    return model


@pytest.mark.parametrize("n1, n0", [(20_000, 20_000), (4_000, 16_000)])
def test_logistic_ratio_converges(n1, n0, large_fit):
    if n1 == n0:
        model = large_fit
    else:
        model = LogisticDiscriminator(degree=2)
        model.fit(*sample(n1, n0, seed=2), steps=500, lr=0.05)
    error = model.log_density_ratio(CENTRAL) - TRUE_LOG_RATIO
    # By Cauchy–Schwarz sup_x |φ(x)ᵀδ| / SE(x) ≤ √(δᵀΣ⁻¹δ) ~ √χ²₃, so 5 SE holds along the
    # whole curve at once except with probability P(χ²₃ > 25) ≈ 1e-5.  With the pooled
    # (sample-size weighted) objective the unequal case would be off by log(n₁/n₀) ≈ −1.39.
    assert np.all(np.abs(error) <= 5 * standard_error_of_log_ratio(n1, n0, CENTRAL))
    np.testing.assert_array_equal(model.logit(CENTRAL), model.log_density_ratio(CENTRAL))
    if n1 == n0:
        small = LogisticDiscriminator(degree=2)
        small.fit(*sample(500, 500, seed=1), steps=500, lr=0.05)
        small_error = small.log_density_ratio(CENTRAL) - TRUE_LOG_RATIO
        assert np.sqrt(np.mean(error**2)) < np.sqrt(np.mean(small_error**2)) / 2  # √40 expected


def test_probability_matches_d_star(large_fit):
    probability = large_fit.probability(CENTRAL)
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-large_fit.logit(CENTRAL))),
                               rtol=1e-12)
    d_star = optimal_discriminator(P1.logpdf(CENTRAL), P0.logpdf(CENTRAL))
    # |σ(a) − σ(b)| ≤ |a − b|/4
    assert np.all(np.abs(probability - d_star)
                  <= 5 * standard_error_of_log_ratio(20_000, 20_000, CENTRAL) / 4)


def test_log_density_estimate_recovers_f1(large_fit):
    estimate = large_fit.log_density_estimate(CENTRAL, P0.logpdf)
    assert np.all(np.abs(estimate - P1.logpdf(CENTRAL))
                  <= 5 * standard_error_of_log_ratio(20_000, 20_000, CENTRAL))
    far = np.array([-60.0, 60.0])  # D rounds to 0 or 1 here, yet the estimate stays exact
    np.testing.assert_array_equal(large_fit.log_density_estimate(far, P0.logpdf(far)),
                                  P0.logpdf(far) + large_fit.logit(far))
    assert np.all(np.isfinite(large_fit.log_density_estimate(far, P0.logpdf)))


def test_fit_reaches_the_empirical_maximum():
    x1, x0 = sample(2_000, 3_000, seed=3)
    model = LogisticDiscriminator(degree=2)
    history = model.fit(x1, x0, steps=500, lr=0.05)

    def loss(theta):  # −J for ℓ = θ₀ + θ₁x + θ₂x², minimized by scipy's BFGS
        return (softplus(-(theta[0] + theta[1] * x1 + theta[2] * x1**2)).mean()
                + softplus(theta[0] + theta[1] * x0 + theta[2] * x0**2).mean())

    best = optimize.minimize(loss, np.zeros(3), method="BFGS", options={"gtol": 1e-10})
    assert history[-1] == pytest.approx(-best.fun, abs=1e-8)
    oracle = best.x[0] + best.x[1] * CENTRAL + best.x[2] * CENTRAL**2
    np.testing.assert_allclose(model.log_density_ratio(CENTRAL), oracle, atol=1e-3)


def test_mlp_ratio_is_close_on_the_central_region():
    n = 3_000
    x1, x0 = sample(n, n, seed=4)
    model = MLPDiscriminator(hidden=(16,), rng=np.random.default_rng(0))
    model.fit(x1, x0, steps=400, lr=0.03)
    error = model.log_density_ratio(CENTRAL) - TRUE_LOG_RATIO
    # The MLP holds no quadratic exactly and has more parameters than the quadratic model;
    # allow its error 2× the correctly specified model's 5-SE band at the same n.
    assert np.all(np.abs(error) <= 2 * 5 * standard_error_of_log_ratio(n, n, CENTRAL))
    assert np.sqrt(np.mean(error**2)) < 0.15


def test_bad_inputs_are_rejected():
    model = LogisticDiscriminator()
    with pytest.raises(TypeError, match="dtype"):
        model.fit(np.zeros(10, np.float32), np.zeros(10))
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((10, 2)), np.zeros(10))
    with pytest.raises(ValueError, match="finite"):
        model.fit(np.array([0.0, np.nan]), np.zeros(10))
    with pytest.raises(ValueError, match="steps"):
        model.fit(np.zeros(10), np.zeros(10), steps=0)
    with pytest.raises(TypeError, match="rng"):
        model.fit(np.zeros(10), np.zeros(10), batch_size=4)
    with pytest.raises(ValueError, match="degree"):
        LogisticDiscriminator(degree=0)
    with pytest.raises(ValueError, match="one value per point"):
        model.log_density_estimate(np.zeros(3), np.zeros(4))


def test_minibatch_fit_approaches_the_full_batch_maximum_in_two_dimensions():
    # P₁ = N((1, 0), I), P₀ = N(0, I): log f₁/f₀ = x₁ − ½, linear in the first coordinate only
    rng = np.random.default_rng(5)
    x1 = rng.normal(size=(4000, 2)) + np.array([1.0, 0.0])
    x0 = rng.normal(size=(4000, 2))

    def empirical_objective(model):
        return float(discriminator_objective(Tensor(model.logit(x1)), Tensor(model.logit(x0))).data)

    full = LogisticDiscriminator(degree=1, dim=2)
    full.fit(x1, x0, steps=500, lr=0.05)
    minibatch = LogisticDiscriminator(degree=1, dim=2)
    minibatch.fit(x1, x0, steps=800, lr=0.01, batch_size=500, rng=rng)
    # J is concave in the parameters; near its maximum J_max − J ≈ ½ δᵀHδ, and 1e-3 allows
    # parameter errors δ of a few hundredths, the scale of the minibatch gradient noise
    assert empirical_objective(full) - 1e-3 <= empirical_objective(minibatch) \
        <= empirical_objective(full) + 1e-9
    points = rng.normal(size=(200, 2)) + np.array([0.5, 0.0])
    # the full-batch fit is within 5 SE of the truth; SE ≈ √(2·(1 + x²)/(n·0.2)) ≲ 0.08 here
    np.testing.assert_allclose(full.log_density_ratio(points), points[:, 0] - 0.5, atol=0.4)


def test_demo_writes_clear_pictures(tmp_path):
    from matplotlib.image import imread

    density_ratio = demo("density_ratio")
    paths = density_ratio.main(density_ratio.parse_args(["--out", str(tmp_path), "--n", "1000",
                                                         "--steps", "150", "--quiet"]))
    assert {p.name for p in paths} == {"density_ratio.png", "jensen_shannon.png"}
    for path in paths:
        assert imread(path).std() > 0.05
    assert not list(tmp_path.glob("*.tmp*"))
