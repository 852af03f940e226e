"""Episode-level statistics: the few-shot evaluation protocol.

Few-shot results are reported as the mean over a fixed set of episodes with
the half-width of a 95% confidence interval, `1.96 * std / sqrt(episodes)`.
`MetaModel.evaluate()` adds `<metric>_ci95` for the loss and every compiled
metric, computed from per-episode values with `EpisodeStatistics`.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_meta.deprecation import moved_names

# Two-sided 95% quantile of the normal distribution.
Z_95 = 1.959963984540054


def confidence_interval(values, axis=0):
    """Mean and 95% confidence-interval half-width of per-episode values.

    Args:
        values: Array-like of per-episode values.
        axis: Int, the episode axis.

    Returns:
        `(mean, ci95)` as floats (or arrays when `values` has more axes).
    """
    values = np.asarray(values, dtype="float64")
    count = values.shape[axis]
    mean = values.mean(axis=axis)
    if count < 2:
        return mean, np.full_like(mean, np.nan)
    std = values.std(axis=axis, ddof=1)
    return mean, Z_95 * std / math.sqrt(count)


@keras.saving.register_keras_serializable(package="keras_meta")
class EpisodeStatistics(keras.metrics.Metric):
    """Accumulates per-episode values and reports 95% CI half-widths.

    Holds room for `capacity` quantities so that its variables exist before
    the quantities are named (a `MetaModel` names them when its test step is
    first traced, once the compiled metrics are known).

    Args:
        names: Optional list of strings, one per tracked quantity; `result()`
            returns `{f"{name}_ci95": half_width}` for each. Can be set
            later with `set_names()`.
        capacity: Int, the most quantities it can track. Defaults to `16`.
        name: String, name of the metric. Defaults to `"episode_statistics"`.

    Example:

    ```python
    stats = keras_meta.metrics.EpisodeStatistics(["accuracy"])
    stats.update_state([[0.8], [0.9], [1.0]])  # [episodes, quantities]
    stats.result()  # {"accuracy_ci95": 0.113...}
    ```
    """

    def __init__(
        self, names=None, capacity=16, name="episode_statistics", **kwargs
    ):
        # float64 sums where the backend has it by default; JAX without
        # `jax_enable_x64` would truncate (and warn) on every evaluation.
        kwargs.setdefault(
            "dtype",
            "float64" if keras.backend.backend() == "tensorflow" else "float32",
        )
        super().__init__(name=name, **kwargs)
        self.capacity = capacity
        self.names = []
        if names is not None:
            self.set_names(names)
        size = (capacity,)
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="count"
        )
        self.total = self.add_variable(
            shape=size, initializer="zeros", dtype=self.dtype, name="total"
        )
        self.total_squares = self.add_variable(
            shape=size,
            initializer="zeros",
            dtype=self.dtype,
            name="total_squares",
        )

    def set_names(self, names):
        names = list(names)
        if len(names) > self.capacity:
            raise ValueError(
                f"`EpisodeStatistics` tracks at most {self.capacity} "
                f"quantities; received {len(names)}: {names}. Compile fewer "
                "metrics or raise `capacity`."
            )
        self.names = names

    def result_names(self):
        return [f"{name}_ci95" for name in self.names]

    def update_state(self, values):
        values = ops.cast(values, self.dtype)
        padding = self.capacity - ops.shape(values)[1]
        values = ops.pad(values, [[0, 0], [0, padding]])
        self.count.assign_add(ops.cast(ops.shape(values)[0], self.dtype))
        self.total.assign_add(ops.sum(values, axis=0))
        self.total_squares.assign_add(ops.sum(ops.square(values), axis=0))

    def result(self):
        count = self.count.value
        mean = self.total.value / ops.maximum(count, 1.0)
        variance = (self.total_squares.value - count * ops.square(mean)) / (
            ops.maximum(count - 1.0, 1.0)
        )
        half_width = Z_95 * ops.sqrt(
            ops.maximum(variance, 0.0) / ops.maximum(count, 1.0)
        )
        return {
            key: half_width[i] for i, key in enumerate(self.result_names())
        }

    def get_config(self):
        return {
            **super().get_config(),
            "names": self.names,
            "capacity": self.capacity,
        }


def _predictive_squared_error(y_true, y_pred):
    half = y_pred.shape[-1] // 2
    mean = y_pred[..., :half]
    return ops.mean(ops.square(ops.cast(y_true, mean.dtype) - mean), axis=-1)


def _inside_interval(y_true, y_pred):
    half = y_pred.shape[-1] // 2
    mean, std = y_pred[..., :half], y_pred[..., half:]
    inside = ops.abs(ops.cast(y_true, mean.dtype) - mean) <= Z_95 * std
    return ops.mean(ops.cast(inside, mean.dtype), axis=-1)


@keras.saving.register_keras_serializable(package="keras_meta")
class PredictiveMeanSquaredError(keras.metrics.MeanMetricWrapper):
    """Mean squared error of a predicted Gaussian's mean.

    For predictions `[..., 2 * d]` holding means then standard deviations
    (`keras_meta.CNP`): the MSE of the means, comparable with the MSE of
    point predictors such as MAML.
    """

    def __init__(self, name="mse", dtype=None):
        super().__init__(_predictive_squared_error, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_meta")
class IntervalCoverage(keras.metrics.MeanMetricWrapper):
    """Calibration: the fraction of targets inside the predicted central
    95% interval `mean +- 1.96 std` (0.95 when the predicted Gaussians are
    calibrated; lower when over-confident)."""

    def __init__(self, name="coverage_95", dtype=None):
        super().__init__(_inside_interval, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


# Cold-start recommendation moved to its own wing, `keras_meta.recommendation`.
__getattr__ = moved_names("keras_meta.metrics", {
    "NormalizedDCG": "keras_meta.recommendation",
    "PrecisionAtK": "keras_meta.recommendation"})
