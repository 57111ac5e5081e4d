"""The fuzz contract for the side topics (cluster matching and accuracy, the diagonal GMM,
active units, attribute vectors, masked convolutions, the stacked-autoencoder pretraining, the
self-training that follows it):
whatever arrives in place of an argument, a clear ValueError/TypeError or NaN-free values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae.models import VAE
from minivae.topics.active_units import active_units, activity
from minivae.topics.attributes import (
    apply_attribute,
    attribute_vector,
    encoder_means,
    ink_groups,
    ink_mass,
    label_groups,
)
from minivae.topics.clustering import (
    clustering_accuracy,
    fit_diagonal_gmm,
    kmeans_plus_plus,
    linear_assignment,
    match_clusters_to_labels,
)
from minivae.topics.masks import (
    allowed_offsets,
    causal_mask,
    masked_cross_correlation,
    receptive_field,
)
from minivae.topics.pretraining import (
    autoencoder_loss,
    finetune,
    mask_inputs,
    pretrain_layers,
    stack_into,
)
from minivae.topics.self_training import (
    codes_of,
    log_soft_assignments,
    refine,
    self_training_loss,
    target_distribution,
)
from tests.fuzzing import Entry, anything, check_entry, check_valid_entry, variants

rng = np.random.default_rng(0)
X = (rng.random((8, 6)) > 0.5).astype(np.float64)  # binary pixels for the Bernoulli VAE
MODEL = VAE(6, hidden=(3,), z_dim=2, rng=np.random.default_rng(0), dtype=np.float64)
LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1])
POINTS = rng.normal(size=(10, 2))
SMALL_COUNTS = st.one_of(st.integers(-2, 4), st.none(), st.floats(), st.booleans())
GREY = rng.random((8, 6))  # grey levels, as the pretraining's first layer takes
# learning rates that must be refused (a valid but huge one would only diverge, by design)
BAD_RATES = st.one_of(anything(), st.sampled_from([0.0, -1e-3, float("nan"), float("inf")]))
TRAINING_WILD = dict(epochs=SMALL_COUNTS, batch_size=SMALL_COUNTS, lr=BAD_RATES)
# models the pretraining writes into, apart from MODEL, which the other entries read
STACKED = VAE(6, hidden=(3,), z_dim=2, rng=np.random.default_rng(1), dtype=np.float64)
FINETUNED = VAE(6, hidden=(3,), z_dim=2, rng=np.random.default_rng(2), dtype=np.float64)
LAYERS, _ = pretrain_layers(GREY, [6, 3, 2], np.random.default_rng(0), epochs=1, batch_size=4)
SELF_TRAINED = VAE(6, hidden=(3,), z_dim=2, rng=np.random.default_rng(3), dtype=np.float64)
CENTROIDS = rng.normal(size=(3, 2))
LOG_P = np.log(rng.dirichlet(np.ones(3), size=8))


def stacked_weights(layers):
    """The model's weights after ``stack_into``."""
    stack_into(STACKED, layers)
    return [parameter.data.copy() for parameter in STACKED.parameters()]

ENTRIES = [
    Entry("linear_assignment", linear_assignment, dict(cost=rng.random((3, 4)))),
    Entry("match_clusters_to_labels", match_clusters_to_labels,
          dict(labels=LABELS, clusters=LABELS[::-1].copy())),
    Entry("clustering_accuracy", clustering_accuracy,
          dict(labels=LABELS, clusters=LABELS[::-1].copy())),
    Entry("kmeans_plus_plus", kmeans_plus_plus,
          dict(points=POINTS, k=3, rng=np.random.default_rng(0), trials=1),
          wild=dict(k=SMALL_COUNTS, trials=SMALL_COUNTS)),
    Entry("fit_diagonal_gmm", fit_diagonal_gmm,
          dict(points=POINTS, n_components=2, rng=np.random.default_rng(0), iterations=3,
               kmeans_steps=2, tolerance=1e-6, variance_floor=1e-6, n_init=1),
          wild=dict(n_components=SMALL_COUNTS, iterations=SMALL_COUNTS,
                    kmeans_steps=SMALL_COUNTS, n_init=SMALL_COUNTS)),
    Entry("activity", activity, dict(posterior_means=POINTS)),
    Entry("active_units", active_units, dict(posterior_means=POINTS, threshold=1e-2)),
    Entry("encoder_means", encoder_means, dict(model=MODEL, x=X)),
    Entry("attribute_vector", attribute_vector, dict(model=MODEL, x_a=X[:4], x_b=X[4:])),
    Entry("apply_attribute", apply_attribute,
          dict(model=MODEL, x=X[:2], vector=np.ones(2), scales=[0.0, 1.0])),
    Entry("ink_mass", ink_mass, dict(x=X)),
    Entry("ink_groups", ink_groups, dict(x=X, fraction=0.25)),
    Entry("label_groups", label_groups, dict(x=X, labels=LABELS, a=0, b=1)),
    Entry("causal_mask", causal_mask, dict(kernel_size=3, mask_type="A", dtype=np.int8)),
    Entry("allowed_offsets", allowed_offsets, dict(kernel_size=5, mask_type="B")),
    Entry("receptive_field", receptive_field,
          dict(height=5, width=5, pixel=(2, 2), mask_types="AB", kernel_size=3),
          wild=dict(height=SMALL_COUNTS, width=SMALL_COUNTS, kernel_size=SMALL_COUNTS)),
    Entry("masked_cross_correlation", masked_cross_correlation,
          dict(image=rng.random((4, 5)), kernel=rng.random((3, 3)), mask_type="A")),
    Entry("mask_inputs", mask_inputs, dict(u=rng.random((4, 3)), drop=0.2,
                                           rng=np.random.default_rng(0))),
    Entry("pretrain_layers", pretrain_layers,
          dict(x=GREY, sizes=[6, 3, 2], rng=np.random.default_rng(0), epochs=1, batch_size=4,
               lr=1e-3, drop=0.2, progress=False, budget=None),
          wild=dict(sizes=st.one_of(SMALL_COUNTS, st.lists(SMALL_COUNTS, max_size=3)),
                    **TRAINING_WILD)),
    Entry("stack_into", stacked_weights, dict(layers=LAYERS),
          wild=dict(layers=st.one_of(anything(), st.just(LAYERS[:1]), st.just(LAYERS[::-1])))),
    Entry("autoencoder_loss", autoencoder_loss, dict(model=MODEL, x=GREY)),
    Entry("finetune", finetune,
          dict(model=FINETUNED, x=GREY, rng=np.random.default_rng(0), epochs=1, batch_size=4,
               lr=1e-3, progress=False, budget=None),
          wild=TRAINING_WILD),
    Entry("log_soft_assignments", log_soft_assignments, dict(z=POINTS, centroids=CENTROIDS)),
    Entry("target_distribution", target_distribution, dict(log_q=LOG_P)),
    Entry("self_training_loss", self_training_loss,
          dict(model=MODEL, centroids=CENTROIDS, x=GREY, log_p=LOG_P)),
    Entry("codes_of", codes_of, dict(model=MODEL, x=GREY)),
    Entry("refine", refine,
          dict(model=SELF_TRAINED, x=GREY, centroids=CENTROIDS, rng=np.random.default_rng(0),
               epochs=1, batch_size=4, lr=1e-3, weight=10.0, update_every=2, tolerance=0.0,
               progress=False, budget=None),
          wild=TRAINING_WILD),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
def test_valid_calls_return_values(entry):
    check_valid_entry(entry)


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
@given(data=st.data())
def test_every_topic_keeps_the_contract(entry, data):
    check_entry(entry, data.draw(variants(entry)))
