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


class _RankingMetric(keras.metrics.Metric):
    """The mean over tasks of `_per_task(y_true, y_pred, sample_weight)`, a
    ranking score of each task's query items at cut-off `k`."""

    def __init__(self, k, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int. Received: k={k!r}.")
        self.k = k
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._per_task(y_true, y_pred, sample_weight)
        self.total.assign_add(ops.cast(ops.sum(values), self.dtype))
        self.count.assign_add(ops.cast(ops.shape(values)[0], self.dtype))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_meta")
class NormalizedDCG(_RankingMetric):
    """nDCG@k of each task's query items ranked by predicted score.

    For a task with true ratings `r` and predictions `p` over its query
    items: `DCG@k = sum_{i<k} gain(r[rank_i]) / log2(i + 2)`, where
    `rank` orders the items by `p` descending (ties: the earlier item
    first), and `nDCG@k = DCG@k / IDCG@k`, with `IDCG@k` the DCG of the
    items ordered by their *true* ratings (0 when every gain is 0). The
    metric is the mean over tasks. Query items with a sample weight of 0
    (padding) are neither ranked nor counted.

    `k` must be smaller than the number of query items, or every ranking
    of the full list scores alike and the metric says nothing; the check
    runs when the query size is known.

    Args:
        k: Int, the cut-off. Defaults to `5`.
        gain: `"linear"` (the rating itself), `"exponential"`
            (`2 ** rating - 1`) or `"top_k"` (1 for the `k` items with the
            highest true ratings, 0 for the rest, ties at the `k`-th place
            sharing the places left: RecBole-MetaRec's ranking protocol,
            see `PrecisionAtK`).
            Defaults to `"linear"`.
        name, dtype: As for `keras.metrics.Metric`.

    Labels and predictions are `[tasks, queries]` or `[tasks, queries, 1]`
    (one task: `[queries]` or `[queries, 1]`).
    """

    def __init__(self, k=5, gain="linear", name=None, dtype=None):
        super().__init__(k, name=name or f"ndcg_at_{k}", dtype=dtype)
        if gain not in ("linear", "exponential", "top_k"):
            raise ValueError(
                "`gain` must be 'linear', 'exponential' or 'top_k'. "
                f"Received: gain={gain!r}.")
        self.gain = gain

    def _per_task(self, y_true, y_pred, sample_weight):
        y_true, y_pred, valid = _ranking_inputs(
            y_true, y_pred, sample_weight, self.k, f"nDCG@{self.k}")
        if self.gain == "top_k":
            gains = _true_top_k(y_true, valid, self.k)
        elif self.gain == "linear":
            gains = y_true
        else:
            gains = ops.power(2.0, y_true) - 1.0
        gains = gains * valid
        scores = ops.where(valid > 0, y_pred, _LOWEST)
        discounts = 1.0 / ops.log2(
            ops.arange(self.k, dtype="float32") + 2.0)
        _, ranked = ops.top_k(scores, self.k)
        dcg = ops.sum(ops.take_along_axis(gains, ranked, axis=-1)
                      * discounts, axis=-1)
        if self.gain == "top_k":
            # Whichever way the true ties break, min(k, items) are relevant:
            # this is the expected DCG over the normalizer they all share.
            places = ops.minimum(ops.sum(valid, axis=-1, keepdims=True),
                                 float(self.k))
            ideal = ops.cast(ops.arange(self.k, dtype="float32")[None]
                             < places, "float32")
        else:
            ideal, _ = ops.top_k(ops.where(valid > 0, gains, _LOWEST),
                                 self.k)
            ideal = ops.maximum(ideal, 0.0)
        idcg = ops.sum(ideal * discounts, axis=-1)
        return ops.where(idcg > 0, dcg / ops.maximum(idcg, 1e-12), 0.0)

    def get_config(self):
        return {"k": self.k, "gain": self.gain, "name": self.name,
                "dtype": self.dtype}


_LOWEST = -3.0e38


def _ranking_inputs(y_true, y_pred, sample_weight, k, name):
    """`[tasks, queries]` ratings, scores and 0/1 validity; checks `k`."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    # A trailing axis of 1 (one rating per item) is dropped.
    if len(y_pred.shape) >= 2 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    if len(y_true.shape) >= 2 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if len(y_pred.shape) == 1:
        y_pred, y_true = y_pred[None], y_true[None]
        if sample_weight is not None:
            sample_weight = ops.reshape(sample_weight, (1, -1))
    queries = y_pred.shape[-1]
    if queries is not None and k >= queries:
        raise ValueError(
            f"{name} needs more than {k} query items per task to rank; the "
            f"tasks have {queries}. Use k < {queries}: with k >= the number "
            "of items every ordering of the full list would be scored "
            "alike.")
    if sample_weight is None:
        valid = ops.ones_like(y_true)
    else:
        valid = ops.cast(ops.reshape(
            ops.cast(sample_weight, "float32"), ops.shape(y_true)) > 0,
            "float32")
    return y_true, y_pred, valid


def _true_top_k(y_true, valid, k):
    """Each item's relevance: 1 for the `k` valid items of highest true
    rating, 0 below them; items tied at the `k`-th place share the places
    left equally (the expectation over breaking the tie at random). With at
    most `k` valid items, every one is relevant."""
    kth = ops.top_k(ops.where(valid > 0, y_true, _LOWEST), k)[0][..., -1:]
    above = ops.cast(y_true > kth, "float32") * valid
    tied = ops.cast(y_true == kth, "float32") * valid
    left = float(k) - ops.sum(above, axis=-1, keepdims=True)
    share = left / ops.maximum(ops.sum(tied, axis=-1, keepdims=True), 1.0)
    relevance = above + tied * share
    few = ops.sum(valid, axis=-1, keepdims=True) <= k
    return ops.where(few, valid, relevance)


@keras.saving.register_keras_serializable(package="keras_meta")
class PrecisionAtK(_RankingMetric):
    """Precision@k of each task's query items ranked by predicted score,
    with the `k` items of highest *true* rating as the relevant ones.

    This is RecBole-MetaRec's ranking protocol for rating data: per task,
    the relevant set is the true top `k` of the query items, and
    precision@k is the share of the predicted top `k` (ties to the earlier
    item) that is relevant. Items tied at the `k`-th true rating share the
    places left equally, the expectation over breaking the tie at random
    (RecBole-MetaRec breaks it by `torch.topk`'s order; breaking it by
    position, as the predictions' ties are, would let a constant predictor
    score above chance). A random or constant ranking of 10 query items
    scores 0.5 at k=5 on average. Query items with a sample
    weight of 0 (padding) are neither ranked nor counted. The metric is
    the mean over tasks; `k` must be smaller than the number of query
    items.

    Args:
        k: Int, the cut-off. Defaults to `5`.
        name, dtype: As for `keras.metrics.Metric`.
    """

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(k, name=name or f"precision_at_{k}", dtype=dtype)

    def _per_task(self, y_true, y_pred, sample_weight):
        y_true, y_pred, valid = _ranking_inputs(
            y_true, y_pred, sample_weight, self.k, f"Precision@{self.k}")
        relevant = _true_top_k(y_true, valid, self.k)
        _, ranked = ops.top_k(ops.where(valid > 0, y_pred, _LOWEST), self.k)
        hits = ops.sum(ops.take_along_axis(relevant, ranked, axis=-1), -1)
        return hits / float(self.k)

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}
