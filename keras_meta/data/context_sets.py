"""Context sets as the neural-process papers train them: a random number of
context points per task, and the context among the targets."""

from keras_meta import episode
from keras_meta.checks import positive_integer


def random_context(dataset, *, min_size=3, max_size=None,
                   targets_include_context=True, seed=0):
    """Episodes with a random context size per task, for neural processes.

    Conditional and attentive neural processes are trained with a context
    of random size, so that one network serves any number of support
    points, and with the context points among the targets (Garnelo et al.,
    2018; Kim et al., 2019; DeepMind's reference notebooks draw the context
    size uniformly from 3 up to a maximum). This transforms episodes of
    regression tasks accordingly: for each task a size `k` is drawn
    uniformly from `[min_size, max_size]`; the first `k` support points
    are the context (their `support_weights` are 1, the others' 0), and
    with `targets_include_context` every support point, context or not,
    is put before the queries as a target, so the loss scores the context
    points too. Support points are drawn independently of their order
    (as `sinusoid()` draws them), so the first `k` are a random subset.

    Args:
        dataset: A `tf.data.Dataset` of batched episodes `(inputs,
            query_labels)` or `(inputs, query_labels, query_weights)`, with
            `num_support` support points per task.
        min_size: Int, the smallest context. Defaults to `3`.
        max_size: Int, the largest context; defaults to `num_support`.
        targets_include_context: Bool. Defaults to `True`. With an
            `keras_meta.ANP` whose latent path encodes the targets, build it
            with `queries_include_support=True` so its posterior does not
            count the context twice.
        seed: Int; batch `i` draws its sizes from `(seed, i)`, so a stream
            is the same every time it is iterated.

    Returns:
        A `tf.data.Dataset` of episodes with `inputs["support_weights"]`
        (and, with `targets_include_context`, `num_support + num_queries`
        queries; query weights where the episodes had support or query
        weights).

    Example:

    ```python
    train = keras_meta.data.random_context(
        keras_meta.data.sinusoid(num_shots=20, num_queries=10), min_size=3)
    ```
    """
    import tensorflow as tf  # tf.data feeds every Keras backend.

    positive_integer("min_size", min_size)
    positive_integer("max_size", max_size, allow_none=True)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3) or (
            not isinstance(spec[0], dict)):
        raise ValueError(
            "`random_context` takes batched episodes `(inputs, "
            "query_labels)` or `(inputs, query_labels, query_weights)`. "
            f"Received a dataset of {spec}.")
    num_support = spec[0][episode.SUPPORT_INPUTS].shape[1]
    if num_support is None:
        raise ValueError(
            "`random_context` needs a static number of support points per "
            "task; the dataset's support inputs have shape "
            f"{spec[0][episode.SUPPORT_INPUTS].shape}.")
    max_size = num_support if max_size is None else max_size
    if not min_size <= max_size <= num_support:
        raise ValueError(
            f"Context sizes must satisfy min_size <= max_size <= the "
            f"episodes' {num_support} support points. Received "
            f"min_size={min_size}, max_size={max_size}.")

    def transform(index, element):
        inputs, labels = dict(element[0]), element[1]
        query_weights = element[2] if len(element) == 3 else None
        num_tasks = tf.shape(labels)[0]
        sizes = tf.random.stateless_uniform(
            [num_tasks], tf.stack([tf.cast(seed, tf.int64), index]),
            minval=min_size, maxval=max_size + 1, dtype=tf.int32)
        context = tf.cast(tf.range(num_support)[None] < sizes[:, None],
                          tf.float32)
        old_support = inputs.get(episode.SUPPORT_WEIGHTS)
        if old_support is not None:
            old_support = tf.cast(old_support, tf.float32)
            context = context * old_support
        inputs[episode.SUPPORT_WEIGHTS] = context
        if not targets_include_context:
            return (inputs, labels) + (
                () if query_weights is None else (query_weights,))
        inputs[episode.QUERY_INPUTS] = tf.concat(
            [inputs[episode.SUPPORT_INPUTS], inputs[episode.QUERY_INPUTS]],
            axis=1)
        labels = tf.concat(
            [tf.cast(inputs[episode.SUPPORT_LABELS], labels.dtype), labels],
            axis=1)
        if old_support is None and query_weights is None:
            return inputs, labels
        if old_support is None:
            old_support = tf.ones(tf.shape(context), tf.float32)
        if query_weights is None:
            query_weights = tf.ones(tf.shape(labels)[:2] - [0, num_support],
                                    tf.float32)
        weights = tf.concat(
            [old_support, tf.cast(query_weights, tf.float32)], axis=1)
        return inputs, labels, weights

    return dataset.enumerate().map(
        lambda index, element: transform(index, element),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
