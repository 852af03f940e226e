"""On JAX, an execution of several steps runs as one `lax.scan`: the same
steps as Keras's own step-by-step execution."""

import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import backend
from keras_meta import data
from keras_meta import testing

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="Keras's TensorFlow trainer runs an execution in one graph")


def _learner(steps_per_execution):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((1,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1)])
    learner = keras_meta.MAML(model, inner_learning_rate=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                    steps_per_execution=steps_per_execution)
    return learner


def _fit(steps_per_execution, steps):
    learner = _learner(steps_per_execution)
    history = learner.fit(
        data.sinusoid(num_shots=5, batch_size=4, num_tasks=4 * steps,
                      seed=0),
        epochs=2, verbose=0)
    return learner, history.history["loss"], [
        np.asarray(v) for v in learner.trainable_variables]


class ScanStepsTest(testing.TestCase):
    def test_scanned_executions_equal_single_steps(self):
        # 6 batches per epoch, 4 per execution: one scanned execution of
        # 4 and a partial one of 2 that runs step by step.
        scanned, losses, weights = _fit(4, 6)
        self.assertTrue(scanned._scans_steps())
        single, single_losses, single_weights = _fit(1, 6)
        self.assertFalse(single._scans_steps())
        self.assertLen(losses, 2)
        self.assertAllClose(losses, single_losses, rtol=1e-5)
        moved = 0
        initial = [np.asarray(v) for v in _learner(1).trainable_variables]
        for w, s, b in zip(weights, single_weights, initial):
            self.assertAllClose(w, s, rtol=1e-4, atol=1e-6)
            moved += int(np.max(np.abs(s - b)) > 1e-5)
        self.assertEqual(moved, len(initial))

    def test_mismatched_shapes_run_step_by_step(self):
        learner = _learner(3)
        learner.optimizer.build(learner.trainable_variables)
        learner.make_train_function()
        state = learner._get_jax_state(
            trainable_variables=True, non_trainable_variables=True,
            optimizer_variables=True, metrics_variables=True,
            purge_model_variables=False)
        batches = [next(iter(data.sinusoid(num_shots=5, batch_size=size,
                                           seed=size)))
                   for size in (4, 4, 2)]
        batches = [keras.tree.map_structure(np.asarray, b) for b in batches]
        logs, state = learner.train_function(state, iter(batches))
        self.assertTrue(np.isfinite(float(logs["loss"])))

    def test_not_used_without_jit_or_with_one_step(self):
        learner = _learner(4)
        learner.jit_compile = False
        self.assertFalse(learner._scans_steps())
        self.assertIsNotNone(backend.scan_steps)
