"""The learning-rate and KL-weight schedules against their definitions."""
from __future__ import annotations

import math

import pytest

from minivae import schedules
from minivae.schedules import burda, cosine, kl_weight, learning_rate, step


def test_burda_stages_start_where_the_powers_of_three_say():
    """Stage i lasts 3^i epochs: its first epoch is 1 + Σ_{j<i} 3^j, counted here by walking
    the stages one epoch at a time rather than by the closed form."""
    first_epochs, epoch = [], 1
    for i in range(8):
        first_epochs.append(epoch)
        epoch += 3**i
    assert first_epochs == [1, 2, 5, 14, 41, 122, 365, 1094]
    for i, first in enumerate(first_epochs):
        assert schedules.burda_stage(first) == i
        assert schedules.burda_stage(first - 1) == max(i - 1, 0)
        last = first + 3**i - 1
        assert schedules.burda_stage(last) == i


def test_burda_values_and_total_length():
    base = 1e-3
    assert schedules.BURDA_EPOCHS == 3280
    lrs = [burda(e, base) for e in range(1, 3281)]
    assert lrs[0] == base  # 10^0
    assert len(set(lrs)) == 8  # one rate per stage
    for i in range(8):
        assert lrs.count(base * 10 ** (-i / 7)) == 3**i
    assert lrs[-1] == pytest.approx(base / 10, rel=1e-12)  # 10^(−7/7)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert burda(5000, base) == lrs[-1]  # beyond the last stage: its rate


def test_cosine_falls_from_the_base_towards_zero():
    base, epochs = 0.01, 50
    lrs = [cosine(e, base, epochs) for e in range(1, epochs + 1)]
    assert lrs[0] == base
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert 0 < lrs[-1] < base * (math.pi / epochs) ** 2  # ≈ base π² / (4 E²)
    # the midpoint of the cosine: half the base at e − 1 = E / 2
    assert cosine(26, base, epochs) == pytest.approx(base / 2, rel=1e-12)


def test_step_halves_every_ten_epochs():
    base = 0.008
    assert [step(e, base) for e in (1, 10, 11, 20, 21, 31)] == [
        base, base, base / 2, base / 2, base / 4, base / 8]


def test_constant_is_the_base_itself_and_bad_names_are_named():
    assert all(learning_rate("constant", e, 1e-3, 7) == 1e-3 for e in range(1, 8))
    assert learning_rate("cosine", 3, 1.0, 4) == cosine(3, 1.0, 4)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        learning_rate("linear", 1, 1e-3, 10)


def test_kl_weight_rises_linearly_to_one():
    assert [kl_weight(e, 4) for e in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert all(kl_weight(e, 0) == 1.0 for e in range(1, 5))  # no warm-up
