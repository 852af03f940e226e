"""Losses for meta-learners whose predictions are distributions."""

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
