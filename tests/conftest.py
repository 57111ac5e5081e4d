"""Shared test configuration: hypothesis profiles and common fixtures.

Profiles (chosen with the environment variable ``HYPOTHESIS_PROFILE``, default ``ci``):

- ``ci``: derandomized, so every run draws the same examples and a failure repeats exactly;
  50 examples per property unless a test asks for fewer or more.
- ``dev``: randomized and five times as many examples, for hunting bugs locally.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=50,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    derandomize=False,
    deadline=None,
    max_examples=250,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so each test sees the same numbers every run."""
    return np.random.default_rng(0)


@pytest.fixture
def shared_data() -> Path:
    """The directory of real datasets next to the repository; the test is skipped without it."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path}")
    return path
