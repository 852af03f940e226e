"""Vectorized task mapping takes the same steps as the per-task loop.

For wrapped models of dense and elementwise layers, `MetaModel.call` maps
tasks with `tf.vectorized_map` / `jax.vmap` (`backend.task_mapping`);
`KERAS_META_TASK_MAPPING=map` forces the loop. Each check trains one SGD
step both ways from the same weights and compares the logs, every updated
weight and the query predictions of the next call.
"""

import os
from unittest import mock

import keras
import numpy as np
import pytest
from absl.testing import parameterized

import keras_meta
from keras_meta import backend
from keras_meta import testing
from keras_meta.backend import common

NUM_WAYS = 3
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# Learners that draw random values per step (their draws are the same
# either way, but are checked separately) or never vectorize.
_SKIPPED = ("leo", "snail", "mann", "imaml")


def _dense_model(channels=1):
    return keras.Sequential([
        keras.Input((6, 6, channels)),
        keras.layers.Flatten(),
        keras.layers.Dense(
            8, activation="tanh",
            kernel_initializer=keras.initializers.GlorotUniform(1),
            bias_initializer=keras.initializers.RandomNormal(0.0, 0.1, 2)),
        keras.layers.Dense(
            NUM_WAYS, kernel_initializer=keras.initializers.GlorotUniform(3)),
    ])


def _learners():
    learners = []
    for name, factory, modes in testing.every_learner(
            NUM_WAYS, model_fn=_dense_model):
        if name == "cavia":
            # CAVIA appends its 8 context values to the input channels.
            def factory(bn):
                return keras_meta.CAVIA(
                    _dense_model(channels=9), num_context_params=8,
                    inner_learning_rate=1.0, batch_norm=bn)
        learners.append((name, factory, modes))
    return learners


def _one_step(factory, mapping, data):
    env = {} if mapping is None else {"KERAS_META_TASK_MAPPING": mapping}
    with mock.patch.dict(os.environ, env):
        if mapping is None:
            os.environ.pop("KERAS_META_TASK_MAPPING", None)
        keras.utils.set_random_seed(0)
        learner = factory("inductive")
        learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS,
                        metrics=["accuracy"])
        inputs, labels = data
        before = [np.array(v) for v in learner.trainable_variables]
        logs = learner.train_on_batch(inputs, labels, return_dict=True)
        after = [np.array(v) for v in learner.trainable_variables]
        predictions = learner.predict_on_batch(inputs)
    return learner, logs, before, after, predictions


class TaskMappingTest(testing.TestCase):
    @parameterized.named_parameters(
        *[(name, factory) for name, factory, _ in _learners()
          if name not in _SKIPPED])
    def test_vectorized_step_equals_loop(self, factory):
        data = testing.toy_episodes(num_tasks=3, num_ways=NUM_WAYS,
                                    num_shots=2, num_queries=3)
        learner, logs, before, after, predictions = _one_step(
            factory, None, data)
        self.assertTrue(learner._vectorizes_tasks())
        _, loop_logs, _, loop_after, loop_predictions = _one_step(
            factory, "map", data)
        self.assertSameTrainingStep(logs, loop_logs, before, after,
                                    loop_after)
        self.assertAllClose(predictions, loop_predictions, rtol=1e-4,
                            atol=1e-5)

    @parameterized.named_parameters(
        *[(name, factory) for name, factory, _ in _learners()
          if name in ("leo", "snail", "mann")
          # MANN is refused on torch (tests/backend/torch_test.py).
          and not (name == "mann" and keras.backend.backend() == "torch")])
    def test_other_learners_train_on_dense_models(self, factory):
        data = testing.toy_episodes(num_tasks=3, num_ways=NUM_WAYS,
                                    num_shots=2, num_queries=3)
        learner, logs, before, after, _ = _one_step(factory, None, data)
        self.assertEqual(learner._vectorizes_tasks(),
                         type(learner).vectorizable)
        self.assertTrue(np.isfinite(logs["loss"]))
        moved = [np.max(np.abs(a - b)) > 1e-6 for a, b in zip(after, before)]
        self.assertGreater(sum(moved), len(moved) // 2)

    def test_which_models_vectorize(self):
        from keras_meta.models.inspection import dense_only
        self.assertTrue(dense_only(_dense_model()))
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(5, activation="relu")(inputs)
        outputs = keras.layers.Add()([keras.layers.Dense(5)(hidden), hidden])
        self.assertTrue(dense_only(keras.Model(inputs, outputs)))
        # Convolutions, normalization and dropout are looped.
        self.assertFalse(dense_only(testing.tiny_classifier(num_ways=3)))
        self.assertFalse(dense_only(keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(5),
            keras.layers.Dropout(0.5)])))

        class Subclassed(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(3)

            def call(self, x):
                return self.dense(x)

        # A subclassed model's call may hold any op: looped.
        self.assertFalse(dense_only(Subclassed()))

    def test_choice_and_override(self):
        task_mapping = backend.task_mapping
        with mock.patch.dict(os.environ, {"KERAS_META_TASK_MAPPING": "map"}):
            self.assertEqual(task_mapping(True), "map")
        if keras.backend.backend() == "torch":
            # A loop over tasks only: vmap is refused with its reason.
            with mock.patch.dict(os.environ,
                                 {"KERAS_META_TASK_MAPPING": "vmap"}):
                with self.assertRaisesRegex(ValueError, "torch.func.vmap"):
                    task_mapping(False)
            self.assertEqual(task_mapping(True), "map")
            return
        with mock.patch.dict(os.environ, {"KERAS_META_TASK_MAPPING": "vmap"}):
            self.assertEqual(task_mapping(False), "vmap")
        with mock.patch.dict(os.environ, {"KERAS_META_TASK_MAPPING": "auto"}):
            self.assertEqual(task_mapping(True), "vmap")
            if keras.backend.backend() == "tensorflow":
                self.assertEqual(task_mapping(False), "map")
        with mock.patch.dict(os.environ,
                             {"KERAS_META_TASK_MAPPING": "pfor"}):
            with self.assertRaisesRegex(ValueError, "must be one of"):
                common.task_mapping_override()

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="the loop's graph is TensorFlow's")
    def test_convolutional_learner_keeps_the_loop(self):
        learner = keras_meta.MAML(testing.tiny_classifier(num_ways=3),
                                  inner_learning_rate=0.3)
        self.assertFalse(learner._vectorizes_tasks())
