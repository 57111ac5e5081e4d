"""What defines a training run (``TrainConfig``) and the model it builds.

The config is stored in every checkpoint, so a run can be rebuilt and resumed from its folder
alone (minivae/io/resume.py); ``train`` (minivae/train.py) reads it.

Verified by: tests/test_cli.py::test_options_left_out_take_the_config_defaults,
tests/io/test_resume.py::test_resume_with_a_changed_config_is_rejected
"""
from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.io.checkpoint import CheckpointError
from minivae.io.datasets import DATASET_NAMES
from minivae.models.registry import model_class
from minivae.nn import HIDDEN_ACTIVATIONS, INITIALIZATIONS, initialize
from minivae.schedules import LR_SCHEDULES

OBJECTIVES = ("elbo", "iwae")
# How grey levels become the binary pixels of the Bernoulli models (minivae/data.py's docstring):
# a fresh Bernoulli draw every epoch, one draw kept for the whole run, or x > 1/2.
BINARIZATIONS = ("dynamic", "static", "round")
# What build_model passes to every model class; the rest of a class's arguments are its options.
SHARED_MODEL_ARGUMENTS = ("x_dim", "hidden", "z_dim", "activation", "rng", "dtype",
                          "leaky_slope")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a run; stored in the checkpoint so the model can be rebuilt."""

    dataset: str = "mnist-5k"  # the embedded digits: no download; "mnist" for all 70,000
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
    binarize: str = "dynamic"  # one of BINARIZATIONS; ignored by models of grey levels
    # labelled training images of a semi-supervised model (m2), as many of each class, chosen
    # by the seed; the other models read no labels
    labels: int | None = None
    # what the papers' runs set besides (minivae/schedules.py, minivae/train.py); each default
    # is what runs did before the field existed
    lr_schedule: str = "constant"  # one of minivae.schedules.LR_SCHEDULES
    kl_warmup: int = 0  # epochs over which the KL's weight β rises to 1 (0: β = 1 throughout)
    adam_eps: float = 1e-8  # Adam's ε (Burda et al. 2016 used 1e-4)
    init: str = "default"  # one of minivae.nn.INITIALIZATIONS
    validation: int | None = None  # training images held out to score every epoch
    early_stopping: int | None = None  # stop after this many epochs without a better one
    budget_minutes: float | None = None  # stop once this much wall-clock time is spent

    def __post_init__(self):
        self.hidden = checks.widths(self.hidden)
        check_fields(self)
        if self.objective == "elbo" and self.k != 1:
            # silently ignoring k would let a run claim a bound it never optimized
            raise ValueError(f"k must be 1 with objective 'elbo' (k samples are used only by "
                             f"objective 'iwae'), got {self.k!r}")
        semi_supervised = getattr(model_class(self.model), "semi_supervised", False)
        if semi_supervised and self.labels is None:
            raise ValueError(f"labels must say how many training images keep their labels "
                             f"(e.g. 100): model {self.model!r} learns from them, got None")
        if self.labels is not None and not semi_supervised:
            raise ValueError(f"labels is read only by the semi-supervised model 'm2', got "
                             f"labels {self.labels} with model {self.model!r}")
        if self.kl_warmup and (self.objective != "elbo" or not splits_elbo(self.model)):
            raise ValueError(f"kl_warmup weights the KL of an ELBO that splits into "
                             f"reconstruction and KL (objective 'elbo' with model 'vae'), got "
                             f"objective {self.objective!r} with model {self.model!r}")
        if self.early_stopping is not None and self.validation is None:
            raise ValueError(f"early_stopping needs validation images to judge by (set "
                             f"validation), got early_stopping {self.early_stopping}")
        if self.objective == "iwae" and self.model != "vae":
            raise ValueError(f"objective 'iwae' is implemented for model 'vae', got model "
                             f"{self.model!r}")


def check_fields(config: TrainConfig) -> None:
    """Every field of ``config`` on its own: the right kind and range, checked before any data
    is read or any folder made.  Sizes that are integers become ints; ``max_train`` and
    ``max_test`` are None or positive, since the data are sliced ``x[:n]``, where 0 or a
    negative n would silently mean all, or all but the last |n|, images."""
    for name in ("epochs", "batch_size", "z_dim", "k"):
        setattr(config, name, checks.positive_int(getattr(config, name), name))
    for name in ("max_train", "max_test", "labels"):
        setattr(config, name, checks.positive_int(getattr(config, name), name, optional=True))
    config.seed = checks.integer(config.seed, "seed", 0)  # what np.random.default_rng accepts
    checks.positive(config.lr, "lr", number=True)
    config.adam_eps = checks.positive(config.adam_eps, "adam_eps", number=True)
    config.budget_minutes = checks.positive(config.budget_minutes, "budget_minutes",
                                            number=True, optional=True)
    config.kl_warmup = checks.integer(config.kl_warmup, "kl_warmup", 0)
    for name in ("validation", "early_stopping"):
        setattr(config, name, checks.positive_int(getattr(config, name), name, optional=True))
    checks.one_of(config.lr_schedule, LR_SCHEDULES, "lr_schedule")
    checks.one_of(config.init, INITIALIZATIONS, "init")
    checks.real(config.leaky_slope, "leaky_slope")
    checks.one_of(config.dataset, DATASET_NAMES, "dataset")
    checks.one_of(config.dtype, ("float32", "float64"), "dtype")
    checks.one_of(config.objective, OBJECTIVES, "objective")
    checks.one_of(config.binarize, BINARIZATIONS, "binarize")
    checks.one_of(config.activation, HIDDEN_ACTIVATIONS, "activation")
    config.out = path_text(config.out, "out")
    config.data_root = None if config.data_root is None else path_text(config.data_root,
                                                                         "data_root")
    check_model_options(config.model, config.model_options)


def splits_elbo(model: str) -> bool:
    """Whether model ``model``'s ELBO is the difference of the terms its
    ``reconstruction_and_kl`` returns (the class defining ``elbo`` defines that too), so a KL
    warm-up can weight the KL alone."""
    owners = {name: next((c for c in model_class(model).__mro__ if name in vars(c)), None)
              for name in ("elbo", "reconstruction_and_kl")}
    return owners["reconstruction_and_kl"] is not None and len(set(owners.values())) == 1


def path_text(path, name: str) -> str:
    """``path`` (a str or a path object) as the str stored in checkpoints and metrics."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{name} must be a non-empty path, got {path!r}")
    return os.fspath(path)


def model_option_names(model: str) -> tuple[str, ...]:
    """The options the model class ``model`` takes besides the ones every model takes (the
    registry's protocol), e.g. ``("n_classes", ...)`` for the categorical VAE."""
    parameters = inspect.signature(model_class(model)).parameters
    return tuple(name for name in parameters if name not in SHARED_MODEL_ARGUMENTS)


def check_model_options(model: str, options) -> None:
    """``options`` is a dict whose keys ``model``'s class takes (its values the class checks
    when the model is built); an unknown model name fails here too."""
    if not isinstance(options, dict):
        raise TypeError(f"model_options must be a dict, got {type(options).__name__}")
    known = model_option_names(model)
    unknown = sorted(str(key) for key in options if key not in known)
    if unknown:
        raise ValueError(f"model_options holds {', '.join(unknown)}, which model {model!r} "
                         f"does not take (its options: {', '.join(known) or 'none'})")


def build_model(config: TrainConfig, x_dim: int, rng: np.random.Generator):
    """The configured model (``config.model``, default the VAE) with fresh weights, its Linear
    layers redrawn by ``config.init`` (``minivae.nn.initialize``) from the same ``rng``."""
    model = model_class(config.model)(
        x_dim, hidden=config.hidden, z_dim=config.z_dim, activation=config.activation, rng=rng,
        dtype=np.dtype(config.dtype), leaky_slope=config.leaky_slope, **config.model_options)
    initialize(model, config.init, rng)  # "default" draws nothing: the weights as built
    return model


def stored_config(path, fields: dict) -> TrainConfig:
    """The ``TrainConfig`` a checkpoint's metadata describes (fields unknown to this version
    ignored); a CheckpointError naming ``path`` when it is not a valid config."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig(**{k: v for k, v in fields.items() if k in known})
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: the config in its metadata is not valid: "
                              f"{error}") from None


# Floats a training step keeps per row and layer width: the layer's output, its pre-activation,
# their gradient and one temporary (an estimate: enough to refuse sizes that cannot fit).
COPIES_PER_ACTIVATION = 4
EVALUATION_ROWS = 1000  # the test bound is computed 1000 images at a time


def memory_needs(config: TrainConfig, x_dim: int, n_train: int) -> dict[str, int]:
    """Bytes a run needs, estimated before anything is allocated: {"weights": …, "batch": …}.
    The model's class names the MLPs a step runs and how many rows each runs per image
    (``ImageModel.step_networks``: the VAE's encoder and decoder once, M2's encoder and
    decoder K + 1 times, since the K classes of every unlabelled image are enumerated).

    Math: weights W = Σ over the MLPs' layers (inputs + 1)·outputs, stored 4 times (values,
          gradients, Adam's m and v); a step holds rows · Σ_MLPs (rows per image · Σ widths)
          · 4 floats, with rows = max(min(batch_size, n_train) · k, 1000).
    Verified by: tests/test_train.py::test_sizes_that_cannot_fit_are_refused_up_front,
    tests/test_train.py::test_the_memory_estimate_counts_m2_s_enumerated_classes
    """
    itemsize = np.dtype(config.dtype).itemsize
    networks = model_class(config.model).step_networks(config, x_dim)
    weights = sum((a + 1) * b for widths, _ in networks for a, b in zip(widths, widths[1:]))
    rows = max(min(config.batch_size, n_train) * config.k, EVALUATION_ROWS)
    activations = sum(per_image * sum(widths) for widths, per_image in networks)
    return {"weights": 4 * weights * itemsize,
            "batch": rows * activations * COPIES_PER_ACTIVATION * itemsize}


def check_memory(config: TrainConfig, x_dim: int, n_train: int, available=None) -> None:
    """A MemoryError naming the field to lower when the run's model or its training batch
    cannot fit in the memory ``available`` (bytes; default: what this machine has free),
    before anything is allocated (the estimate: ``memory_needs``)."""
    available = free_memory() if available is None else available
    needs = memory_needs(config, x_dim, n_train)
    if available is None or sum(needs.values()) <= available:
        return
    have = f"about {byte_size(sum(needs.values()))} of memory, and {byte_size(available)} " \
           f"are free"
    batch = min(config.batch_size, n_train) * config.k
    if batch > EVALUATION_ROWS and needs["weights"] <= available:  # the rows are too many
        field = "k" if config.k > 1 else "batch_size"
        raise MemoryError(f"{field} {getattr(config, field)} is too large: a training batch of "
                          f"{min(config.batch_size, n_train)} images × {config.k} samples "
                          f"needs {have}")
    field = "z_dim" if config.z_dim > max(config.hidden, default=0) else "hidden"
    value = config.z_dim if field == "z_dim" else list(config.hidden)
    weights = needs["weights"] // (4 * np.dtype(config.dtype).itemsize)
    rows = max(batch, EVALUATION_ROWS)
    raise MemoryError(f"{field} {value} is too large: a model with hidden layers "
                      f"{list(config.hidden)} and z_dim {config.z_dim} on {x_dim} inputs has "
                      f"{weights:.3g} weights; with their gradients, Adam's moments and the "
                      f"activations of {rows} images it needs {have}")


def free_memory() -> int | None:
    """Bytes of memory this process can still use (Linux: MemAvailable, capped by a cgroup
    limit; elsewhere the physical memory), or None if the system does not say."""
    limits = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            limits += [int(line.split()[1]) * 1024 for line in meminfo
                       if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit, used = ((cgroup / name).read_text().strip() for name in ("memory.max",
                                                                        "memory.current"))
        if limit != "max":
            limits.append(int(limit) - int(used))
    except (OSError, ValueError):
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return None
    return max(min(limits), 0)


def byte_size(n: int) -> str:
    """``n`` bytes in words: "512 B", "3.2 GiB", "5.7 TiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
