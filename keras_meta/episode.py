"""The episode contract shared by `keras_meta.data` and every `MetaModel`.

An episode batch is an ordinary Keras batch `(inputs, query_labels)` or
`(inputs, query_labels, sample_weight)`:

| key                         | shape                       |
| --------------------------- | --------------------------- |
| `inputs["support_inputs"]`  | `[tasks, num_support, ...]` |
| `inputs["support_labels"]`  | `[tasks, num_support, ...]` |
| `inputs["query_inputs"]`    | `[tasks, num_query, ...]`   |
| `query_labels`              | `[tasks, num_query, ...]`   |
| `sample_weight`             | `[tasks, num_query]`        |

Episodes padded to a fixed shape (variable-way, variable-shot) add
`inputs["support_weights"]` of shape `[tasks, num_support]`, 1 for real
support examples and 0 for padding, and mark real queries with
`sample_weight`, which weighs the loss and, in a `MetaModel`, the compiled
metrics and their confidence intervals too.

The leading dimension is the meta-batch of tasks, so distribution strategies
split tasks across replicas. Classification labels are integers counted
within the episode, `0 .. num_ways - 1`.
"""

import numpy as np

SUPPORT_INPUTS = "support_inputs"
SUPPORT_LABELS = "support_labels"
QUERY_INPUTS = "query_inputs"
SUPPORT_WEIGHTS = "support_weights"
EPISODE_KEYS = (QUERY_INPUTS, SUPPORT_INPUTS, SUPPORT_LABELS)
# The key under which a training step passes the query labels to `call()`,
# for learners that use them in training (`MetaModel.uses_query_labels`).
QUERY_LABELS = "query_labels"


def _static_dim(tensor, axis):
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) <= axis:
        return None
    dim = shape[axis]
    return None if dim is None else int(dim)


def check_episode_inputs(inputs, owner):
    """Checks the structure and static shapes of an episode's inputs.

    Runs when a step is traced, so it sees static shapes only; the values
    are checked by `check_episode_values`.

    Args:
        inputs: The `inputs` part of an episode batch.
        owner: Name of the caller, used in error messages.

    Raises:
        ValueError: if keys are missing or shapes disagree.
    """
    if not isinstance(inputs, dict) or set(EPISODE_KEYS) - set(inputs):
        received = (
            sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        )
        raise ValueError(
            f"`{owner}` expects episodes `(inputs, query_labels)` where "
            f"`inputs` is a dict with keys {list(EPISODE_KEYS)}. Received: "
            f"{received}. Build episodes with `keras_meta.data` or rename "
            "the keys in `dataset.map()`."
        )
    for key in EPISODE_KEYS:
        rank = len(inputs[key].shape)
        if rank < 2:
            raise ValueError(
                f"`{owner}` expects `inputs['{key}']` to have a leading "
                "task dimension and an example dimension, shape "
                f"`[tasks, examples, ...]`. Received shape "
                f"{tuple(inputs[key].shape)}. For a single task, add a "
                "leading axis (`x[None]`)."
            )
    support, labels, query = (
        inputs[SUPPORT_INPUTS],
        inputs[SUPPORT_LABELS],
        inputs[QUERY_INPUTS],
    )
    tasks = {
        key: _static_dim(inputs[key], 0)
        for key in EPISODE_KEYS
        if _static_dim(inputs[key], 0) is not None
    }
    if len(set(tasks.values())) > 1:
        raise ValueError(
            f"`{owner}` expects the same number of tasks (leading dimension) "
            f"in every part of an episode. Received: {tasks}. Batch support "
            "and query sets of the same tasks together."
        )
    num_support, num_labels = _static_dim(support, 1), _static_dim(labels, 1)
    if None not in (num_support, num_labels) and num_support != num_labels:
        raise ValueError(
            f"`{owner}` expects one support label per support example. "
            f"Received {num_support} support examples and {num_labels} "
            "support labels per task."
        )
    weights = inputs.get(SUPPORT_WEIGHTS)
    if weights is not None and (
        len(weights.shape) != 2
        or None not in (_static_dim(weights, 1), num_support)
        and _static_dim(weights, 1) != num_support
    ):
        raise ValueError(
            f"`{owner}` expects `inputs['{SUPPORT_WEIGHTS}']` of shape "
            f"[tasks, num_support] = [tasks, {num_support}], one weight per "
            f"support example. Received shape {tuple(weights.shape)}."
        )
    if tuple(support.shape[2:]) != tuple(query.shape[2:]):
        raise ValueError(
            f"`{owner}` expects support and query examples of the same "
            f"shape. Received support shape {tuple(support.shape[2:])} and "
            f"query shape {tuple(query.shape[2:])} (after the task and "
            "example dimensions)."
        )


def check_episode_values(inputs, query_labels, num_outputs, owner,
                         classes_limit=None):
    """Checks an episode's values eagerly, before any training step runs.

    Args:
        inputs: The `inputs` dict of one episode batch, as NumPy arrays.
        query_labels: The query labels, as a NumPy array, or `None`.
        num_outputs: Int or `None`, the size of the wrapped model's last
            output axis; integer labels must lie in `0 .. num_outputs - 1`.
        owner: Name of the caller, used in error messages.
        classes_limit: Optional `(what, fix)` strings for the error message
            when labels exceed `num_outputs`: what sets the limit, and how
            to raise it. Defaults to the wrapped model's outputs.

    Raises:
        ValueError: if labels are out of range or task counts disagree.
    """
    check_episode_inputs(inputs, owner)
    if query_labels is not None:
        query_labels = np.asarray(query_labels)
        query_shape = tuple(inputs[QUERY_INPUTS].shape[:2])
        if query_labels.ndim < 2 or query_labels.shape[:2] != query_shape:
            raise ValueError(
                f"`{owner}` expects `query_labels` of shape "
                f"[tasks, num_query, ...] = [{query_shape[0]}, "
                f"{query_shape[1]}, ...], one label per query example. "
                f"Received shape {query_labels.shape}."
            )
    for name, labels in (
        ("inputs['support_labels']", inputs[SUPPORT_LABELS]),
        ("query_labels", query_labels),
    ):
        labels = None if labels is None else np.asarray(labels)
        if labels is not None and not (
                np.issubdtype(labels.dtype, np.number)
                or labels.dtype == bool):
            raise ValueError(
                f"`{owner}` expects numeric {name}: integer class ids "
                "0..num_ways-1 within each episode, or float regression "
                f"targets. Received dtype {labels.dtype}. Map class names "
                "to integers first (`keras_meta.data` does this)."
            )
        if labels is None or not np.issubdtype(labels.dtype, np.integer):
            continue
        if num_outputs is None or labels.size == 0:
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_outputs:
            what, fix = classes_limit or (
                f"the wrapped model has {num_outputs} outputs",
                "give the model one output per way")
            raise ValueError(
                f"`{owner}` received {name} in [{low}, {high}], but {what}, "
                f"so labels must lie in 0..{num_outputs - 1}. Relabel each "
                "episode's classes as 0..num_ways-1 (`keras_meta.data` does "
                f"this) or {fix}."
            )
