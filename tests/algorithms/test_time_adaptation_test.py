"""Test-time views and fine-tuning of the metric learners (ProtoNet,
MatchingNet, R2D2): NumPy references, a finite-difference oracle for the
fine-tuning step, one-query-at-a-time deployment and unchanged training."""

import os

import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import MatchingNet
from keras_meta import ProtoNet
from keras_meta import R2D2
from keras_meta import models
from keras_meta import testing
from keras_meta.models import views as views_lib

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
SHAPE = (6, 6, 1)
VIEWS = [(0, 1, 0, 0), (90, 1, 0, 0), (0, 1, 1 / 6, 0)]


def _linear_encoder(seed=1):
    return keras.Sequential([
        keras.Input(SHAPE), keras.layers.Flatten(),
        keras.layers.Dense(4, use_bias=False, kernel_initializer=keras
                           .initializers.GlorotUniform(seed=seed))])


def _numpy_views(images):
    """VIEWS by NumPy: the identity, a quarter turn (counter-clockwise on
    the screen) and a shift right by one pixel repeating the left border."""
    turned = np.rot90(images, k=1, axes=(1, 2))
    shifted = np.concatenate([images[:, :, :1], images[:, :, :-1]], axis=2)
    return np.concatenate([images, turned, shifted])


def _prototype_logits(support, labels, queries, num_ways):
    prototypes = np.stack([support[labels == c].mean(0)
                           for c in range(num_ways)])
    return -((queries[:, None] - prototypes[None]) ** 2).sum(-1)


def _fine_tune_loss(kernel, images, labels, num_ways):
    """Prototype cross-entropy of every view of the support images."""
    embeddings = images.reshape(len(images), -1) @ kernel
    logits = _prototype_logits(embeddings, labels, embeddings, num_ways)
    logits = logits - logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels].mean()


class AffineViewsTest(testing.TestCase):
    def test_views_match_numpy(self):
        images = np.random.default_rng(0).uniform(size=(2,) + SHAPE).astype(
            "float32")
        got = keras.ops.convert_to_numpy(
            models.AffineViews(VIEWS)(images))
        self.assertAllClose(got, _numpy_views(images), atol=1e-5)

    def test_view_mean(self):
        values = np.arange(24, dtype="float32").reshape(6, 4)
        got = keras.ops.convert_to_numpy(models.ViewMean(3)(values))
        self.assertAllClose(got, values.reshape(3, 2, 4).mean(0))

    def test_default_views_keep_the_image_first(self):
        images = np.random.default_rng(1).uniform(size=(3,) + SHAPE)
        got = keras.ops.convert_to_numpy(
            models.AffineViews()(images.astype("float32")))
        self.assertEqual(got.shape, (27,) + SHAPE)
        self.assertAllClose(got[:3], images)

    @parameterized.named_parameters(
        ("word", "many"), ("short", [(0, 1, 0)]), ("scale", [(0, 0, 0, 0)]),
        ("empty", []))
    def test_bad_views(self, views):
        with self.assertRaisesRegex(ValueError, "test_time_views"):
            ProtoNet(_linear_encoder(), num_ways=2, test_time_views=views)


class TestTimeAdaptationTest(testing.TestCase):
    def _episodes(self, num_tasks=2, num_shots=1):
        inputs, labels = testing.toy_episodes(
            num_tasks=num_tasks, num_ways=3, num_shots=num_shots,
            num_queries=2, image_shape=SHAPE)
        return inputs, labels

    def test_views_match_numpy(self):
        encoder = _linear_encoder()
        learner = ProtoNet(encoder, num_ways=3, test_time_views=VIEWS)
        learner.compile(loss=LOSS)
        inputs, _ = self._episodes()
        kernel = keras.ops.convert_to_numpy(encoder.weights[0])

        def embed(x):
            views = _numpy_views(x).reshape(3, len(x), -1) @ kernel
            return views.mean(0)

        expected = np.stack([_prototype_logits(
            embed(inputs["support_inputs"][t]), inputs["support_labels"][t],
            embed(inputs["query_inputs"][t]), 3) for t in range(2)])
        self.assertAllClose(learner.predict(inputs, verbose=0), expected,
                            atol=1e-4, rtol=1e-4)

    def test_fine_tuning_step_matches_finite_differences(self):
        encoder = _linear_encoder()
        rate = 0.05
        learner = ProtoNet(encoder, num_ways=3, test_time_views=VIEWS,
                           fine_tune_steps=1, fine_tune_learning_rate=rate)
        learner.compile(loss=LOSS)
        inputs, _ = self._episodes()
        kernel = keras.ops.convert_to_numpy(encoder.weights[0]).astype(
            "float64")
        expected = []
        for t in range(2):
            support = inputs["support_inputs"][t].astype("float64")
            labels = inputs["support_labels"][t]
            views = _numpy_views(support)
            view_labels = np.tile(labels, 3)
            gradient = np.zeros_like(kernel)
            for index in np.ndindex(*kernel.shape):
                step = np.zeros_like(kernel)
                step[index] = 1e-5
                gradient[index] = (
                    _fine_tune_loss(kernel + step, views, view_labels, 3)
                    - _fine_tune_loss(kernel - step, views, view_labels, 3)
                ) / 2e-5
            tuned = kernel - rate * gradient

            def embed(x, tuned=tuned):
                return (_numpy_views(x).reshape(3, len(x), -1) @ tuned).mean(0)

            expected.append(_prototype_logits(
                embed(support), labels,
                embed(inputs["query_inputs"][t].astype("float64")), 3))
        got = learner.predict(inputs, verbose=0)
        self.assertAllClose(got, np.stack(expected), atol=2e-3, rtol=1e-3)
        # The step changed the predictions: the check can fail.
        learner.fine_tune_steps = 0
        self.assertGreater(
            np.abs(learner.predict(inputs, verbose=0) - got).max(), 1e-3)

    def test_training_is_unchanged(self):
        inputs, labels = self._episodes(num_tasks=2, num_shots=2)
        losses = []
        for options in ({}, {"test_time_views": "default",
                             "fine_tune_steps": 2}):
            keras.utils.set_random_seed(3)
            learner = ProtoNet(
                models.conv4(num_outputs=None, input_shape=SHAPE,
                             filters=4, seed=2),
                num_ways=3, **options)
            learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
            losses.append([float(learner.train_on_batch(inputs, labels))
                           for _ in range(2)])
        self.assertAllClose(losses[0], losses[1], atol=1e-6)

    @parameterized.named_parameters(
        ("protonet", ProtoNet), ("matchingnet", MatchingNet), ("r2d2", R2D2))
    def test_adapted_model_predicts_one_query_at_a_time(self, cls):
        learner = cls(models.conv4(num_outputs=None, input_shape=SHAPE,
                                   filters=4, seed=2),
                      num_ways=3, test_time_views="default",
                      fine_tune_steps=2, fine_tune_learning_rate=0.1)
        learner.compile(loss=LOSS)
        inputs, _ = self._episodes(num_tasks=1)
        expected = learner.predict(inputs, verbose=0)[0]
        adapted = learner.adapt(inputs["support_inputs"][0],
                                inputs["support_labels"][0])
        self.assertNotIsInstance(adapted, ProtoNet)
        queries = inputs["query_inputs"][0]
        one_at_a_time = np.concatenate([
            adapted.predict(queries[i:i + 1], verbose=0)
            for i in range(len(queries))])
        self.assertAllClose(one_at_a_time, expected, atol=1e-4, rtol=1e-4)

        path = os.path.join(self.get_temp_dir(), "adapted.keras")
        adapted.save(path)
        loaded = keras.models.load_model(path)
        self.assertAllClose(loaded.predict(queries, verbose=0), expected,
                            atol=1e-4, rtol=1e-4)

    def test_evaluates_episodes_of_unknown_size(self):
        # tf.data episodes leave the sizes of the batch axes unknown.
        from keras_meta import data

        rng = np.random.default_rng(0)
        index = data.ClassIndex(
            rng.uniform(size=(24,) + SHAPE).astype("float32"),
            np.repeat(np.arange(6), 4))
        episodes = data.episodes_from_index(
            index, num_ways=3, num_shots=1, num_queries=2, batch_size=2,
            num_episodes=4, seed=0)
        learner = ProtoNet(models.conv4(num_outputs=None, input_shape=SHAPE,
                                        filters=4, seed=2),
                           num_ways=3, test_time_views="default",
                           fine_tune_steps=1)
        learner.compile(loss=LOSS, metrics=["accuracy"])
        result = learner.evaluate(episodes, return_dict=True, verbose=0)
        self.assertBetween(result["accuracy"], 0.0, 1.0)
        inputs, _ = next(iter(episodes))
        self.assertAllClose(
            learner.predict(episodes, verbose=0)[:2],
            learner.predict({k: v.numpy() for k, v in inputs.items()},
                            verbose=0), atol=1e-4, rtol=1e-4)

    def test_options_are_saved(self):
        learner = R2D2(_linear_encoder(), num_ways=3,
                       test_time_views=VIEWS, fine_tune_steps=3,
                       fine_tune_learning_rate=0.02)
        config = learner.get_config()
        rebuilt = R2D2.from_config(config)
        self.assertEqual(rebuilt.test_time_views,
                         views_lib.check_views(VIEWS))
        self.assertEqual(rebuilt.fine_tune_steps, 3)
        self.assertEqual(rebuilt.fine_tune_learning_rate, 0.02)

    def test_bad_options(self):
        with self.assertRaisesRegex(ValueError, "fine_tune_steps"):
            ProtoNet(_linear_encoder(), num_ways=2, fine_tune_steps=-1)
        with self.assertRaisesRegex(ValueError, "fine_tune_learning_rate"):
            ProtoNet(_linear_encoder(), num_ways=2,
                     fine_tune_learning_rate=0.0)
