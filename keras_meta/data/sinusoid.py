"""Sinusoid regression, the task family of the MAML paper (section 5.1)."""

import math

import numpy as np

from keras_meta import episode

# Finn et al. (2017), section 5.1.
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}."
        )


def _task_parameters(index, seed, amplitude_range, phase_range):
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)]), 3
    )
    amplitude = tf.random.stateless_uniform(
        (), seeds[0], amplitude_range[0], amplitude_range[1]
    )
    phase = tf.random.stateless_uniform(
        (), seeds[1], phase_range[0], phase_range[1]
    )
    return amplitude, phase, seeds[2]


def sinusoid(
    *,
    num_shots=10,
    num_queries=None,
    batch_size=25,
    num_tasks=None,
    seed=0,
    amplitude_range=AMPLITUDE_RANGE,
    phase_range=PHASE_RANGE,
    input_range=INPUT_RANGE,
):
    """Episodes of sinusoid regression, `y = A sin(x - phase)`.

    Each task draws an amplitude `A ~ U[0.1, 5.0]` and a phase
    `~ U[0, pi]`; its support and query points draw `x ~ U[-5, 5]`
    independently (Finn et al., 2017, section 5.1). Task `i` is a pure
    function of `(seed, i)`, so a stream is identical every time it is
    iterated, and resumes exactly.

    Args:
        num_shots: Int, support points per task (the paper's K). Defaults
            to `10`.
        num_queries: Int, query points per task. Defaults to `num_shots`.
        batch_size: Int, tasks per batch (meta-batch size). Defaults to
            `25`.
        num_tasks: Int or `None`. `None` gives an endless stream; an int
            gives that fixed set of tasks (the last batch may be smaller),
            as used for evaluation.
        seed: Int, selects the stream. Use different seeds for training and
            test tasks. Defaults to `0`.
        amplitude_range: Tuple `(low, high)`. Defaults to `(0.1, 5.0)`.
        phase_range: Tuple `(low, high)`. Defaults to `(0, pi)`.
        input_range: Tuple `(low, high)`. Defaults to `(-5, 5)`.

    Returns:
        A `tf.data.Dataset` of episodes `(inputs, query_labels)` with
        `inputs["support_inputs"]` and `inputs["support_labels"]` of shape
        `[batch, num_shots, 1]`, and `inputs["query_inputs"]` and
        `query_labels` of shape `[batch, num_queries, 1]`, float32.

    Example:

    ```python
    train = keras_meta.data.sinusoid(num_shots=10, batch_size=25)
    test = keras_meta.data.sinusoid(num_shots=10, num_tasks=600, seed=1)
    ```

    Reference:
        - [Finn et al., 2017](https://arxiv.org/abs/1703.03400)
    """
    import tensorflow as tf  # tf.data feeds every Keras backend.

    num_queries = num_shots if num_queries is None else num_queries
    _check_positive_int("num_shots", num_shots)
    _check_positive_int("num_queries", num_queries)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("num_tasks", num_tasks, allow_none=True)
    for name, (low, high) in (
        ("amplitude_range", amplitude_range),
        ("phase_range", phase_range),
        ("input_range", input_range),
    ):
        if not low <= high:
            raise ValueError(
                f"`{name}` must be `(low, high)` with low <= high. Received: "
                f"{name}={(low, high)}."
            )
    num_points = num_shots + num_queries

    def make_task(index):
        amplitude, phase, point_seed = _task_parameters(
            index, seed, amplitude_range, phase_range
        )
        x = tf.random.stateless_uniform(
            (num_points, 1), point_seed, input_range[0], input_range[1]
        )
        y = amplitude * tf.sin(x - phase)
        inputs = {
            episode.SUPPORT_INPUTS: x[:num_shots],
            episode.SUPPORT_LABELS: y[:num_shots],
            episode.QUERY_INPUTS: x[num_shots:],
        }
        return inputs, y[num_shots:]

    if num_tasks is None:
        indices = tf.data.Dataset.counter()
    else:
        indices = tf.data.Dataset.range(num_tasks)
    dataset = indices.map(make_task, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=num_tasks is None)
    return dataset.prefetch(tf.data.AUTOTUNE)


def sinusoid_parameters(num_tasks, *, seed=0):
    """The amplitudes and phases of the tasks `sinusoid(seed=seed)` makes.

    Args:
        num_tasks: Int, how many tasks from the start of the stream.
        seed: Int, the stream's seed.

    Returns:
        `(amplitudes, phases)`, NumPy arrays of shape `[num_tasks]`.
    """
    _check_positive_int("num_tasks", num_tasks)
    values = [
        _task_parameters(i, seed, AMPLITUDE_RANGE, PHASE_RANGE)[:2]
        for i in range(num_tasks)
    ]
    return (
        np.array([float(a) for a, _ in values]),
        np.array([float(p) for _, p in values]),
    )
