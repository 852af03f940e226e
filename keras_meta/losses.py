"""Losses of the meta-learners: Gaussian likelihoods for predictions that
are distributions, and the Relation Networks objective."""

import math

import keras
from keras import ops

from keras_meta.gaussian import split_gaussian


def unreduced(loss):
    """A loss (name, function or `keras.losses.Loss`) as a function of
    `(labels, predictions)` returning one value per example, unreduced."""
    loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    return loss


def averages_over_batch(loss):
    """Whether a compiled `loss` is one loss reduced by the mean over the
    batch (`"sum_over_batch_size"`, Keras's default, which Keras also
    gives plain functions)."""
    if loss is None or isinstance(loss, (dict, list, tuple)):
        return False
    loss = keras.losses.get(loss)
    return not (isinstance(loss, keras.losses.Loss)
                and loss.reduction != "sum_over_batch_size")


def weighted_mean(values, weights=None):
    """The mean of `values` weighted by `weights` (0 for padding), which
    broadcast from the leading axes of `values`; the plain mean without
    weights. Averages by hand rather than through a reduced Keras loss,
    which a distribution strategy would divide by the replica count."""
    values = ops.convert_to_tensor(values)
    if weights is None:
        return ops.mean(values)
    weights = ops.cast(weights, values.dtype)
    weights = ops.reshape(
        weights,
        ops.shape(weights) + (1,) * (len(values.shape) - len(weights.shape)))
    weights = ops.broadcast_to(weights, ops.shape(values))
    return ops.sum(values * weights) / ops.maximum(
        ops.sum(weights), ops.cast(1e-12, values.dtype))


@keras.saving.register_keras_serializable(package="keras_meta")
class GaussianNegativeLogLikelihood(keras.losses.Loss):
    """Negative log-likelihood of targets under predicted Gaussians.

    `y_pred` holds the means and then the standard deviations along its last
    axis (`[..., 2 * d]` for `[..., d]` targets), as `keras_meta.CNP`
    predicts them. Per example: `sum_d 0.5 * log(2 pi std^2) + (y -
    mean)^2 / (2 std^2)`, then reduced as every Keras loss.

    Example:

    ```python
    cnp.compile(optimizer="adam",
                loss=keras_meta.losses.GaussianNegativeLogLikelihood())
    ```
    """

    def __init__(self, name="gaussian_nll", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        mean, std = split_gaussian(y_pred)
        y_true = ops.cast(y_true, mean.dtype)
        if y_true.shape[-1] is not None and mean.shape[-1] is not None and (
                y_true.shape[-1] != mean.shape[-1]):
            raise ValueError(
                "`GaussianNegativeLogLikelihood` takes predictions holding a "
                "mean and a standard deviation per target: `y_pred` of last "
                f"size 2 * {y_true.shape[-1]}. Received `y_pred` of last "
                f"size {y_pred.shape[-1]}."
            )
        variance = ops.square(std)
        return ops.sum(
            0.5 * ops.log(2.0 * math.pi * variance)
            + ops.square(y_true - mean) / (2.0 * variance), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.pop("fn", None)
        return config


@keras.saving.register_keras_serializable(package="keras_meta")
class RelationMeanSquaredError(keras.losses.Loss):
    """The Relation Networks objective: squared error of `sigmoid(score)`
    against the one-hot label.

    `y_true` holds integer class labels `[..., ]` and `y_pred` one relation
    score per class `[..., num_ways]` (the logits `keras_meta.RelationNet`
    returns). Per example: `mean_k (sigmoid(score_k) - [y == k])^2`, then
    reduced as every Keras loss. Classes an episode lacks (scores of
    -1e9) contribute zero.

    Example:

    ```python
    relation_net.compile(optimizer="adam",
                         loss=keras_meta.losses.RelationMeanSquaredError(),
                         metrics=["accuracy"])
    ```

    Reference:
        - [Sung et al., 2018](https://arxiv.org/abs/1711.06025)
    """

    def __init__(self, name="relation_mse", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        scores = ops.sigmoid(y_pred)
        one_hot = ops.one_hot(ops.cast(y_true, "int32"), y_pred.shape[-1],
                              dtype=scores.dtype)
        return ops.mean(ops.square(scores - one_hot), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.pop("fn", None)
        return config
