"""CAVI for the Poisson–Gaussian mixture: the ELBO is exact, every update is the coordinate-wise
maximizer, the bound sits below the exact evidence (and meets it when K = 1), and fits recover
the truth.  SciPy serves as an independent oracle for densities, entropies and evidences."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread
from scipy import special, stats
from scipy.special import logsumexp

from minivae.cavi.poisson_gaussian import PoissonGaussianMixture, log_evidence_exact
from minivae.cavi.poisson_gaussian_elbo import expected_squared_distances
from tests.helpers import demo

cavi_earthquakes = demo("cavi_earthquakes")


def log_uniform(low: float, high: float):
    return st.floats(np.log(low), np.log(high)).map(lambda t: float(np.exp(t)))


@st.composite
def problems(draw, min_events=1, max_events=12, min_components=1, max_components=4):
    """(model, X, S, rng): hyperparameters from wide ranges, data drawn from the model."""
    K = draw(st.integers(min_components, max_components))
    N = draw(st.integers(min_events, max_events))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    pi = 0.5 * rng.dirichlet(np.ones(K)) + 0.5 / K
    model = PoissonGaussianMixture(K, pi, tau=draw(log_uniform(0.1, 10.0)),
                                   nu=rng.normal(scale=3.0, size=2),
                                   rho=draw(log_uniform(0.01, 10.0)),
                                   alpha=draw(log_uniform(0.3, 5.0)),
                                   beta=draw(log_uniform(0.1, 5.0)))
    centres = model.nu + rng.normal(size=(K, 2)) / np.sqrt(model.rho)
    rates = rng.gamma(model.alpha, 1.0 / model.beta, size=K)
    labels = rng.choice(K, size=N, p=model.pi)
    X = centres[labels] + rng.normal(size=(N, 2)) / np.sqrt(model.tau)
    return model, X, rng.poisson(rates[labels]).astype(np.int64), rng


def random_state(model, n_events, rng):
    """An arbitrary q: r on the simplex, m anywhere, s, a, b positive."""
    r = rng.dirichlet(np.ones(model.K), size=n_events)
    m = model.nu + rng.normal(scale=3.0, size=(model.K, 2))
    s, a, b = (np.exp(rng.normal(size=model.K)) for _ in range(3))
    return r, m, s, a, b


def below(value, best, scale):
    """value ≤ best up to rounding of numbers of size ``scale``."""
    return value <= best + 1e-10 * (1.0 + abs(scale))


def test_expected_squared_distance_by_monte_carlo(rng):
    X = rng.normal(size=(3, 2)) * 4
    m, s = rng.normal(size=(2, 2)), np.array([0.3, 5.0])
    draws = m + rng.normal(size=(200_000, 2, 2)) / np.sqrt(s)[:, None]
    values = np.sum((X[None, :, None, :] - draws[:, None]) ** 2, axis=-1)  # (T, N, K)
    error = np.abs(values.mean(0) - expected_squared_distances(X, m, s))
    assert np.all(error <= 5 * values.std(0) / np.sqrt(len(values)))


@settings(max_examples=8)
@given(problems(max_events=6, max_components=3))
def test_elbo_terms_match_scipy_monte_carlo(problem):
    """Each named term against a Monte Carlo average of SciPy's log densities (5 SE), the
    Gaussian and Gamma entropies against SciPy's closed forms."""
    model, X, S, rng = problem
    r, m, s, a, b = random_state(model, len(X), rng)
    terms = model.elbo_terms(X, S, r, m, s, a, b)
    T = 20_000
    Z = np.stack([rng.choice(model.K, size=T, p=row) for row in r], axis=1)  # (T, N)
    mu = m + rng.normal(size=(T, model.K, 2)) / np.sqrt(s)[:, None]
    lam = rng.gamma(a, 1.0 / b, size=(T, model.K))
    rows = np.arange(T)[:, None]
    location_sd, prior_sd = model.tau ** -0.5, model.rho ** -0.5
    samples = {
        "E log p(Z)": np.log(model.pi)[Z].sum(1),
        "E log p(X | Z, μ)": stats.norm.logpdf(X, mu[rows, Z], location_sd).sum((1, 2)),
        "E log p(S | Z, λ)": stats.poisson.logpmf(S, lam[rows, Z]).sum(1),
        "E log p(μ)": stats.norm.logpdf(mu, model.nu, prior_sd).sum((1, 2)),
        "E log p(λ)": stats.gamma.logpdf(lam, model.alpha, scale=1 / model.beta).sum(1),
        "H[q(Z)]": -np.log(r[np.arange(len(X)), Z]).sum(1),
    }
    for name, values in samples.items():
        assert abs(values.mean() - terms[name]) <= 5 * values.std() / np.sqrt(T) + 1e-9, name
    np.testing.assert_allclose(terms["H[q(μ)]"], sum(
        stats.multivariate_normal(m[k], np.eye(2) / s[k]).entropy() for k in range(model.K)),
        rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(terms["H[q(λ)]"], stats.gamma(a, scale=1 / b).entropy().sum(),
                               rtol=1e-10, atol=1e-10)
    assert len(terms) == 8


@settings(max_examples=40)
@given(problems(max_events=20), st.booleans())
def test_elbo_never_decreases_at_any_update(problem, from_random_state):
    model, X, S, rng = problem
    init = random_state(model, len(X), rng)[1:] if from_random_state else None
    fit = model.fit(X, S, init=init, rng=rng, max_iter=60)
    history = fit.elbo_history
    assert len(history) == 3 * fit.n_iter and np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-9 * (1.0 + np.abs(history[1:])))
    np.testing.assert_allclose(fit.elbo, model.elbo(X, S, fit.r, fit.m, fit.s, fit.a, fit.b))


@settings(max_examples=20)
@given(problems(max_events=10))
def test_responsibilities_are_the_normalized_weights(problem):
    """The notes' π*_nk = log π_k − (τ/2) E‖X_n − μ_k‖² + S_n E log λ_k − E λ_k are log-weights,
    not probabilities: r_n = softmax(ℓ_n), with ℓ written again from SciPy's digamma."""
    model, X, S, rng = problem
    _, m, s, a, b = random_state(model, len(X), rng)
    squared = ((X[:, None, :] - m[None]) ** 2).sum(-1) + 2 / s
    ell = (np.log(model.pi) - model.tau / 2 * squared
           + S[:, None] * (special.digamma(a) - np.log(b)) - a / b)
    r = model.update_responsibilities(X, S, m, s, a, b)
    np.testing.assert_allclose(r, special.softmax(ell, axis=1), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)


@settings(max_examples=30)
@given(problems(max_events=10), st.sampled_from([1e-3, 0.1, 1.0]))
def test_updates_are_coordinate_maximizers(problem, scale):
    """From an arbitrary q, each update's output beats every perturbation of that factor."""
    model, X, S, rng = problem
    r, m, s, a, b = random_state(model, len(X), rng)

    r_best = model.update_responsibilities(X, S, m, s, a, b)
    best = model.elbo(X, S, r_best, m, s, a, b)
    for _ in range(5):
        tilted = r_best * np.exp(scale * rng.normal(size=r.shape))
        mixed = (1 - scale / 2) * r_best + scale / 2 * rng.dirichlet(np.ones(model.K), len(X))
        for other in (tilted / tilted.sum(1, keepdims=True), mixed):
            assert below(model.elbo(X, S, other, m, s, a, b), best, best)

    a_best, b_best = model.update_rates(S, r)
    best = model.elbo(X, S, r, m, s, a_best, b_best)
    for _ in range(5):
        a_other = a_best * np.exp(scale * rng.normal(size=model.K))
        b_other = b_best * np.exp(scale * rng.normal(size=model.K))
        assert below(model.elbo(X, S, r, m, s, a_other, b_other), best, best)

    m_best, s_best = model.update_locations(X, r)
    best = model.elbo(X, S, r, m_best, s_best, a, b)
    for _ in range(5):
        m_other = m_best + scale * rng.normal(size=m.shape) / np.sqrt(s_best)[:, None]
        s_other = s_best * np.exp(scale * rng.normal(size=model.K))
        assert below(model.elbo(X, S, r, m_other, s_other, a, b), best, best)


def scipy_log_evidence(model, X, S):
    """Σ over assignments with SciPy: per component, each coordinate of the locations is
    N(ν 1, τ⁻¹ I + ρ⁻¹ 11ᵀ) and the strengths a chain of negative-binomial predictives."""
    total = []
    for z in itertools.product(range(model.K), repeat=len(X)):
        z = np.array(z)
        log_p = np.log(model.pi)[z].sum()
        for k in range(model.K):
            x, counts = X[z == k], S[z == k]
            M = len(x)
            if M == 0:
                continue
            cov = np.eye(M) / model.tau + np.ones((M, M)) / model.rho
            log_p += sum(stats.multivariate_normal(np.full(M, model.nu[j]), cov).logpdf(x[:, j])
                         for j in range(2))
            for i, count in enumerate(counts):  # p(S_i | S_<i) = NB(α + ΣS_<i, (β+i)/(β+i+1))
                shape, rate = model.alpha + counts[:i].sum(), model.beta + i
                log_p += stats.nbinom.logpmf(count, shape, rate / (rate + 1))
        total.append(log_p)
    return logsumexp(total)


@settings(max_examples=15)
@given(problems(max_events=4, max_components=3))
def test_exact_log_evidence_matches_scipy_oracle(problem):
    model, X, S, _ = problem
    np.testing.assert_allclose(log_evidence_exact(model, X, S), scipy_log_evidence(model, X, S),
                               rtol=1e-10)


@settings(max_examples=30)
@given(problems(max_events=6, max_components=3))
def test_exact_log_evidence_bounds_the_converged_elbo(problem):
    model, X, S, rng = problem
    fit = model.fit(X, S, rng=rng)
    evidence = log_evidence_exact(model, X, S)
    assert fit.elbo <= evidence + 1e-9 * abs(evidence)


@settings(max_examples=30)
@given(problems(max_events=40, min_components=1, max_components=1))
def test_k1_elbo_equals_exact_log_evidence(problem):
    """With one component q(Z) is a point mass and q(μ)q(λ) the exact posterior after one
    sweep, so KL = 0 and the ELBO is log p(X, S) itself."""
    model, X, S, rng = problem
    fit = model.fit(X, S, init=random_state(model, len(X), rng)[1:])
    evidence = log_evidence_exact(model, X, S)
    np.testing.assert_allclose(fit.elbo_history[2], evidence, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fit.elbo, evidence, rtol=1e-8, atol=1e-8)


@settings(max_examples=20)
@given(problems(max_events=30, min_components=1, max_components=1))
def test_k1_factors_are_the_exact_posterior(problem):
    """Textbook conjugate posteriors, and Bayes' rule: log p(X, S, μ, λ) − log q(μ) − log q(λ)
    (SciPy densities) is the same constant log p(X, S) at every (μ, λ)."""
    model, X, S, rng = problem
    fit = model.fit(X, S, rng=rng)
    N = len(X)
    np.testing.assert_allclose(fit.s, [model.rho + N * model.tau], rtol=1e-12)
    np.testing.assert_allclose(fit.m, [(model.rho * model.nu + model.tau * X.sum(0))
                                       / (model.rho + N * model.tau)], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.a, [model.alpha + S.sum()], rtol=1e-12)
    np.testing.assert_allclose(fit.b, [model.beta + N], rtol=1e-12)
    mu = fit.m[0] + rng.normal(size=(5, 2)) / np.sqrt(fit.s[0])
    lam = rng.gamma(fit.a[0], 1.0 / fit.b[0], size=5) + 1e-3
    log_joint = (stats.norm.logpdf(X[None], mu[:, None], model.tau ** -0.5).sum((1, 2))
                 + stats.poisson.logpmf(S[None], lam[:, None]).sum(1)
                 + stats.norm.logpdf(mu, model.nu, model.rho ** -0.5).sum(1)
                 + stats.gamma.logpdf(lam, model.alpha, scale=1 / model.beta))
    log_q = (stats.norm.logpdf(mu, fit.m[0], fit.s[0] ** -0.5).sum(1)
             + stats.gamma.logpdf(lam, fit.a[0], scale=1 / fit.b[0]))
    np.testing.assert_allclose(log_joint - log_q, log_evidence_exact(model, X, S), rtol=1e-9)


@settings(max_examples=8)
@given(st.integers(0, 2 ** 32 - 1))
def test_fit_recovers_separated_components(seed):
    rng = np.random.default_rng(seed)
    true_m = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    true_rate = np.array([2.0, 15.0, 40.0])
    labels = rng.choice(3, size=600)
    X = true_m[labels] + rng.normal(size=(600, 2))
    S = rng.poisson(true_rate[labels])
    model = PoissonGaussianMixture(3, np.ones(3) / 3, 1.0, [4.0, 4.0], 1e-3, 1.0, 0.05)
    fit = model.fit(X, S, rng=rng)
    assert fit.converged
    order = [int(np.argmin(np.sum((fit.m - centre) ** 2, axis=1))) for centre in true_m]
    assert sorted(order) == [0, 1, 2]
    counts = np.bincount(labels, minlength=3)
    # the posterior mean is within rounding of the sample mean; the sample mean is within
    # 5 SE of the truth (SE = (τ n_k)^(-1/2) per coordinate, √(λ/n_k) for the rate)
    assert np.all(np.abs(fit.m[order] - true_m) <= 5 / np.sqrt(counts)[:, None])
    assert np.all(np.abs(fit.rates[order] - true_rate) <= 5 * np.sqrt(true_rate / counts))
    np.testing.assert_allclose(fit.r[np.arange(600), np.array(order)[labels]], 1.0, atol=1e-6)


def test_predict_proba_matches_the_fit(rng):
    model = PoissonGaussianMixture(2, [0.5, 0.5], 1.0, [0.0, 0.0], 0.01, 1.0, 0.1)
    X = np.concatenate([rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + [3.0, 0.0]])
    S = np.concatenate([rng.poisson(3.0, 50), rng.poisson(12.0, 50)])
    fit = model.fit(X, S, rng=rng, tol=1e-12, max_iter=500)
    np.testing.assert_allclose(model.predict_proba(X, S), fit.r, atol=1e-6)
    # a new event at an epicentre with that component's typical strength belongs to it
    new = model.predict_proba(fit.m, np.round(fit.rates))
    assert np.all(np.argmax(new, axis=1) == [0, 1]) and np.allclose(new.sum(1), 1.0)
    with pytest.raises(ValueError, match="call fit first"):
        PoissonGaussianMixture(2, [0.5, 0.5], 1.0, [0, 0], 1.0, 1.0, 1.0).predict_proba(X, S)


def test_converged_factors_are_a_fixed_point(rng):
    model = PoissonGaussianMixture(3, [0.2, 0.3, 0.5], 2.0, [1.0, -1.0], 0.1, 2.0, 0.5)
    X, S = rng.normal(size=(40, 2)) * 3, rng.poisson(4.0, 40)
    fit = model.fit(X, S, rng=rng, tol=1e-13, max_iter=2000)
    again = model.fit(X, S, init=(fit.m, fit.s, fit.a, fit.b), max_iter=2, progress=True)
    np.testing.assert_allclose(again.elbo_history, fit.elbo, rtol=1e-10)
    # rng=None is a fixed seed: two fits from scratch agree exactly
    np.testing.assert_array_equal(model.fit(X, S).elbo_history, model.fit(X, S).elbo_history)


GOOD = dict(K=2, pi=[0.5, 0.5], tau=1.0, nu=[0.0, 0.0], rho=1.0, alpha=1.0, beta=1.0)


@pytest.mark.parametrize("change, error, message", [
    (dict(K=0), ValueError, "K must be an integer"),
    (dict(K=2.0), ValueError, "K must be an integer"),
    (dict(pi=[0.5, 0.6]), ValueError, "pi must hold K = 2 positive weights"),
    (dict(pi=[1.0, 0.0]), ValueError, "pi must hold"),
    (dict(pi=[1.0]), ValueError, r"pi must have shape \(2\)"),
    (dict(tau=-1.0), ValueError, "tau must be positive"),
    (dict(rho=np.inf), ValueError, "rho must be positive and finite"),
    (dict(alpha="1"), TypeError, "alpha must be a positive real number"),
    (dict(beta=0.0), ValueError, "beta must be positive"),
    (dict(nu=[0.0, 0.0, 0.0]), ValueError, r"nu must have shape \(2\)"),
])
def test_bad_hyperparameters_are_rejected(change, error, message):
    with pytest.raises(error, match=message):
        PoissonGaussianMixture(**{**GOOD, **change})


@pytest.mark.parametrize("X, S, kwargs, error, message", [
    (np.zeros((3, 3)), [1, 2, 3], {}, ValueError, r"X must have shape \(N, 2\)"),
    (np.zeros((0, 2)), [], {}, ValueError, "X must not be empty"),
    ([[0, np.nan]] * 3, [1, 2, 3], {}, ValueError, "X contains NaN"),
    (np.zeros((3, 2)), [1, 2], {}, ValueError, "X has 3 rows, S has 2"),
    (np.zeros((3, 2)), [1, -2, 3], {}, ValueError, "non-negative integer counts"),
    (np.zeros((3, 2)), [1, 2.5, 3], {}, ValueError, "non-negative integer counts"),
    (np.zeros((3, 2)), ["a", "b", "c"], {}, TypeError, "S must be a real numeric array"),
    (np.zeros((3, 2)), [1, 2, 3], dict(max_iter=0), ValueError, "max_iter must be"),
    (np.zeros((3, 2)), [1, 2, 3], dict(tol=-1.0), ValueError, "tol must be"),
    (np.zeros((3, 2)), [1, 2, 3], dict(rng=0), TypeError, "rng must be a numpy Generator"),
    (np.zeros((3, 2)), [1, 2, 3], dict(init=(1, 2)), TypeError, r"init must be a tuple"),
    (np.zeros((3, 2)), [1, 2, 3], dict(init=(np.zeros((2, 2)), [1, 1], [1, -1], [1, 1])),
     ValueError, "init a must be positive"),
    (np.zeros((3, 2)), [1, 2, 3], dict(init=(np.zeros((3, 2)), [1, 1], [1, 1], [1, 1])),
     ValueError, r"init m must have shape \(2, 2\)"),
])
def test_bad_data_and_options_are_rejected(X, S, kwargs, error, message):
    with pytest.raises(error, match=message):
        PoissonGaussianMixture(**GOOD).fit(X, S, **kwargs)


def test_exact_log_evidence_refuses_huge_sums():
    with pytest.raises(ValueError, match="3\\^20 assignments"):
        log_evidence_exact(PoissonGaussianMixture(3, np.ones(3) / 3, 1, [0, 0], 1, 1, 1),
                           np.zeros((20, 2)), np.zeros(20))


def check_pictures(paths):
    assert sorted(p.name for p in paths) == ["earthquakes.png", "elbo.png"]
    for path in paths:
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) >= 400
        assert image[..., :3].std() > 0.05


def test_earthquake_demo_on_synthetic_events(tmp_path, capsys):
    result = cavi_earthquakes.main(cavi_earthquakes.parse_args(
        ["--out", str(tmp_path), "--n", "200", "--K", "3", "--seed", "1"]))
    check_pictures(result["paths"])
    printed = capsys.readouterr().out
    assert "E λ_k = a/b" in printed and "true λ_k" in printed
    assert np.all(np.diff(result["fit"].elbo_history) >= -1e-9 * abs(result["fit"].elbo))
    assert not list(tmp_path.glob("*.tmp*"))


def test_earthquake_demo_reads_a_catalogue(tmp_path):
    rng = np.random.default_rng(3)
    lines = ["time,Latitude,Longitude,depth,mag"]
    for centre in ([35.0, 139.0], [38.0, 142.5]):
        for lat, lon in centre + 0.3 * rng.normal(size=(40, 2)):
            lines.append(f"t,{lat:.4f},{lon:.4f},10,{rng.uniform(3, 6):.1f}")
    lines.append("t,36.0,140.0,10,")  # an incomplete row is skipped
    (tmp_path / "quakes.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cavi_earthquakes.main(cavi_earthquakes.parse_args(
        ["--csv", str(tmp_path / "quakes.csv"), "--K", "2", "--cluster-sd", "0.3",
         "--out", str(tmp_path / "out")]))
    check_pictures(result["paths"])
    assert sorted(round(row["events"]) for row in result["rows"]) == [40, 40]
    (tmp_path / "bad.csv").write_text("lat,lon\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no magnitude column"):
        cavi_earthquakes.main(cavi_earthquakes.parse_args(["--csv", str(tmp_path / "bad.csv")]))
