"""How many threads the matrix products (BLAS) use: measured while training, not guessed.

minivae's training steps are small matrix products.  On an idle machine BLAS may split each
one over all cores; on a busy laptop the same threads wait for each other and a step can take
many times longer than on one thread (see docs/PERFORMANCE.md, "Threads on a busy machine").
Which is faster depends on the load *now*, so ``adaptive`` times the steps of the loop it
wraps: a few steps (at least ``trial_steps`` and ``trial_seconds``) with the current count (one
thread at first), then as many with each other count, and keeps the fastest, or the fewest
threads within 10% of it.  A count whose first step is more than twice as slow as the best so
far is dropped at once, so a trial costs one step at a bad setting.  It measures again when the
step time changes by more than a factor ``drift`` (the load changed: other programs started or
ended; the current count is then measured last, so that a passing spike does not move the
choice), and on a schedule that starts at ``recheck_seconds`` and doubles, up to two minutes,
while the choice stays the same (a load that went away hardly changes a one-thread step's
time).  A trial is cheap (a bad count is dropped after one step), so it may run often.  On a
machine whose load flickers, each trial that confirms the choice doubles the time before a
change of step time may start the next one (from ``drift_gap`` seconds).

Whoever states a count wins and nothing is measured: ``set_num_threads(n)``, the CLI's
``--threads N``, or one of the environment variables in ``ENVIRONMENT`` (set before Python
starts, as BLAS reads them).  minivae's own kernels run on one thread, so the BLAS count is
the only one to choose.

Verified by: tests/test_threads.py::test_adaptive_keeps_the_faster_count,
::test_adaptive_rechecks_when_the_step_time_drifts,
::test_a_passing_spike_does_not_change_the_choice, ::test_an_explicit_count_always_wins
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable, Iterator

from minivae import checks

ENVIRONMENT = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
_state = {"explicit": None, "controller": None}


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def set_num_threads(n: int | None) -> None:
    """Use ``n`` BLAS threads from now on (no measuring); None returns to the automatic choice."""
    _state["explicit"] = checks.positive_int(n, "n", optional=True)
    if n is not None:
        limit(n)


def explicit_threads() -> int | None:
    """The count someone stated: ``set_num_threads``, else the first environment variable
    of ``ENVIRONMENT`` that holds a positive integer; None when nobody did."""
    if _state["explicit"] is not None:
        return _state["explicit"]
    for name in ENVIRONMENT:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def limit(n: int) -> None:
    """Set the BLAS thread count of the libraries NumPy loaded (it stays until changed)."""
    if _state["controller"] is None:
        from threadpoolctl import ThreadpoolController  # found once: it scans loaded libraries

        _state["controller"] = ThreadpoolController()
    _state["controller"].limit(limits=n, user_api="blas")


def adaptive(steps: Iterable) -> Iterator:
    """Wrap the iterable a training loop walks (its minibatches): each pass through the loop
    body is one timed step, and the thread count is chosen between steps (module docstring).
    One policy serves every loop, so a choice made in one epoch carries into the next."""
    return POLICY.steps(steps)


class ThreadPolicy:
    """The measuring policy.  ``clock`` and ``apply`` (set the count) are parameters so that
    tests can drive it with a simulated machine; ``label`` says the current choice for a
    progress bar: "2 (set)", "1 (measuring)" or "1 (auto)"."""

    MAX_RECHECK_SECONDS = 120.0

    def __init__(self, candidates: tuple[int, ...] | None = None, trial_steps: int = 4,
                 trial_seconds: float = 0.1, recheck_seconds: float = 5.0, drift: float = 2.0,
                 drift_gap: float = 1.0,
                 clock=time.perf_counter, apply=limit, explicit=explicit_threads):
        self.candidates = tuple(candidates or sorted({1, cores()}))
        self.trial_steps = checks.integer(trial_steps, "trial_steps", 1)
        self.trial_seconds = checks.real(trial_seconds, "trial_seconds", 0.0)
        self.recheck_seconds = checks.real(recheck_seconds, "recheck_seconds", 0.0)
        self.drift = checks.real(drift, "drift", 1.0, low_open=True)
        self.drift_gap = checks.real(drift_gap, "drift_gap", 0.0)
        self.clock, self.apply, self.explicit = clock, apply, explicit
        self.chosen: int | None = None
        self.history: list[tuple[int, float]] = []  # (threads chosen, its mean step seconds)
        self._trials: dict[int, list[float]] = {}  # threads → step seconds, while measuring
        self._testing = self._settled_at = self._baseline = None
        self._interval, self._gap = self.recheck_seconds, self.drift_gap
        self._recent: list[float] = []
        self._reference: list[float] = []  # after a drift: the drifted steps' mean

    @property
    def label(self) -> str:
        if self.explicit() is not None:
            return f"{self.explicit()} (set)"
        if self._trials:
            return f"{self._testing} (measuring)"
        return f"{self.chosen or self.candidates[0]} (auto)"

    def steps(self, iterable: Iterable) -> Iterator:
        stated = self.explicit()
        if stated is not None or len(self.candidates) == 1:
            self.apply(stated or self.candidates[0])
            yield from iterable
            return
        if self.chosen is None or self.clock() - self._settled_at > self._interval:
            self._start_trials()
        else:  # a new loop soon after: keep the choice (a loop of another step time drifts
            self.apply(self.chosen)  # from the baseline and is measured afresh)
            self._recent = []
        started = None
        for item in iterable:
            if started is not None:
                self._record(self.clock() - started)
            started = self.clock()
            yield item
        # the last pass is not recorded: what follows the loop is not a training step

    # -- measuring -----------------------------------------------------------------------------
    def _start_trials(self, drifted: list[float] | None = None) -> None:
        """Measure every count afresh: the current one first, or last after a ``drifted``
        window of its step times.  Last, because the drift may be a passing spike: the window
        only sets the bar that the other counts' first steps must clear (twice its mean), and
        the current count, measured again, is dropped after one step if it did get slow."""
        current = self.chosen or self.candidates[0]
        others = [n for n in self.candidates if n != current]
        order = [*others, current] if drifted else [current, *others]
        self._trials = {n: [] for n in order}
        self._reference = [statistics.fmean(drifted)] if drifted else []
        self._switch(order[0])

    def _switch(self, n: int) -> None:
        self._testing = n
        self.apply(n)

    def _record(self, seconds: float) -> None:
        if not self._trials:
            return self._watch(seconds)
        times = self._trials[self._testing]
        times.append(seconds)  # times[0] is a warm-up: the first step after a switch pays
        timed = times[1:]      # for waking or parking threads, so it is not in the mean
        means = [statistics.fmean(t[1:]) for t in self._trials.values()
                 if t is not times and len(t) > self.trial_steps] + self._reference
        hopeless = means and min(times) > 2 * min(means)
        # a few steps are not enough where steps take milliseconds: a machine's hiccup
        # would decide, so a trial also lasts trial_seconds
        enough = len(timed) >= self.trial_steps and sum(timed) >= self.trial_seconds
        if enough or hopeless:
            untested = [n for n, t in self._trials.items() if not t]
            self._switch(untested[0]) if untested else self._settle()

    def _watch(self, seconds: float) -> None:
        """Between trials: measure again if the step time drifted or the schedule says so."""
        window = 2 * self.trial_steps
        self._recent = (self._recent + [seconds])[-window:]
        ratio = statistics.fmean(self._recent) / self._baseline
        since = self.clock() - self._settled_at
        if (len(self._recent) == window and not 1 / self.drift < ratio < self.drift
                and since > self._gap):
            self._start_trials(drifted=self._recent)
        elif since > self._interval:
            self._start_trials()

    def _settle(self) -> None:
        # a count dropped after its warm-up step is judged by that step
        # the mean, not the median: an epoch's time is the sum of its steps, and threads
        # that wait for each other make a few steps very slow rather than all a bit slow
        means = {n: statistics.fmean(t[1:] or t) for n, t in self._trials.items() if t}
        # the fewest threads within 10% of the fastest: fewer threads suffer less when the
        # load grows, and the trial's noise is about that large
        best = min((n for n in means if means[n] <= 1.1 * min(means.values())))
        if best == self.chosen:  # confirmed: look again later than last time
            self._interval = min(2 * self._interval, self.MAX_RECHECK_SECONDS)
            self._gap = min(2 * self._gap, self._interval)
        else:
            self._interval, self._gap = self.recheck_seconds, self.drift_gap
        self.chosen, self._baseline = best, means[best]
        self.history.append((best, means[best]))
        self._recent, self._trials, self._settled_at = [], {}, self.clock()
        self.apply(best)


POLICY = ThreadPolicy()
