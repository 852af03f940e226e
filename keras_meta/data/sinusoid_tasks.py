"""Sinusoid regression, the task family of the MAML paper (section 5.1)."""

import math

import numpy as np

from keras_meta import episode
from keras_meta.checks import positive_integer

# Finn et al. (2017), section 5.1.
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)


def _tasks(indices, seed, amplitude_range, phase_range, input_range,
           num_points):
    """The tasks numbered `indices` (int64 `[n]`): amplitudes and phases
    `[n]`, inputs and labels `[n, num_points, 1]`.

    Task `i` draws from the seed pair `(seed, i)`: it is split into three
    seeds (`tf.random.experimental.stateless_split`) for the amplitude, the
    phase and the points, each drawn by `tf.random.stateless_uniform`;
    `philox` computes those numbers for all tasks at once, bit for bit.
    """
    import tensorflow as tf

    from keras_meta.data import philox

    indices = tf.cast(indices, tf.int64)
    pairs = tf.stack([tf.fill(tf.shape(indices), tf.cast(seed, tf.int64)),
                      indices], axis=-1)
    # One draw for all three seeds (the amplitude and phase use the first
    # word of theirs): fewer, larger ops.
    words = philox.bits(philox.split(pairs, 3), num_points)
    amplitude = philox.to_uniform(words[:, 0, 0], *amplitude_range)
    phase = philox.to_uniform(words[:, 1, 0], *phase_range)
    x = philox.to_uniform(words[:, 2], *input_range)[..., None]
    y = amplitude[:, None, None] * tf.sin(x - phase[:, None, None])
    return amplitude, phase, x, y


# Tasks drawn per call of the pipeline's vectorized generator (rounded to
# whole batches): per-op costs are paid once per chunk, not per task.
_TASKS_PER_CHUNK = 1024


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
    positive_integer("num_shots", num_shots)
    positive_integer("num_queries", num_queries)
    positive_integer("batch_size", batch_size)
    positive_integer("num_tasks", num_tasks, allow_none=True)
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

    def make_tasks(indices):
        _, _, x, y = _tasks(indices, seed, amplitude_range, phase_range,
                            input_range, num_points)
        inputs = {
            episode.SUPPORT_INPUTS: x[:, :num_shots],
            episode.SUPPORT_LABELS: y[:, :num_shots],
            episode.QUERY_INPUTS: x[:, num_shots:],
        }
        return inputs, y[:, num_shots:]

    # Whole chunks of tasks at once, then cut into batches: the same
    # batches as one task at a time, at a fraction of the cost (tf.data
    # spends tens of microseconds per element it batches).
    chunk = batch_size * max(1, _TASKS_PER_CHUNK // batch_size)
    if num_tasks is None:
        chunks = tf.data.Dataset.counter()
        end = None
    else:
        chunks = tf.data.Dataset.range(-(-num_tasks // chunk))
        end = tf.constant(num_tasks, tf.int64)

    def chunk_indices(number):
        start = number * chunk
        stop = start + chunk if end is None else tf.minimum(
            start + chunk, end)
        return tf.range(start, stop, dtype=tf.int64)

    dataset = chunks.map(chunk_indices).map(make_tasks)
    if num_tasks is None:
        # Whole chunks: each splits into its batches.
        def batches(inputs, labels):
            return tf.nest.map_structure(
                lambda t: tf.reshape(
                    t, [chunk // batch_size, batch_size] + t.shape[1:]),
                (inputs, labels))

        dataset = dataset.map(batches).unbatch()
    else:
        dataset = dataset.rebatch(batch_size).apply(
            tf.data.experimental.assert_cardinality(
                -(-num_tasks // batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def sinusoid_parameters(num_tasks, *, seed=0):
    """The amplitudes and phases of the tasks `sinusoid(seed=seed)` makes.

    Args:
        num_tasks: Int, how many tasks from the start of the stream.
        seed: Int, the stream's seed.

    Returns:
        `(amplitudes, phases)`, NumPy arrays of shape `[num_tasks]`.
    """
    positive_integer("num_tasks", num_tasks)
    import tensorflow as tf

    amplitudes, phases, _, _ = _tasks(
        tf.range(num_tasks, dtype=tf.int64), seed, AMPLITUDE_RANGE,
        PHASE_RANGE, INPUT_RANGE, 1)
    return amplitudes.numpy().astype(np.float64), phases.numpy().astype(
        np.float64)
