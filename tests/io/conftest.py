"""Shared by the io tests: a checkpoint of a one-epoch tiny training run, and every place
datasets are looked for, pointed into tmp_path."""
from __future__ import annotations

import pytest

import minivae.train as training
from minivae.io import datasets
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


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point every place load_dataset looks at (and downloads from) into tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    offline = (tmp_path / "no-such-mirror").as_uri() + "/"
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": (offline,), "fashion-mnist": (offline,)})
    return tmp_path
