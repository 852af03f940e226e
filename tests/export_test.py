import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl.testing import parameterized

import keras_meta
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

# Loads a SavedModel with plain TensorFlow, in a process that never imports
# keras_meta, and prints the largest difference from the expected output.
_SERVE = """
import sys
import numpy as np
import tensorflow as tf
sys.modules["keras_meta"] = None  # any import of it fails
arrays = np.load(sys.argv[2])
served = tf.saved_model.load(sys.argv[1])
if "support_labels" in arrays:
    out = served.serve(arrays["support_inputs"], arrays["support_labels"],
                       arrays["query_inputs"])
else:
    out = served.serve(arrays["inputs"])
print(float(np.abs(out.numpy() - arrays["expected"]).max()))
"""


def _serve_elsewhere(path, arrays):
    np.savez(os.path.join(path, "arrays.npz"), **arrays)
    result = subprocess.run(
        [sys.executable, "-c", _SERVE, path,
         os.path.join(path, "arrays.npz")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return float(result.stdout.strip().splitlines()[-1])


def _regression():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.Dense(1)])
    maml = keras_meta.MAML(model, inner_learning_rate=0.1,
                           num_inner_steps=2)
    maml.compile(loss="mse")
    return maml, testing.linear_regression_episodes(dtype="float32")


def _classifier():
    maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
    maml.compile(loss=LOSS)
    return maml, testing.toy_episodes(num_tasks=2)


def _protonet():
    encoder = keras.Sequential([keras.Input((6, 6, 1)),
                                keras.layers.Flatten(),
                                keras.layers.Dense(5)])
    protonet = keras_meta.ProtoNet(encoder, num_ways=3)
    protonet.compile(loss=LOSS)
    return protonet, testing.toy_episodes(num_tasks=2)


@pytest.mark.tensorflow_only
class ExportTest(testing.TestCase):
    @parameterized.named_parameters(
        ("maml_classifier", _classifier), ("maml_regression", _regression),
        ("protonet", _protonet))
    @pytest.mark.slow  # a SavedModel served in a fresh process
    def test_savedmodel_serves_without_keras_meta(self, make):
        meta_model, (inputs, _) = make()
        path = os.path.join(self.get_temp_dir(), "served")
        keras_meta.export(meta_model, path)
        expected = meta_model.predict(inputs, verbose=0)
        error = _serve_elsewhere(path, {**inputs, "expected": expected})
        self.assertLess(error, 1e-5)

    def test_adapted_model_exports(self):
        maml, (inputs, _) = _classifier()
        learner = maml.adapt(inputs["support_inputs"][0],
                             inputs["support_labels"][0])
        path = os.path.join(self.get_temp_dir(), "adapted")
        learner.export(path, verbose=False)
        queries = inputs["query_inputs"][0]
        error = _serve_elsewhere(path, {
            "inputs": queries,
            "expected": learner.predict(queries, verbose=0)})
        self.assertLess(error, 1e-5)

    def _subclassed_maml(self):
        class Subclassed(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        subclassed = Subclassed()
        subclassed(np.zeros((1, 3), "float32"))
        maml = keras_meta.MAML(subclassed, inner_learning_rate=0.1)
        maml.compile(loss="mse")
        return maml

    def test_subclassed_model_with_example_shape(self):
        maml = self._subclassed_maml()
        inputs, _ = testing.linear_regression_episodes(dtype="float32")
        inputs["support_labels"] = np.repeat(inputs["support_labels"], 2, -1)
        path = os.path.join(self.get_temp_dir(), "served")
        keras_meta.export(maml, path, example_shape=(3,))
        expected = maml.predict(inputs, verbose=0)
        error = _serve_elsewhere(path, {**inputs, "expected": expected})
        self.assertLess(error, 1e-5)

    def test_errors(self):
        maml = self._subclassed_maml()
        with self.assertRaisesRegex(ValueError, "example_shape=\\(28, 28"):
            keras_meta.export(maml, self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "positive ints"):
            keras_meta.export(maml, self.get_temp_dir(),
                              example_shape=(None, 3))
