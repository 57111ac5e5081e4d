"""Resumable runs: what a training checkpoint holds, and putting it back.

After every epoch ``train`` saves ``checkpoint.npz`` in the run folder.  Besides the config, it
holds everything the next epoch reads:

* the parameters (``model.state_dict()``, names as they are);
* Adam's state: the moments m and v of every parameter and the step count t
  (arrays named ``_adam.*``);
* the model's state outside its parameters: arrays such as the VQ-VAE's codeword usage counts
  (``_model.*``), scalars such as the categorical VAE's annealed temperature, and the states of
  the model's own random generators (metadata ``model_state``);
* the states of the run's two running generators, one for data order and binarization, one
  for the model's noise (metadata ``rng``); the generator of the initial weights is not read
  again after the model is built;
* the metrics of the finished epochs and the number of the last one.

Why a resumed run is bit-identical to one that never stopped: an epoch is a deterministic
function of exactly this state.  Its inputs are the parameters and Adam's m, v, t (each step
reads them), the two generators (every random draw of the epoch comes from them, in the same
order) and the model's extra state; the data are the same images, re-read from disk (the
test images binarized with their fixed seed).  The arrays are stored with their dtypes and
exact bytes, and the generators' states as the integers NumPy reports, so restoring them
recreates the same values, not approximations.
Epoch e + 1 of the resumed run therefore computes exactly what epoch e + 1 of the whole run
computed, and so does every later one (on one machine, as for any two runs with one seed; the
wall-clock seconds aside).

The config is stored too: ``resume_config`` reads it back, so a run continues from its folder
alone, and ``train(config, resume=True)`` refuses a config that differs from it outside
``RESUMABLE_CHANGES``: another learning rate, seed, batch size, ... would make the rest a
different run, not a continuation.

Names starting with "_" cannot clash with a parameter's: ``Module.named_parameters`` skips them.
The content digest that ``save_checkpoint`` adds is required when resuming, so a checkpoint
edited after it was written is refused rather than continued.

Verified by: tests/io/test_resume.py::test_interrupted_and_resumed_run_equals_uninterrupted
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.config import TrainConfig, build_model, stored_config
from minivae.engine.tensor import Tensor
from minivae.io.checkpoint import CheckpointError, check_arrays, load_checkpoint, save_checkpoint
from minivae.optim import Adam

# Every file a run writes into its folder, by role: the one list that the training loop, the
# command line's report and the clean-up of a killed run's temporary files all read.
RUN_FILES = {"checkpoint": "checkpoint.npz", "metrics": "metrics.json", "recon": "recon.png",
             "samples": "samples.png", "curve": "curve.png",
             # only with validation images: the checkpoint of the epoch with the best score
             "best": "best.npz"}
CHECKPOINT_NAME = RUN_FILES["checkpoint"]
OPTIMIZER_PREFIX, MODEL_EXTRA_PREFIX = "_adam.", "_model."
# Config fields a resumed run may change: where files go and come from, the total length, and
# the wall-clock budget (a resumed run starts a fresh one).
RESUMABLE_CHANGES = ("epochs", "out", "data_root", "budget_minutes")


def save_run(path: Path, config, epoch: int, x_dim: int, model, optimizer: Adam,
             generators: dict, metrics: dict) -> None:
    """Write the checkpoint from which the epoch after ``epoch`` can start (atomically)."""
    arrays, extra = run_state(model, optimizer)
    save_checkpoint(path, arrays,
                    {"config": dataclasses.asdict(config), "objective": config.objective,
                     "k": config.k, "epoch": epoch, "x_dim": x_dim, "metrics": metrics,
                     "model_state": extra,
                     "rng": {name: rng.bit_generator.state for name, rng in generators.items()}})


def run_state(model, optimizer: Adam) -> tuple[dict, dict]:
    """The arrays of a checkpoint (parameters, Adam's state, model extras) and the model's
    JSON-able extra state."""
    extra_arrays, extra = model_extra_state(model)
    arrays = dict(model.state_dict())
    arrays.update({OPTIMIZER_PREFIX + k: v for k, v in optimizer.state_dict().items()})
    arrays.update(extra_arrays)
    return arrays, extra


def model_extra_state(model) -> tuple[dict, dict]:
    """What a model keeps outside ``state_dict`` that later epochs read: (arrays, JSON dict).

    Arrays: its top-level arrays and constant Tensors that are neither parameters nor in
    ``state_dict`` (e.g. the VQ-VAE's codeword usage counts).  JSON: its scalar attributes
    with their types (e.g. the categorical VAE's annealed temperature) and the states of its
    random generators (e.g. the VQ-VAE's, which restarts dead codewords).
    """
    covered = set(model.state_dict())
    flat = [id(getattr(model, n, None)) for n in ("flat_data", "_flat_grad")]
    arrays, scalars, generators = {}, {}, {}
    for name, value in vars(model).items():
        if isinstance(value, Tensor) and not value.requires_grad:
            value = value.data
        if isinstance(value, np.ndarray) and name not in covered and id(value) not in flat:
            arrays[MODEL_EXTRA_PREFIX + name] = value.copy()
        elif isinstance(value, np.random.Generator):
            generators[name] = value.bit_generator.state
        elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            kind = type(value).__name__ if type(value) in (bool, int, float) else value.dtype.str
            scalars[name] = [kind, value.item() if isinstance(value, np.generic) else value]
    return arrays, {"scalars": scalars, "generators": generators}


def load_resumable(path: Path) -> tuple[dict, dict]:
    """(arrays, meta) of a checkpoint that holds a run state, with its checksum verified."""
    if not path.is_file():
        raise FileNotFoundError(2, f"cannot resume: no checkpoint in {path.parent} (run without "
                                   f"--resume to start a new run there)", str(path))
    arrays, meta = load_checkpoint(path, require_checksum=True)
    for key in ("config", "epoch", "metrics", "rng", "model_state"):
        if key not in meta:
            raise CheckpointError(f"{path} cannot be resumed: its metadata has no {key!r} "
                                  f"(written by an older minivae, or not by train)")
    if not isinstance(meta["config"], dict):
        raise CheckpointError(f"{path}: 'config' in the metadata must be a JSON object, got "
                              f"{type(meta['config']).__name__}")
    return arrays, meta


def _plain(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def check_same_run(path: Path, stored: dict, config) -> None:
    """ValueError listing every field, old → new, in which ``config`` (a config, or a dict of
    some of its fields) differs from the stored config other than ``RESUMABLE_CHANGES``."""
    current = _plain(config if isinstance(config, dict) else dataclasses.asdict(config))
    # a field newer than the checkpoint has the value that reproduces what the run did: its
    # default (as ``stored_config`` reads it back)
    stored = {**_plain(dataclasses.asdict(TrainConfig())), **stored}
    changed = [f"{field} {stored[field]!r} → {current[field]!r}"
               for field in (f.name for f in dataclasses.fields(TrainConfig))
               if field in current and field not in RESUMABLE_CHANGES
               and stored[field] != current[field]]
    if changed:
        raise ValueError(f"cannot resume {path}: the config differs from the run's in "
                         f"{'; '.join(changed)} (only {', '.join(RESUMABLE_CHANGES)} may "
                         f"change; start a new run in another --out folder instead)")


def resume_config(out, **overrides):
    """The ``TrainConfig`` of the run saved in the folder ``out``, for ``train(config,
    resume=True)``, so a run can be continued without restating how it was configured.

    ``out`` becomes the config's folder (a run folder may have been moved or copied).
    ``overrides`` set fields: those in ``RESUMABLE_CHANGES`` freely (``epochs=20`` trains
    longer), any other only to the value the run already has, else the ValueError of a
    changed config.  FileNotFoundError when ``out`` holds no checkpoint.
    """
    path = Path(out) / CHECKPOINT_NAME
    _, meta = load_resumable(path)
    saved = stored_config(path, meta["config"])
    try:
        config = dataclasses.replace(saved, out=str(out), **overrides)
    except (TypeError, ValueError):
        check_same_run(path, meta["config"], overrides)  # a change says more than its value
        raise
    check_same_run(path, meta["config"], config)
    return config


def read_resume_checkpoint(path: Path, config) -> tuple[dict, dict]:
    """(arrays, meta) of the checkpoint to resume, after checking that it belongs to the run
    ``config`` describes and that epochs are left to train."""
    arrays, meta = load_resumable(path)
    check_same_run(path, meta["config"], config)
    done = meta["epoch"]
    if not isinstance(done, int) or isinstance(done, bool) or done < 1:
        raise CheckpointError(f"{path}: 'epoch' must be a positive integer, got {done!r}")
    if done >= config.epochs:
        raise ValueError(f"nothing to resume: the run in {path.parent} has already finished "
                         f"{done} epochs and epochs is {config.epochs}; raise --epochs to "
                         f"train longer")
    return arrays, meta


def restore_run(saved: tuple[dict, dict], path: Path, model, optimizer: Adam,
                generators: dict, metrics: dict) -> int:
    """Put the run state of a checkpoint into a freshly built model, optimizer, generators and
    metrics (in place); return the last epoch it finished.  Everything is checked against the
    fresh objects first, so a mismatch is a CheckpointError naming the file."""
    arrays, meta = saved
    expected_arrays, extra = run_state(model, optimizer)
    try:
        check_arrays(arrays, {k: (v.shape, v.dtype) for k, v in expected_arrays.items()})
    except CheckpointError as error:
        raise CheckpointError(f"{path} does not fit the model built from its config: "
                              f"{error}") from None
    state = meta["model_state"]
    if (not isinstance(state, dict) or not isinstance(state.get("scalars"), dict)
            or not isinstance(state.get("generators"), dict)
            or set(state["scalars"]) != set(extra["scalars"])
            or set(state["generators"]) != set(extra["generators"])):
        raise CheckpointError(f"{path}: the model state it holds names "
                              f"{sorted(state) if isinstance(state, dict) else state!r}, the "
                              f"model built from its config has scalars "
                              f"{sorted(extra['scalars'])} and generators "
                              f"{sorted(extra['generators'])}")
    epoch = meta["epoch"]
    saved_metrics = meta["metrics"]
    # the per-epoch lists of a fresh run: the bounds and seconds, and the training data's
    # scores (a test error); each holds one number per finished epoch
    keys = tuple(key for key, value in metrics.items() if isinstance(value, list))
    if not (isinstance(saved_metrics, dict)
            and all(isinstance(saved_metrics.get(k), list) and len(saved_metrics[k]) == epoch
                    and all(_is_number(value) for value in saved_metrics[k]) for k in keys)
            and saved_metrics["epoch"] == list(range(1, epoch + 1))):
        raise CheckpointError(f"{path}: 'metrics' must hold lists {keys} of {epoch} numbers "
                              f"each (one per finished epoch, 'epoch' counting 1 to {epoch})")
    try:
        for name, value in arrays.items():  # as strict as the weights: no NaN in any state
            checks.finite(value, f"array {name!r}")
        model.load_state_dict({k: v for k, v in arrays.items() if not k.startswith("_")})
        optimizer.load_state_dict({k[len(OPTIMIZER_PREFIX):]: v for k, v in arrays.items()
                                   if k.startswith(OPTIMIZER_PREFIX)})
        for name, value in arrays.items():
            if name.startswith(MODEL_EXTRA_PREFIX):
                target = getattr(model, name[len(MODEL_EXTRA_PREFIX):])
                (target.data if isinstance(target, Tensor) else target)[...] = value
        for name, (kind, value) in state["scalars"].items():
            if kind != extra["scalars"][name][0]:
                raise TypeError(f"model scalar {name!r} must be of kind "
                                f"{extra['scalars'][name][0]!r}, got {kind!r}")
            setattr(model, name, {"bool": bool, "int": int, "float": float}.get(
                kind, np.dtype(kind).type)(value))
        for name, value in state["generators"].items():
            restore_generator(getattr(model, name), value, f"the model's generator {name!r}")
        for name, rng in generators.items():
            restore_generator(rng, meta["rng"][name], f"the {name} generator")
    # OverflowError: an integer beyond what the generator or the scalar's dtype holds
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        raise CheckpointError(f"{path}: cannot restore the run state: "
                              f"{type(error).__name__}: {error}") from None
    for key in keys:
        metrics[key] = list(saved_metrics[key])
    return epoch


def _is_number(value) -> bool:
    """A real number as JSON holds it (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def restore_generator(rng: np.random.Generator, state, name: str) -> None:
    """Give ``rng`` the saved ``state`` if it is a state its bit generator can have: the form
    of its own state (the same keys, the bit generator's name, integers ≥ 0 where it has
    integers), accepted by the bit generator and read back unchanged.  A ValueError naming
    the generator otherwise (or an OverflowError for an integer wider than the state's)."""
    if not _same_form(state, rng.bit_generator.state):
        raise ValueError(f"{name}: {state!r} is not a state of a "
                         f"{type(rng.bit_generator).__name__} bit generator")
    rng.bit_generator.state = state
    if rng.bit_generator.state != state:  # e.g. a float silently truncated
        raise ValueError(f"{name}: {state!r} does not read back as it was written")


def _same_form(value, like) -> bool:
    """Whether ``value`` has the form of the bit-generator state ``like``."""
    if isinstance(like, dict):
        return (isinstance(value, dict) and set(value) == set(like)
                and all(_same_form(value[key], like[key]) for key in like))
    if isinstance(like, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value == like  # the bit generator's name


def remove_stale_temporary_files(out: Path) -> None:
    """Delete what saves killed mid-write left behind (``atomic_write``'s hidden siblings).

    They never take a real file's name, so they cannot be loaded by mistake; this only keeps a
    run folder that was interrupted many times from filling up with dead files.
    """
    for target in RUN_FILES.values():
        for stale in out.glob(f".{target}.*{Path(target).suffix}"):
            stale.unlink(missing_ok=True)


def load_model(path) -> tuple:
    """Rebuild a trained model (and its config) from a checkpoint written by ``train``.

    The arrays are checked against the model rebuilt from the stored config (names, shapes,
    dtypes) before any is loaded; every problem is a ``CheckpointError`` naming the file.
    """
    arrays, meta = load_checkpoint(path)
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path}: not a minivae training checkpoint (no 'config' object "
                              f"in its metadata)")
    config = stored_config(path, meta["config"])
    # x_dim is in the metadata since models other than the VAE exist; older files: the
    # encoder's first weight has x_dim rows
    x_dim = meta.get("x_dim", arrays.get("encoder.layers.0.weight", np.empty((0, 0))).shape[0])
    if not isinstance(x_dim, (int, np.integer)) or isinstance(x_dim, bool) or x_dim < 1:
        raise CheckpointError(f"{path}: checkpoint has no valid x_dim (got {x_dim!r}) and no "
                              f"encoder.layers.0.weight array")
    try:
        model = build_model(config, int(x_dim), np.random.default_rng(0))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot build the model its config describes: "
                              f"{error}") from None
    # arrays named "_..." are the optimizer's and the run's, not parameters
    parameters = {k: v for k, v in arrays.items() if not k.startswith("_")}
    try:
        check_arrays(parameters, {k: (v.shape, v.dtype) for k, v in model.state_dict().items()})
    except CheckpointError as error:
        raise CheckpointError(f"{path} does not fit the model built from its config: "
                              f"{error}") from None
    try:  # training never saves weights that are not finite: such a file was damaged
        for name, value in parameters.items():
            checks.finite(value, f"array {name!r}")
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    model.load_state_dict(parameters)
    return model, config
