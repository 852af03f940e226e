"""Toy episodes and models small enough for unit tests."""

import keras
import numpy as np

from keras_meta import episode


def toy_episodes(
    *,
    num_tasks=4,
    num_ways=3,
    num_shots=2,
    num_queries=2,
    image_shape=(6, 6, 1),
    seed=0,
    dtype="float32",
):
    """A batch of learnable classification episodes as NumPy arrays.

    Each task draws `num_ways` random class prototypes; examples are noisy
    copies of them, and labels are a random permutation per task.

    Returns:
        `(inputs, query_labels)` following the episode contract.
    """
    rng = np.random.default_rng(seed)
    support, support_labels, query, query_labels = [], [], [], []
    for _ in range(num_tasks):
        prototypes = rng.normal(size=(num_ways,) + tuple(image_shape))
        labels = rng.permutation(num_ways)
        s_y = np.repeat(labels, num_shots)
        q_y = np.repeat(labels, num_queries)
        s_x = prototypes[np.repeat(np.arange(num_ways), num_shots)]
        q_x = prototypes[np.repeat(np.arange(num_ways), num_queries)]
        support.append(s_x + 0.3 * rng.normal(size=s_x.shape))
        query.append(q_x + 0.3 * rng.normal(size=q_x.shape))
        support_labels.append(s_y)
        query_labels.append(q_y)
    inputs = {
        episode.SUPPORT_INPUTS: np.stack(support).astype(dtype),
        episode.SUPPORT_LABELS: np.stack(support_labels).astype("int32"),
        episode.QUERY_INPUTS: np.stack(query).astype(dtype),
    }
    return inputs, np.stack(query_labels).astype("int32")


def linear_regression_episodes(
    *, num_tasks=3, num_shots=4, num_queries=5, num_features=3, seed=0,
    dtype="float64"
):
    """Episodes of random linear regression tasks, `y = x . w_task + b_task`.

    Returns:
        `(inputs, query_labels)` with float labels of shape
        `[tasks, examples, 1]`.
    """
    rng = np.random.default_rng(seed)
    x_s = rng.normal(size=(num_tasks, num_shots, num_features))
    x_q = rng.normal(size=(num_tasks, num_queries, num_features))
    w = rng.normal(size=(num_tasks, num_features, 1))
    b = rng.normal(size=(num_tasks, 1, 1))
    inputs = {
        episode.SUPPORT_INPUTS: x_s.astype(dtype),
        episode.SUPPORT_LABELS: (x_s @ w + b).astype(dtype),
        episode.QUERY_INPUTS: x_q.astype(dtype),
    }
    return inputs, (x_q @ w + b).astype(dtype)


def tiny_classifier(
    *, num_ways=3, image_shape=(6, 6, 1), filters=4, normalization="batch",
    dropout=None, seed=0, dtype=None
):
    """Conv -> normalization -> ReLU -> MaxPool -> Dense, the few-shot block.

    Args:
        normalization: `"batch"`, `"layer"`, `"group"` (two groups of
            channels) or `None`.
        dropout: Optional float, the rate of a `Dropout` layer before the
            dense layer.
    """
    layers = [
        keras.Input(shape=image_shape),
        keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            kernel_initializer=keras.initializers.GlorotUniform(seed),
            bias_initializer=keras.initializers.RandomNormal(
                stddev=0.1, seed=seed + 1
            ),
            dtype=dtype,
        ),
    ]
    if normalization == "batch":
        layers.append(
            keras.layers.BatchNormalization(
                beta_initializer=keras.initializers.RandomNormal(
                    stddev=0.1, seed=seed + 2
                ),
                gamma_initializer=keras.initializers.RandomUniform(
                    0.5, 1.5, seed=seed + 3
                ),
                dtype=dtype,
            )
        )
    elif normalization == "group":
        layers.append(
            keras.layers.GroupNormalization(
                groups=2,
                beta_initializer=keras.initializers.RandomNormal(
                    stddev=0.1, seed=seed + 2
                ),
                gamma_initializer=keras.initializers.RandomUniform(
                    0.5, 1.5, seed=seed + 3
                ),
                dtype=dtype,
            )
        )
    elif normalization == "layer":
        layers.append(
            keras.layers.LayerNormalization(
                axis=(1, 2, 3),
                beta_initializer=keras.initializers.RandomNormal(
                    stddev=0.1, seed=seed + 2
                ),
                gamma_initializer=keras.initializers.RandomUniform(
                    0.5, 1.5, seed=seed + 3
                ),
                dtype=dtype,
            )
        )
    layers += [
        keras.layers.ReLU(dtype=dtype),
        keras.layers.MaxPooling2D(2, dtype=dtype),
        keras.layers.Flatten(dtype=dtype),
    ]
    if dropout is not None:
        layers.append(keras.layers.Dropout(dropout, seed=seed + 5,
                                           dtype=dtype))
    layers += [
        keras.layers.Dense(
            num_ways,
            kernel_initializer=keras.initializers.GlorotUniform(seed + 4),
            dtype=dtype,
        ),
    ]
    return keras.Sequential(layers)


def classifier_meta_gradient_error(cls, *, normalization="batch",
                                   num_ways=3, **kwargs):
    """`meta_gradient_error` of `cls(tiny_classifier(), **kwargs)` in float64.

    The finite-difference oracle of the gradient-based classifiers: two
    3-way 2-shot tasks of 8x8 images, a Conv -> normalization -> ReLU ->
    MaxPool -> Dense network, every trainable scalar checked (the
    meta-learner's own, such as learned rates, included).
    """
    from keras_meta.testing.test_case import meta_gradient_error

    keras.config.set_floatx("float64")
    inputs, labels = toy_episodes(
        num_tasks=2, num_ways=num_ways, num_shots=2, num_queries=2,
        image_shape=(8, 8, 1), dtype="float64")
    model = tiny_classifier(
        num_ways=num_ways, image_shape=(8, 8, 1), filters=4,
        normalization=normalization, dtype="float64")
    meta_model = cls(model, **kwargs)
    # Made after `set_floatx`: a Keras loss computes in the float type
    # current when it is made.
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    meta_model.compile(loss=loss)
    return meta_gradient_error(meta_model, loss, inputs, labels)


def linear_regressor(num_features=3, dtype=None):
    """`Dense(1)` on `num_features` inputs with seeded random weights: the
    model of the closed-form oracles (its loss is quadratic in the
    weights)."""
    return keras.Sequential([
        keras.Input(shape=(num_features,)),
        keras.layers.Dense(
            1,
            kernel_initializer=keras.initializers.RandomNormal(seed=3),
            bias_initializer=keras.initializers.RandomNormal(seed=4),
            dtype=dtype,
        ),
    ])
