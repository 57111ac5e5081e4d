"""The Bayesian Gaussian mixture's CAVI: exact ELBO, monotone updates, coordinate maximizers.

Oracles are independent of the code under test: SciPy for the Wishart density, entropy and
multivariate log Γ, and for the exact log joint log p(X, z), built from Student-t predictives
(the Gaussian–Wishart marginal by the chain rule) and the Dirichlet-multinomial; scikit-learn's
BayesianGaussianMixture for the fitted factors.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread
from scipy import special, stats

from minivae.cavi import BayesianGaussianMixture
from minivae.cavi.bayesian_gmm import update_global_factors, update_responsibilities
from minivae.cavi.bayesian_gmm_elbo import MixtureFactors, elbo
from minivae.cavi.wishart import (
    multivariate_log_gamma,
    wishart_entropy,
    wishart_expected_log_det,
    wishart_log_normalizer,
)
from tests.fuzzing import COUNTS, anything, arrays, check_contract, floats
from tests.helpers import demos_on_path


def random_spd(rng, D, scale=1.0):
    A = rng.normal(size=(D, D))
    return scale * (A @ A.T / D + 0.5 * np.eye(D))


@st.composite
def problems(draw, max_n=25, max_k=4):
    """(X, model, r0): data from a K-cluster mixture, random priors, random responsibilities."""
    seed = draw(st.integers(0, 2**32 - 1))
    D, K = draw(st.integers(1, 3)), draw(st.integers(1, max_k))
    N = draw(st.integers(max(K, 2), max_n))
    alpha0, beta0, scale = (10 ** draw(st.floats(-1.5, 1.0)) for _ in range(3))
    nu0 = D - 1 + 10 ** draw(st.floats(-1.5, 1.0))
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 3, (K, D))[rng.integers(K, size=N)] + rng.normal(size=(N, D))
    model = BayesianGaussianMixture(K, alpha0, rng.normal(0, 2, D), beta0, nu0,
                                    random_spd(rng, D, scale))
    return X, model, rng.dirichlet(np.full(K, 0.7), size=N)


@given(st.floats(0.0, 20.0), st.integers(1, 5))
def test_multivariate_log_gamma_matches_scipy(excess, D):
    a = (D - 1) / 2 + 0.01 + excess
    assert np.isclose(multivariate_log_gamma(a, D), special.multigammaln(a, D), rtol=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.floats(0.01, 30.0))
def test_wishart_log_normalizer_matches_scipy_density(seed, D, excess):
    """log W(Λ|W, ν) = log B(W, ν) + ((ν − D − 1)/2) log |Λ| − ½ Tr(W⁻¹Λ) at a random Λ."""
    rng = np.random.default_rng(seed)
    nu, W_inv, Lam = D - 1 + excess, random_spd(rng, D), random_spd(rng, D)
    ours = (wishart_log_normalizer(np.linalg.cholesky(W_inv), nu)
            + 0.5 * (nu - D - 1) * np.linalg.slogdet(Lam)[1] - 0.5 * np.trace(W_inv @ Lam))
    assert np.isclose(ours, stats.wishart(df=nu, scale=np.linalg.inv(W_inv)).logpdf(Lam),
                      rtol=1e-10, atol=1e-10)


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.floats(0.01, 30.0))
def test_wishart_entropy_matches_scipy(seed, D, excess):
    rng = np.random.default_rng(seed)
    nu, W_inv = D - 1 + excess, random_spd(rng, D)
    expected = stats.wishart(df=nu, scale=np.linalg.inv(W_inv)).entropy()
    assert np.isclose(wishart_entropy(np.linalg.cholesky(W_inv), nu), expected, rtol=1e-10,
                      atol=1e-10)


@pytest.mark.parametrize("D, nu", [(1, 0.8), (2, 2.5), (3, 7.0)])
def test_wishart_expected_log_det_matches_monte_carlo(D, nu):
    rng = np.random.default_rng(D)
    W_inv = random_spd(rng, D)
    draws = stats.wishart(df=nu, scale=np.linalg.inv(W_inv)).rvs(40_000, random_state=rng)
    log_dets = np.linalg.slogdet(draws.reshape(-1, D, D))[1]
    standard_error = log_dets.std() / np.sqrt(len(log_dets))
    assert abs(log_dets.mean() - wishart_expected_log_det(np.linalg.cholesky(W_inv), nu)) \
        <= 5 * standard_error


def exact_log_joint(X, z, K, prior):
    """log p(X, z) = log p(z) + Σ_k log p(X_k): the Dirichlet-multinomial for the sequence z, and
    each cluster's Gaussian–Wishart marginal as a product of Student-t predictives
    St(x | m, ((ν + 1 − D)β/(1 + β)) W, ν + 1 − D), updating (m, β, W⁻¹, ν) one point at a time."""
    N, D = X.shape
    counts = np.bincount(z, minlength=K)
    a0 = prior.alpha0
    total = (special.gammaln(K * a0) - special.gammaln(K * a0 + N)
             + np.sum(special.gammaln(a0 + counts) - special.gammaln(a0)))
    for k in range(K):
        m, beta, nu = prior.m0.copy(), prior.beta0, prior.nu0
        W_inv = prior.W0_inv_cholesky @ prior.W0_inv_cholesky.T
        for x in X[z == k]:
            df = nu + 1 - D
            total += stats.multivariate_t(m, W_inv * (1 + beta) / (df * beta), df=df).logpdf(x)
            W_inv = W_inv + beta / (beta + 1) * np.outer(x - m, x - m)
            m, beta, nu = (beta * m + x) / (beta + 1), beta + 1, nu + 1
    return total


@given(problems(max_n=12), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_one_hot_elbo_is_the_log_joint(problem, seed):
    """Given z, π and each (μ_k, Λ_k) are independent a posteriori, so the mean-field global
    update is the exact posterior and the ELBO with q(Z) = δ_z equals log p(X, z) exactly;
    this checks every constant of the ELBO (2π's, Γ's, Wishart and Dirichlet normalizers)."""
    X, model, _ = problem
    prior = model.resolve_prior(X)
    z = np.random.default_rng(seed).integers(model.K, size=len(X))
    r = np.eye(model.K)[z]
    value = elbo(X, prior, r, update_global_factors(X, prior, r))
    assert np.isclose(value, exact_log_joint(X, z, model.K, prior), rtol=1e-10, atol=1e-9)


@given(problems(max_n=5, max_k=3))
@settings(max_examples=15)
def test_elbo_is_below_the_exact_log_evidence(problem):
    """log p(X) = log Σ_z p(X, z) over all K^N assignments bounds every ELBO, the fitted one
    included; with K = 1 there is one assignment and the bound is attained."""
    X, model, r0 = problem
    prior = model.resolve_prior(X)
    K = model.K
    log_evidence = special.logsumexp([exact_log_joint(X, np.array(z), K, prior)
                                      for z in itertools.product(range(K), repeat=len(X))])
    fitted = model.fit(X, init=r0, max_iter=50)
    tolerance = 1e-10 * abs(log_evidence)
    assert elbo(X, prior, r0, update_global_factors(X, prior, r0)) <= log_evidence + tolerance
    assert fitted.elbo_history[-1] <= log_evidence + tolerance
    if K == 1:
        assert np.isclose(fitted.elbo_history[-1], log_evidence, rtol=1e-10)


@given(problems())
@settings(max_examples=30)
def test_elbo_never_decreases(problem):
    X, model, r0 = problem
    history = np.array(model.fit(X, init=r0, max_iter=25, tol=0.0).elbo_history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))


def perturbed_factors(factors, rng, eps, which):
    """The factors with those in ``which`` ("pi", "mu_lambda") moved by a random step of
    relative size eps, staying in the parameter space (α, β > 0, ν > D − 1, L_kk > 0)."""
    f = vars(factors).copy()
    K, D = factors.m.shape
    noise = lambda shape: eps * rng.normal(size=shape)  # noqa: E731
    if "pi" in which:
        f["alpha"] = factors.alpha * np.exp(noise(K))
    if "mu_lambda" in which:
        f["beta"] = factors.beta * np.exp(noise(K))
        f["nu"] = D - 1 + (factors.nu - D + 1) * np.exp(noise(K))
        spread = np.sqrt(np.diagonal(factors.covariances, axis1=1, axis2=2))
        f["m"] = factors.m + noise((K, D)) * spread
        L = factors.W_inv_cholesky + np.tril(noise((K, D, D))) * spread[:, None, :]
        index = np.arange(D)
        L[:, index, index] = np.abs(L[:, index, index])
        f["W_inv_cholesky"] = L
    return MixtureFactors(**f)


@given(problems(), st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_global_update_maximizes_the_elbo(problem, seed):
    """Moving q(π), q(μ, Λ) or both away from the update never raises the ELBO (r held fixed);
    the largest moves lower it visibly, so the ELBO does depend on what was moved."""
    X, model, r0 = problem
    prior = model.resolve_prior(X)
    best = update_global_factors(X, prior, r0)
    top = elbo(X, prior, r0, best)
    rng = np.random.default_rng(seed)
    for which in [("pi",), ("mu_lambda",), ("pi", "mu_lambda")]:
        values = [elbo(X, prior, r0, perturbed_factors(best, rng, eps, which))
                  for eps in (1e-4, 1e-2, 0.1, 0.5) for _ in range(2)]
        assert max(values) <= top + 1e-9 * abs(top)
        if which != ("pi",) or model.K > 1:  # with K = 1, π = 1 whatever q(π) says
            assert min(values) < top - 1e-9 * abs(top)


@given(problems(), st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_responsibility_update_maximizes_the_elbo(problem, seed):
    X, model, r0 = problem
    prior = model.resolve_prior(X)
    factors = update_global_factors(X, prior, r0)
    best = update_responsibilities(X, factors)
    top = elbo(X, prior, best, factors)
    rng = np.random.default_rng(seed)
    candidates = [r0, np.eye(model.K)[best.argmax(axis=1)]]
    for eps in (1e-4, 1e-3, 1e-2, 0.1, 1.0):
        moved = best * np.exp(eps * rng.normal(size=best.shape))
        candidates.append(moved / moved.sum(axis=1, keepdims=True))
    assert max(elbo(X, prior, r, factors) for r in candidates) <= top + 1e-9 * abs(top)


@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 4))
@settings(max_examples=20)
def test_recovers_well_separated_means(seed, D, K):
    """Clusters 30σ apart, each of 40 points, fitted from the default k-means++ seeding: the
    components match the clusters one to one, each point goes to its own cluster, and each
    posterior mean is within 5 standard errors (σ/√40 per coordinate) of the true mean.  A
    vague mean prior (β₀ = 10⁻³) keeps the shrinkage towards m₀ negligible."""
    rng = np.random.default_rng(seed)
    lattice = np.array(list(itertools.product(range(4), repeat=D)))
    means = 30.0 * lattice[rng.choice(len(lattice), size=K, replace=False)]
    labels = np.repeat(np.arange(K), 40)
    X = means[labels] + rng.normal(size=(len(labels), D))
    fitted = BayesianGaussianMixture(K, mean_precision_prior=1e-3).fit(X, rng=rng)
    matched = fitted.r.argmax(axis=1)
    assert len(set(matched)) == K
    assert all(len(set(matched[labels == k])) == 1 for k in range(K))
    for k in range(K):
        assert np.all(np.abs(fitted.m[matched[labels == k][0]] - means[k]) <= 5 / np.sqrt(40))


def scikit_learn_from(model, r0, X, iterations):
    """scikit-learn's BayesianGaussianMixture with the same priors, started from r0.

    scikit-learn has no public way to pass initial responsibilities, but its ``fit`` calls the
    hook ``_initialize_parameters(X, random_state)``, which only computes some resp and hands
    it to ``_initialize(X, resp)`` (the global update, its M-step).  A subclass overrides the
    hook to hand over r0 instead; everything after that is scikit-learn's own loop: E-step
    (responsibilities), M-step (global factors), ``iterations`` times.  ``reg_covar=0`` because
    this model adds nothing to the covariances' diagonal; ``tol=0`` so it runs every iteration.
    """
    mixture = pytest.importorskip("sklearn.mixture")

    class FromResponsibilities(mixture.BayesianGaussianMixture):
        def _initialize_parameters(self, X, random_state, *args, **kwargs):
            self._initialize(X, r0)

    sk = FromResponsibilities(
        n_components=model.K, weight_concentration_prior_type="dirichlet_distribution",
        covariance_type="full", weight_concentration_prior=model.weight_concentration_prior,
        mean_prior=model.mean_prior, mean_precision_prior=model.mean_precision_prior,
        degrees_of_freedom_prior=model.degrees_of_freedom_prior,
        covariance_prior=model.covariance_prior, reg_covar=0.0, tol=0.0, max_iter=iterations)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # one BLAS thread: its many tiny triangular solves are slowed down, not sped up, by threads
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 is never met
        return sk.fit(X)


@given(problems(max_n=40))
@settings(max_examples=8)
def test_matches_scikit_learn_from_the_same_start(problem):
    """Both run the same map r → global factors → r.  Our fit from r0 makes n sweeps (global
    update, then r); scikit-learn initializes from r0 (one global update) and then makes n − 1
    (E-step, M-step) iterations, so both end at the same global factors, and its
    ``predict_proba(X)`` is then our final r."""
    X, model, r0 = problem
    fitted = model.fit(X, init=r0, max_iter=500, tol=1e-12)
    sk = scikit_learn_from(model, r0, X, fitted.n_iter - 1)
    np.testing.assert_allclose(sk.predict_proba(X), fitted.r, atol=1e-6)
    np.testing.assert_allclose(sk.means_, fitted.m, atol=1e-6)
    np.testing.assert_allclose(sk.covariances_, fitted.covariances, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sk.weights_, fitted.weights, atol=1e-9)
    np.testing.assert_allclose(sk.degrees_of_freedom_, fitted.nu, rtol=1e-9)
    np.testing.assert_allclose(sk.mean_precision_, fitted.beta, rtol=1e-9)


@given(problems(max_n=40))
@settings(max_examples=8)
def test_elbo_minus_scikit_learn_bound_is_constant(problem):
    """scikit-learn's ``lower_bounds_`` drop every term that does not depend on the fitted
    factors (scikit-learn issue #8823), so they cannot be compared across models; our ELBO keeps
    them.  Evaluated after each global update (our elbo_history[2], [4], …, scikit-learn's
    bound after each M-step), the two differ by one and the same data-independent constant."""
    X, model, r0 = problem
    fitted = model.fit(X, init=r0, max_iter=60, tol=0.0)
    sk = scikit_learn_from(model, r0, X, fitted.n_iter - 1)
    if not hasattr(sk, "lower_bounds_"):
        pytest.skip("this scikit-learn does not keep lower_bounds_")
    ours = np.array(fitted.elbo_history[2::2])
    difference = ours - np.array(sk.lower_bounds_)
    assert np.ptp(difference) <= 1e-9 * np.max(np.abs(ours))


def test_predict_proba_matches_scikit_learn():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2)) + 4.0 * rng.integers(3, size=(60, 1))
    model = BayesianGaussianMixture(3, 0.5, None, 0.2, 2.5, np.eye(2))
    r0 = rng.dirichlet(np.ones(3), size=60)
    fitted = model.fit(X, init=r0, max_iter=15, tol=0.0)
    sk = scikit_learn_from(model, r0, X, fitted.n_iter - 1)
    new = rng.normal(0, 5, size=(30, 2))
    np.testing.assert_allclose(model.predict_proba(new), sk.predict_proba(new), atol=1e-9)


def test_defaults_follow_scikit_learn():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 3)) @ random_spd(rng, 3)
    prior = BayesianGaussianMixture(4).resolve_prior(X)
    sk = scikit_learn_from(BayesianGaussianMixture(4), np.full((50, 4), 0.25), X, 1)
    assert prior.alpha0 == sk.weight_concentration_prior_ and prior.nu0 == 3.0
    assert prior.beta0 == sk.mean_precision_prior_
    np.testing.assert_allclose(prior.m0, sk.mean_prior_)
    np.testing.assert_allclose(prior.W0_inv_cholesky @ prior.W0_inv_cholesky.T,
                               sk.covariance_prior_, rtol=1e-12)


def test_factor_summaries_are_consistent():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 3))
    fitted = BayesianGaussianMixture(2).fit(X, max_iter=5)
    L = fitted.W_inv_cholesky
    np.testing.assert_allclose(fitted.W @ L @ np.swapaxes(L, 1, 2), np.broadcast_to(np.eye(3),
                               (2, 3, 3)), atol=1e-10)
    np.testing.assert_allclose(fitted.covariances,
                               np.linalg.inv(fitted.nu[:, None, None] * fitted.W), rtol=1e-9)
    assert np.isclose(fitted.weights.sum(), 1.0)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(K=0), ValueError, "K must be at least 1"),
    (dict(K=2.0), TypeError, "K must be an int"),
    (dict(K=2, weight_concentration_prior=0.0), ValueError, "weight_concentration_prior"),
    (dict(K=2, mean_precision_prior=-1.0), ValueError, "mean_precision_prior"),
    (dict(K=2, degrees_of_freedom_prior="3"), TypeError, "degrees_of_freedom_prior"),
    (dict(K=2, mean_prior=[[0.0, 1.0]]), ValueError, r"mean_prior must have shape \(D,\)"),
    (dict(K=2, covariance_prior=[[1.0, np.nan], [0.0, 1.0]]), ValueError, "covariance_prior"),
])
def test_constructor_rejects_bad_hyperparameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        BayesianGaussianMixture(**kwargs)


@pytest.mark.parametrize("model_kwargs, fit_kwargs, error, message", [
    (dict(), dict(X=np.ones(5)), ValueError, r"X must have shape \(N, D\)"),
    (dict(), dict(X=[[1.0, np.inf]] * 3), ValueError, "X contains NaN or infinity"),
    (dict(), dict(X=[["a", "b"]]), TypeError, "X must be a numeric array"),
    (dict(K=4), dict(X=np.eye(3)), ValueError, "needs at least K = 4 rows"),
    (dict(), dict(rng=0), TypeError, "rng must be a numpy.random.Generator"),
    (dict(), dict(init=np.ones((6, 3))), ValueError, r"init must have shape \(N, K\) = \(6, 2\)"),
    (dict(), dict(init=np.full((6, 2), 0.6)), ValueError, "rows summing to 1"),
    (dict(), dict(max_iter=0), ValueError, "max_iter"),
    (dict(), dict(tol=-1.0), ValueError, "tol"),
    (dict(mean_prior=[0.0, 0.0, 0.0]), dict(), ValueError, r"mean_prior must have shape \(2,\)"),
    (dict(degrees_of_freedom_prior=0.5), dict(), ValueError, "must exceed D − 1 = 1"),
    (dict(covariance_prior=[[1.0, 2.0], [2.0, 1.0]]), dict(), ValueError, "positive definite"),
    (dict(covariance_prior=[[1.0, 0.5], [0.0, 1.0]]), dict(), ValueError, "symmetric"),
    (dict(covariance_prior=np.eye(3)), dict(), ValueError, r"shape \(2, 2\)"),
])
def test_fit_rejects_bad_input(model_kwargs, fit_kwargs, error, message):
    fit_kwargs = {"X": np.random.default_rng(0).normal(size=(6, 2)), **fit_kwargs}
    with pytest.raises(error, match=message):
        BayesianGaussianMixture(**{"K": 2, **model_kwargs}).fit(**fit_kwargs)


def test_predict_proba_needs_a_fit_and_matching_columns():
    model = BayesianGaussianMixture(2)
    with pytest.raises(ValueError, match="call fit"):
        model.predict_proba(np.zeros((1, 2)))
    model.fit(np.random.default_rng(0).normal(size=(8, 2)), max_iter=3)
    with pytest.raises(ValueError, match="must have 2 columns"):
        model.predict_proba(np.zeros((1, 3)))


def test_default_rng_makes_fits_repeatable():
    X = np.random.default_rng(1).normal(size=(40, 2))
    first, second = (BayesianGaussianMixture(3).fit(X, max_iter=10) for _ in range(2))
    np.testing.assert_array_equal(first.r, second.r)


def test_demo_writes_pictures_and_a_table(tmp_path, capsys):
    demos_on_path()
    demo = pytest.importorskip("cavi_gmm")
    paths = demo.main(demo.parse_args(["--out", str(tmp_path), "--max-iter", "40",
                                          "--restarts", "2"]))
    assert {p.name for p in paths} == {"elbo.png", "clusters.png"}
    for path in paths:
        image = imread(path)
        assert min(image.shape[:2]) >= 300 and image[..., :3].std() > 0.05
    printed = capsys.readouterr().out
    assert "weight" in printed and "max |r − r_sklearn|" in printed


# -- the fuzz contract -------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(X=st.one_of(arrays(np.float64, shape=st.integers(0, 6).map(lambda n: (n, 2))),
                   arrays(), anything()),
       K=COUNTS, max_iter=COUNTS, tol=st.one_of(st.just(1e-6), floats(), anything()),
       concentration=st.one_of(st.none(), floats()))
def test_bayesian_gmm_cavi(X, K, max_iter, tol, concentration):
    def fit():
        mixture = BayesianGaussianMixture(K, weight_concentration_prior=concentration)
        result = mixture.fit(X, max_iter=max_iter, tol=tol)
        return result.weights, result.m, mixture.predict_proba(X)
    check_contract("BayesianGaussianMixture.fit", fit)


def test_valid_input_gives_finite_values():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, (20, 2)), rng.normal(3, 1, (20, 2))])
    fit = BayesianGaussianMixture(2).fit(X, max_iter=50)
    assert np.all(np.isfinite(fit.m)) and np.isfinite(fit.elbo_history[-1])
