"""Demo: the lecture's Monte Carlo numbers for p(x) recomputed, and the estimators' spread vs n.

p(x) = E_{z~p(z)}[p(x|z)] is estimated by prior sampling, (1/n) Σ p(x|z_i), and by importance
sampling, (1/n) Σ p(x, z_i)/q(z_i).  Three toys, each with an exact answer:

* the lecture's "one latent in |Z| = 10³ explains x" scenario with k = 10 prior draws: the
  chance that the explaining latent is drawn, 1 − (1 − 1/|Z|)^k, and the relative spread
  √((|Z| − 1)/k) of the estimate;
* the lecture's two-component mixture (§6's θ, at the x where p(c = 1 | x) = 0.76): prior
  sampling of the component, and importance sampling with q = p(c|x), whose weights all equal
  p(x) exactly;
* a continuous toy, z ~ N(0, 1), x | z ~ N(z, σ²), with x in the prior's tail: p(x) in closed
  form, prior sampling, and importance sampling from a widened posterior.

Prints the table "notes' value | exact | Monte Carlo ± SE | agrees?" (the numbers the lecture
prints, and where they cannot be right), and writes monte_carlo_toys.png to ``--out``: the
relative spread sd(p̂_n)/p(x) over ``--replicates`` repeats against n (log-log) beside the
closed-form √(χ²/n), and the spread of single prior-sampling weights over orders of magnitude.

    python demos/monte_carlo_toys.py --out runs/monte_carlo_toys
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.distributions import Independent, Normal
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.models import LinearGaussian
from minivae.objectives.discrete_latent import (
    log_evidence,
    posterior,
    relative_second_moment,
    sample_log_weights,
)
from minivae.objectives.evidence_variance import gaussian_relative_second_moment, hit_probability
from minivae.objectives.likelihood import (
    importance_sampling_log_likelihood,
    prior_sampling_log_likelihood,
)
from minivae.program import add_quiet_argument, demo_parser, run_reporting_errors

LATENT_COUNT, DRAWS = 1000, 10  # the lecture's |Z| and k
NOTES_PRIOR_WEIGHTS = [4.27e-4, 1.82e-29, 1.55e-30, 6.72e-14]  # §3, p(x | z_i), z_i ~ p(z)
NOTES_POSTERIOR_WEIGHTS = [1.14e-3, 1.65e-3, 1.29e-3, 1.65e-3]  # §4, "q = p(z|x)"
WIDENING = 1.5  # the continuous toy's proposal: the posterior, 1.5 times wider


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/monte_carlo_toys", help="output folder")
    parser.add_argument("--x", type=float, default=2.5, help="the continuous toy's observed x")
    parser.add_argument("--noise-sd", type=float, default=0.2, help="σ of x | z ~ N(z, σ²)")
    parser.add_argument("--max-samples", type=int, default=10_000,
                        help="largest n (the grid runs 1, 3, 10, 30, ... up to it)")
    parser.add_argument("--replicates", type=int, default=300,
                        help="independent repeats of each estimate, for its spread")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def sample_counts(largest: int) -> list[int]:
    counts = [m * 10**e for e in range(len(str(largest))) for m in (1, 3)]
    return sorted({n for n in counts if n < largest} | {largest})


def lecture_mixture_log_joint() -> np.ndarray:
    from elbo_tightening import lecture_point, log_joint  # the same θ and x as that demo

    return log_joint(lecture_point())


def continuous_toy(x: float, noise_sd: float):
    """(model, widened proposal model, posterior (a, √A), proposal (m, √S), exact p(x))."""
    a, A = x / (1 + noise_sd**2), noise_sd**2 / (1 + noise_sd**2)
    scale = WIDENING * math.sqrt(A)
    proposal = lambda batch: Independent(Normal(np.full((len(batch.data), 1), a),
                                                np.full((len(batch.data), 1), scale)), 1)
    W, b = np.ones((1, 1)), np.zeros(1)
    exact = math.exp(-0.5 * x * x / (1 + noise_sd**2)) / math.sqrt(2 * math.pi * (1 + noise_sd**2))
    return (LinearGaussian(W, b, noise_sd), LinearGaussian(W, b, noise_sd, encoder=proposal),
            (a, math.sqrt(A)), (a, scale), exact)


def replicate_spread(estimator, model, x, counts, replicates, rng, quiet, label):
    """sd(p̂_n)/p(x) over replicates, and one replicate's (p̂, SE) per n."""
    xs = np.full((replicates, 1), x)
    spread, first = [], []
    for n in tqdm(counts, desc=label, disable=quiet, leave=False):
        log_estimate, log_error = estimator(model, xs, n, rng)
        estimate = np.exp(log_estimate)
        spread.append(estimate)
        first.append((estimate[0], estimate[0] * log_error[0]))  # SE(p̂) = p̂ · SE(log p̂)
    return spread, first


def row(label, notes, exact, estimate, verdict) -> str:
    return f"{label:<68} | {notes:>12} | {exact:>11} | {estimate:>24} | {verdict}"


def main(args: argparse.Namespace) -> dict:
    checks.positive(args.noise_sd, "--noise-sd", number=True), checks.finite(args.x, "--x")
    checks.int_at_least(args.max_samples, "--max-samples", 10)
    checks.int_at_least(args.replicates, "--replicates", 10)
    out, rng = output_folder(args.out), np.random.default_rng(args.seed)
    counts = sample_counts(args.max_samples)
    lines = [row("quantity", "notes' value", "exact", "Monte Carlo ± SE", "agrees?"),
             "-" * 140]

    # 1. one latent in |Z| explains x: is it among the k prior draws?
    hit = hit_probability(LATENT_COUNT, DRAWS)
    draws = rng.integers(LATENT_COUNT, size=(args.replicates * 100, DRAWS))
    found = (draws == 0).any(axis=1)
    se = found.std(ddof=1) / math.sqrt(len(found))
    for label, notes, exact, observed in (("P(z̄ drawn), |Z| = 1000, k = 10", 0.01, hit, found),
                                          ("P(z̄ not drawn)", 0.99, 1 - hit, ~found)):
        agrees = abs(observed.mean() - exact) < 4 * se and round(exact, 2) == notes
        lines.append(row(label, f"{notes}", f"{exact:.6f}", f"{observed.mean():.5f} ± {se:.5f}",
                         "yes (notes round it)" if agrees else "NO"))
    estimates = (draws == 0).mean(axis=1) * LATENT_COUNT  # p̂/p(x): (#hits/k) L / (L/|Z|)
    relative_sd = math.sqrt((LATENT_COUNT - 1) / DRAWS)
    lines.append(row("sd(p̂)/p(x) there (notes: 'high variance')", "—", f"{relative_sd:.4f}",
                     f"{estimates.std(ddof=1):.3f}", "(no number given)"))

    # 2. the two-component mixture of §6: prior sampling and q = exact posterior
    joint = lecture_mixture_log_joint()
    exact_mixture = math.exp(float(log_evidence(joint)))
    log_prior = np.log(np.array([0.67, 0.33]))
    for label, log_q in (("mixture: prior sampling, n = 1000", log_prior),
                         ("mixture: q = p(c|x), n = 1000", np.log(posterior(joint)))):
        _, log_w = sample_log_weights(joint, log_q, 1000, rng)
        w = np.exp(log_w)
        se = w.std(ddof=1) / math.sqrt(len(w))
        chi2 = float(relative_second_moment(joint, log_q)) - 1
        verdict = "yes" if abs(w.mean() - exact_mixture) <= 4 * se + 1e-15 * exact_mixture \
            else "NO"
        lines.append(row(label + f" (χ² = {max(chi2, 0):.3g})", "—", f"{exact_mixture:.4e}",
                         f"{w.mean():.4e} ± {se:.1e}", verdict))
    notes_prior = float(np.mean(NOTES_PRIOR_WEIGHTS))
    lines.append(row("§3 four prior-sampling weights, their mean", f"{notes_prior:.3e}",
                     "not given", "—", "cannot check: the toy's θ and x are only drawn"))
    spread = np.ptp(NOTES_POSTERIOR_WEIGHTS) / np.mean(NOTES_POSTERIOR_WEIGHTS)
    lines.append(row("§4 weights with q = p(z|x): spread/mean", f"{spread:.2f}", "0 exactly",
                     "0 (all = p(x))", "NO: with q = p(z|x) every weight is p(x)"))

    # 3. the continuous toy: closed form, and the spread of both estimators against n
    model, widened, (a, post_scale), (m, q_scale), exact = continuous_toy(args.x, args.noise_sd)
    chi2 = {"prior sampling": gaussian_relative_second_moment(a, post_scale, 0.0, 1.0) - 1,
            f"importance sampling (q {WIDENING}× wider)":
                gaussian_relative_second_moment(a, post_scale, m, q_scale) - 1}
    runs = {}
    for (label, estimator), toy in zip(
            zip(chi2, (prior_sampling_log_likelihood, importance_sampling_log_likelihood)),
            (model, widened)):
        runs[label] = replicate_spread(estimator, toy, args.x, counts, args.replicates, rng,
                                       args.quiet, label)
        for n, (estimate, error) in zip(counts, runs[label][1]):
            if n in (10, 1000, args.max_samples):
                verdict = "yes" if abs(estimate - exact) < 4 * error else "NO (heavy tail)"
                lines.append(row(f"toy x = {args.x:g}, σ = {args.noise_sd:g}: {label}, "
                                 f"n = {n}", "—", f"{exact:.4e}",
                                 f"{estimate:.4e} ± {error:.1e}", verdict))
    print("\n".join(lines))
    print("χ² (relative variance of one weight): " + ", ".join(
        f"{label}: {float(value):.4g}" for label, value in chi2.items()))
    prior_weights = model.log_likelihood(np.array([[args.x]]),
                                         rng.standard_normal((20_000, 1, 1))).data[:, 0]
    path = draw(out / "monte_carlo_toys.png", counts, runs, chi2, exact, prior_weights, args)
    print(path)
    return {"lines": lines, "runs": runs, "chi2": chi2, "exact": exact, "path": path,
            "counts": counts, "hit": hit}


def draw(path: Path, counts, runs, chi2, exact, log_prior_weights, args) -> Path:
    figure = new_figure(1350, 560)
    axes = figure.add_subplot(1, 2, 1)
    n = np.array(counts, dtype=float)
    for (label, (estimates, _)), color in zip(runs.items(), ("tab:orange", "tab:blue")):
        observed = [np.std(e, ddof=1) / exact for e in estimates]
        axes.loglog(n, observed, "o", color=color, label=f"{label}: sd(p̂ₙ)/p(x) measured")
        axes.loglog(n, np.sqrt(float(chi2[label]) / n), "-", color=color,
                    label=f"√(χ²/n), χ² = {float(chi2[label]):.3g}")
    axes.set_xlabel("samples n")
    axes.set_ylabel("relative spread of the estimate of p(x)")
    axes.set_title(f"spread falls as 1/√n; q sets the constant (q = p(z|x): 0, off the chart)\n"
                   f"toy z ~ N(0,1), x | z ~ N(z, {args.noise_sd:g}²), x = {args.x:g}, "
                   f"{args.replicates} repeats per n", fontsize=10)
    axes.legend(fontsize=8)
    axes = figure.add_subplot(1, 2, 2)
    log10_w = log_prior_weights / math.log(10)
    axes.hist(log10_w[np.isfinite(log10_w)], bins=80, color="tab:orange")
    axes.axvline(math.log10(exact), color="black", linestyle="--",
                 label=f"log₁₀ p(x) = {math.log10(exact):.2f}")
    for value in NOTES_PRIOR_WEIGHTS:
        axes.axvline(math.log10(value), color="tab:red", linestyle=":", linewidth=1)
    axes.plot([], [], ":", color="tab:red", label="the lecture's four prior weights")
    axes.set_xlabel("log₁₀ p(x | z),  z ~ p(z)")
    axes.set_ylabel("draws")
    axes.set_title("single prior-sampling weights span many orders of magnitude\n"
                   "(a few large ones carry the average)", fontsize=10)
    axes.legend(fontsize=8)
    figure.subplots_adjust(left=0.07, right=0.98, wspace=0.22, top=0.86)
    return save_png(figure, path)


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))
