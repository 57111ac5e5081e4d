"""What defines a training run (``TrainConfig``) and the model it builds.

The config is stored in every checkpoint, so a run can be rebuilt and resumed from its folder
alone (minivae/io/resume.py); ``train`` (minivae/train.py) reads it.

Verified by: tests/test_cli.py::test_options_left_out_take_the_config_defaults,
tests/io/test_resume.py::test_resume_with_a_changed_config_is_rejected
"""
from __future__ import annotations

import dataclasses

import numpy as np

from minivae import checks
from minivae.io.checkpoint import CheckpointError
from minivae.models.registry import model_class

OBJECTIVES = ("elbo", "iwae")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run; stored in the checkpoint so the model can be rebuilt."""

    dataset: str = "mnist"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    z_dim: int = 20
    hidden: tuple = (400,)
    activation: str = "tanh"
    leaky_slope: float = 0.01
    seed: int = 0
    dtype: str = "float32"
    out: str = "runs/vae"
    data_root: str | None = None
    max_train: int | None = None  # use only the first N training images (quick runs, tests)
    max_test: int | None = None
    objective: str = "elbo"  # "elbo" or "iwae" (the bound L_k)
    k: int = 1  # samples per example of L_k; only "iwae" uses more than one
    model: str = "vae"  # a name in minivae.models.registry.MODELS
    model_options: dict = dataclasses.field(default_factory=dict)  # passed to the model class

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in np.atleast_1d(self.hidden))
        for name in ("epochs", "batch_size", "z_dim", "k"):
            setattr(self, name, checks.positive_int(getattr(self, name), name))
        checks.positive(self.lr, "lr", number=True)
        checks.one_of(self.dtype, ("float32", "float64"), "dtype")
        checks.one_of(self.objective, OBJECTIVES, "objective")
        if self.objective == "elbo" and self.k != 1:
            # silently ignoring k would let a run claim a bound it never optimized
            raise ValueError(f"k must be 1 with objective 'elbo' (k samples are used only by "
                             f"objective 'iwae'), got {self.k!r}")
        model_class(self.model)  # an unknown name fails here, before any data is loaded
        if not isinstance(self.model_options, dict):
            raise TypeError(f"model_options must be a dict, got "
                            f"{type(self.model_options).__name__}")
        if self.objective == "iwae" and self.model != "vae":
            raise ValueError(f"objective 'iwae' is implemented for model 'vae', got model "
                             f"{self.model!r}")


def build_model(config: TrainConfig, x_dim: int, rng: np.random.Generator):
    """The configured model (``config.model``, default the VAE) with fresh weights."""
    return model_class(config.model)(
        x_dim, hidden=config.hidden, z_dim=config.z_dim, activation=config.activation, rng=rng,
        dtype=np.dtype(config.dtype), leaky_slope=config.leaky_slope, **config.model_options)


def stored_config(path, fields: dict) -> TrainConfig:
    """The ``TrainConfig`` a checkpoint's metadata describes (fields unknown to this version
    ignored); a CheckpointError naming ``path`` when it is not a valid config."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig(**{k: v for k, v in fields.items() if k in known})
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: the config in its metadata is not valid: "
                              f"{error}") from None
