"""Seconds per MNIST-sized training epoch: minivae against PyTorch eager, interleaved in one run.

Two architectures (both Bernoulli VAEs, float32, Adam 1e-3, one sample per example):

* A: 784-400-20, tanh, batch 128 (Kingma & Welling's MNIST model);
* B: 784-400-400-200 with LeakyReLU(0.2), batch 100 (the course notebook's model).

Each repeat runs one minivae epoch and then one PyTorch epoch over the same 60,000 binary images
(real MNIST with ``--data-root``, otherwise random binary images of the same size; the work per
epoch does not depend on the pixel values).  The script prints the median seconds, the ratio
minivae / PyTorch, and the GEMM share: the time the epoch's matrix products take alone (the same
``np.matmul`` calls on the same shapes, nothing else) divided by minivae's epoch time.  Two more
columns locate the floor: the same step written by hand with no autodiff engine
(``hand_fused.py``, same kernels and BLAS calls), and PyTorch's own matrix products alone.

    python bench/epoch.py --repeats 3 [--data-root ../shared/data/mnist] [--backend auto]

``--busy N`` starts N competing CPU-bound processes for the whole run (a busy laptop), and
``--threads`` says which BLAS thread settings minivae runs under: "auto" (the measuring policy
of minivae.threads, the default of ``train`` and the demos) and fixed counts, each its own
column, so the policy is compared with the best fixed count in the same run.  ``--via-train``
times minivae's epoch as ``python -m minivae train`` runs it: ``minivae.train.train`` for one
epoch on the first ``--n`` images of the MNIST found by its usual lookup (``--data-root``,
$MINIVAE_DATA, ~/.cache), with its progress bar, reading the epoch's seconds from the run's
metrics (test scoring, checkpoint and pictures are not timed).
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, kernels, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.models import VAE
from minivae.optim import Adam
from minivae.train import TrainConfig, train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hand_fused import hand_fused_epoch  # noqa: E402

ARCHITECTURES = {
    "A": dict(hidden=(400,), z_dim=20, activation="tanh", batch_size=128, leaky_slope=0.01),
    "B": dict(hidden=(400, 400), z_dim=200, activation="leaky_relu", batch_size=100,
              leaky_slope=0.2),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--architectures", nargs="+", default=["A", "B"], choices=["A", "B"])
    parser.add_argument("--data-root", default=None, help="MNIST IDX folder (else random data)")
    parser.add_argument("--n", type=int, default=60_000, help="images per epoch")
    parser.add_argument("--backend", default="auto", choices=["auto", *kernels.BACKENDS],
                        help="minivae kernel backend")
    parser.add_argument("--busy", type=int, default=0,
                        help="competing CPU-bound processes running during the benchmark")
    parser.add_argument("--without-torch", action="store_true",
                        help="minivae's columns only (no PyTorch, even if installed)")
    parser.add_argument("--via-train", action="store_true",
                        help="time minivae's epoch through minivae.train.train (needs MNIST)")
    parser.add_argument("--threads", nargs="+", default=["auto", "1", str(threads.cores())],
                        help="BLAS thread settings for minivae: auto and/or fixed counts")
    return parser.parse_args(argv)


def spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def competing_processes(n: int):
    """n processes that each keep one core busy until the block ends."""
    workers = [multiprocessing.Process(target=spin, daemon=True) for _ in range(n)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join()


@contextlib.contextmanager
def thread_setting(setting: str):
    """minivae's BLAS threads for the block: "auto" (the measuring policy, which starts from
    its last choice; code outside its loops runs on that choice too) or a count."""
    threads.set_num_threads(None if setting == "auto" else int(setting))
    if setting == "auto":
        threads.limit(threads.POLICY.chosen or 1)
    try:
        yield
    finally:
        threads.set_num_threads(None)


def training_images(args) -> np.ndarray:
    checks.positive_int(args.n, "--n")  # [:n] with n ≤ 0 would take all, or all but |n|
    if args.data_root:
        pixels = load_dataset("mnist", "train", root=args.data_root).pixels(np.float32)[:args.n]
    else:
        pixels = np.random.default_rng(0).random((args.n, 784), dtype=np.float32) * 0.3
    return binarize_dynamic(pixels, np.random.default_rng(1))


def minivae_epoch(arch: dict, x: np.ndarray, seed: int) -> float:
    rng = np.random.default_rng(seed)
    model = VAE(784, hidden=arch["hidden"], z_dim=arch["z_dim"], activation=arch["activation"],
                rng=rng, leaky_slope=arch["leaky_slope"])
    optimizer = Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for batch in threads.adaptive(minibatches(x, arch["batch_size"], rng)):
        loss = -model.elbo(batch, rng).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def train_epoch(arch: dict, args, seed: int) -> float:
    """One epoch of ``minivae.train.train`` (what the ``train`` command runs), its seconds as
    the run's metrics record them: the training loop only, progress bar included."""
    config = TrainConfig(dataset="mnist", data_root=args.data_root, max_train=args.n, epochs=1,
                         max_test=1000, hidden=arch["hidden"], z_dim=arch["z_dim"],
                         activation=arch["activation"], leaky_slope=arch["leaky_slope"],
                         batch_size=arch["batch_size"], seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        config.out = folder
        return train(config, progress=True)["seconds"][0]


def gemm_only_epoch(arch: dict, n: int) -> float:
    """The epoch's matrix products alone: forward x W, backward G Wᵀ (not for the input
    layer, whose input needs no gradient) and xᵀ G, for every layer and batch."""
    rng = np.random.default_rng(0)
    sizes = [784, *arch["hidden"], 2 * arch["z_dim"]]
    decoder = [arch["z_dim"], *reversed(arch["hidden"]), 784]
    layers = list(zip(sizes[:-1], sizes[1:])) + list(zip(decoder[:-1], decoder[1:]))
    b = arch["batch_size"]
    weights = [rng.standard_normal((i, o), dtype=np.float32) for i, o in layers]
    inputs = [rng.standard_normal((b, i), dtype=np.float32) for i, _ in layers]
    grads = [rng.standard_normal((b, o), dtype=np.float32) for _, o in layers]
    start = time.perf_counter()
    for _ in range(-(-n // b)):
        for k, (w, x, g) in enumerate(zip(weights, inputs, grads)):
            x @ w
            x.T @ g
            if k != 0:
                g @ w.T
    return time.perf_counter() - start


def torch_gemm_only_epoch(torch, arch: dict, n: int) -> float:
    """``gemm_only_epoch`` with PyTorch's matrix products (its own BLAS) on the same shapes."""
    rng = np.random.default_rng(0)
    sizes = [784, *arch["hidden"], 2 * arch["z_dim"]]
    decoder = [arch["z_dim"], *reversed(arch["hidden"]), 784]
    layers = list(zip(sizes[:-1], sizes[1:])) + list(zip(decoder[:-1], decoder[1:]))
    b = arch["batch_size"]
    weights = [torch.from_numpy(rng.standard_normal((o, i), dtype=np.float32)) for i, o in layers]
    inputs = [torch.from_numpy(rng.standard_normal((b, i), dtype=np.float32)) for i, _ in layers]
    grads = [torch.from_numpy(rng.standard_normal((b, o), dtype=np.float32)) for _, o in layers]
    start = time.perf_counter()
    for _ in range(-(-n // b)):
        for k, (w, x, g) in enumerate(zip(weights, inputs, grads)):
            x @ w.T  # nn.Linear's weight is (out, in)
            g.T @ x
            if k != 0:
                g @ w
    return time.perf_counter() - start


def torch_epoch(torch, arch: dict, x: np.ndarray, seed: int) -> float:
    from vae_vs_torch import build_torch_vae, torch_elbo

    config = TrainConfig(hidden=arch["hidden"], z_dim=arch["z_dim"],
                         activation=arch["activation"], leaky_slope=arch["leaky_slope"])
    torch.manual_seed(seed)
    encoder, decoder = build_torch_vae(torch, config, 784)
    params = [p for module in (encoder, decoder) for p in module.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for batch in minibatches(x, arch["batch_size"], rng):
        loss = -torch_elbo(torch, encoder, decoder, torch.from_numpy(batch), arch["z_dim"]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main(args: argparse.Namespace) -> dict:
    try:
        if args.without_torch:
            raise ImportError
        import torch
    except ImportError:
        torch = None
        print("minivae times only" + ("" if args.without_torch else
                                      ' (PyTorch is not installed: pip install -e ".[bench]")'))
    kernels.set_backend(args.backend)
    fused = [family for family in kernels.FAMILIES if kernels.enabled(family)]
    print(f"kernel backend {args.backend} ({kernels.active_backend()}); fused at the call "
          f"sites: {', '.join(fused) or 'none'}")
    with competing_processes(args.busy):
        time.sleep(0.5 if args.busy else 0)  # let them start
        print(f"{args.busy} competing CPU-bound processes on {threads.cores()} cores; load "
              f"average at start {os.getloadavg()[0]:.2f}; numpy {np.__version__}"
              + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
                 if torch else ""))
        results = {name: measure(ARCHITECTURES[name], name, training_images(args), torch, args)
                   for name in args.architectures}
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return results


def measure(arch: dict, name: str, x: np.ndarray, torch, args) -> dict:
    """Alternating repeats of every setting; medians and ratios printed as one line."""
    trials_before = len(threads.POLICY.history)
    minivae_epoch(arch, x[:2000], 0)  # warm up (compiled kernels, BLAS threads)
    ours = {setting: [] for setting in args.threads}
    hand, theirs, gemm, torch_gemm = [], [], [], []
    for repeat in tqdm(range(args.repeats), desc=f"{name}: repeats", leave=False):
        # each setting takes its turn right after PyTorch, whose OpenMP threads spin on for
        # a moment after its last product (the first column would pay for it every time)
        turn = repeat % len(args.threads)
        for setting in args.threads[turn:] + args.threads[:turn]:
            with thread_setting(setting):
                ours[setting].append(train_epoch(arch, args, repeat) if args.via_train
                                     else minivae_epoch(arch, x, repeat))
        with thread_setting(args.threads[0]):
            hand.append(hand_fused_epoch(arch, x, repeat))
            gemm.append(gemm_only_epoch(arch, len(x)))
        if torch is not None:
            theirs.append(torch_epoch(torch, arch, x, repeat))
            torch_gemm.append(torch_gemm_only_epoch(torch, arch, len(x)))
    first = args.threads[0]
    choices = [n for n, _ in threads.POLICY.history[trials_before:]]  # auto's trials, in order
    row = {"minivae_s": statistics.median(ours[first]), "hand_fused_s": statistics.median(hand),
           "gemm_s": statistics.median(gemm),
           "threads": {setting: statistics.median(times) for setting, times in ours.items()}}
    row["gemm_share"] = row["gemm_s"] / row["minivae_s"]
    best_fixed = min((t for setting, t in row["threads"].items() if setting != "auto"),
                     default=None)
    settings = "; ".join(f"threads {setting}: {t:.2f} s (runs "
                         f"{', '.join(f'{r:.2f}' for r in ours[setting])})"
                         for setting, t in row["threads"].items())
    line = (f"{name}: minivae {settings}; hand-fused, no engine {row['hand_fused_s']:.2f} s; "
            f"NumPy GEMMs alone {row['gemm_s']:.2f} s = {100 * row['gemm_share']:.0f}% of "
            f"minivae's epoch (threads {first})")
    if best_fixed is not None and "auto" in row["threads"]:
        row["auto_over_best_fixed"] = row["threads"]["auto"] / best_fixed
        line += (f"; auto over the best fixed count {row['auto_over_best_fixed']:.2f} "
                 f"(the policy's {len(choices)} trials, warm-up included, chose " + ", ".join(
                     f"{n} thread{'s' * (n > 1)} {choices.count(n)}×" for n in sorted(set(choices)))
                 + ")")
    if theirs:
        row["torch_s"] = statistics.median(theirs)
        row["torch_gemm_s"] = statistics.median(torch_gemm)
        row["ratio"] = row["minivae_s"] / row["torch_s"]
        row["hand_fused_ratio"] = row["hand_fused_s"] / row["torch_s"]
        row["gemm_floor"] = row["gemm_s"] / row["torch_s"]
        runs = ", ".join(f"{t:.2f}" for t in theirs)
        line += (f"; PyTorch {row['torch_s']:.2f} s (runs {runs}), its GEMMs alone "
                 f"{row['torch_gemm_s']:.2f} s.  Ratios to PyTorch (threads {first}): minivae "
                 f"{row['ratio']:.2f}, hand-fused {row['hand_fused_ratio']:.2f}, NumPy GEMMs "
                 f"alone {row['gemm_floor']:.2f}")
    print(line, flush=True)
    return row


if __name__ == "__main__":
    main(parse_args())
