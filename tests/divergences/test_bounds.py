"""R1[T] ≤ R2[T] ≤ KL(p‖q): exact expectations on discrete supports and quadrature grids, the
gradients, and a trained critic."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae import Tensor, gradcheck, kl_divergence
from minivae.distributions import Normal
from minivae.divergences.bounds import r1_bound, r2_bound, train_critic
from minivae.divergences.quadrature import uniform_grid
from tests.helpers import demo

EXACT = 1e-12  # float64 rounding on sums of a few terms


@st.composite
def discrete_pair_and_critic(draw):
    """Strictly positive p and q on k points, and critic values T on those points."""
    k = draw(st.integers(2, 8))
    masses = st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)
    p, q = np.array(draw(masses)), np.array(draw(masses))
    t = np.array(draw(st.lists(st.floats(-6.0, 6.0), min_size=k, max_size=k)))
    return p / p.sum(), q / q.sum(), t


def exact_bounds(t, p, q):
    """R1 and R2 with exact expectations: the critic at each support point, weighted."""
    values = Tensor(t)
    return (float(r1_bound(values, values, p_weights=p, q_weights=q).data),
            float(r2_bound(values, values, p_weights=p, q_weights=q).data))


@given(discrete_pair_and_critic())
def test_r1_below_r2_below_kl(case):
    p, q, t = case
    kl = float(np.sum(special.rel_entr(p, q)))
    r1, r2 = exact_bounds(t, p, q)
    # the bounds by their definitions, written out independently
    assert r1 == pytest.approx(p @ t - q @ np.exp(t - 1), abs=EXACT)
    assert r2 == pytest.approx(p @ t - np.log(q @ np.exp(t)), abs=EXACT)
    assert r1 <= r2 + EXACT
    assert r2 <= kl + EXACT


@given(discrete_pair_and_critic(), st.floats(-5.0, 5.0))
def test_optimal_critics_attain_kl_on_discrete_supports(case, c):
    p, q, _ = case
    kl = float(np.sum(special.rel_entr(p, q)))
    log_ratio = np.log(p) - np.log(q)
    r1_optimal, _ = exact_bounds(log_ratio + 1, p, q)
    assert r1_optimal == pytest.approx(kl, abs=1e-12)
    r1_shifted, r2_shifted = exact_bounds(log_ratio + c, p, q)
    assert r2_shifted == pytest.approx(kl, abs=1e-12)  # R2 does not see the constant
    # R1[log(p/q) + c] = KL + c − E_q[(p/q) e^(c−1)] = KL − (e^(c−1) − c), and e^(c−1) − c ≥ 0
    # with equality only at c = 1
    assert r1_shifted == pytest.approx(kl - (np.exp(c - 1) - c), abs=1e-11)
    if abs(c - 1) > 1e-3:
        assert r1_shifted < kl


def trapezoid_weights(grid):
    """Weights of the trapezoid rule on a uniform grid: h, with h/2 at both ends."""
    weights = np.full(grid.shape, grid[1] - grid[0])
    weights[[0, -1]] /= 2
    return weights


@settings(max_examples=25)
@given(mu_p=st.floats(-2, 2), sigma_p=st.floats(0.5, 2), mu_q=st.floats(-2, 2),
       sigma_q=st.floats(0.5, 2), a=st.floats(-2, 2), b=st.floats(-1, 1),
       curvature=st.floats(-0.5, 0.2), shift=st.floats(-3, 3))
def test_gaussian_bounds_by_quadrature(mu_p, sigma_p, mu_q, sigma_q, a, b, curvature, shift):
    grid = uniform_grid(-40.0, 40.0, 16001)
    h = trapezoid_weights(grid)
    log_p = stats.norm(mu_p, sigma_p).logpdf(grid)
    log_q = stats.norm(mu_q, sigma_q).logpdf(grid)
    p_weights, q_weights = np.exp(log_p) * h, np.exp(log_q) * h
    kl = float(kl_divergence(Normal(mu_p, sigma_p), Normal(mu_q, sigma_q)).data)
    assert kl == pytest.approx(np.sum(p_weights * (log_p - log_q)), abs=1e-9)

    def bounds(t):
        values = Tensor(t)
        return (float(r1_bound(values, values, p_weights, q_weights).data),
                float(r2_bound(values, values, p_weights, q_weights).data))

    # a random quadratic critic, curvature < 1/(2σ_q²) so that E_q[e^T] is finite
    r1, r2 = bounds(a + b * grid + curvature / sigma_q**2 * grid**2)
    assert r1 <= r2 + 1e-12
    assert r2 <= kl + 1e-9
    # the log ratio of two Gaussians is itself quadratic: the optimum lies in the family
    r1_optimal, r2_optimal = bounds(log_p - log_q + 1)
    assert r1_optimal == pytest.approx(kl, abs=1e-8)
    assert r2_optimal == pytest.approx(kl, abs=1e-8)
    assert bounds(log_p - log_q + shift)[1] == pytest.approx(kl, abs=1e-8)


@pytest.mark.parametrize("bound", [r1_bound, r2_bound])
def test_bounds_pass_gradcheck(bound):
    rng = np.random.default_rng(3)
    t_p, t_q = rng.normal(size=7), rng.normal(size=5)
    p_weights, q_weights = rng.uniform(0.1, 1, 7), rng.uniform(0.1, 1, 5)
    gradcheck(lambda a, b: bound(a, b), t_p, t_q)
    gradcheck(lambda a, b: bound(a, b, p_weights, q_weights), t_p, t_q)
    # the (n, 1) column a critic network returns
    gradcheck(lambda a, b: bound(a, b), t_p.reshape(-1, 1), t_q.reshape(-1, 1))


def test_dtype_is_kept_and_large_critic_values_are_stable():
    rng = np.random.default_rng(4)
    t_p, t_q = rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32)
    assert r1_bound(Tensor(t_p), Tensor(t_q)).dtype == np.float32
    assert r2_bound(Tensor(t_p), Tensor(t_q), np.ones(6), np.ones(6)).dtype == np.float32
    # e^200 overflows float32 and e^1000 float64; log E_q[e^T] does not
    big = np.array([200.0, 1000.0, -50.0])
    value = float(r2_bound(Tensor(big), Tensor(big), q_weights=[0.5, 0.5, 0.0]).data)
    assert value == pytest.approx(np.mean(big) - (1000.0 + np.log(0.5)), rel=1e-12)
    with pytest.raises(FloatingPointError, match="overflows float32"):
        r1_bound(Tensor(t_p), Tensor(np.array([200.0], np.float32)))
    # a zero weight drops its point, without a NaN in the gradient
    t = Tensor(np.array([0.3, 800.0]), requires_grad=True)
    r1_bound(t, t, q_weights=[1.0, 0.0]).backward()
    assert np.all(np.isfinite(t.grad))


def test_bad_inputs_are_rejected():
    good = Tensor(np.zeros(3))
    with pytest.raises(ValueError, match="t_p must have shape"):
        r1_bound(Tensor(np.zeros((3, 2))), good)
    with pytest.raises(ValueError, match="t_q contains NaN"):
        r2_bound(good, Tensor(np.array([0.0, np.nan])))
    with pytest.raises(TypeError, match="t_q must be a Tensor"):
        r2_bound(good, [0.0, 1.0])
    with pytest.raises(TypeError, match="share one dtype"):
        r1_bound(good, Tensor(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="p_weights must have shape"):
        r1_bound(good, good, p_weights=np.ones(4))
    with pytest.raises(ValueError, match="q_weights must be finite, non-negative"):
        r2_bound(good, good, q_weights=np.array([1.0, -1.0, 1.0]))
    samples = np.zeros((20, 1))
    with pytest.raises(ValueError, match="bound must be one of"):
        train_critic(samples, samples, bound="kl")
    with pytest.raises(ValueError, match="same dimension"):
        train_critic(samples, np.zeros((20, 2)))
    with pytest.raises(TypeError, match="share one dtype"):
        train_critic(samples, np.zeros((20, 1), np.float32))
    with pytest.raises(TypeError, match="samples_p must be a float32 or float64"):
        train_critic(np.zeros((20, 1), int), samples)
    with pytest.raises(ValueError, match="held_out"):
        train_critic(samples, samples, held_out=1.0)


def r2_with_standard_error(critic, x_p, x_q):
    """R2 on a sample and its delta-method standard error:
    Var ≈ Var_p[T]/n_p + Var_q[e^T]/(E_q[e^T]² n_q)."""
    t_p = critic(Tensor(x_p)).data.ravel()
    t_q = critic(Tensor(x_q)).data.ravel()
    ratio = np.exp(t_q - t_q.max())
    variance = t_p.var() / t_p.size + ratio.var() / (ratio.mean() ** 2 * t_q.size)
    return float(r2_bound(Tensor(t_p), Tensor(t_q)).data), float(np.sqrt(variance))


def test_trained_critic_reaches_the_true_kl():
    """p = N(1, 0.7²), q = N(0, 1): KL = log(1/0.7) + (0.49 + 1)/2 − 1/2 ≈ 0.602."""
    rng = np.random.default_rng(5)
    x_p, x_q = 1.0 + 0.7 * rng.standard_normal((4000, 1)), rng.standard_normal((4000, 1))
    kl = np.log(1 / 0.7) + (0.49 + 1) / 2 - 0.5
    fresh_p, fresh_q = 1.0 + 0.7 * rng.standard_normal((20000, 1)), rng.standard_normal((20000, 1))
    for bound in ("r1", "r2"):
        critic, history = train_critic(x_p, x_q, bound, steps=500, eval_every=25, rng=rng)
        assert history.trained_on == bound and history.step[-1] == 500
        # the empirical measure obeys log y ≤ y − 1 too, so R1 ≤ R2 exactly at every step
        assert np.all(history.r1 <= history.r2 + 1e-12)
        # R2[T] ≤ KL for the learned T, up to the estimate's noise; and the learned T is good:
        # the optimization gap of this small critic stays below 0.05 nats (8% of KL)
        estimate, se = r2_with_standard_error(critic, fresh_p, fresh_q)
        assert estimate <= kl + 5 * se
        assert estimate >= kl - 0.05 - 5 * se
        # the history's last held-out value (2000 points each) agrees within its own noise
        held_out_se = se * np.sqrt(20000 / 2000)
        assert abs(history.r2[-1] - estimate) <= 5 * held_out_se


def test_float32_samples_train_a_float32_critic():
    rng = np.random.default_rng(6)
    x_p = (1.0 + rng.standard_normal((200, 2))).astype(np.float32)
    x_q = rng.standard_normal((200, 2)).astype(np.float32)
    critic, history = train_critic(x_p, x_q, "r1", steps=20, batch_size=64, rng=rng)
    assert all(p.dtype == np.float32 for p in critic.parameters())
    assert history.r1.shape == history.r2.shape == (21,)
    assert np.all(history.r1 <= history.r2 + 1e-5)


def test_demo_writes_a_picture(tmp_path, capsys):
    import matplotlib.image

    divergence_bounds = demo("divergence_bounds")
    paths = divergence_bounds.main(divergence_bounds.parse_args(
        ["--out", str(tmp_path), "--n", "400", "--steps", "40", "--quiet"]))
    assert [p.name for p in paths] == ["bounds.png", "conjugates.png"]
    assert all(matplotlib.image.imread(path).std() > 0.05 for path in paths)
    assert not list(tmp_path.glob("*.tmp*"))
    assert "KL =" in capsys.readouterr().out
