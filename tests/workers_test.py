"""`keras_meta.experiments.workers`: the experiments' training under a
strategy, and the copy of the trained learner scored outside it."""

import keras
import numpy as np
import pytest

from keras_meta import testing
from keras_meta.experiments import workers

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="tf.distribute strategies")


class WorkersTest(testing.TestCase):
    def test_local_copy_leaves_the_strategy_and_keeps_the_learner(self):
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["CPU:0"])
        inputs, labels = testing.toy_episodes(num_tasks=4)
        dataset = tf.data.Dataset.from_tensor_slices(
            (inputs, labels)).batch(2)
        with workers.scope(strategy):
            factories = {name: factory for name, factory, _ in
                         testing.every_learner(3, dropout=0.0)}
            learner = factories["maml"]("inductive")
            learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras
                            .losses.SparseCategoricalCrossentropy(
                                from_logits=True))
        self.assertIs(learner.distribute_strategy, strategy)
        learner.fit(workers.shard_by_data(dataset, strategy), epochs=1,
                    verbose=0)
        self.assertEqual(
            workers.shard_by_data(dataset, strategy).options()
            .experimental_distribute.auto_shard_policy,
            tf.data.experimental.AutoShardPolicy.DATA)
        copy = workers.local_copy(learner, strategy)
        self.assertIsNot(copy, learner)
        self.assertIsNot(copy.distribute_strategy, strategy)
        self.assertIs(type(copy), type(learner))
        for a, b in zip(copy.weights, learner.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        # Compiled as the original, with the optimizer's state.
        self.assertEqual(int(copy.optimizer.iterations.numpy()), 2)
        self.assertAllClose(copy.predict(inputs, verbose=0),
                            learner.predict(inputs, verbose=0), atol=1e-6)
        # Without a strategy, nothing changes.
        self.assertIs(workers.local_copy(learner, None), learner)
        self.assertIs(workers.shard_by_data(dataset, None), dataset)

    def test_check_same_compares_every_worker(self):
        import tensorflow as tf

        class TwoWorkers:
            """Stands for two workers whose other one holds `other`'s
            fingerprint (the sum the all-reduce would return)."""

            num_replicas_in_sync = 2

            def __init__(self, other):
                self.other = other

            def run(self, fn):
                return fn()

            def reduce(self, op, value, axis):
                self.op = op
                return value + (value if self.other is None
                                else tf.constant(self.other, value.dtype))

        splits = {"train": ["a", "b"], "validation": ["c"], "test": ["d"]}
        workers.check_same(splits, None, "splits")
        same = TwoWorkers(None)
        workers.check_same(splits, same, "splits")
        self.assertEqual(same.op, "SUM")
        with self.assertRaisesRegex(ValueError, "workers' splits differ"):
            workers.check_same(splits, TwoWorkers(12345), "splits")
