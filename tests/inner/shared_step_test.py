"""Inner steps traced once (`keras_meta.backend.step_function`, on
TensorFlow with `SHARE_INNER_STEPS` set): every step of a traced
meta-step calls one traced function, so tracing no longer grows with the
number of steps, and the meta-gradient is the unrolled steps' to
rounding."""

import keras
import numpy as np
import pytest
from absl.testing import parameterized

import keras_meta
from keras_meta import testing


class _CountTraces(keras.layers.Layer):
    """The identity; counts how often its `call` runs (once per trace in
    a traced step)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, inputs):
        self.calls += 1
        return inputs


def _meta_gradient(num_inner_steps, batch_norm, shared=True,
                   task_gradients="auto"):
    """`train_on_batch`'s meta-gradient (SGD of size 1) in float64 and
    how often the model was traced."""
    keras.config.set_floatx("float64")
    try:
        inputs, labels = testing.toy_episodes(
            num_tasks=2, num_ways=3, num_shots=2, num_queries=3,
            image_shape=(6, 6, 1), dtype="float64")
        counter = _CountTraces()
        model = keras.Sequential([
            keras.Input(shape=(6, 6, 1)),
            keras.layers.Conv2D(
                4, 3, kernel_initializer=keras.initializers.GlorotUniform(0)),
            keras.layers.BatchNormalization(), counter,
            keras.layers.Activation("gelu"), keras.layers.Flatten(),
            keras.layers.Dense(
                3, kernel_initializer=keras.initializers.GlorotUniform(2)),
        ])
        learner = keras_meta.MAML(
            model, inner_learning_rate=0.1, num_inner_steps=num_inner_steps,
            batch_norm=batch_norm, task_gradients=task_gradients)
        learner.compile(
            optimizer=keras.optimizers.SGD(1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
        initial = [np.array(v) for v in learner.trainable_variables]
        from keras_meta.backend import tensorflow as tf_backend

        tf_backend.SHARE_INNER_STEPS = shared
        try:
            learner.train_on_batch(inputs, labels)
        finally:
            tf_backend.SHARE_INNER_STEPS = False
        gradient = [a - np.array(v)
                    for a, v in zip(initial, learner.trainable_variables)]
        return gradient, counter.calls
    finally:
        keras.config.set_floatx("float32")


@pytest.mark.tensorflow_only  # JAX and torch run each step as it is.
class SharedStepTest(testing.TestCase):
    @parameterized.named_parameters(
        ("transductive", "transductive", True),
        ("inductive", "inductive", True),
        ("inductive_whole_batch", "inductive", False))
    def test_same_meta_gradient_and_one_trace_for_all_steps(
            self, batch_norm, task_gradients):
        shared, shared_traces = _meta_gradient(
            3, batch_norm, task_gradients=task_gradients)
        unrolled, unrolled_traces = _meta_gradient(
            3, batch_norm, shared=False, task_gradients=task_gradients)
        largest = max(np.abs(g).max() for g in unrolled)
        for a, b in zip(shared, unrolled):
            self.assertAllClose(a, b, atol=1e-12 * largest, rtol=0)
        # The support pass is traced once instead of three times.
        self.assertEqual(unrolled_traces - shared_traces, 2)
        one_step = _meta_gradient(1, batch_norm,
                                  task_gradients=task_gradients)[1]
        self.assertEqual(shared_traces, one_step)
