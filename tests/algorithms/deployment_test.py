"""What is evaluated is what is deployed, for every learner and mode.

A Conv -> BatchNorm -> ReLU -> MaxPool -> Dropout -> Dense network; for
each learner and each `batch_norm` mode it accepts, `adapt()`'s model
predicts a task's queries as `predict()` does, `evaluate()` scores those
predictions, Dropout is inactive outside training, and in the inductive
mode a query predicted alone gets the prediction it gets in its batch.
"""

import keras
import numpy as np
from absl.testing import parameterized

import keras_meta
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
NUM_WAYS = 3


# On JAX (CPU, where each learner takes long to trace) a representative
# subset runs: the mechanisms are shared, and TensorFlow runs them all.
_JAX_SUBSET = ("maml++", "protonet", "relationnet", "leo")


def _cases():
    return [(f"{name}_{mode}", factory, mode)
            for name, factory, modes in testing.every_learner(NUM_WAYS)
            if keras.backend.backend() != "jax" or name in _JAX_SUBSET
            for mode in modes]


class DeploymentTest(testing.TestCase):
    @parameterized.named_parameters(*_cases())
    def test_adapted_model_predicts_as_evaluated(self, factory, batch_norm):
        meta_model = factory(batch_norm)
        channels = meta_model.model.input_shape[-1]
        inputs, labels = testing.toy_episodes(
            num_tasks=2, num_ways=NUM_WAYS, num_shots=2, num_queries=3,
            image_shape=(6, 6, channels))
        meta_model.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS,
                           metrics=["accuracy"])
        # One training step moves every weight, BatchNorm's included.
        meta_model.fit(inputs, labels, epochs=1, verbose=0)
        self.run_adapted_model_test(meta_model, (inputs, labels))

    def test_statistics_differ_between_modes(self):
        # The two modes are different functions of the same weights: the
        # consistency checks above cannot pass by both ignoring the mode.
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=NUM_WAYS,
                                         num_shots=2, num_queries=3)
        predictions = {}
        for mode in ("inductive", "transductive"):
            keras.utils.set_random_seed(1)
            meta_model = keras_meta.ProtoNet(
                testing.tiny_classifier(num_ways=NUM_WAYS),
                num_ways=NUM_WAYS, batch_norm=mode)
            predictions[mode] = meta_model.predict(inputs, verbose=0)
        gap = np.max(np.abs(predictions["inductive"]
                            - predictions["transductive"]))
        self.assertGreater(gap, 1e-2)
