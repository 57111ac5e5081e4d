"""The fuzz contract for the training path's own modules (nn, optim, data, schedules,
gradcheck): whatever arrives in place of an argument, a clear ValueError/TypeError or NaN-free
values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae.data import binarize_dynamic, binarize_static, minibatches
from minivae.engine.gradcheck import GradcheckError, gradcheck
from minivae.engine.tensor import Tensor
from minivae.nn import MLP, Linear
from minivae.optim import SGD, Adam
from minivae.schedules import LR_SCHEDULES, kl_weight, learning_rate
from tests.fuzzing import Entry, check_entry, check_valid_entry, variants

rng = np.random.default_rng(0)
PIXELS = rng.random((6, 4))
SMALL = st.one_of(st.integers(-2, 4), st.none(), st.floats(), st.booleans())


def linear_forward(in_features, out_features, dtype, x, activation, slope):
    layer = Linear(in_features, out_features, np.random.default_rng(0), dtype)
    return layer(Tensor(x) if isinstance(x, np.ndarray) else x, activation, slope)


def mlp_forward(sizes, activation, dtype, slope, x):
    network = MLP(sizes, activation, np.random.default_rng(0), dtype, slope)
    return network(x)


def optimizer_steps(optimizer, settings, grad):
    """Two steps of ``optimizer`` on one parameter with gradient ``grad``: the new value."""
    weight = Tensor(np.ones(3), requires_grad=True)
    chosen = optimizer([weight], **settings)
    for _ in range(2):
        weight.grad = grad
        chosen.step()
    return weight.data


def checked_tanh(x, eps, atol, rtol, n_directions):
    """gradcheck's verdict on tanh: True, or False where the settings cannot confirm the
    gradient (a large step ``eps`` or tiny tolerances make a correct VJP fail; that
    GradcheckError is gradcheck working, not a broken contract)."""
    try:
        return gradcheck(lambda t: t.tanh(), x, eps=eps, atol=atol, rtol=rtol,
                         n_directions=n_directions)
    except GradcheckError:
        return False


def batches(x, batch_size, shuffle, drop_last):
    return list(minibatches(x, batch_size, np.random.default_rng(0), shuffle, drop_last))


ENTRIES = [
    Entry("Linear", linear_forward,
          dict(in_features=4, out_features=3, dtype=np.float64, x=PIXELS, activation="tanh",
               slope=0.01),
          wild=dict(in_features=SMALL, out_features=SMALL)),
    Entry("MLP", mlp_forward,
          dict(sizes=[4, 3, 2], activation="relu", dtype=np.float32, slope=0.01,
               x=Tensor(PIXELS.astype(np.float32))),
          wild=dict(sizes=st.one_of(SMALL, st.lists(SMALL, max_size=3)))),
    Entry("Adam", lambda lr, betas, eps, grad: optimizer_steps(Adam, dict(lr=lr, betas=betas,
                                                                          eps=eps), grad),
          dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, grad=np.full(3, 0.5))),
    Entry("SGD", lambda lr, momentum, grad: optimizer_steps(SGD, dict(lr=lr, momentum=momentum),
                                                            grad),
          dict(lr=0.1, momentum=0.9, grad=np.full(3, 0.5))),
    Entry("binarize_dynamic", binarize_dynamic,
          dict(pixels=PIXELS, rng=np.random.default_rng(0), out=np.empty_like(PIXELS))),
    Entry("learning_rate", learning_rate,
          dict(schedule="cosine", epoch=3, base=1e-3, epochs=10),
          wild=dict(schedule=st.one_of(st.sampled_from(LR_SCHEDULES), SMALL),
                    epoch=SMALL, epochs=SMALL)),
    Entry("kl_weight", kl_weight, dict(epoch=3, warmup=10), wild=dict(epoch=SMALL, warmup=SMALL)),
    Entry("binarize_static", binarize_static, dict(pixels=PIXELS, threshold=0.5)),
    Entry("minibatches", batches, dict(x=PIXELS, batch_size=4, shuffle=True, drop_last=False),
          wild=dict(batch_size=SMALL)),
    Entry("gradcheck", checked_tanh,
          dict(x=rng.standard_normal(3), eps=1e-6, atol=1e-5, rtol=1e-4, n_directions=2),
          wild=dict(n_directions=SMALL)),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
def test_valid_calls_return_values(entry):
    check_valid_entry(entry)


@settings(max_examples=80, deadline=None)
@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
@given(data=st.data())
def test_every_training_piece_keeps_the_contract(entry, data):
    check_entry(entry, data.draw(variants(entry)))
