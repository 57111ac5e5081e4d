"""Surrogate objectives for ELBO gradients: values, unbiasedness, variances, discrete latents.

Continuous checks use the linear-Gaussian model, where the exact gradient of
ELBO(φ, θ) = log p(x) − KL(q ‖ p(z|x)) is available through closed forms; each Monte Carlo
comparison draws many independent estimates (a fresh generator each) and allows 5 standard
errors per coordinate.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae import Tensor, kl_divergence
from minivae.distributions import DiagonalNormal, Independent, MultivariateNormal, Normal
from minivae.models import LinearGaussian
from minivae.objectives.gradients import discrete_elbo_surrogate, elbo_surrogate, stop_gradient
from tests.helpers import demo

N_ESTIMATES = 1500


X_DIM, Z_DIM, BATCH = 3, 2, 2


def linear_gaussian_problem(posterior_q: bool = False):
    """(model, x, leaf parameters): W is the model's, the rest are q's (a diagonal Gaussian
    away from the posterior, or the exact posterior as a MultivariateNormal)."""
    rng = np.random.default_rng(7)
    W = Tensor(rng.normal(size=(X_DIM, Z_DIM)), requires_grad=True)
    b, sigma = rng.normal(size=X_DIM), 0.8
    x = rng.normal(size=(BATCH, X_DIM)) * 1.5
    if posterior_q:
        exact = LinearGaussian(W.data, b, sigma).posterior(x)
        q_params = [Tensor(exact.loc.data, requires_grad=True),
                    Tensor(exact.scale_tril.data, requires_grad=True)]
        q = MultivariateNormal(*q_params)
    else:
        q_params = [Tensor(rng.normal(size=(BATCH, Z_DIM)), requires_grad=True),
                    Tensor(np.exp(rng.normal(size=(BATCH, Z_DIM)) * 0.3), requires_grad=True)]
        q = Independent(Normal(*q_params), 1)
    model = LinearGaussian(W, b, sigma, encoder=lambda _: q)
    return model, x, [*q_params, W]


def flat_gradient(objective, params) -> np.ndarray:
    for p in params:
        p.grad = None
    objective().sum().backward()
    return np.concatenate([np.zeros(p.size) if p.grad is None else p.grad.ravel()
                           for p in params])


def exact_elbo(model, x) -> Tensor:
    """ELBO = log p(x) − KL(q ‖ p(z|x)), per example, from closed forms."""
    return model.log_marginal(x) - kl_divergence(model.encode(x), model.posterior(x))


@functools.lru_cache(maxsize=None)
def estimates(estimator: str, n_samples: int = 1, baseline=None, posterior_q=False,
              n_estimates=N_ESTIMATES):
    """Independent gradient estimates (rows), each from its own generator, and the exact
    gradient; columns: q's parameters (loc, then scale or scale_tril), then W."""
    model, x, params = linear_gaussian_problem(posterior_q)
    if baseline == "exact":  # the true per-example ELBO: a good constant baseline
        baseline = exact_elbo(model, x).data
    rows = [flat_gradient(lambda i=i: elbo_surrogate(model, x, np.random.default_rng([11, i]),
                                                     estimator, n_samples, baseline), params)
            for i in range(n_estimates)]
    return np.array(rows), flat_gradient(lambda: exact_elbo(model, x), params)


def test_stop_gradient_blocks_parameters():
    rng = np.random.default_rng(0)
    loc, scale_tril = Tensor(rng.normal(size=(2, 3)), requires_grad=True), Tensor(
        np.tril(rng.normal(size=(3, 3)) * 0.3) + np.eye(3), requires_grad=True)
    q = MultivariateNormal(loc, scale_tril)
    stopped = stop_gradient(q)
    assert type(stopped) is MultivariateNormal and stopped.batch_shape == q.batch_shape
    assert q.loc is loc and q.loc.requires_grad  # the original is untouched
    z = Tensor(rng.normal(size=(5, 2, 3)), requires_grad=True)
    np.testing.assert_array_equal(stopped.log_prob(z).data, q.log_prob(z).data)
    stopped.log_prob(z).sum().backward()
    assert loc.grad is None and scale_tril.grad is None
    z_grad_stopped, z.grad = z.grad.copy(), None
    q.log_prob(z).sum().backward()  # the gradient with respect to the point is unchanged
    np.testing.assert_allclose(z_grad_stopped, z.grad, rtol=1e-14, atol=0)
    assert loc.grad is not None


def test_stop_gradient_walks_nested_distributions():
    loc = Tensor(np.array([[0.5, -1.0]]), requires_grad=True)
    log_var = Tensor(np.array([[0.2, -0.4]]), requires_grad=True)
    q = DiagonalNormal(loc, log_var)  # Independent whose base is a Normal built from loc
    stopped = stop_gradient(q)
    assert isinstance(stopped, DiagonalNormal) and stopped.base is not q.base
    assert not any(t.requires_grad for t in (stopped.loc, stopped.log_var,
                                             stopped.base.loc, stopped.base.scale))
    assert q.base.loc.requires_grad and q.base.scale.requires_grad
    with pytest.raises(ValueError, match="does not require grad"):
        stopped.log_prob(np.zeros((1, 2))).sum().backward()
    with pytest.raises(TypeError, match="q must be a Distribution"):
        stop_gradient(loc)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), n_samples=st.integers(1, 4))
def test_surrogate_value_is_the_elbo_estimate(seed, n_samples):
    """Same noise, same value for every estimator: (1/S) Σ_s log p(x, z_s) − log q(z_s)."""
    model, x, _ = linear_gaussian_problem()
    q = model.encode(x)
    z = q.sample(np.random.default_rng(seed), (n_samples,))
    direct = (model.log_joint(x, z) - q.log_prob(z)).data.mean(axis=0)
    for estimator, baseline in (("pathwise", None), ("stl", None), ("score", None),
                                ("score", 3.0), ("score", "mean" if n_samples > 1 else None)):
        value = elbo_surrogate(model, x, np.random.default_rng(seed), estimator, n_samples,
                               baseline)
        assert value.shape == (BATCH,)
        np.testing.assert_allclose(value.data, direct, rtol=1e-13, atol=1e-13)


def test_surrogate_value_is_unbiased_for_the_elbo():
    model, x, _ = linear_gaussian_problem()
    exact = exact_elbo(model, x).data
    draws = np.stack([elbo_surrogate(model, x, np.random.default_rng([3, i])).data
                      for i in range(400)])
    standard_error = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - exact) <= 5 * standard_error)
    # S samples in one call: the same estimate, with a standard error √S times smaller
    many = elbo_surrogate(model, x, np.random.default_rng(3), "score", 4000).data
    assert np.all(np.abs(many - exact) <= 5 * draws.std(axis=0, ddof=1) / np.sqrt(4000))


@pytest.mark.parametrize("estimator,n_samples,baseline", [
    ("pathwise", 1, None), ("stl", 1, None), ("score", 1, None), ("score", 1, "exact"),
    ("score", 2, "mean")])
def test_continuous_estimators_are_unbiased(estimator, n_samples, baseline):
    rows, exact = estimates(estimator, n_samples, baseline)
    standard_error = rows.std(axis=0, ddof=1) / np.sqrt(len(rows))
    assert np.all(standard_error > 0)
    np.testing.assert_array_less(np.abs(rows.mean(axis=0) - exact), 5 * standard_error)
    # the check has power: the standard errors are small next to the gradient itself
    assert standard_error.max() < 0.25 * np.abs(exact).max()


def test_score_variance_and_baselines():
    """Per coordinate of q's parameters (loc, scale): Var[score] > Var[pathwise], and
    baselines lower Var[score].  (For the model's W the estimators coincide: ∇_θ log p(x, z).)"""
    q_coordinates = slice(0, 2 * BATCH * Z_DIM)
    variance = {key: estimates(*key)[0][:, q_coordinates].var(axis=0, ddof=1) for key in (
        ("pathwise", 1, None), ("score", 1, None), ("score", 1, "exact"), ("score", 2, None),
        ("score", 2, "mean"))}
    assert np.all(variance[("score", 1, None)] > 2 * variance[("pathwise", 1, None)])
    assert np.all(variance[("score", 1, "exact")] < 0.7 * variance[("score", 1, None)])
    assert np.all(variance[("score", 2, "mean")] < 0.7 * variance[("score", 2, None)])


def test_stl_has_zero_variance_at_the_exact_posterior():
    stl, exact = estimates("stl", 1, None, True, 200)
    pathwise, _ = estimates("pathwise", 1, None, True, 200)
    # q's parameters: loc (B, d) and the lower triangle of the shared scale_tril (d, d); the
    # entries above the diagonal are not parameters of a Cholesky factor
    lower = np.tril(np.ones((Z_DIM, Z_DIM), bool)).ravel()
    q_coordinates = np.flatnonzero(np.concatenate([np.ones(BATCH * Z_DIM, bool), lower]))
    np.testing.assert_allclose(exact[q_coordinates], 0.0, atol=1e-12)  # KL is at its minimum
    np.testing.assert_allclose(stl[:, q_coordinates], 0.0, atol=1e-12)
    spread = pathwise[:, q_coordinates].std(axis=0)
    assert spread[np.abs(spread) > 0].size >= BATCH * Z_DIM and spread.max() > 0.1


def test_bad_arguments_are_reported():
    model, x, _ = linear_gaussian_problem()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="estimator must be one of"):
        elbo_surrogate(model, x, rng, "reinforce")
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        elbo_surrogate(model, x, rng, n_samples=0)
    with pytest.raises(ValueError, match="baseline='mean' needs n_samples >= 2"):
        elbo_surrogate(model, x, rng, "score", baseline="mean")
    with pytest.raises(ValueError, match="baseline applies to estimator='score' only"):
        elbo_surrogate(model, x, rng, "pathwise", baseline=1.0)
    with pytest.raises(ValueError, match="baseline must broadcast"):
        elbo_surrogate(model, x, rng, "score", n_samples=3, baseline=np.zeros(5))
    with pytest.raises(TypeError, match="baseline must have dtype float64"):
        elbo_surrogate(model, x, rng, "score", baseline=np.zeros(2, np.float32))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        elbo_surrogate(model, x, 0)
    with pytest.raises(ValueError, match="logits must have shape"):
        discrete_elbo_surrogate(lambda c: c.sum(axis=-1), Tensor(np.zeros(3)), rng)
    with pytest.raises(ValueError, match="log_joint must return a Tensor of shape"):
        discrete_elbo_surrogate(lambda c: c, Tensor(np.zeros((2, 3))), rng)


def test_float32_is_preserved():
    loc = Tensor(np.zeros((2, 2), np.float32), requires_grad=True)
    log_var = Tensor(np.zeros((2, 2), np.float32), requires_grad=True)
    model = LinearGaussian(np.ones((3, 2), np.float32), np.zeros(3, np.float32),
                           np.float32(1.0), encoder=lambda _: DiagonalNormal(loc, log_var))
    x = np.ones((2, 3), np.float32)
    for estimator in ("pathwise", "score", "stl"):
        value = elbo_surrogate(model, x, np.random.default_rng(0), estimator, 3,
                               "mean" if estimator == "score" else None)
        value.sum().backward()
        assert value.dtype == np.float32 and loc.grad.dtype == np.float32
    logits = Tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    for estimator in ("score", "gumbel_softmax", "straight_through"):
        value = discrete_elbo_surrogate(lambda c: c.sum(axis=-1), logits,
                                        np.random.default_rng(0), estimator)
        assert value.dtype == np.float32


A = np.array([0.3, -1.2, 0.8])
LOGITS = np.array([0.4, -0.3, 0.1])


def exact_discrete_gradient() -> np.ndarray:
    """∂/∂l_j Σ_c π_c (a_c − log π_c) = π_j (a_j − log π_j − L), by enumerating the classes."""
    log_pi = LOGITS - np.log(np.exp(LOGITS).sum())
    g = A - log_pi
    elbo = np.exp(log_pi) @ g
    return np.exp(log_pi) * (g - elbo)


def discrete_estimates(estimator, n=20000, seed=0, **options):
    logits = Tensor(np.tile(LOGITS, (n, 1)), requires_grad=True)
    seen = []

    def log_joint(c):
        seen.append(c.data)
        return (c * A).sum(axis=-1)

    value = discrete_elbo_surrogate(log_joint, logits, np.random.default_rng(seed), estimator,
                                    **options)
    value.sum().backward()
    return logits.grad, value.data, seen


@pytest.mark.parametrize("options", [{}, {"n_samples": 3, "baseline": "mean"},
                                     {"baseline": 0.5}])
def test_discrete_score_estimator_is_unbiased(options):
    rows, _, _ = discrete_estimates("score", **options)
    standard_error = rows.std(axis=0, ddof=1) / np.sqrt(len(rows))
    exact = exact_discrete_gradient()
    np.testing.assert_array_less(np.abs(rows.mean(axis=0) - exact), 5 * standard_error)
    assert standard_error.max() < 0.1 * np.abs(exact).max()


def test_gumbel_softmax_bias_shrinks_with_temperature():
    exact = exact_discrete_gradient()
    bias, error = [], []
    for temperature in (2.0, 1.0, 0.5, 0.1):
        rows, _, seen = discrete_estimates("gumbel_softmax", n=100_000, temperature=temperature)
        if temperature >= 0.5:  # relaxed points, not vertices (colder ones round to them)
            assert np.all(seen[0].max(axis=-1) < 1)
        standard_error = rows.std(axis=0, ddof=1) / np.sqrt(len(rows))
        bias.append(np.linalg.norm(rows.mean(axis=0) - exact))
        error.append(np.linalg.norm(standard_error))
    assert bias[0] > 20 * error[0]  # clearly biased at a high temperature
    for hot, cold in ((0, 1), (1, 2)):  # each drop exceeds the noise of both estimates
        assert bias[hot] > bias[cold] + 5 * (error[hot] + error[cold])
    # at τ = 0.1 what is left is below what 100,000 estimates can resolve (per coordinate)
    np.testing.assert_array_less(np.abs(rows.mean(axis=0) - exact), 5 * standard_error)


def test_straight_through_forward_uses_hard_one_hot_samples():
    rows, values, seen = discrete_estimates("straight_through", temperature=0.5)
    c = seen[0]
    assert set(np.unique(c)) == {0.0, 1.0} and np.all(c.sum(axis=-1) == 1)
    log_pi = LOGITS - np.log(np.exp(LOGITS).sum())
    index = c[0].argmax(axis=-1)
    np.testing.assert_allclose(values, A[index] - log_pi[index], rtol=1e-14)
    # the hard draws are exact categorical draws: the value is unbiased for the ELBO
    elbo = np.exp(log_pi) @ (A - log_pi)
    assert abs(values.mean() - elbo) < 5 * values.std(ddof=1) / np.sqrt(len(values))
    assert np.all(np.isfinite(rows)) and np.abs(rows).max() > 0  # a gradient flows


def test_gradient_estimators_demo_runs(tmp_path, capsys):
    gradient_estimators = demo("gradient_estimators")
    args = gradient_estimators.parse_args(["--out", str(tmp_path), "--steps", "4",
                                           "--every", "2", "--replicas", "5"])
    table = gradient_estimators.main(args)
    assert (tmp_path / "gradient_variance.png").stat().st_size > 10_000
    assert [row["step"] for row in table] == [0, 2, 4]
    for row in table:
        assert all(np.isfinite(row[name]) and row[name] >= 0
                   for name in gradient_estimators.ESTIMATORS)
    assert "pathwise" in capsys.readouterr().out


@pytest.mark.parametrize("estimator", ["score", "gumbel_softmax", "straight_through"])
def test_discrete_surrogate_with_a_class_of_probability_zero(estimator):
    """A logit −∞ (π_k = 0): that class is never drawn, so it adds nothing to log q(c) — no
    0 · (−∞) = NaN in the value, and finite gradients to the finite logits."""
    logits = Tensor(np.array([[-np.inf, 0.0, 1.0], [0.5, 0.0, -0.5]]), requires_grad=True)
    target = np.arange(3.0)
    value = discrete_elbo_surrogate(lambda c: -((c - target) ** 2).sum(axis=-1), logits,
                                    np.random.default_rng(0), estimator, 0.5, n_samples=8)
    assert np.isfinite(value.data).all()
    value.sum().backward()
    assert np.isfinite(logits.grad).all() and logits.grad[0, 0] == 0  # π_0 = 0 stays 0


# the extreme inputs overflow on purpose (IEEE ∞), which NumPy reports
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("estimator", ["pathwise", "stl", "score"])
def test_elbo_surrogate_refuses_data_it_cannot_score_finitely(estimator):
    """x = 1e300 under a Gaussian likelihood: log p(x | z) is below the float range, so the
    ELBO term is −∞ and has no gradient; a ValueError names x instead of a NaN gradient."""
    model, x, _ = linear_gaussian_problem()
    x = x.copy()
    x[1, 0] = 1e300
    with pytest.raises(ValueError, match="x must be a batch the model scores with finite "
                                         r"numbers.*example 1"):
        elbo_surrogate(model, x, np.random.default_rng(0), estimator)
