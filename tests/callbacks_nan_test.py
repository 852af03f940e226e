import os

import keras
import numpy as np

import keras_meta
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class TerminateOnNaNTest(testing.TestCase):
    def test_nan_episode_stops_and_keeps_the_last_good_checkpoint(self):
        inputs, labels = testing.toy_episodes(num_tasks=8)
        # The seventh episode (the second batch of the second epoch, with
        # two episodes a batch and two batches an epoch) is corrupted.
        inputs["query_inputs"][6, 0] = np.nan
        maml = keras_meta.MAML(testing.tiny_classifier(),
                               inner_learning_rate=0.3)
        maml.compile(optimizer="adam", loss=LOSS)
        path = os.path.join(self.get_temp_dir(), "last_good.keras")
        saved = {}

        class Remember(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                saved[epoch] = [v.numpy() for v in self.model.weights]

        with self.assertRaisesRegex(FloatingPointError,
                                    "epoch 2, batch 2.*checkpoint"):
            maml.fit(inputs, labels, batch_size=2, epochs=2,
                     steps_per_epoch=2, shuffle=False, verbose=0,
                     callbacks=[keras.callbacks.ModelCheckpoint(path),
                                keras.callbacks.TerminateOnNaN(),
                                Remember()])
        self.assertEqual(list(saved), [0])
        reloaded = keras.models.load_model(path)
        for value, expected in zip(reloaded.weights, saved[0]):
            self.assertTrue(np.all(np.isfinite(value.numpy())))
            np.testing.assert_array_equal(value.numpy(), expected)

    def test_diverging_inner_loop_stops(self):
        inputs, labels = testing.toy_episodes(num_tasks=4)
        maml = keras_meta.MAML(testing.tiny_classifier(normalization=None),
                               inner_learning_rate=1e30, num_inner_steps=3)
        maml.compile(optimizer="sgd", loss=LOSS)
        with self.assertRaisesRegex(FloatingPointError, "inner loop"):
            maml.fit(inputs, labels, batch_size=2, epochs=1, verbose=0,
                     callbacks=[keras.callbacks.TerminateOnNaN()])

    def test_without_terminate_on_nan_keras_behaviour_is_kept(self):
        inputs, labels = testing.toy_episodes(num_tasks=4)
        inputs["support_inputs"][1, 0, 0, 0, 0] = np.nan
        maml = keras_meta.MAML(testing.tiny_classifier(),
                               inner_learning_rate=0.3)
        maml.compile(optimizer="sgd", loss=LOSS)
        history = maml.fit(inputs, labels, batch_size=2, epochs=1, verbose=0)
        self.assertTrue(np.isnan(history.history["loss"][-1]))
