"""The KL access table against estimators that use only each row's access: every ✓ estimates the
closed-form KL between two Gaussians within its standard error, every ✗ is refused."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from minivae.divergences.kl_access import (
    ACCESS,
    KL_ACCESS_TABLE,
    VERDICTS,
    KLAccess,
    estimate_kl,
    format_kl_access_table,
)

P_LOC, P_SCALE, Q_LOC, Q_SCALE, LOG_Z = 0.4, 0.9, 0.0, 1.0, 3.7


def gaussian_kl(mu1, s1, mu2, s2):
    """KL(N(μ₁, s₁²) ‖ N(μ₂, s₂²)), closed form."""
    return np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5


FORWARD = gaussian_kl(P_LOC, P_SCALE, Q_LOC, Q_SCALE)
REVERSE = gaussian_kl(Q_LOC, Q_SCALE, P_LOC, P_SCALE)
ENTROPY_P = stats.norm(P_LOC, P_SCALE).entropy()


def access_of(row: KLAccess, rng: np.random.Generator, n: int) -> dict:
    """The keyword arguments of estimate_kl that the row grants, for p = N(0.4, 0.9²),
    q = N(0, 1), p̃ = e^3.7 p; whatever the row lacks is not passed at all."""
    everything = {
        "samples of p": ("p_samples", rng.normal(P_LOC, P_SCALE, n)),
        "log p": ("log_p", lambda x: stats.norm.logpdf(x, P_LOC, P_SCALE)),
        "log p̃": ("log_p_tilde", lambda x: stats.norm.logpdf(x, P_LOC, P_SCALE) + LOG_Z),
        "samples of q": ("q_samples", rng.normal(Q_LOC, Q_SCALE, n)),
        "log q": ("log_q", lambda x: stats.norm.logpdf(x, Q_LOC, Q_SCALE)),
    }
    return dict(everything[name] for name in row.access)


def exact(direction: str, kind: str) -> float:
    value = FORWARD if direction == "forward" else REVERSE
    return value + ENTROPY_P if kind == "up to −H(p)" else value


def computable_cells():
    return [(row, direction) for row in KL_ACCESS_TABLE for direction in ("forward", "reverse")
            if getattr(row, direction) != "no"]


def test_the_table_holds_the_notes_scenarios_and_valid_verdicts():
    """The three scenarios of the notes with exactly their access, and their answers: both
    directions; forward only (no draws of q); reverse (p known up to Z), forward only through
    self-normalized weights."""
    by_name = {row.scenario: row for row in KL_ACCESS_TABLE}
    one, two, three = (by_name[f"notes scenario {i}"] for i in (1, 2, 3))
    assert one.access == {"samples of p", "log p", "samples of q", "log q"}
    assert two.access == {"samples of p", "log q"}
    assert three.access == {"log p̃", "samples of q", "log q"}
    assert (one.forward, one.reverse) == ("unbiased", "unbiased")
    assert (two.forward, two.reverse) == ("up to −H(p)", "no")
    assert (three.forward, three.reverse) == ("consistent", "consistent")
    assert any("samples of q" not in row.access and row.reverse != "no" for row in KL_ACCESS_TABLE)
    for row in KL_ACCESS_TABLE:
        assert row.access <= set(ACCESS) and {row.forward, row.reverse} <= set(VERDICTS)
    text = format_kl_access_table()
    assert all(row.scenario in text and row.forward_why in text for row in KL_ACCESS_TABLE)
    with pytest.raises(TypeError, match="rows"):
        format_kl_access_table([("samples", "yes")])


@pytest.mark.parametrize("row, direction", computable_cells(),
                         ids=lambda v: getattr(v, "scenario", v))
def test_every_computable_row_estimates_the_closed_form(row, direction):
    """With n = 20,000 draws, the estimate from the row's access alone is within 5 SE of the
    closed-form KL (plus H(p) where the row says "up to −H(p)"), and is the kind it claims."""
    estimate = estimate_kl(direction, **access_of(row, np.random.default_rng(11), 20_000))
    assert estimate.kind == getattr(row, direction)
    assert 0 < estimate.standard_error < 0.05
    assert abs(estimate.value - exact(direction, estimate.kind)) <= 5 * estimate.standard_error


@pytest.mark.parametrize("row, direction", computable_cells(),
                         ids=lambda v: getattr(v, "scenario", v))
def test_standard_errors_match_the_spread_of_replicates(row, direction):
    """Over 60 replicates of n = 2,000, (estimate − exact)/SE has mean ≈ 0 and spread ≈ 1:
    the standard errors (delta method for the ratio estimators) are the estimates' real
    spread, so "within 5 SE" above is a real tolerance."""
    rng = np.random.default_rng(12)
    scores = []
    for _ in range(60):
        estimate = estimate_kl(direction, **access_of(row, rng, 2000))
        scores.append((estimate.value - exact(direction, estimate.kind))
                      / estimate.standard_error)
    scores = np.array(scores)
    assert abs(scores.mean()) <= 5 / np.sqrt(60) and 0.7 <= scores.std() <= 1.4


@pytest.mark.parametrize("row, direction",
                         [(row, d) for row in KL_ACCESS_TABLE for d in ("forward", "reverse")
                          if getattr(row, d) == "no"], ids=lambda v: getattr(v, "scenario", v))
def test_every_row_marked_no_is_refused_for_what_it_lacks(row, direction):
    """The refusal names what the direction needs and lists the access that was given."""
    needs = {"forward": "draws of p", "reverse": "log p or log p̃" if "log p̃" not in row.access
             else "draws of q"}[direction]
    with pytest.raises(ValueError, match=f"needs {needs}.*the access given is: {row.label}"):
        estimate_kl(direction, **access_of(row, np.random.default_rng(0), 10))


def test_importance_weights_are_what_makes_the_no_draws_of_q_row_computable():
    """Drop p's density from that row and the reverse direction is refused: the draws of p
    alone cannot be reweighted into an average over q."""
    row = next(row for row in KL_ACCESS_TABLE if row.scenario == "no draws of q")
    access = access_of(row, np.random.default_rng(0), 10)
    del access["log_p"]
    with pytest.raises(ValueError, match="reverse KL.*needs log p"):
        estimate_kl("reverse", **access)


def test_bad_access_is_rejected_clearly():
    x, log_q = np.zeros(5), lambda v: stats.norm.logpdf(v)
    with pytest.raises(ValueError, match="direction"):
        estimate_kl("sideways", p_samples=x, log_q=log_q)
    with pytest.raises(ValueError, match="needs log q"):
        estimate_kl("forward", p_samples=x)
    with pytest.raises(TypeError, match="log_q must be callable"):
        estimate_kl("forward", p_samples=x, log_q=3.0)
    with pytest.raises(ValueError, match="log_q"):
        estimate_kl("forward", p_samples=x, log_q=lambda v: np.zeros(3))
    with pytest.raises(ValueError, match="log_p returned NaN"):
        estimate_kl("forward", p_samples=x, log_p=lambda v: v * np.nan, log_q=log_q)
    with pytest.raises(ValueError, match="p_samples"):
        estimate_kl("forward", p_samples=np.array([np.nan, 1.0]), log_q=log_q)
    with pytest.raises(ValueError, match="p_samples"):
        estimate_kl("forward", p_samples=np.zeros(1), log_q=log_q)
