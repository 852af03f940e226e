"""Large episodes with `steps_per_execution` > 1 (slow: run with
`--run_slow`).

ProtoNet on Conv-4-64 with 60-way 1-shot 5-query episodes (360 images a
task), meta-batch 4, transductive BatchNorm: with `steps_per_execution=10`
TensorFlow's gradient of the per-task map fails in a later call with an
`AlreadyExistsError` on an AddN's temporary variable. The library turns it
into an error that names the fix, and the fix trains.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_meta
from keras_meta import testing

pytestmark = [pytest.mark.slow, pytest.mark.tensorflow_only]


def _dataset(ways=60, queries=5, tasks=4):
    rng = np.random.default_rng(0)
    count = 2 * tasks
    inputs = {
        "support_inputs": rng.uniform(
            size=(count, ways, 28, 28, 1)).astype("float32"),
        "support_labels": np.tile(np.arange(ways), (count, 1)).astype(
            "int32"),
        "query_inputs": rng.uniform(
            size=(count, ways * queries, 28, 28, 1)).astype("float32"),
    }
    labels = np.tile(np.repeat(np.arange(ways), queries), (count, 1))
    return tf.data.Dataset.from_tensor_slices(
        (inputs, labels.astype("int32"))).batch(tasks).repeat()


def _protonet(steps_per_execution):
    learner = keras_meta.ProtoNet(
        keras_meta.models.conv4(num_outputs=None, filters=64, seed=0),
        num_ways=60, batch_norm="transductive")
    learner.compile(optimizer="adam", loss=keras.losses
                    .SparseCategoricalCrossentropy(from_logits=True),
                    steps_per_execution=steps_per_execution)
    return learner


class LargeEpisodeTest(testing.TestCase):
    def test_error_names_the_fix_and_the_fix_trains(self):
        try:
            _protonet(10).fit(_dataset(), epochs=3, steps_per_epoch=10,
                              verbose=0)
        except RuntimeError as error:
            self.assertIn("steps_per_execution=1", str(error))
        history = _protonet(1).fit(_dataset(), epochs=2, steps_per_epoch=3,
                                   verbose=0)
        self.assertTrue(np.all(np.isfinite(history.history["loss"])))
