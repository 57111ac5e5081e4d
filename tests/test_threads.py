"""The BLAS thread policy, driven by a simulated machine whose step time depends on the thread
count and on the load; and the real control through threadpoolctl."""
from __future__ import annotations

import numpy as np
import pytest

from minivae import threads
from minivae.threads import ThreadPolicy


class Machine:
    """A clock and a thread setting: a step with n threads takes ``cost[load][n]`` seconds."""

    def __init__(self, cost):
        self.cost, self.load, self.now, self.threads, self.switches = cost, "idle", 0.0, None, 0

    def clock(self) -> float:
        return self.now

    def apply(self, n: int) -> None:
        self.switches += self.threads != n
        self.threads = n

    def step(self) -> None:
        self.now += self.cost[self.load][self.threads]


# idle: two threads halve the step; busy: two threads wait on each other, five times slower
COST = {"idle": {2: 0.010, 1: 0.020}, "busy": {2: 0.100, 1: 0.020}}


def run(policy, machine, n_steps):
    chosen = []
    for _ in policy.steps(range(n_steps)):
        machine.step()
        chosen.append(machine.threads)
    return chosen


def new_policy(machine, **options):
    return ThreadPolicy(candidates=(2, 1), clock=machine.clock, apply=machine.apply,
                        explicit=lambda: None, **{"drift_gap": 0.0, "trial_seconds": 0.0,
                                                  **options})


@pytest.mark.parametrize("load, best", [("idle", 2), ("busy", 1)])
def test_adaptive_keeps_the_faster_count(load, best):
    machine = Machine(COST)
    machine.load = load
    policy = new_policy(machine, trial_steps=4)
    chosen = run(policy, machine, 200)
    assert policy.chosen == best and policy.label == f"{best} (auto)"
    # the trial costs 2 × (1 warm-up + 4 timed) steps; every later step runs the faster count
    assert set(chosen[11:]) == {best}
    slow = COST[load][3 - best]
    spent = machine.now - 200 * COST[load][best]
    assert spent <= 5 * (slow - COST[load][best]) + 1e-9


def test_a_trial_lasts_long_enough_not_to_be_decided_by_one_hiccup():
    # two threads take 10 ms, one 15 ms; the first timed step on two threads hits a 40 ms
    # hiccup.  Four steps alone would average 20 ms and pick one thread; a trial of at least
    # 0.2 s per count sees two threads at 12 ms.
    def trial(trial_seconds):
        machine = Machine({"idle": {2: 0.010, 1: 0.015}})
        policy = new_policy(machine, trial_steps=4, trial_seconds=trial_seconds)
        for step in policy.steps(range(100)):
            machine.step()
            machine.now += 0.040 * (step == 1)
        return [n for n, _ in policy.history]

    assert trial(0.0) == [1] and trial(0.2) == [2]


def test_adaptive_rechecks_when_the_step_time_drifts():
    machine = Machine(COST)
    policy = new_policy(machine, trial_steps=4, recheck_seconds=1e9)
    run(policy, machine, 50)
    assert policy.chosen == 2
    machine.load = "busy"  # another program starts: two threads become slow
    chosen = run(policy, machine, 50)
    assert policy.chosen == 1 and chosen[-10:] == [1] * 10
    # the first trial ran 5 steps on one thread (20 ms, not 10); the drift was seen in 8 steps
    # at 100 ms; the trial measured one thread, then two again for one step, and every later
    # step took 20 ms
    assert machine.now <= 5 * 0.010 + 50 * 0.010 + 9 * 0.100 + 41 * 0.020 + 1e-9
    machine.load = "idle"  # it ends, but one thread's steps take as long as before: no drift,
    run(policy, machine, 50)  # so only the schedule (next test) finds two threads faster again
    assert [n for n, _ in policy.history] == [2, 1]


def test_a_passing_spike_does_not_change_the_choice():
    # idle two threads take 10 ms; for 10 steps a slow core makes them take 30 ms.  The drift
    # starts a trial, and two threads, measured again after one thread, are fast again.
    machine = Machine({"idle": COST["idle"], "spike": {2: 0.030, 1: 0.020}})
    policy = new_policy(machine, trial_steps=4, recheck_seconds=1e9)
    chosen = []
    for step in policy.steps(range(300)):
        machine.load = "spike" if 100 <= step < 110 else "idle"
        machine.step()
        chosen.append(machine.threads)
    assert [n for n, _ in policy.history] == [2, 2] and chosen[-150:] == [2] * 150


def test_adaptive_rechecks_on_a_doubling_schedule_and_carries_the_choice_across_loops():
    machine = Machine(COST)
    policy = new_policy(machine, trial_steps=2, recheck_seconds=0.5)
    run(policy, machine, 20)
    assert len(policy.history) == 1
    switches = machine.switches
    run(policy, machine, 5)  # a new loop soon after: no new trial, no switch
    assert len(policy.history) == 1 and machine.switches == switches
    run(policy, machine, 700)  # 7 s: trials after 0.5, 1, 2 s more (4 s would end at 7.6 s)
    assert len(policy.history) == 4
    machine.load = "busy"
    run(policy, machine, 50)  # a change of choice restarts the schedule at 0.5 s
    machine.load = "idle"
    run(policy, machine, 100)  # 1 thread: 20 ms a step, 2 s: the schedule finds two again
    assert policy.chosen == 2


def test_an_explicit_count_always_wins(monkeypatch):
    machine = Machine(COST)
    machine.load = "busy"
    policy = ThreadPolicy(candidates=(2, 1), clock=machine.clock, apply=machine.apply,
                          explicit=lambda: 2)
    assert set(run(policy, machine, 50)) == {2} and policy.label == "2 (set)"
    monkeypatch.setattr(threads, "_state", {"explicit": None, "controller": None})
    for name in threads.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert threads.explicit_threads() is None
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert threads.explicit_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # not a count: the next variable decides
    assert threads.explicit_threads() == 3
    threads._state["explicit"] = 1  # what set_num_threads records beats the environment
    assert threads.explicit_threads() == 1


def test_set_num_threads_changes_what_blas_uses():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS is loaded
    before = threads._state["explicit"]
    try:
        threads.set_num_threads(1)
        info = threadpoolctl.threadpool_info()
        assert all(lib["num_threads"] == 1 for lib in info if lib["user_api"] == "blas")
        assert threads.explicit_threads() == 1
    finally:
        threads.set_num_threads(before)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="n must be a positive integer"):
            threads.set_num_threads(bad)


def test_the_real_policy_measures_real_steps_and_sets_blas(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    for name in threads.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_state", {"explicit": None, "controller": None})
    policy = ThreadPolicy(candidates=(1, 2), trial_steps=2, trial_seconds=0.0)
    a, b = np.ones((256, 256)), np.ones((256, 256))
    for _ in policy.steps(range(20)):
        a @ b
    assert policy.chosen in (1, 2) and policy.label == f"{policy.chosen} (auto)"
    blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]
    assert blas and set(blas) == {policy.chosen}
    threads.limit(1)  # the suite's own setting (tests/conftest.py)


def test_a_flickering_load_does_not_keep_it_measuring():
    # one thread's step takes 10 ms with a core of its own and 25 ms sharing one, in turns of
    # 20 steps; two threads always take 100 ms.  Every turn changes the step time by more than
    # the drift factor, but each trial that confirms one thread doubles the wait for the next.
    cost = {"own": {2: 0.100, 1: 0.010}, "shared": {2: 0.100, 1: 0.025}}
    machine = Machine(cost)
    machine.load = "own"
    policy = ThreadPolicy(candidates=(1, 2), clock=machine.clock, apply=machine.apply,
                          explicit=lambda: None, drift_gap=0.5)
    chosen = []
    for turn in range(100):  # 2,000 steps, about 35 s
        machine.load = ("own", "shared")[turn % 2]
        chosen += run(policy, machine, 20)
    assert policy.chosen == 1
    assert len(policy.history) <= 12  # drift gaps 0.5, 1, 2, 4 … s; the schedule 5, 10, 20 s
    assert chosen.count(2) <= 12  # one step at two threads per trial
