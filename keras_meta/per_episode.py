"""Scores per episode: the compiled loss and metrics of a learner computed
for each task of a batch, which `keras_meta.metrics.EpisodeStatistics`
turns into means and 95% confidence intervals over episodes."""

from keras import ops

from keras_meta import backend
from keras_meta.losses import unreduced
from keras_meta.losses import weighted_mean


def compiled_metric_objects(model, weighted_only=False):
    """The compiled metrics of `model`, in order (or only those that see
    sample weights: Keras's `weighted_metrics`)."""
    # The compiled metrics live in one container metric whose `metrics`
    # lists them; the loss tracker and per-output loss trackers have none.
    for metric in model.metrics:
        nested = getattr(metric, "metrics", None)
        if not isinstance(nested, list):
            continue
        if weighted_only:
            # One `MetricsList` per output (or `None`).
            nested = [m for group in getattr(
                metric, "_flat_weighted_metrics", []) if group
                for m in getattr(group, "metrics", [group])]
        yield from nested


def compiled_loss_fn(model):
    """The compiled loss as an unreduced function, or `None` when there is
    none or one per output."""
    loss = model.loss
    if loss is None or isinstance(loss, (dict, list, tuple)):
        return None
    return unreduced(loss)


def per_episode_values(model, y, y_pred, sample_weight):
    """The compiled loss and each compiled metric, computed separately for
    each task: a dict from name to values of shape `[tasks]`."""
    loss_fn = compiled_loss_fn(model)
    metrics = list(compiled_metric_objects(model))
    # As Keras does, only `weighted_metrics` see the sample weights.
    weighted = {id(m) for m in compiled_metric_objects(
        model, weighted_only=True)}
    initial = [m.stateless_reset_state() for m in metrics]
    names = (["loss"] if loss_fn is not None else []) + [
        m.name for m in metrics
    ]

    def per_task(task):
        y_t, p_t, w_t = task
        values = []
        if loss_fn is not None:
            labels = y_t
            if "float" in str(labels.dtype):
                labels = ops.cast(labels, p_t.dtype)
            losses = ops.cast(loss_fn(labels, p_t), "float32")
            values.append(weighted_mean(losses, ops.cast(w_t, "float32")))
        for metric, state in zip(metrics, initial):
            state = metric.stateless_update_state(
                state, y_t, p_t,
                sample_weight=w_t if id(metric) in weighted else None,
            )
            values.append(
                ops.cast(metric.stateless_result(state), "float32")
            )
        return ops.stack(values)

    if sample_weight is None:
        sample_weight = ops.ones(ops.shape(y)[:2])
    values = backend.map_tasks(
        per_task, (y, y_pred, sample_weight), "float32"
    )
    return {name: values[:, i] for i, name in enumerate(names)}


def update_statistics(statistics, model, y, y_pred, sample_weight):
    """Adds a batch's per-episode values to `statistics` (an
    `EpisodeStatistics`, named at its first batch) and returns its
    `*_episode_mean` and `*_ci95` results."""
    values = per_episode_values(model, y, y_pred, sample_weight)
    if not statistics.names:
        statistics.set_names(list(values))
    statistics.update_state(ops.stack(list(values.values()), axis=1))
    return statistics.result()


def metric_names(model, statistics):
    """The names `evaluate(return_dict=False)` returns, in order: the loss
    and each compiled metric, then their means over episodes and `*_ci95`
    half-widths, sorted."""
    names = []
    for metric in model.metrics:
        if metric is statistics:
            continue
        nested = getattr(metric, "metrics", None)
        if isinstance(nested, list):
            names += [m.name for m in nested]
        else:
            names.append(metric.name)
    return names + sorted(
        f"{name}{suffix}" for name in names
        for suffix in ("_ci95", "_episode_mean"))
