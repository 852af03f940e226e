"""Losses of the meta-learners: Gaussian likelihoods for predictions that
are distributions, and the Relation Networks objective."""

import math

import keras
from keras import ops


def split_gaussian(y_pred):
    """`(mean, std)`: the two halves of the last axis of `y_pred`."""
    half = y_pred.shape[-1] // 2
    return y_pred[..., :half], y_pred[..., half:]


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
