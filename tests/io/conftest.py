"""Shared by the io tests: a checkpoint of a one-epoch tiny training run (the places datasets
are looked for, pointed into tmp_path, are the fixture ``isolated`` of tests/conftest.py)."""
from __future__ import annotations

import pytest

import minivae.train as training
from minivae.train import train
from tests.helpers import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """checkpoint.npz of a one-epoch run of the tiny configuration."""
    out = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "write_pictures", lambda *args, **kwargs: None)
        train(tiny_config(out, 1), progress=False)
    return out / "checkpoint.npz"
