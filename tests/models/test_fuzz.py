"""The fuzz contract for the models: whatever x, k, n or constructor option arrives, a clear
ValueError/TypeError or NaN-free values; valid inputs and extreme network outputs stay finite."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae.models.registry import MODELS, model_class
from tests.fuzzing import anything, arrays, check_contract, floats
from tests.models.helpers import REAL_VALUED, build

X_DIM, Z_DIM = 6, 2


NAMES = sorted(MODELS)
DTYPES = (np.float32, np.float64)


# built once: every fuzz case reuses these (VQ-VAE with training off, so calls have no effects)
MODELS_BUILT = {(name, np.dtype(dtype)): build(name, dtype) for name in NAMES for dtype in DTYPES}


for built in MODELS_BUILT.values():
    if hasattr(built, "training"):
        built.training = False


def entry(model, method):
    return f"{type(model).__name__}.{method}"


def pixels(dtype=None):
    """Batches that are mostly well shaped: binary, grey, extreme or non-finite values."""
    binary = st.builds(lambda a: a, hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(
        min_dims=2, max_dims=2, min_side=1, max_side=3).map(lambda s: (s[0], X_DIM)),
        elements=st.sampled_from([0.0, 1.0])))
    shaped = arrays(dtype, shape=st.integers(0, 3).map(lambda b: (b, X_DIM)))
    return st.one_of(binary, shaped, arrays(dtype), anything())


@settings(max_examples=70, deadline=None)
@given(name=st.sampled_from(NAMES), dtype=st.sampled_from(DTYPES), x=pixels(),
       method=st.sampled_from(["objective", "elbo", "reconstruct"]))
def test_methods_taking_x_keep_the_contract(name, dtype, x, method):
    model = MODELS_BUILT[name, np.dtype(dtype)]
    call = getattr(model, method)
    args = (x,) if method == "reconstruct" else (x, np.random.default_rng(0))
    # a Gaussian density of x = ±1e30 overflows float32 to −inf (IEEE rounding of a number
    # below −3.4e38), the one infinity admitted here; NaN never is
    check_contract(entry(model, method), call, *args, allow_inf=name in REAL_VALUED)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["vae", "full_covariance", "gaussian_decoder", "categorical",
                             "vade", "gaussian_vade"]),
       k=st.one_of(st.integers(-2, 4), anything(), floats()), rng=st.sampled_from(["ok", None]))
def test_importance_weights_check_k_and_rng(name, k, rng):
    model = MODELS_BUILT[name, np.dtype(np.float64)]
    x = (np.arange(2 * X_DIM).reshape(2, X_DIM) % 2).astype(np.float64)
    generator = np.random.default_rng(0) if rng == "ok" else rng
    result = check_contract(entry(model, "log_importance_weights"),
                            model.log_importance_weights, x, k, generator)
    if result is not None:
        assert result.shape == (k, 2)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(NAMES), n=st.one_of(st.integers(-2, 4), anything(), floats()),
       rng=st.sampled_from(["ok", None, 3]))
def test_sample_checks_n_and_rng(name, n, rng):
    model = MODELS_BUILT[name, np.dtype(np.float32)]
    generator = np.random.default_rng(0) if rng == "ok" else rng
    result = check_contract(entry(model, "sample"), model.sample, n, generator)
    if result is not None:
        assert result.shape == (n, X_DIM) and np.all((result >= 0) & (result <= 1))


SIZES = st.one_of(st.integers(-1, 3), anything(), floats())


@settings(max_examples=50, deadline=None)
@given(name=st.sampled_from(NAMES), x_dim=SIZES, z_dim=SIZES,
       hidden=st.one_of(st.just((4,)), st.lists(st.integers(-1, 3), max_size=2), anything()),
       activation=st.sampled_from(["tanh", "relu", "gelu", None, 3]),
       dtype=st.sampled_from([np.float32, np.float64, np.int32, "float16", None]),
       slope=st.one_of(floats(), st.just(0.01)), rng=st.sampled_from(["ok", None, 0]))
def test_constructors_check_their_arguments(name, x_dim, z_dim, hidden, activation, dtype,
                                            slope, rng):
    generator = np.random.default_rng(0) if rng == "ok" else rng
    check_contract(f"{model_class(name).__name__}.__init__", model_class(name), x_dim, hidden,
                   z_dim, activation, rng=generator, dtype=dtype, leaky_slope=slope)


OPTIONS = {
    "categorical": {"n_classes": SIZES, "tau0": floats(), "tau_min": floats(),
                    "anneal_rate": floats(), "straight_through": anything()},
    "vqvae": {"codebook_size": SIZES, "code_dim": SIZES, "beta": floats(), "decay": floats(),
              "ema_epsilon": floats(), "ema": anything()},
    "vade": {"n_clusters": SIZES, "n_samples": SIZES},
    "gaussian_vade": {"n_clusters": SIZES, "min_sigma": floats(),
                      "mean_activation": st.sampled_from(["identity", "sigmoid", "relu", None])},
    "gaussian_decoder": {"sigma": st.one_of(floats(), st.just("learned_per_pixel"), anything()),
                         "min_sigma": floats(), "init_sigma": floats(),
                         "mean_activation": st.sampled_from(["sigmoid", "relu", None])},
    "full_covariance": {"diagonal": st.sampled_from(["exp", "softplus", "square", None])},
    "vae": {"soft_targets": anything(), "likelihood": st.sampled_from(["bernoulli", "gauss"])},
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(OPTIONS)))
def test_model_options_check_their_ranges(data, name):
    key = data.draw(st.sampled_from(sorted(OPTIONS[name])))
    value = data.draw(OPTIONS[name][key])
    model = check_contract(f"{model_class(name).__name__}.__init__", build, name, np.float64,
                           **{key: value})
    if model is not None:  # an accepted option still gives a working model
        x = (np.arange(2 * X_DIM).reshape(2, X_DIM) % 2).astype(np.float64)
        value = check_contract(entry(model, "objective"), model.objective, x,
                               np.random.default_rng(0))
        assert value is not None and np.all(np.isfinite(value.data))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_valid_batches_give_finite_values_and_gradients(name, dtype):
    model = build(name, dtype)
    x = (np.random.default_rng(1).random((5, X_DIM)) < 0.5).astype(dtype)
    for method in ("objective", "elbo"):
        value = check_contract(entry(model, method), getattr(model, method), x,
                               np.random.default_rng(0))
        assert value.shape == (5,) and value.dtype == dtype and np.all(np.isfinite(value.data))
    model.zero_grad()
    (-model.objective(x, np.random.default_rng(0)).sum()).backward()
    assert np.all(np.isfinite(model.flat_grad))


def push_encoder_log_variance(model, log_var):
    """Make the encoder emit μ = 0 and log σ² = log_var for every x (the log-scale half of the
    triangle's diagonal for the full-covariance model, whose diagonal map is exp here)."""
    last = model.encoder.layers[-1]
    last.weight.data[...] = 0.0
    last.bias.data[...] = 0.0
    if type(model).__name__ == "FullCovarianceVAE":
        for i in range(Z_DIM):
            last.bias.data[Z_DIM + i * (i + 1) // 2 + i] = 0.5 * log_var
    else:
        last.bias.data[Z_DIM:] = log_var


def push_decoder_logits(model, size):
    """Scale the decoder's last layer so that its outputs reach about ±size."""
    last = model.decoder.layers[-1]
    last.weight.data[...] *= size / np.abs(last.weight.data).sum(axis=0).max()
    last.bias.data[...] = np.where(np.arange(last.bias.size) % 2, size, -size)


@pytest.mark.parametrize("name", ["vae", "full_covariance", "gaussian_decoder", "vade",
                                  "gaussian_vade"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_var", [50.0, -50.0])
def test_extreme_encoder_log_variances_keep_the_objective_finite(name, dtype, log_var):
    options = {"diagonal": "exp"} if name == "full_covariance" else {}
    model = build(name, dtype, **options)
    push_encoder_log_variance(model, log_var)
    x = (np.random.default_rng(1).random((4, X_DIM)) < 0.5).astype(dtype)
    with np.errstate(all="ignore"):
        value = model.objective(x, np.random.default_rng(0))
        model.zero_grad()
        (-value.sum()).backward()
    assert np.all(np.isfinite(value.data)) and np.all(np.isfinite(model.flat_grad))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_decoder_logits_of_ten_thousand_keep_the_objective_finite(name, dtype):
    model = build(name, dtype)
    push_decoder_logits(model, 1e4)
    x = (np.random.default_rng(1).random((4, X_DIM)) < 0.5).astype(dtype)
    with np.errstate(all="ignore"):
        for method in ("objective", "elbo"):
            value = getattr(model, method)(x, np.random.default_rng(0))
            assert np.all(np.isfinite(value.data)), (method, value.data)
        model.zero_grad()
        (-model.objective(x, np.random.default_rng(0)).sum()).backward()
    assert np.all(np.isfinite(model.flat_grad))
    # confident and wrong costs about |logit| nats per pixel: the values are large, not clipped
    if name != "gaussian_decoder":  # (a Gaussian VaDE's e^(1e4) variances make them small too)
        assert value.data.min() < -1e3
