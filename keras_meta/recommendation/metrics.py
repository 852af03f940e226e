"""Ranking metrics of a user's held-out items: nDCG@k and precision@k,
averaged over the tasks (users) of a batch."""

import keras
from keras import ops


class _RankingMetric(keras.metrics.Metric):
    """The mean over tasks of `per_task(y_true, y_pred, sample_weight)`, a
    ranking score of each task's query items at cut-off `k`."""

    def __init__(self, k, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int. Received: k={k!r}.")
        self.k = k
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self.per_task(y_true, y_pred, sample_weight)
        self.total.assign_add(ops.cast(ops.sum(values), self.dtype))
        self.count.assign_add(ops.cast(ops.shape(values)[0], self.dtype))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def per_task(self, y_true, y_pred, sample_weight):
        """Each task's score, shape `[tasks]` (the values this metric
        averages)."""
        raise NotImplementedError(
            f"`{type(self).__name__}` must implement `per_task()`.")


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

    def per_task(self, y_true, y_pred, sample_weight):
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

    def per_task(self, y_true, y_pred, sample_weight):
        y_true, y_pred, valid = _ranking_inputs(
            y_true, y_pred, sample_weight, self.k, f"Precision@{self.k}")
        relevant = _true_top_k(y_true, valid, self.k)
        _, ranked = ops.top_k(ops.where(valid > 0, y_pred, _LOWEST), self.k)
        hits = ops.sum(ops.take_along_axis(relevant, ranked, axis=-1), -1)
        return hits / float(self.k)

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}
