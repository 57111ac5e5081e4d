"""When a run stops before its last epoch: its wall-clock budget (``--budget-minutes``) is
spent, or its validation ELBO has not risen for ``--early-stopping`` epochs.  Both are checked
by ``minivae.train``'s loop after each epoch's bookkeeping, so a stopped run leaves the same
checkpoint, metrics and best weights as any other epoch (and ``--resume`` continues it).

Verified by: tests/test_training_options.py
"""
from __future__ import annotations

import time

import numpy as np

from minivae.config import TrainConfig
from minivae.io.resume import RUN_FILES


class Budget:
    """The wall-clock time a run may spend (``budget_minutes``; None: no limit), counted from
    its making: ``spent()`` once it has passed."""

    def __init__(self, minutes: float | None):
        self.minutes, self.start = minutes, time.monotonic()

    def spent(self) -> bool:
        return self.minutes is not None and time.monotonic() - self.start >= 60 * self.minutes


def epochs_since_best(scores: list[float]) -> int:
    """How many epochs ago the highest score was first reached (0: the last is the best)."""
    return len(scores) - 1 - int(np.argmax(scores))


def stop_reason(config: TrainConfig, metrics: dict, budget: Budget) -> str | None:
    """Why the run stops before its last epoch, or None: the wall-clock budget is spent, or
    the validation ELBO has not risen for ``early_stopping`` epochs."""
    epoch = metrics["epoch"][-1]
    if budget.spent():
        return (f"stopped at the wall-clock budget of {config.budget_minutes:g} minutes in "
                f"epoch {epoch} (continue with --resume, which starts a fresh budget)")
    if (config.early_stopping is not None
            and epochs_since_best(metrics["validation_elbo"]) >= config.early_stopping):
        best = int(np.argmax(metrics["validation_elbo"])) + 1
        return (f"stopped early after epoch {epoch}: no better validation ELBO for "
                f"{config.early_stopping} epochs since epoch {best} "
                f"({RUN_FILES['best']} holds its weights)")
    return None
