"""Classifier heads of the metric learners: linear heads on an encoder,
and logits of classes an episode lacks."""

import keras
from keras import ops


def with_linear_head(encoder, input_shape, kernel, bias, *, normalize=False,
                     subtract_squared_norm=False, name="adapted"):
    """`encoder`, flattened (optionally unit-normalized), then a dense layer
    holding `kernel` and `bias`: the adapted model of metric learners.

    With `subtract_squared_norm`, each output also has the embedding's
    squared norm subtracted (ProtoNet's negative squared distances).
    """
    inputs = keras.Input(shape=tuple(input_shape))
    embeddings = keras.layers.Flatten()(encoder(inputs))
    if normalize:
        embeddings = keras.layers.UnitNormalization()(embeddings)
    head = keras.layers.Dense(kernel.shape[-1], name="head")
    outputs = head(embeddings)
    if subtract_squared_norm:
        squared_norm = keras.layers.Dot(axes=1, name="squared_norm")(
            [embeddings, embeddings])
        outputs = keras.layers.Subtract(name="distances")(
            [outputs, squared_norm])
    head.set_weights([ops.convert_to_numpy(kernel),
                      ops.convert_to_numpy(bias)])
    return keras.Model(inputs, outputs, name=name)


# The logit of a class absent from an episode's support set: metric
# learners size their outputs for `num_ways` classes at most, and an
# episode with fewer classes must never predict the missing ones.
ABSENT_CLASS_LOGIT = -1e9


def support_classes(labels, num_ways, dtype, weights=None):
    """One-hot support labels and which classes the support set holds.

    Args:
        labels: Int tensor `[num_support]` of labels in `[0, num_ways)`.
        num_ways: Int, the largest number of classes.
        dtype: The float dtype of the results.
        weights: Optional `[num_support]`, 0 for padding.

    Returns:
        `(one_hot, present)`: `[num_support, num_ways]` (padding rows zero)
        and `[num_ways]`, 1 for each class with a support example.
    """
    one_hot = ops.one_hot(ops.cast(labels, "int32"), num_ways, dtype=dtype)
    if weights is not None:
        one_hot = one_hot * ops.cast(weights, dtype)[:, None]
    present = ops.cast(ops.sum(one_hot, axis=0) > 0, dtype)
    return one_hot, present


def mask_absent_classes(logits, present):
    """`logits` with every absent class's logit at `ABSENT_CLASS_LOGIT`."""
    present = ops.cast(present, logits.dtype)
    return logits * present + (1.0 - present) * ops.cast(
        ABSENT_CLASS_LOGIT, logits.dtype)
