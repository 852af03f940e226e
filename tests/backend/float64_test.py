"""Float64 as users get it: Keras's own promotion table, not the test
session's lift (`tests/conftest.py`), with keras_meta's scope
(`keras_meta.backend.promotion`) around its steps."""

import threading

import keras
import numpy as np
import pytest
from keras.src.backend.common import dtypes as keras_dtypes

import keras_meta
from keras_meta import testing
from keras_meta.backend import promotion

SHIPPED = "float64" if keras.backend.backend() == "tensorflow" else "float32"


@pytest.fixture(autouse=True)
def keras_as_shipped():
    """Keras's float64 entry as Keras ships it, for each test; floatx back
    to float32 after."""
    lifted = keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"]
    keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"] = SHIPPED
    try:
        yield
    finally:
        keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"] = lifted
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def _learner():
    keras.config.set_floatx("float64")
    inputs, labels = testing.toy_episodes(
        num_tasks=2, num_ways=3, num_shots=2, num_queries=3,
        image_shape=(6, 6, 1), dtype="float64")
    # Inputs far from zero: float32 moments lose them to cancellation.
    for key in ("support_inputs", "query_inputs"):
        inputs[key] = inputs[key] + 100.0
    model = keras.Sequential([
        keras.Input(shape=(6, 6, 1)),
        keras.layers.Conv2D(
            4, 3, kernel_initializer=keras.initializers.GlorotUniform(0)),
        keras.layers.BatchNormalization(
            gamma_initializer=keras.initializers.RandomUniform(
                0.5, 1.5, seed=1)),
        keras.layers.Activation("gelu"),
        keras.layers.Flatten(),
        keras.layers.Dense(
            3, kernel_initializer=keras.initializers.GlorotUniform(2)),
    ])
    learner = keras_meta.MAML(model, inner_learning_rate=0.1,
                              num_inner_steps=2)
    learner.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner, inputs, labels


def _directional_errors(learner, inputs, labels, epsilon=1e-5):
    """Relative errors of the meta-gradient `train_on_batch` applies (SGD
    of size 1) along three random directions, against central
    differences of `test_on_batch`'s loss: the public paths only."""
    variables = learner.trainable_variables
    initial = [np.array(v) for v in variables]
    learner.train_on_batch(inputs, labels)
    gradient = [a - np.array(v) for a, v in zip(initial, variables)]
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(3):
        direction = [rng.normal(size=a.shape) for a in initial]

        def loss(scale):
            for v, a, d in zip(variables, initial, direction):
                v.assign(a + scale * d)
            return learner.test_on_batch(inputs, labels,
                                         return_dict=True)["loss"]

        numeric = (loss(epsilon) - loss(-epsilon)) / (2 * epsilon)
        analytic = sum(float(np.sum(g * d))
                       for g, d in zip(gradient, direction))
        errors.append(abs(numeric - analytic) / abs(numeric))
    for v, a in zip(variables, initial):
        v.assign(a)
    return errors


class Float64Test(testing.TestCase):
    def test_meta_gradient_as_users_get_it(self):
        learner, inputs, labels = _learner()
        errors = _directional_errors(learner, inputs, labels)
        self.assertLess(max(errors), 1e-6, errors)
        # Keras's table is as shipped again after the steps.
        self.assertEqual(keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"],
                         SHIPPED)

    @pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                        reason="TensorFlow keeps float64 without the scope")
    def test_without_the_scope_float64_is_float32_in_places(self):
        # The check above can fail: without keras_meta's scope, Keras
        # normalizes and reduces these float64 tensors in float32.
        learner, inputs, labels = _learner()
        original = promotion.computes_in_float64
        try:
            import keras_meta.algorithms.meta_model as meta_model

            meta_model.computes_in_float64 = lambda model: False
            learner.compile(optimizer=keras.optimizers.SGD(1.0),
                            loss=learner.loss)
            errors = _directional_errors(learner, inputs, labels)
        finally:
            meta_model.computes_in_float64 = original
        self.assertGreater(max(errors), 1e-4, errors)

    def test_scope_only_for_float64_learners(self):
        learner, _, _ = _learner()
        self.assertEqual(promotion.computes_in_float64(learner.model),
                         keras.backend.backend() != "tensorflow")
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
        float32 = keras_meta.MAML(testing.tiny_classifier())
        self.assertFalse(promotion.computes_in_float64(float32.model))

    def test_nested_and_threaded_scopes_restore_the_table(self):
        table = keras_dtypes.BIT64_TO_BIT32_DTYPE
        seen = []
        entered = threading.Barrier(2)

        def worker():
            with promotion.float64_promotion():
                entered.wait()
                seen.append(table["float64"])
                entered.wait()

        with promotion.float64_promotion():
            with promotion.float64_promotion():
                self.assertEqual(table["float64"], "float64")
            self.assertEqual(table["float64"], "float64")
            thread = threading.Thread(target=worker)
            thread.start()
            entered.wait()
            entered.wait()
            thread.join()
        self.assertEqual(seen, ["float64"])
        self.assertEqual(table["float64"], SHIPPED)
        with promotion.float64_promotion(enabled=False):
            self.assertEqual(table["float64"], SHIPPED)
