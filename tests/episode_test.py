"""The episode contract (`keras_meta.episode`) and the checks of what a
learner is given (`keras_meta.episode_checks`)."""

import keras
import numpy as np

import keras_meta
from keras_meta import episode
from keras_meta import episode_checks
from keras_meta import testing


class EpisodeContractTest(testing.TestCase):
    def test_keys(self):
        self.assertEqual(episode.EPISODE_KEYS,
                         ("query_inputs", "support_inputs", "support_labels"))
        self.assertEqual(episode.QUERY_LABELS, "query_labels")

    def test_missing_key_names_what_was_received(self):
        with self.assertRaisesRegex(ValueError, "support_labels"):
            episode.check_episode_inputs(
                {"support_inputs": np.zeros((1, 2, 3)),
                 "query_inputs": np.zeros((1, 2, 3))}, "MAML")


class EpisodeChecksTest(testing.TestCase):
    def _learner(self):
        learner = keras_meta.MAML(testing.tiny_classifier(num_ways=3),
                                  inner_learning_rate=0.1)
        learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        return learner

    def test_wrapped_model_checks(self):
        with self.assertRaisesRegex(ValueError, "wraps a Keras model"):
            episode_checks.check_wrapped_model("not a model", "MAML", True)
        unbuilt = keras.Sequential([keras.layers.Dense(2)])
        with self.assertRaisesRegex(ValueError, "needs a built model"):
            episode_checks.check_wrapped_model(unbuilt, "MAML", True)
        frozen = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        frozen.trainable = False
        with self.assertRaisesRegex(ValueError, "no trainable weights"):
            episode_checks.check_wrapped_model(frozen, "MAML", True)
        episode_checks.check_wrapped_model(frozen, "LEO", False)

    def test_float_labels_for_a_sparse_loss(self):
        with self.assertRaisesRegex(ValueError, "integer class labels"):
            episode_checks.check_labels(
                self._learner(), np.zeros((2, 3), "float32"),
                "support_labels", np.zeros((2, 3, 6, 6, 1), "float32"))

    def test_first_episode_out_of_range(self):
        (inputs, labels) = testing.toy_episodes(num_ways=3)
        inputs = dict(inputs)
        inputs["support_labels"] = inputs["support_labels"] + 5
        with self.assertRaisesRegex(ValueError, "labels"):
            episode_checks.check_first_episode(self._learner(), inputs,
                                               labels)

    def test_adapt_takes_one_task(self):
        (inputs, _) = testing.toy_episodes(num_ways=3)
        with self.assertRaisesRegex(ValueError, "adapts to one task"):
            episode_checks.check_single_task(
                self._learner(), inputs["support_inputs"],
                inputs["support_labels"])

    def test_is_dataset(self):
        import tensorflow as tf

        self.assertTrue(episode_checks.is_dataset(
            tf.data.Dataset.range(2)))
        self.assertFalse(episode_checks.is_dataset({"a": 1}))
