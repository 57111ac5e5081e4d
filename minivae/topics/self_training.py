"""Self-training that makes an autoencoder's codes cluster: DEC's target (Xie et al., 2016)
with IDEC's reconstruction term kept beside it (Guo et al., 2017).

An autoencoder pretrained to reconstruct puts similar digits near each other, but nothing asks
its codes to form round, separated groups, and that is what a Gaussian-mixture start (VaDE's
step 2) needs.  Self-training asks for it.  With centroids μ_c (k-means on the codes to start),
each code z_i = μ̃(x_i) gets a soft assignment by a Student's t kernel (one degree of freedom):

    q_ic = (1 + ‖z_i − μ_c‖²)⁻¹ / Σ_c' (1 + ‖z_i − μ_c'‖²)⁻¹,

and a sharper target that squares q (confident assignments count more) and divides by the
soft cluster sizes f_c = Σ_i q_ic (so that a large cluster does not swallow the rest):

    p_ic = (q_ic² / f_c) / Σ_c' (q_ic'² / f_c').

Holding p fixed (recomputed over the whole training set every ``update_every`` steps), the
encoder and the centroids are trained to move q toward p, while the decoder keeps the codes
decodable (IDEC; DEC drops the decoder, but VaDE needs it).  Per example:

    loss_i = −log p(x_i | μ̃(x_i)) + weight · KL(p_i ‖ q_i),
    KL(p_i ‖ q_i) = Σ_c p_ic log(p_ic / q_ic).

The reconstruction term is the pretraining's loss (``loss``, pretraining.autoencoder_loss):
the cross-entropy above, or the squared error of the decoded means that IDEC keeps beside the
target, so self-training goes on with what the autoencoder was trained on.

Training stops early when fewer than ``tolerance`` of the examples change their cluster
argmax_c q_ic between two target updates (DEC's rule).  Labels play no part.

The weight is in the units of this loss: the reconstruction term is a sum over the pixels (tens
of nats per image), where IDEC's γ = 0.1 sits beside a mean squared error averaged over the
pixels, whose curvature is hundreds of times smaller; w = 100 is a rough match of the two, not
an exact one.  On MNIST (docs/RESULTS.md) it raised the clusters' accuracy faster than w = 10.

Verified by: tests/topics/test_self_training.py
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.engine.tensor import Tensor, no_grad
from minivae.optim import Adam
from minivae.topics.pretraining import AUTOENCODER_LOSSES, autoencoder_loss, autoencoder_model


def log_soft_assignments(z, centroids) -> Tensor:
    """log q_ic = −log(1 + ‖z_i − μ_c‖²) − logsumexp_c' [−log(1 + ‖z_i − μ_c'‖²)], (B, K)
    for codes z (B, J) and centroids (K, J).

    Verified by: tests/topics/test_self_training.py::test_soft_assignments_match_numpy,
    ::test_self_training_gradients_pass_gradcheck
    """
    z, centroids = _matrix(z, "z"), _matrix(centroids, "centroids")
    checks.shape(centroids.shape[1] == z.shape[1], "centroids", f"(K, {z.shape[1]}) as z's codes",
                 centroids.shape)
    checks.same_dtype(z, centroids, "z and centroids")
    diff = z.reshape(z.shape[0], 1, z.shape[1]) - centroids  # (B, K, J)
    log_kernel = -(diff * diff).sum(axis=-1).log1p()
    return log_kernel - log_kernel.logsumexp(axis=-1, keepdims=True)


def _matrix(value, name: str) -> Tensor:
    """A Tensor of a finite float (N, D) array (a Tensor's own data is checked, and kept as the
    graph's node)."""
    checks.finite_float_array(value.data if isinstance(value, Tensor) else value, name,
                              matrix=True)
    return value if isinstance(value, Tensor) else Tensor(value)


def target_distribution(log_q) -> np.ndarray:
    """p_ic = (q_ic² / f_c) / Σ_c' (q_ic'² / f_c'), f_c = Σ_i q_ic, from log q (N, K), as
    log p (normalized in logs, so a q that underflows gives p = 0, not NaN).

    Verified by: tests/topics/test_self_training.py::test_target_sharpens_and_balances
    """
    log_q = checks.finite_float_array(log_q, "log_q", matrix=True)
    log_f = np.log(np.exp(log_q).sum(axis=0))
    log_p = 2.0 * log_q - log_f
    return log_p - np.logaddexp.reduce(log_p, axis=1, keepdims=True)


def self_training_loss(model, centroids: Tensor, x, log_p, loss: str = "bernoulli"
                       ) -> tuple[Tensor, Tensor]:
    """(reconstruction, KL(p ‖ q)) per example, both (B,), for grey levels x and fixed log p;
    the reconstruction is ``autoencoder_loss(model, x, loss)``: −log p(x | μ̃(x)) for
    "bernoulli", Σ_j (σ(l_j) − x_j)² for "squared".

    Verified by: tests/topics/test_self_training.py::test_loss_is_reconstruction_plus_kl,
    ::test_self_training_gradients_pass_gradcheck
    """
    model = autoencoder_model(model)
    reconstruction = autoencoder_loss(model, x, loss)  # which checks x and loss
    log_p = checks.finite_float_array(log_p, "log_p", matrix=True)
    checks.shape(log_p.shape == (len(x), len(centroids)), "log_p",
                 f"({len(x)}, {len(centroids)}): a target per example and centroid", log_p.shape)
    checks.same_dtype(log_p, model, "log_p and the model")
    checks.require(bool(np.all(log_p <= 0)), "log_p", "log-probabilities (≤ 0)", log_p.max())
    z = model.encoder(Tensor(np.asarray(x)))[:, :model.z_dim]
    p = np.exp(log_p)
    p_log_p = np.where(p > 0, p * log_p, 0.0).astype(log_p.dtype)  # 0 log 0 = 0
    kl = (Tensor(p_log_p) - Tensor(p) * log_soft_assignments(z, centroids)).sum(axis=-1)
    return reconstruction, kl


def codes_of(model, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The encoder means μ̃(x) of the rows of x, without a graph."""
    model = autoencoder_model(model)
    checks.batch(x, model.x_dim, model.dtype)
    checks.positive_int(batch_size, "batch_size")
    with no_grad():
        return np.concatenate([model.encoder(Tensor(x[i:i + batch_size])).data[:, :model.z_dim]
                               for i in range(0, len(x), batch_size)])


def refine(model, x: np.ndarray, centroids: np.ndarray, rng: np.random.Generator,
           epochs: int = 50, batch_size: int = 256, lr: float = 1e-3, weight: float = 100.0,
           update_every: int = 140, tolerance: float = 0.001, progress: bool = False,
           budget=None, on_epoch=None, loss: str = "bernoulli") -> dict:
    """Self-train ``model``'s encoder and decoder, and the centroids, on grey levels x (module
    docstring); returns the centroids and per-epoch curves ("reconstruction", "kl", "changed":
    the share of examples whose cluster changed at the epoch's last target update).  Ends at
    ``epochs``, when fewer than ``tolerance`` change, or after the first epoch that finds
    ``budget`` spent; ``on_epoch(epoch, centroids)`` runs after each epoch (e.g. to score the
    codes); ``loss`` names the reconstruction term (``self_training_loss``)."""
    model = autoencoder_model(model)
    checks.batch(x, model.x_dim, model.dtype, "unit_interval")
    centroids = checks.finite_float_array(centroids, "centroids", matrix=True)
    checks.shape(centroids.shape[1:] == (model.z_dim,), "centroids", f"(K, {model.z_dim})",
                 centroids.shape)
    rng = checks.generator(rng)
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("update_every", update_every)):
        checks.positive_int(value, name)
    checks.positive(lr, "lr", number=True), checks.positive(weight, "weight", number=True)
    checks.real(tolerance, "tolerance", 0.0, 1.0)
    checks.one_of(loss, AUTOENCODER_LOSSES, "loss")  # before the first step, not at it
    centres = Tensor(centroids.astype(model.dtype), requires_grad=True)
    optimizers = [Adam(model.parameters(), lr=lr), Adam([centres], lr=lr)]
    curves = {"reconstruction": [], "kl": [], "changed": []}
    clusters, log_p, step = None, None, 0
    for epoch in tqdm(range(1, epochs + 1), desc="self-training", disable=not progress,
                      leave=False):
        if curves["kl"] and budget is not None and budget.spent():
            break
        totals = np.zeros(2)
        order = rng.permutation(len(x))
        for start in threads.adaptive(range(0, len(x), batch_size)):
            if step % update_every == 0:  # a new target from the codes as they are now
                with no_grad():
                    log_q = log_soft_assignments(codes_of(model, x), centres.data).data
                log_p = target_distribution(log_q)
                previous, clusters = clusters, log_q.argmax(axis=1)
                changed = 1.0 if previous is None else float(np.mean(previous != clusters))
            rows = order[start:start + batch_size]
            reconstruction, kl = self_training_loss(model, centres, x[rows], log_p[rows], loss)
            for optimizer in optimizers:
                optimizer.zero_grad()
            (reconstruction + weight * kl).mean().backward()
            for optimizer in optimizers:
                optimizer.step()
            totals += [float(reconstruction.data.sum(dtype=np.float64)),
                       float(kl.data.sum(dtype=np.float64))]
            step += 1
        for name, value in zip(("reconstruction", "kl"), totals / len(x)):
            curves[name].append(float(value))
        curves["changed"].append(changed)
        if on_epoch is not None:
            on_epoch(epoch, centres.data)
        if epoch > 1 and changed < tolerance:
            break
    return {"centroids": centres.data.copy(), **curves}
