"""detect_anomaly: the first primitive that makes NaN/±inf from finite numbers is named."""
from __future__ import annotations

import numpy as np
import pytest

import minivae as mv
from minivae import AnomalyError, Tensor, detect_anomaly
from minivae.engine.anomaly import is_anomaly_enabled
from minivae.models import VAE
from minivae.optim import Adam

# The ops below make NaN/±inf on purpose; NumPy's warnings about that are expected.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def test_anomaly_error_is_a_floating_point_error_not_a_value_error():
    assert issubclass(AnomalyError, FloatingPointError)
    assert not issubclass(AnomalyError, ValueError)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_of_negative_number_raises_naming_the_op(dtype):
    x = Tensor(np.array([[1.0, 2.0], [-3.0, 4.0]], dtype=dtype), requires_grad=True)
    with detect_anomaly(), pytest.raises(AnomalyError) as caught:
        mv.log(x)
    message = str(caught.value)
    assert message.startswith("log produced NaN")
    assert "index (1, 0)" in message  # the first offending entry
    assert f"(2, 2) {np.dtype(dtype)}" in message  # shape and dtype of input and output


def test_zero_over_zero_raises_naming_div():
    a, b = Tensor([1.0, 0.0]), Tensor([2.0, 0.0])
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"^div produced NaN at index \(1,\)"):
        a / b


def test_exp_overflow_raises_naming_exp():
    with detect_anomaly(), pytest.raises(AnomalyError, match=r"^exp produced \+inf"):
        mv.exp(Tensor(np.array([0.0, 1e4], dtype=np.float32)))


def test_sqrt_at_zero_raises_only_in_backward():
    x = Tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = mv.sqrt(x).sum()  # the forward value √0 = 0 is fine
        np.testing.assert_array_equal(y.data, 2.0)
        with pytest.raises(AnomalyError, match=r"^backward of sqrt produced a \+inf gradient "
                                               r"at index \(0,\)"):
            y.backward()


def test_non_finite_inputs_are_not_blamed_on_the_op():
    # A NaN that arrives (a bad pixel) was not made here: the op passes it on silently.
    x = Tensor([np.nan, 1.0], requires_grad=True)
    with detect_anomaly():
        y = (x * x).sum()
        y.backward()
    assert np.isnan(y.data)
    assert np.isnan(x.grad[0]) and x.grad[1] == 2.0  # d(x²)/dx = 2x: NaN where x is NaN


def test_off_by_default_and_nothing_raises_outside_the_block():
    assert not is_anomaly_enabled()
    with np.errstate(all="ignore"):
        assert np.isnan(mv.log(Tensor([-1.0])).data[0])
        x = Tensor([0.0], requires_grad=True)
        mv.sqrt(x).sum().backward()
    assert np.isinf(x.grad[0])


def test_blocks_nest_and_restore_the_previous_state():
    with detect_anomaly():
        with detect_anomaly():
            assert is_anomaly_enabled()
        assert is_anomaly_enabled()  # the inner block restored "on", not "off"
        with detect_anomaly(enabled=False):
            with np.errstate(all="ignore"):
                mv.log(Tensor([-1.0]))  # switched off inside: no raise
        with pytest.raises(AnomalyError):
            mv.log(Tensor([-1.0]))
    assert not is_anomaly_enabled()


def test_state_is_restored_when_the_block_raises():
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            mv.log(Tensor([-1.0]))
    assert not is_anomaly_enabled()


def test_logsumexp_with_infinite_input_has_a_finite_gradient_under_detection():
    x = Tensor([[0.0, np.inf, np.inf], [-np.inf, -np.inf, -np.inf]], requires_grad=True)
    with detect_anomaly():
        mv.logsumexp(x, axis=1).backward(np.ones(2))  # non-finite inputs: no forward check
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vae_training_steps_run_unchanged_inside_the_block(dtype):
    x = (np.random.default_rng(1).random((16, 6)) < 0.4).astype(dtype)

    def train(steps, detect):
        vae = VAE(6, hidden=(8,), z_dim=2, activation="tanh", rng=np.random.default_rng(0),
                  dtype=dtype)
        optimizer = Adam(vae.parameters(), lr=1e-2)
        rng = np.random.default_rng(2)
        losses = []
        with detect_anomaly(enabled=detect):
            for _ in range(steps):
                loss = -vae.elbo(x, rng).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        return losses, [p.data.copy() for p in vae.parameters()]

    plain_losses, plain_params = train(5, detect=False)
    checked_losses, checked_params = train(5, detect=True)
    assert plain_losses == checked_losses  # bit for bit: the checks only read
    for plain, checked in zip(plain_params, checked_params):
        np.testing.assert_array_equal(plain, checked)
