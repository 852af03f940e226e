"""Episode-level statistics: the few-shot evaluation protocol.

Few-shot results are reported as the mean over a fixed set of episodes with
the half-width of a 95% confidence interval, `t * std / sqrt(episodes)`,
where `t` is the two-sided 95% quantile of Student's t distribution with
`episodes - 1` degrees of freedom (`t_95`: 2.26 for 10 episodes, 2.02 for
40, 1.96 in the limit; the few-shot papers' `1.96` is the limit, a few
percent narrower for the tens of tasks of robot control and
recommendation). `MetaModel.evaluate()` adds, for the loss and every
compiled metric, `<metric>_episode_mean` (the mean over episodes of each
episode's value) and `<metric>_ci95` (its interval's half-width), computed
with `EpisodeStatistics`. The compiled metric itself is Keras's: pooled
over every query. The two agree when every episode counts the same number
of queries; where query weights vary (recommendation's users), the
interval belongs to `<metric>_episode_mean`.
"""

import functools
import math

import keras
import numpy as np
from keras import ops

from keras_meta.deprecation import moved_names

# Two-sided 95% quantile of the normal distribution.
Z_95 = 1.959963984540054
# Degrees of freedom up to which `EpisodeStatistics` reads `t_95` from a
# table; beyond, an expansion in 1 / df is exact to 1e-7.
_T_TABLE_SIZE = 64


@functools.lru_cache(maxsize=None)
def t_95(degrees_of_freedom):
    """The two-sided 95% quantile of Student's t distribution.

    The `t` with `P(|T| <= t) = 0.95` for `degrees_of_freedom` (a positive
    number; `inf` gives the normal's 1.95996...), found by bisection on
    the density integrated with Simpson's rule (exact to about 1e-10).

    Returns:
        A float: 12.706 for 1 degree of freedom, 2.262 for 9, 2.023 for 39.
    """
    df = float(degrees_of_freedom)
    if not df > 0:
        raise ValueError(f"`degrees_of_freedom` must be positive. Received: "
                         f"{degrees_of_freedom!r}.")
    if df > 1e7:
        return Z_95
    log_scale = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2)
                 - 0.5 * math.log(df * math.pi))

    def mass(t):  # P(0 <= T <= t), by Simpson's rule.
        x = np.linspace(0.0, t, 4001)
        density = np.exp(log_scale - (df + 1) / 2 * np.log1p(x * x / df))
        weights = np.ones_like(x)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        return float(np.sum(weights * density) * (t / 4000) / 3)

    low, high = Z_95, 13.0
    while mass(high) < 0.475:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if mass(middle) < 0.475 else (low, middle)
    return (low + high) / 2


def _t_95_expansion(df):
    """`t_95` for large `df` (tensors): the Cornish-Fisher expansion of the
    t quantile in powers of 1 / df (Abramowitz and Stegun 26.7.5)."""
    z = Z_95
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3
          - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def _t_95_tensor(count, dtype):
    """`t_95(count - 1)` for a tensor episode count (at least 2)."""
    table = ops.convert_to_tensor(
        [t_95(df) for df in range(1, _T_TABLE_SIZE + 1)], dtype=dtype)
    df = ops.maximum(count - 1.0, 1.0)
    index = ops.cast(ops.minimum(df, float(_T_TABLE_SIZE)) - 1.0, "int32")
    return ops.where(df <= _T_TABLE_SIZE, ops.take(table, index),
                     _t_95_expansion(ops.maximum(df, 1.0)))


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
    return mean, t_95(count - 1) * std / math.sqrt(count)


@keras.saving.register_keras_serializable(package="keras_meta")
class EpisodeStatistics(keras.metrics.Metric):
    """Accumulates per-episode values and reports their means and 95% CI
    half-widths (Student's t quantile for the episode count; see `t_95`).

    Holds room for `capacity` quantities so that its variables exist before
    the quantities are named (a `MetaModel` names them when its test step is
    first traced, once the compiled metrics are known).

    Args:
        names: Optional list of strings, one per tracked quantity; `result()`
            returns `{f"{name}_episode_mean": mean, f"{name}_ci95":
            half_width}` for each. Can be set later with `set_names()`.
        capacity: Int, the most quantities it can track. Defaults to `16`.
        name: String, name of the metric. Defaults to `"episode_statistics"`.

    Example:

    ```python
    stats = keras_meta.metrics.EpisodeStatistics(["accuracy"])
    stats.update_state([[0.8], [0.9], [1.0]])  # [episodes, quantities]
    stats.result()  # {"accuracy_episode_mean": 0.9, "accuracy_ci95": 0.248...}
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
        return ([f"{name}_episode_mean" for name in self.names]
                + [f"{name}_ci95" for name in self.names])

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
        half_width = _t_95_tensor(count, self.dtype) * ops.sqrt(
            ops.maximum(variance, 0.0) / ops.maximum(count, 1.0)
        )
        values = [mean[i] for i in range(len(self.names))] + [
            half_width[i] for i in range(len(self.names))]
        return dict(zip(self.result_names(), values))

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
    inside = ops.less_equal(
        ops.abs(ops.cast(y_true, mean.dtype) - mean), Z_95 * std)
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
