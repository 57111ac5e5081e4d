"""Learning-rate and KL-weight schedules: pure functions of the epoch (counted from 1).

Being functions of the epoch alone, they hold no state: a resumed run recomputes them from the
epoch it starts at, and its steps get the values an uninterrupted run's got.  ``train`` sets
Adam's learning rate to ``learning_rate(...)`` at the start of every epoch and weights the KL
by ``kl_weight(...)`` in that epoch's steps.

Verified by: tests/test_schedules.py
"""
from __future__ import annotations

import math

from minivae import checks

LR_SCHEDULES = ("constant", "burda", "cosine", "step")
# Burda et al. (2016), §5: 3^i passes at 10^(−i/7) times the base rate, i = 0, …, 7
BURDA_STAGES = 8
BURDA_EPOCHS = sum(3**i for i in range(BURDA_STAGES))  # 3,280
# step decay: halve the rate every STEP_EPOCHS epochs
STEP_FACTOR, STEP_EPOCHS = 0.5, 10


def constant(epoch: int, base: float) -> float:
    """lr(e) = base."""
    return base


def burda(epoch: int, base: float) -> float:
    """The schedule of Burda et al. (2016), §5: stage i = 0, …, 7 lasts 3^i epochs at rate
    base · 10^(−i/7), 3,280 epochs in all; epochs after the last stage stay at its rate.

    Math: lr(e) = base · 10^(−i/7) for Σ_{j<i} 3^j < e ≤ Σ_{j≤i} 3^j, i.e. stage i ends at
          epoch (3^(i+1) − 1)/2: epoch 1 is stage 0, 2–4 stage 1, 5–13 stage 2, …,
          1094–3280 stage 7 (base · 10^(−1)).
    Verified by: tests/test_schedules.py::test_burda_stages_start_where_the_powers_of_three_say,
    tests/test_schedules.py::test_burda_values_and_total_length
    """
    return base * 10 ** (-burda_stage(epoch) / 7)


def burda_stage(epoch: int) -> int:
    """The stage i of epoch e: the smallest i with e ≤ (3^(i+1) − 1)/2, at most 7."""
    stage = 0
    while stage < BURDA_STAGES - 1 and epoch > (3 ** (stage + 1) - 1) // 2:
        stage += 1
    return stage


def cosine(epoch: int, base: float, epochs: int) -> float:
    """Cosine annealing towards 0 over the run's ``epochs`` (Loshchilov & Hutter, 2017, with
    no restarts), one value per epoch, so every epoch trains at a positive rate.

    Math: lr(e) = base · ½ (1 + cos(π (e − 1) / E)), e = 1, …, E: base at e = 1, decreasing,
          base · ½ (1 + cos(π (E − 1)/E)) > 0 at e = E.
    Verified by: tests/test_schedules.py::test_cosine_falls_from_the_base_towards_zero
    """
    return base * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))


def step(epoch: int, base: float) -> float:
    """Step decay: halve the rate every 10 epochs.

    Math: lr(e) = base · 0.5^⌊(e − 1)/10⌋.
    Verified by: tests/test_schedules.py::test_step_halves_every_ten_epochs
    """
    return base * STEP_FACTOR ** ((epoch - 1) // STEP_EPOCHS)


def learning_rate(schedule: str, epoch: int, base: float, epochs: int) -> float:
    """The learning rate of ``epoch`` (1, 2, …, ``epochs``) of a run of ``epochs`` epochs under
    ``schedule``, one of ``LR_SCHEDULES``, from the positive base rate ``base`` (``--lr``);
    a ValueError names the argument that is none of these."""
    checks.one_of(schedule, LR_SCHEDULES, "lr_schedule")
    epochs = checks.positive_int(epochs, "epochs")
    epoch = checks.positive_int(epoch, "epoch")
    checks.require(epoch <= epochs, "epoch", f"at most epochs = {epochs}", epoch)
    base = checks.real(base, "base", 0.0, low_open=True)
    if schedule == "cosine":
        return cosine(epoch, base, epochs)
    return {"constant": constant, "burda": burda, "step": step}[schedule](epoch, base)


def kl_weight(epoch: int, warmup: int) -> float:
    """β of the KL in ``epoch`` under a linear warm-up of ``warmup`` epochs (0: none).

    Math: β(e) = min(1, e / W), constant within an epoch: 1/W in epoch 1, 1 from epoch W on;
          W = 0 gives β = 1.  The training bound is E_q log p(x | z) − β KL(q(z|x) ‖ p(z)).
    Verified by: tests/test_schedules.py::test_kl_weight_rises_linearly_to_one
    """
    epoch, warmup = checks.positive_int(epoch, "epoch"), checks.integer(warmup, "warmup", 0)
    return 1.0 if warmup == 0 else min(1.0, epoch / warmup)
