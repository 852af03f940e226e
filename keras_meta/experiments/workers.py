"""The experiments' training under a multi-worker strategy (`keras-meta
train --workers N`).

A learner is built in the strategy's scope and trained by `fit()` on the
global meta-batches, which every worker draws alike and splits by data
(each keeps its share of the tasks). Evaluation then runs on a copy of the
trained learner outside the strategy, the same on every worker: the
experiments' scoring (numbers per test task, adapted models, plots) reads
whole arrays, not shares of them.
"""

import contextlib
import os
import tempfile

import keras


def scope(strategy):
    """`strategy.scope()`, or nothing when `strategy` is `None`."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def shard_by_data(dataset, strategy):
    """`dataset` for `fit()` under `strategy`: sharded by data, so every
    worker builds the same global batch and keeps its own tasks (the
    episode pipelines have no files to shard by)."""
    if strategy is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.with_options(options)


def local_copy(learner, strategy):
    """The trained `learner` with its weights, compile settings and
    optimizer, loaded outside `strategy` (saved and loaded through a
    `.keras` file), or `learner` itself when `strategy` is `None`."""
    if strategy is None:
        return learner
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "learner.keras")
        learner.save(path)
        return keras.models.load_model(path)


def check_same(value, strategy, what):
    """Raises `ValueError` unless the JSON value `value` is the same on
    every worker of `strategy` (compared by a fingerprint all-reduced
    between them); does nothing without a strategy."""
    if strategy is None:
        return
    import hashlib
    import json

    import tensorflow as tf

    digest = hashlib.sha256(
        json.dumps(value, sort_keys=True).encode()).hexdigest()
    fingerprint = tf.constant(int(digest[:7], 16), tf.int64)

    @tf.function
    def total():
        return strategy.reduce(
            "SUM", strategy.run(lambda: tf.identity(fingerprint)), axis=None)

    # Equal on every replica exactly when the sum is n times this one's
    # (each fingerprint is below 2**28, so the sum cannot overflow).
    if int(total()) != strategy.num_replicas_in_sync * int(fingerprint):
        raise ValueError(
            f"The workers' {what} differ. Every worker must train on the "
            "same data: give each the same files (remove an old split left "
            "in one worker's output folder, or copy it to every worker).")
