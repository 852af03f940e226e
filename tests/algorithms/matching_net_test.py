import os

import keras
import numpy as np

from keras_meta import MatchingNet
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _encoder():
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Flatten(),
        keras.layers.Dense(8, kernel_initializer=keras.initializers
                           .GlorotUniform(seed=2)),
    ])


class MatchingNetTest(testing.TestCase):
    def test_attention_matches_numpy(self):
        encoder = _encoder()
        matching = MatchingNet(encoder, num_ways=3)
        matching.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_shots=2)
        expected = []
        for t in range(2):
            s = keras.ops.convert_to_numpy(encoder(inputs["support_inputs"][t]))
            q = keras.ops.convert_to_numpy(encoder(inputs["query_inputs"][t]))
            s /= np.linalg.norm(s, axis=1, keepdims=True)
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            scores = 10.0 * q @ s.T
            attention = np.exp(scores - scores.max(1, keepdims=True))
            attention /= attention.sum(1, keepdims=True)
            one_hot = np.eye(3)[inputs["support_labels"][t]]
            expected.append(np.log(attention @ one_hot))
        self.assertAllClose(matching.predict(inputs, verbose=0),
                            np.stack(expected), atol=1e-4, rtol=1e-4)

    def test_basics(self):
        matching = MatchingNet(_encoder(), num_ways=3)
        self.assertNotIn("distance", matching.get_config())
        self.run_meta_model_test(
            cls=MatchingNet,
            init_kwargs={"model": _encoder(), "num_ways": 3},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_adapted_model_saves_and_loads(self):
        matching = MatchingNet(_encoder(), num_ways=3)
        matching.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=1)
        learner = self.assertAdaptedModelMatches(matching, inputs)
        path = os.path.join(self.get_temp_dir(), "adapted.keras")
        learner.save(path)
        reloaded = keras.models.load_model(path)
        self.assertAllClose(
            reloaded.predict(inputs["query_inputs"][0], verbose=0),
            learner.predict(inputs["query_inputs"][0], verbose=0))
