"""The ELBO-tightening and Monte Carlo demos compute what they plot: checked against scipy."""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, special, stats

from tests.helpers import assert_pictures, run_demo


def scipy_log_joint(x):
    weights = [0.67, 0.33]
    means = [[1.10, 0.86], [4.04, 3.83]]
    covariances = [[[1.20, -0.97], [-0.97, 1.15]], [[1.79, -0.10], [-0.10, 2.00]]]
    return np.array([np.log(w) + stats.multivariate_normal(m, c).logpdf(x)
                     for w, m, c in zip(weights, means, covariances)])


def test_elbo_tightening_curve_is_evidence_minus_kl_and_peaks_at_the_posterior(tmp_path):
    result = run_demo("elbo_tightening", tmp_path, "--resolution", "101")
    joint = scipy_log_joint(result["x"])
    evidence = special.logsumexp(joint)
    beta = special.expit(joint[1] - joint[0])
    lam = result["lam"]
    kl = special.rel_entr(lam, beta) + special.rel_entr(1 - lam, 1 - beta)
    np.testing.assert_allclose(result["elbo"], evidence - kl, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(result["log_evidence"], evidence, rtol=1e-12)
    np.testing.assert_allclose(result["beta"], beta, rtol=1e-12)
    np.testing.assert_allclose(result["beta"], 0.76, atol=1e-9)  # the lecture's value, by default
    # the continuous argmax, by scipy's own optimizer on its own ELBO formula
    best = optimize.minimize_scalar(
        lambda l: -(special.xlogy(l, np.exp(joint[1]) / l) if l > 0 else 0.0)
        - (special.xlogy(1 - l, np.exp(joint[0]) / (1 - l)) if l < 1 else 0.0),
        bounds=(0, 1), method="bounded", options={"xatol": 1e-10})
    np.testing.assert_allclose(best.x, result["beta"], atol=1e-7)
    assert_pictures(tmp_path, "elbo_tightening.png")


def test_elbo_tightening_at_another_point(tmp_path):
    result = run_demo("elbo_tightening", tmp_path, "--x", "3.0", "1.0", "--resolution", "11")
    joint = scipy_log_joint([3.0, 1.0])
    np.testing.assert_allclose(result["beta"], special.softmax(joint)[1], rtol=1e-12)


def test_monte_carlo_toys_exact_values_and_estimates(tmp_path):
    result = run_demo("monte_carlo_toys", tmp_path, "--max-samples", "300", "--replicates", "60",
                      "--quiet")
    x, sd = 2.5, 0.2
    by_quadrature = integrate.quad(lambda z: stats.norm.pdf(z) * stats.norm.pdf(x, z, sd),
                                   -12, 12, points=[x / (1 + sd**2)], epsabs=0,
                                   epsrel=1e-12)[0]
    np.testing.assert_allclose(result["exact"], by_quadrature, rtol=1e-10)
    np.testing.assert_allclose(result["hit"], 1 - (1 - 1e-3) ** 10, rtol=1e-13)
    for label, (estimates, _) in result["runs"].items():
        for n, replicate in zip(result["counts"], estimates):
            # the replicates' mean is p(x) within 4 of its standard errors √(χ²/n)/√R
            se = math.sqrt(float(result["chi2"][label]) / n / len(replicate)) * by_quadrature
            assert abs(replicate.mean() - by_quadrature) < 4 * se, (label, n)
    lines = "\n".join(result["lines"])
    assert "NO: with q = p(z|x) every weight is p(x)" in lines
    assert_pictures(tmp_path, "monte_carlo_toys.png")
