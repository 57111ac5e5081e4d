"""When a run stops before its last epoch: its wall-clock budget (``--budget-minutes``) is
spent, or its validation ELBO has not risen for ``--early-stopping`` epochs.  Both are checked
by ``minivae.train``'s loop after each epoch's bookkeeping, so a stopped run leaves the same
checkpoint, metrics and best weights as any other epoch (and ``--resume`` continues it).  A run
that diverged (``stop_if_diverged``) stops at once, its last checkpoint left as it was.

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

    def minutes_left(self) -> float | None:
        """Minutes until the budget is spent (≤ 0 once it is; None: no limit)."""
        if self.minutes is None:
            return None
        return self.minutes - (time.monotonic() - self.start) / 60

    def stage(self, minutes: float | None) -> Budget:
        """A budget for a stage of the run: ``minutes`` from now (None: no limit of its own),
        ending sooner if this one does."""
        limits = [m for m in (minutes, self.minutes_left()) if m is not None]
        return Budget(min(limits) if limits else None)


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


def stop_if_diverged(model, bound: str, epoch: int, symptom, stepped: bool = False) -> None:
    """Raise FloatingPointError if training has diverged: the ``bound`` (e.g. "training ELBO")
    is not finite (``symptom`` a number), or the model rejects its input (``symptom`` the
    error of an input check) because its weights are no longer finite or, after ``stepped``
    optimizer steps, have left the range in which the model can work (a log-variance beyond
    the float range, say).  An untrained model's error is the input's fault: it returns.

    The checkpoint of the last finished epoch is left as it was.
    """
    if isinstance(symptom, Exception):
        finite = all(np.isfinite(p.data).all() for p in model.parameters())
        if finite and not stepped:
            return  # a genuine input error, not divergence
        cause = (f"its weights are no longer finite ({symptom})" if not finite else
                 f"its weights have grown out of the model's working range ({symptom})")
    else:
        cause = f"the {bound} became {symptom}"
    kept = f"the checkpoint of epoch {epoch - 1} is intact" if epoch > 1 else "nothing was saved"
    raise FloatingPointError(f"training diverged in epoch {epoch}: {cause}; {kept}; start again "
                             f"with a smaller --lr")
