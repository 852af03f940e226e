"""Episodes from sources too large for memory: bounded per-class buffers.

The source is read as a shuffled stream; each class keeps at most
`buffer_per_class` examples. Once enough classes hold enough examples, an
episode draws its classes among them, takes distinct examples from each
class's buffer and removes them, so every example is used about once per
pass and memory stays at `classes x buffer_per_class` examples. This is the
reservoir-per-class scheme of Meta-Dataset's readers, without their
per-class files.
"""

import itertools

import numpy as np

from keras_meta import episode
from keras_meta.data.batching import finish_episodes


def stream_episodes(
    dataset,
    *,
    ways_range,
    shots_range,
    num_queries,
    batch_size,
    rotations=False,
    seed=0,
    num_episodes=None,
    buffer_per_class=None,
    min_ready_classes=None,
    shuffle_buffer=10_000,
):
    """Episodes from a stream of `(image, label)` examples.

    Args:
        dataset: `tf.data.Dataset` of `(image, label)`, images float32.
        ways_range: `(low, high)` ways per episode.
        shots_range: `(low, high)` shots per class.
        num_queries: Int, queries per class.
        batch_size: Int, episodes per batch.
        rotations: Bool, rotated copies as extra classes.
        seed: Int; with a deterministic source, the episodes are
            deterministic.
        num_episodes: Optional int, a fixed number of episodes.
        buffer_per_class: Int, most examples kept per class. Defaults to
            twice what an episode takes from a class.
        min_ready_classes: Int, how many classes must be ready before the
            first episode. Defaults to twice the largest number of ways.
        shuffle_buffer: Int, examples shuffled ahead of the buffers; each
            pass over the source is shuffled with its own seed, and the
            buffers start empty on every pass.

    Returns:
        A `tf.data.Dataset` of episode batches, as `episodes()` makes.
    """
    import tensorflow as tf

    num_ways, num_shots = ways_range[1], shots_range[1]
    per_class = num_shots + num_queries
    buffer_per_class = buffer_per_class or 2 * per_class
    if buffer_per_class < per_class:
        raise ValueError(
            f"`buffer_per_class` must hold at least num_shots + num_queries "
            f"= {per_class} examples. Received: {buffer_per_class}."
        )
    min_ready = min_ready_classes or 2 * num_ways
    image_spec = dataset.element_spec[0]

    def examples():
        # Pass after pass, each shuffled with its own seed; buffers are
        # emptied between passes so that no example meets itself again
        # within an episode.
        for epoch in itertools.count():
            yield None
            for example in dataset.shuffle(
                shuffle_buffer, seed=seed + epoch
            ).as_numpy_iterator():
                yield example

    def generate():
        rng = np.random.default_rng(seed)
        buffers = {}
        arrivals = 0
        produced = 0
        for example in examples():
            if example is None:
                buffers = {}
                continue
            image, label = example
            buffer = buffers.setdefault(int(label), [])
            if len(buffer) < buffer_per_class:
                buffer.append(image)
            else:
                buffer[rng.integers(buffer_per_class)] = image
            arrivals += 1
            ready = [c for c, b in buffers.items() if len(b) >= per_class]
            if arrivals < num_ways * per_class or len(ready) < max(
                min_ready, num_ways
            ):
                continue
            arrivals = 0
            # Distinct classes, each at a random rotation when rotations are
            # classes (two rotations of one class would share examples).
            chosen = [
                (ready[i], int(rng.integers(4)) if rotations else 0)
                for i in rng.choice(len(ready), num_ways, replace=False)
            ]
            images = []
            for c, r in chosen:
                buffer = buffers[c]
                take = sorted(rng.choice(len(buffer), per_class,
                                         replace=False), reverse=True)
                examples_taken = [buffer.pop(i) for i in take]
                images.append([np.rot90(x, r) for x in examples_taken])
            images = np.asarray(images)  # [ways, per_class, ...]
            labels = np.repeat(np.arange(num_ways, dtype=np.int32)[:, None],
                               per_class, axis=1)
            shape = images.shape[2:]
            yield (
                np.int64(produced),
                {
                    episode.SUPPORT_INPUTS: images[:, :num_shots].reshape(
                        (-1,) + shape),
                    episode.SUPPORT_LABELS: labels[:, :num_shots].reshape(-1),
                    episode.QUERY_INPUTS: images[:, num_shots:].reshape(
                        (-1,) + shape),
                },
                labels[:, num_shots:].reshape(-1),
            )
            produced += 1
            if num_episodes is not None and produced >= num_episodes:
                return

    shape = tuple(image_spec.shape)
    signature = (
        tf.TensorSpec((), tf.int64),
        {
            episode.SUPPORT_INPUTS: tf.TensorSpec(
                (num_ways * num_shots,) + shape, tf.float32),
            episode.SUPPORT_LABELS: tf.TensorSpec(
                (num_ways * num_shots,), tf.int32),
            episode.QUERY_INPUTS: tf.TensorSpec(
                (num_ways * num_queries,) + shape, tf.float32),
        },
        tf.TensorSpec((num_ways * num_queries,), tf.int32),
    )
    stream = tf.data.Dataset.from_generator(generate,
                                            output_signature=signature)
    return finish_episodes(stream, ways_range=ways_range,
                           shots_range=shots_range, num_queries=num_queries,
                           batch_size=batch_size, seed=seed,
                           num_episodes=num_episodes)
