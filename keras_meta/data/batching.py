"""The last stage of every episode pipeline: padding of variable episodes,
batching and prefetching. Both episode sources (`episodes.py` from a class
index, `streaming.py` from a stream of examples) end here."""

from keras_meta import episode


def finish_episodes(dataset, *, ways_range, shots_range, num_queries,
                    batch_size, seed, num_episodes):
    """Pads variable episodes, batches and prefetches.

    `dataset` yields `(episode_index, inputs, query_labels)` of the largest
    episode shape. For variable ways or shots, each episode draws its ways
    and its shots per class from `(seed, episode_index)` (as in
    Meta-Dataset); the other slots hold real images of the drawn classes
    and get weight 0 in `inputs["support_weights"]` and the batch's
    `sample_weight`.
    """
    import tensorflow as tf

    variable = ways_range[0] < ways_range[1] or shots_range[0] < shots_range[1]
    num_ways, num_shots = ways_range[1], shots_range[1]

    def plain(index, inputs, query_labels):
        del index
        return inputs, query_labels

    def padded(index, inputs, query_labels):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64) + 1, index]), 2
        )
        ways = tf.random.stateless_uniform(
            [], seeds[0], ways_range[0], ways_range[1] + 1, dtype=tf.int32
        )
        shots = tf.random.stateless_uniform(
            [num_ways], seeds[1], shots_range[0], shots_range[1] + 1,
            dtype=tf.int32,
        )
        real_way = tf.range(num_ways) < ways
        support_mask = tf.logical_and(
            tf.range(num_shots)[None] < shots[:, None], real_way[:, None]
        )
        query_mask = tf.tile(real_way[:, None], [1, num_queries])
        inputs = dict(inputs)
        inputs[episode.SUPPORT_WEIGHTS] = tf.reshape(
            tf.cast(support_mask, tf.float32), [-1]
        )
        return inputs, query_labels, tf.reshape(
            tf.cast(query_mask, tf.float32), [-1]
        )

    dataset = dataset.map(padded if variable else plain,
                          num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=num_episodes is None)
    return dataset.prefetch(tf.data.AUTOTUNE)
