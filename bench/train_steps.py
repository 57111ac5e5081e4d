"""N training steps of bench/epoch.py's architectures, to count instructions per step.

Wall-clock epochs on a shared machine move by tens of percent from run to run; instruction
counts do not.  Under callgrind (which cannot run ``-march=native`` code, so build the C kernels
without it for this, as docs/PERFORMANCE.md says) the cost of one step is the difference of two
runs divided by the difference of their step counts:

    OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind python bench/train_steps.py A 5
    OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind python bench/train_steps.py A 25

It prints the loss after the last step, so two versions of minivae can also be checked to
compute the same numbers.
"""
from __future__ import annotations

import sys

import numpy as np

from minivae.data import minibatches
from minivae.models import VAE
from minivae.optim import Adam

ARCHITECTURES = {
    "A": dict(hidden=(400,), z_dim=20, activation="tanh", batch_size=128, leaky_slope=0.01),
    "B": dict(hidden=(400, 400), z_dim=200, activation="leaky_relu", batch_size=100,
              leaky_slope=0.2),
}


def main(arch_name: str, steps: int) -> float:
    arch = ARCHITECTURES[arch_name]
    rng = np.random.default_rng(0)
    x = (rng.random((arch["batch_size"] * (steps + 5), 784), dtype=np.float32) < 0.3)
    model = VAE(784, hidden=arch["hidden"], z_dim=arch["z_dim"], activation=arch["activation"],
                rng=rng, leaky_slope=arch["leaky_slope"])
    optimizer = Adam(model.parameters(), lr=1e-3)
    for _, batch in zip(range(steps), minibatches(x.astype(np.float32), arch["batch_size"], rng)):
        loss = -model.elbo(batch, rng).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.data)


if __name__ == "__main__":
    print("loss after the last step:", main(sys.argv[1], int(sys.argv[2])))
