"""Training task by task (`task_gradients=True`) takes the same step.

The per-task path sums each task's gradient of its loss divided by the
number of tasks; for a loss that averages over the batch this is the
gradient of the batch's loss. Each check trains one step both ways from
the same weights and compares the logs and every updated weight.
"""

import keras
import numpy as np
import pytest
from absl.testing import parameterized

import keras_meta
from keras_meta import testing

pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="the JAX trainer differentiates whole batches")
tensorflow_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TensorFlow's choice and strategies")

NUM_WAYS = 3
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# These draw random values per step (latent samples, support orders, an
# initial memory) whose draws depend on how many tasks share a call.
_RANDOM = ("leo", "snail", "mann")


def _episodes(num_tasks=3, weights=False):
    inputs, labels = testing.toy_episodes(
        num_tasks=num_tasks, num_ways=NUM_WAYS, num_shots=2, num_queries=3)
    if not weights:
        return inputs, labels, None
    rng = np.random.default_rng(3)
    sample_weight = (rng.random(labels.shape) < 0.6).astype("float32")
    sample_weight[:, 0] = 1.0
    return inputs, labels, sample_weight


def _one_step(factory, task_gradients, data, optimizer=None,
              batch_norm="inductive"):
    keras.utils.set_random_seed(0)
    learner = factory(batch_norm)
    learner.task_gradients = task_gradients
    # SGD: the weights move by the gradients themselves (Adam would turn
    # rounding-level gradients into steps of its full learning rate).
    learner.compile(optimizer=(optimizer or (
                        lambda: keras.optimizers.SGD(0.1)))(),
                    loss=LOSS, metrics=["accuracy"])
    inputs, labels, sample_weight = data
    before = [np.array(v.numpy()) for v in learner.trainable_variables]
    logs = learner.train_on_batch(inputs, labels, sample_weight=sample_weight,
                                  return_dict=True)
    after = [np.array(v.numpy()) for v in learner.trainable_variables]
    return learner, logs, before, after


class TaskGradientsTest(testing.TestCase):
    def assert_same_step(self, factory, data, **kwargs):
        whole, whole_logs, before, whole_after = _one_step(
            factory, False, data, **kwargs)
        by_task, logs, _, after = _one_step(factory, True, data, **kwargs)
        self.assertTrue(by_task._uses_task_gradients(data[:2]))
        self.assertFalse(whole._uses_task_gradients(data[:2]))
        self.assertSameTrainingStep(logs, whole_logs, before, after,
                                    whole_after)

    @parameterized.named_parameters(
        *[(name, factory) for name, factory, _ in testing.every_learner(
            NUM_WAYS, dropout=0.0) if name not in _RANDOM])
    def test_same_step_as_whole_batch(self, factory):
        self.assert_same_step(factory, _episodes())

    @parameterized.named_parameters(
        *[(name, factory) for name, factory, _ in testing.every_learner(
            NUM_WAYS) if name in _RANDOM])
    def test_random_learners_train(self, factory):
        # Their draws differ from the whole batch's; the step still runs
        # and moves the weights, with Dropout active too.
        data = _episodes()
        learner, logs, before, after = _one_step(factory, True, data)
        self.assertTrue(learner._uses_task_gradients(data[:2]))
        self.assertTrue(np.isfinite(logs["loss"]))
        self.assertGreater(logs["loss"], 0.0)
        moved = [np.max(np.abs(a - b)) > 1e-6 for a, b in zip(after, before)]
        self.assertGreater(sum(moved), len(moved) // 2)

    def test_query_weights_and_per_step_normalization(self):
        factory = dict((name, f) for name, f, _ in testing.every_learner(
            NUM_WAYS, dropout=0.0))["maml++"]
        self.assert_same_step(factory, _episodes(weights=True),
                              batch_norm="per_step")

    def test_regularization_losses_counted_once(self):
        # Each task's loss includes the model's regularization losses; the
        # mean over tasks counts them once, as the whole batch does.
        def factory(batch_norm):
            model = keras.Sequential([
                keras.Input((6, 6, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(
                    NUM_WAYS, kernel_regularizer=keras.regularizers.L2(0.5),
                    kernel_initializer=keras.initializers.GlorotUniform(1)),
            ])
            return keras_meta.MAML(model, inner_learning_rate=0.3,
                                   batch_norm=batch_norm)

        learner, _, _, _ = _one_step(factory, True, _episodes())
        self.assertNotEmpty(learner.losses)
        self.assert_same_step(factory, _episodes(weights=True))

    def test_auto_chooses_by_model_and_memory(self):
        from keras_meta.algorithms.meta_model import TASK_GRADIENT_BYTES

        def episodes(tasks, queries, shape):
            return {
                "support_inputs": keras.KerasTensor((tasks, 5) + shape),
                "support_labels": keras.KerasTensor((tasks, 5),
                                                    dtype="int32"),
                "query_inputs": keras.KerasTensor((tasks, queries) + shape),
            }

        # A dense model: chosen by memory alone.
        dense = keras_meta.MAML(keras.Sequential([
            keras.Input((8,)), keras.layers.Dense(16384),
            keras.layers.Dense(5)]), inner_learning_rate=0.4)
        dense.compile(optimizer="adam", loss=LOSS)
        # About 16,400 values per example: 430 MB for 32 tasks of 205.
        large = episodes(32, 200, (8,))
        self.assertGreater(dense._batch_activation_bytes((large,)),
                           TASK_GRADIENT_BYTES)
        self.assertTrue(dense._uses_task_gradients((large,)))
        self.assertFalse(dense._uses_task_gradients(
            (episodes(2, 6, (8,)),)))
        # Convolutions, with or without max pooling: at any size.
        small = episodes(2, 6, (28, 28, 1))
        for pool in (True, False):
            conv = keras_meta.MAML(
                keras_meta.models.conv4(num_outputs=5,
                                        input_shape=(28, 28, 1), pool=pool),
                inner_learning_rate=0.4)
            conv.compile(optimizer="adam", loss=LOSS)
            self.assertTrue(conv._uses_task_gradients((small,)))
        inputs = episodes(32, 75, (28, 28, 1))
        # A loss that does not average over the batch keeps whole batches.
        conv.compile(optimizer="adam", loss=keras.losses
                     .SparseCategoricalCrossentropy(from_logits=True,
                                                    reduction="sum"))
        self.assertFalse(conv._uses_task_gradients((inputs,)))
        conv.task_gradients = True
        self.assertTrue(conv._uses_task_gradients((inputs,)))
        conv.compile(optimizer="adam", loss=LOSS)
        conv.task_gradients = False
        self.assertFalse(conv._uses_task_gradients((small,)))

    @tensorflow_only
    def test_fit_with_mirrored_strategy(self):
        import tensorflow as tf

        data = _episodes(num_tasks=4)
        factory = dict((name, f) for name, f, _ in testing.every_learner(
            NUM_WAYS, dropout=0.0))["maml"]
        results = []
        for task_gradients in (False, True):
            keras.utils.set_random_seed(0)
            with tf.distribute.MirroredStrategy(["CPU:0"]).scope():
                learner = factory("inductive")
                learner.task_gradients = task_gradients
                learner.compile(optimizer=keras.optimizers.SGD(0.1),
                                loss=LOSS)
            history = learner.fit(data[0], data[1], batch_size=4, epochs=2,
                                  verbose=0)
            results.append((history.history["loss"],
                            [v.numpy() for v in learner.trainable_variables]))
        self.assertAllClose(results[1][0], results[0][0], rtol=1e-5)
        for t, w in zip(results[1][1], results[0][1]):
            self.assertAllClose(t, w, rtol=1e-4, atol=1e-6)

    @tensorflow_only
    def test_tasks_in_flight(self):
        from keras_meta.backend import tensorflow as tf_backend

        factories = dict((name, f) for name, f, _ in testing.every_learner(
            NUM_WAYS, dropout=0.0))
        seen = []
        summed = tf_backend.sum_task_gradients

        def recording(*args, parallelism, **kwargs):
            seen.append(parallelism)
            return summed(*args, parallelism=parallelism, **kwargs)

        def first_order(batch_norm):
            learner = factories["maml"](batch_norm)
            learner.first_order = learner._use_first_order = True
            return learner

        data = _episodes(num_tasks=4)
        self.assertEqual(tf_backend.TASK_GRADIENT_PARALLELISM, "auto")
        try:
            tf_backend.sum_task_gradients = recording
            # Second order: one task at a time; first order and metric
            # learners: two.
            for factory, expected in ((factories["maml"], 1),
                                      (first_order, 2),
                                      (factories["protonet"], 2)):
                _one_step(factory, True, data)
                self.assertEqual(seen[-1], expected)
            # The module's int overrides every learner's choice, and the
            # step does not depend on how many tasks are in flight.
            steps = []
            for parallelism in (1, 3):
                tf_backend.TASK_GRADIENT_PARALLELISM = parallelism
                steps.append(_one_step(factories["maml"], True, data))
                self.assertEqual(seen[-1], parallelism)
        finally:
            tf_backend.sum_task_gradients = summed
            tf_backend.TASK_GRADIENT_PARALLELISM = "auto"
        (_, logs_1, before, after_1), (_, logs_3, _, after_3) = steps
        self.assertSameTrainingStep(logs_3, logs_1, before, after_3, after_1)

    def test_rejects_other_values(self):
        with self.assertRaisesRegex(ValueError, "task_gradients"):
            keras_meta.MAML(testing.tiny_classifier(num_ways=NUM_WAYS),
                            inner_learning_rate=0.1, task_gradients="yes")
