"""Training a VAE end to end: data → bound → backward → Adam, with metrics, checkpoints, pictures.

The bound maximized is chosen by ``TrainConfig.objective``:

* ``"elbo"`` (default): the single-sample ELBO with the KL in closed form (``VAE.elbo``);
* ``"iwae"``: the importance-weighted bound of Burda et al. (2016) with k samples,
  L_k = E[log (1/k) Σ_i p(x, z_i) / q(z_i | x)], z_i ~ q(z | x) (``iwae_bound``).
  L_1 is the ELBO in its Monte Carlo form, and L_1 ≤ L_k ≤ L_{k+1} ≤ log p(x).

By default the loop follows the protocol of Burda et al. (2016): the training images are
binarized afresh every epoch (dynamic binarization); the test images are binarized once with a
fixed seed, so test ELBOs are comparable across epochs, runs and objectives.
``TrainConfig.binarize`` = "static" keeps one draw of the training images for the whole run,
and "round" thresholds both splits at 1/2 (``fixed_training_images``, ``scored_test_images``).

Runs are reproducible and resumable.  Every random draw comes from three generators spawned
from ``config.seed`` (weights, data order and binarization, model noise), so one seed gives
bit-identical runs on one machine with one BLAS thread count.  After every epoch
``checkpoint.npz`` stores everything the next epoch reads, and ``train(config, resume=True)``
continues from it, bit-identical to a run that was never interrupted (with that thread count);
minivae/io/resume.py says what the checkpoint holds and why.  The thread count matters because
BLAS splits a matrix product differently over one thread and over several, which changes the
last bits of the sums; by default it follows the machine's load (``minivae.threads``), and
``minivae.set_num_threads(n)``, ``--threads N`` or OMP_NUM_THREADS pins it.

Verified by: tests/models/test_vae.py::test_training_on_real_digits_lowers_negative_elbo,
tests/test_train.py::test_iwae_training_raises_the_bound_on_real_digits
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import schedules, threads
from minivae.config import TrainConfig, build_model, check_memory
from minivae.data import binarize_dynamic, binarize_static
from minivae.engine.tensor import Tensor, no_grad
from minivae.io.json_text import write_json
from minivae.io.lock import run_folder
from minivae.io.resume import (
    RUN_FILES,
    read_resume_checkpoint,
    remove_stale_temporary_files,
    restore_run,
    save_run,
)
from minivae.models.registry import model_class
from minivae.objectives.iwae import iwae_bound
from minivae.optim import Adam
from minivae.stopping import Budget, epochs_since_best, stop_if_diverged, stop_reason
from minivae.training_data import load_binary_split  # noqa: F401  (public here, as before)

TEST_BINARIZATION_SEED = 12345  # fixed, so every run scores the same binary test set


def bound_name(objective: str, k: int, model: str = "vae") -> str:
    """How the trained bound is called in logs and plots: "ELBO", "L_k", or "objective" (the
    model's own, for models other than the VAE)."""
    if model != "vae":
        return "objective"
    return "ELBO" if objective == "elbo" else f"L_{k}"


def train_metric(objective: str) -> str:
    """The key of metrics.json holding the mean training bound of each epoch."""
    return "train_elbo" if objective == "elbo" else "train_iwae"


def scored_test_images(model, pixels: np.ndarray, binarize: str = "dynamic") -> np.ndarray:
    """The test images a run is scored on, given the test split's pixels: thresholded at 1/2
    when the run's ``binarize`` is "round", else binarized once with ``TEST_BINARIZATION_SEED``
    (either way the same images every epoch, run and ``evaluate``), or the grey levels
    themselves for a model trained on them (``binary_data = False``).

    Verified by: tests/test_binarize.py::test_round_thresholds_both_splits_at_one_half
    """
    if not getattr(model, "binary_data", True):
        return pixels
    if binarize == "round":
        return binarize_static(pixels, 0.5)
    return binarize_dynamic(pixels, np.random.default_rng(TEST_BINARIZATION_SEED))


def fixed_training_images(pixels: np.ndarray, binarize: str,
                          rng: np.random.Generator) -> np.ndarray | None:
    """The binary training images of a run that keeps them for all its epochs, or None for
    "dynamic" (a fresh draw every epoch, by the training loop).

    Math: "round": b = [x > 1/2], which on 8-bit images (x = k/255, never 1/2) is also
          [x ≥ 1/2] and torch.round(x); "static": b = [u < x], u ~ U[0, 1) drawn once from
          ``rng``, which is made anew from the run's seed, so a resumed run draws the same b.
    Verified by: tests/test_binarize.py::test_static_is_one_bernoulli_draw_for_all_epochs,
    tests/test_binarize.py::test_round_thresholds_both_splits_at_one_half
    """
    if binarize == "round":
        return binarize_static(pixels, 0.5)
    return binarize_dynamic(pixels, rng) if binarize == "static" else None


def test_metric_name(model) -> str:
    """"ELBO" for models with an ``elbo`` method, else "objective"."""
    return "ELBO" if hasattr(model, "elbo") else "objective"


def mean_elbo(model, x: np.ndarray, rng: np.random.Generator, batch_size: int = 1000) -> float:
    """Average single-sample ELBO (or objective, for models without one) over the rows of x,
    with no graph built."""
    score = model.elbo if hasattr(model, "elbo") else model.objective
    total = 0.0
    with no_grad():
        for start in range(0, len(x), batch_size):
            total += float(score(x[start:start + batch_size], rng).data.sum(dtype=np.float64))
    return total / len(x)


def training_bound(model, x: np.ndarray, config: TrainConfig, rng: np.random.Generator,
                   extra: dict | None = None, kl_weight: float = 1.0) -> Tensor:
    """The per-example bound that training maximizes, shape (B,), with its graph.

    Math: "elbo": log p(x | z) − KL(q(z|x) ‖ p(z)), z = μ + σ ⊙ ε (one sample, KL exact),
          during a KL warm-up log p(x | z) − β KL with β = ``kl_weight`` < 1;
          "iwae": L̂_k = logsumexp_i(log p(x, z_i) − log q(z_i | x)) − log k, z_i ~ q(z | x).
    Other models maximize their own ``objective(x, rng, **extra)``, ``extra`` what the run's
    training data hands each step besides x (minivae/training_data.py).
    Verified by: tests/test_train.py::test_k1_iwae_step_is_the_monte_carlo_elbo_step
    """
    if config.objective == "iwae":
        return iwae_bound(model, x, config.k, rng)
    if kl_weight != 1.0:  # a config with kl_warmup has a model whose ELBO splits
        return kl_weighted_elbo(model, x, rng, kl_weight)
    return model.objective(x, rng, **(extra or {}))


def kl_weighted_elbo(model, x: np.ndarray, rng: np.random.Generator, beta: float) -> Tensor:
    """The bound of a KL warm-up (Bowman et al. 2016; Sønderby et al. 2016), shape (B,):
    the ELBO at β = 1, a looser weight on the KL below.

    Math: log p(x | z) − β KL(q(z|x) ‖ p(z)),  z = μ + σ ⊙ ε, the terms of
          ``model.reconstruction_and_kl``; its gradient is ∇ log p(x | z) − β ∇ KL.
    Verified by: tests/test_training_options.py::test_kl_weighted_bound_at_beta_one_is_the_elbo,
    tests/test_training_options.py::test_kl_weighted_gradient_is_the_weighted_sum_of_the_terms
    """
    log_p_x_given_z, kl = model.reconstruction_and_kl(x, rng)
    return log_p_x_given_z - kl * beta


def run_generators(seed: int) -> list[np.random.Generator]:
    """The run's five independent streams, spawned from ``seed``: the weights, the data order
    and dynamic binarization, the model's noise, the one static binarization, and the training
    data's own (e.g. which images keep their labels); the sixth picks the validation images
    (``minivae.training_data.validation_generator``).  spawn(n)'s first streams are those of
    spawn(n − 1), so each stream added last left earlier runs as they were."""
    return np.random.default_rng(seed).spawn(5)


def training_data(config: TrainConfig, rng: np.random.Generator | None = None):
    """The images of the run ``config`` and what its steps read besides them
    (minivae/training_data.py), drawn from ``rng``, by default the run's own fifth stream."""
    rng = run_generators(config.seed)[4] if rng is None else rng
    return model_class(config.model).training_data(config, rng)


def train(config: TrainConfig, progress: bool = True, resume: bool = False) -> dict:
    """Train a VAE as described by ``config``; write metrics, checkpoint and pictures to ``out``.

    Returns the metrics dictionary (also written to ``out/metrics.json``): the config, the
    objective and k, and per epoch the mean training bound (``train_elbo`` for objective
    "elbo", ``train_iwae`` — the mean L̂_k — for "iwae"; during a KL warm-up the β-weighted
    bound trained), the test ELBO (always at β = 1), the seconds and, with ``validation``,
    the ``validation_elbo`` of the held-out images.  A run that ends before ``epochs`` (its
    ``budget_minutes`` spent, or ``early_stopping``) says why in ``metrics["stopped"]``.

    The learning rate of epoch e is ``schedules.learning_rate(lr_schedule, e, lr, epochs)``:
    a resumed run whose ``epochs`` was raised follows the "cosine" schedule of its new length.

    ``resume=True`` continues the run whose ``out/checkpoint.npz`` is there, from the epoch
    after the last one saved; ``config`` must match the run's except for the fields in
    ``minivae.io.resume.RESUMABLE_CHANGES`` (raise ``epochs`` to train longer).
    ``minivae.io.resume.resume_config(out)`` reads that config back, so
    ``train(resume_config(out, epochs=20), resume=True)`` continues a run without restating it.
    FileNotFoundError when there is no checkpoint, ValueError when it belongs to another run,
    is damaged, or the run already has ``epochs``.

    The folder is held for the run's whole life (``minivae.io.lock.run_folder``): a second run
    into it gets ``FolderInUseError``, a folder that is a file or cannot be written to fails
    before any work is done, and a run that fails before writing anything leaves no folder
    behind.  Sizes whose model or batch cannot fit in memory are a MemoryError naming the
    field to lower (``minivae.config.check_memory``).
    """
    with run_folder(config.out) as out:  # created, writable and ours alone, or an error
        return train_in_folder(out, config, progress, resume)


def validation_score(model, validation_x: np.ndarray | None,
                     rng: np.random.Generator) -> dict[str, float]:
    """{"validation_elbo": the mean ELBO of the held-out images}, noise ε from ``rng``; {}
    for a run with no validation images."""
    if validation_x is None:
        return {}
    return {"validation_elbo": mean_elbo(model, validation_x, rng)}


def train_in_folder(out: Path, config: TrainConfig, progress: bool, resume: bool) -> dict:
    """``train``'s work, in the folder ``out`` that it holds."""
    budget = Budget(config.budget_minutes)  # a resumed run starts a fresh one
    checkpoint = out / RUN_FILES["checkpoint"]
    saved = read_resume_checkpoint(checkpoint, config) if resume else None
    remove_stale_temporary_files(out)
    model_rng, data_rng, noise_rng, static_rng, extra_rng = run_generators(config.seed)
    data = training_data(config, extra_rng)
    train_pixels, test_pixels = data.train_pixels, data.test_pixels
    check_memory(config, train_pixels.shape[1], len(train_pixels))  # before the model exists
    model = build_model(config, train_pixels.shape[1], model_rng)
    binary = getattr(model, "binary_data", True)  # False: trained on the grey levels
    if not binary and config.binarize != "dynamic":
        raise ValueError(f"binarize {config.binarize!r} applies to models of binary pixels; "
                         f"model {config.model!r} is trained on the grey levels")
    test_x = scored_test_images(model, test_pixels, config.binarize)
    # held out of training, binarized once like the test images
    validation_x = (None if data.validation_pixels is None else
                    scored_test_images(model, data.validation_pixels, config.binarize))
    fixed_x = (fixed_training_images(train_pixels, config.binarize, static_rng) if binary
               else train_pixels)
    optimizer = Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)
    train_key = train_metric(config.objective)
    name = bound_name(config.objective, config.k, config.model)
    metrics = {"config": dataclasses.asdict(config), "objective": config.objective,
               "k": config.k, "test_metric": test_metric_name(model), "epoch": [],
               train_key: [], "test_elbo": [], "seconds": [],
               **{score: [] for score in data.score_names},
               **({} if validation_x is None else {"validation_elbo": []})}
    # the run state besides the model's
    generators = {"data": data_rng, "noise": noise_rng, **data.generators}
    first_epoch = 1
    if saved is not None:
        first_epoch = 1 + restore_run(saved, checkpoint, model, optimizer, generators, metrics)

    train_x = fixed_x  # with dynamic binarization: None, then the last epoch's draw
    for epoch in range(first_epoch, config.epochs + 1):
        start, bound_sum, seen = time.perf_counter(), 0.0, 0
        optimizer.lr = schedules.learning_rate(config.lr_schedule, epoch, config.lr,
                                               config.epochs)
        beta = schedules.kl_weight(epoch, config.kl_warmup)  # 1 unless warming up
        if fixed_x is None:  # dynamic binarization: a fresh draw every epoch, in last's array
            train_x = binarize_dynamic(train_pixels, data_rng, out=train_x)
        n_batches = -(-len(train_x) // config.batch_size)
        # threads.adaptive times the steps to pick BLAS's thread count (minivae.threads)
        bar = tqdm(threads.adaptive(data.batches(train_x, config.batch_size, data_rng)),
                   total=n_batches, desc=f"epoch {epoch}/{config.epochs}",
                   disable=not progress, leave=False)
        for x, extra in bar:  # extra: what the objective takes besides x (most models: none)
            try:
                bound = training_bound(model, x, config, noise_rng, extra, beta)  # (B,)
            except ValueError as error:  # bad weights show up as an input check failing
                stop_if_diverged(model, f"training {name}", epoch, error, optimizer.t > 0)
                raise
            loss = -bound.mean()
            if not np.isfinite(loss.data):  # stop before a non-finite gradient reaches the weights
                stop_if_diverged(model, f"training {name}", epoch, float(-loss.data))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bound_sum += float(bound.data.sum(dtype=np.float64))
            seen += len(x)
            bar.set_postfix({name: f"{bound_sum / seen:.2f}", "threads": threads.POLICY.label},
                            refresh=False)
            if budget.spent():  # the epoch ends here, its bookkeeping done as any other's
                break
        seconds = time.perf_counter() - start
        if hasattr(model, "on_epoch_end"):
            model.on_epoch_end(epoch)  # e.g. a temperature schedule
        test_name = f"test {test_metric_name(model)}"
        try:  # ε from the run's noise stream; `evaluate` draws its own from --seed
            test_elbo = mean_elbo(model, test_x, noise_rng)
        except ValueError as error:
            stop_if_diverged(model, test_name, epoch, error, optimizer.t > 0)
            raise
        if not np.isfinite(test_elbo):
            stop_if_diverged(model, test_name, epoch, test_elbo)
        scores = data.scores(model, test_x)  # e.g. a test classification error
        validation = validation_score(model, validation_x, noise_rng)
        for key, value in (("epoch", epoch), (train_key, bound_sum / seen),
                           ("test_elbo", test_elbo), ("seconds", seconds), *scores.items(),
                           *validation.items()):
            metrics[key].append(value)
        if progress:
            shown = "".join(f"  {key.replace('_', ' ')} {value:.2%}" for key, value in
                            scores.items())
            shown += "".join(f"  validation ELBO {value:9.3f}" for value in validation.values())
            tqdm.write(f"epoch {epoch:3d}  train {name:>5} {bound_sum / seen:9.3f}  "
                       f"test {test_metric_name(model)} {test_elbo:9.3f}{shown}  "
                       f"({seconds:.1f} s)")
        stopped = stop_reason(config, metrics, budget)
        if stopped:
            metrics["stopped"] = stopped
        # the checkpoint first: it is what a resumed run reads, metrics.json only a copy
        save_run(checkpoint, config, epoch, int(train_pixels.shape[1]), model, optimizer,
                 generators, metrics)
        if validation and epochs_since_best(metrics["validation_elbo"]) == 0:
            save_run(out / RUN_FILES["best"], config, epoch, int(train_pixels.shape[1]), model,
                     optimizer, generators, metrics)  # the weights of the best epoch so far
        write_json(out / RUN_FILES["metrics"], metrics)
        if stopped:
            break

    write_pictures(model, test_x, metrics, out, np.random.default_rng(config.seed))
    return metrics


def write_pictures(model, test_x: np.ndarray, metrics: dict, out: Path,
                   rng: np.random.Generator) -> None:
    """recon.png (test digits and their reconstructions), samples.png, curve.png."""
    from minivae.io.plots import save_curve, save_image_grid, save_reconstructions

    model_name = metrics["config"].get("model", "vae")
    run = (f"{model_name} on {metrics['config']['dataset']}, {metrics['epoch'][-1]} "
           f"epoch{'' if metrics['epoch'][-1] == 1 else 's'}")
    shown = test_x[np.linspace(0, len(test_x) - 1, 20).astype(int)]  # spread over all classes
    save_reconstructions(out / RUN_FILES["recon"], shown, model.reconstruct(shown), n=20,
                         title=f"test digits and their reconstructions: {run}")
    save_image_grid(out / RUN_FILES["samples"], model.sample(100, rng), ncols=10,
                    title="samples: decoder(z), z drawn from the prior")
    name = bound_name(metrics["objective"], metrics["k"], model_name)
    save_curve(out / RUN_FILES["curve"], metrics["epoch"],
               {f"train {name}": metrics[train_metric(metrics["objective"])],
                f"test {metrics.get('test_metric', 'ELBO')}": metrics["test_elbo"]},
               title=f"{model_name} on {metrics['config']['dataset']}, "
                     f"trained on the {name}")
