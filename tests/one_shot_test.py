"""Lake et al.'s within-alphabet one-shot protocol on generated minimal
sets: which alphabets train, validate and test, trials drawn within one
alphabet, and the error with its interval against a NumPy reference."""

import os
import zlib

import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import ProtoNet
from keras_meta import data
from keras_meta import metrics
from keras_meta import testing
from keras_meta.experiments import one_shot

SIZE = 8
# small1 and small2 share Latin (identical files); the rest are their own.
ALPHABETS = {
    "images_background_small1": {"Latin": 5, "Alpha": 6, "Beta": 7},
    "images_background_small2": {"Latin": 5, "Gamma": 6, "Delta": 3},
}


def _minimal_sets(directory, per_character=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    templates = {}
    for subset, alphabets in ALPHABETS.items():
        for alphabet, count in alphabets.items():
            for c in range(count):
                key = (alphabet, c)
                if key not in templates:
                    templates[key] = rng.uniform(size=(SIZE, SIZE)) > 0.5
                folder = os.path.join(directory, subset, alphabet,
                                      f"character{c + 1:02d}")
                os.makedirs(folder)
                drawer_rng = np.random.default_rng(
                    zlib.crc32(f"{alphabet}/{c}".encode()))
                for k in range(per_character):
                    noise = drawer_rng.uniform(size=(SIZE, SIZE)) > 0.7
                    pixels = (templates[key] ^ noise).astype("uint8") * 255
                    Image.fromarray(pixels).save(
                        os.path.join(folder, f"{k:02d}.png"))


class OneShotProtocolTest(testing.TestCase):
    def setUp(self):
        super().setUp()
        self.data_dir = self.get_temp_dir()
        _minimal_sets(self.data_dir)

    def _load(self, **kwargs):
        return one_shot.load(self.data_dir, image_size=SIZE, **kwargs)

    def test_alphabets_of_each_direction(self):
        sets = self._load()
        self.assertEqual(list(sets["tests"]), ["Delta", "Gamma"])
        self.assertEqual(sets["validation"].num_classes, 5)
        self.assertEqual(
            sorted({one_shot.alphabet_of(n)
                    for n in sets["train"].class_names}), ["Alpha", "Beta"])
        reverse = self._load(train_subset="small2", validation_alphabet=None)
        self.assertEqual(list(reverse["tests"]), ["Alpha", "Beta"])
        self.assertIsNone(reverse["validation"])
        self.assertEqual(reverse["train"].num_classes, 14)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "train_subset"):
            self._load(train_subset="small3")
        with self.assertRaisesRegex(ValueError, "Gamma"):
            self._load(validation_alphabet="Gamma")

    def test_trials_stay_within_one_alphabet(self):
        index = self._load(validation_alphabet=None)["train"]

        def key(image):  # stored as 8-bit pixels or floats in [0, 1]
            image = np.asarray(image)
            if image.dtype != np.uint8:
                image = np.round(image * 255).astype(np.uint8)
            return image.tobytes()

        owner = {}
        for c, name in enumerate(index.class_names):
            start = index.offsets[c]
            for image in index.examples[start:start + index.counts[c]]:
                owner[key(image)] = one_shot.alphabet_of(name)
        episodes = one_shot.trials(index, num_episodes=12, seed=0,
                                   num_ways=5)
        seen = set()
        for inputs, labels in episodes:
            support = inputs["support_inputs"].numpy()
            queries = inputs["query_inputs"].numpy()
            for task in range(len(support)):
                alphabets = {owner[key(image)]
                             for image in np.concatenate(
                                 [support[task], queries[task]])}
                self.assertEqual(len(alphabets), 1)
                seen |= alphabets
                # One support and one query image per class, never equal.
                self.assertEqual(len(support[task]), 5)
                self.assertEqual(sorted(labels[task].numpy()), list(range(5)))
                for s, q in zip(support[task], queries[task]):
                    self.assertFalse(np.array_equal(s, q))
        self.assertEqual(seen, {"Alpha", "Beta", "Latin"})

    def test_error_matches_numpy_nearest_prototype(self):
        tests = self._load()["tests"]
        encoder = keras.Sequential([
            keras.Input((SIZE, SIZE, 1)), keras.layers.Flatten(),
            keras.layers.Dense(SIZE * SIZE, use_bias=False,
                               kernel_initializer="identity")])
        learner = ProtoNet(encoder, num_ways=4)
        learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"])
        got = one_shot.evaluate(learner, tests, num_ways=4, num_episodes=30)

        def reference(position, index):
            errors = []
            for inputs, labels in one_shot.trials(
                    index, num_episodes=30, seed=one_shot.TEST_SEED + position,
                    num_ways=4):
                for s, y, q, t in zip(inputs["support_inputs"].numpy(),
                                      inputs["support_labels"].numpy(),
                                      inputs["query_inputs"].numpy(),
                                      labels.numpy()):
                    s, q = s.reshape(len(s), -1), q.reshape(len(q), -1)
                    distances = ((q[:, None] - s[None]) ** 2).sum(-1)
                    predicted = y[np.argmin(distances, axis=1)]
                    errors.append(100 * np.mean(predicted != t))
            return np.array(errors)

        pooled = []
        for position, (alphabet, index) in enumerate(tests.items()):
            errors = reference(position, index)
            row = got["alphabets"][alphabet]
            self.assertEqual(row["ways"], min(4, index.num_classes))
            self.assertEqual(row["trials"], 30 * row["ways"])
            self.assertAllClose(row["error"], errors.mean(), atol=1e-3)
            self.assertAllClose(
                row["error_ci95"],
                metrics.t_95(len(errors) - 1) * errors.std(ddof=1)
                / np.sqrt(len(errors)), atol=1e-3)
            if row["ways"] == 4:
                pooled.append(errors)
        # Delta (3 characters) is reported apart, not pooled.
        self.assertEqual(got["alphabets"]["Delta"]["ways"], 3)
        pooled = np.concatenate(pooled)
        self.assertAllClose(got["pooled"]["error"], pooled.mean(), atol=1e-3)
        self.assertAllClose(
            got["pooled"]["error_ci95"],
            metrics.t_95(len(pooled) - 1) * pooled.std(ddof=1)
            / np.sqrt(len(pooled)), atol=1e-3)
        self.assertGreater(got["pooled"]["error"], 0.0)
        self.assertIn("pooled 4-way", one_shot.format_results(got))

    def test_transductive_learner_is_refused(self):
        learner = ProtoNet(keras.Sequential([
            keras.Input((SIZE, SIZE, 1)), keras.layers.Flatten(),
            keras.layers.Dense(4)]), num_ways=4, batch_norm="transductive")
        with self.assertRaisesRegex(ValueError, "inductive"):
            one_shot.evaluate(learner, self._load()["tests"], num_ways=4)

    @pytest.mark.slow  # trains and scores a learner end to end
    def test_run_writes_results(self):
        output = os.path.join(self.get_temp_dir(), "run", "one_shot.json")
        results = one_shot.run(
            data_dir=self.data_dir, image_size=SIZE, filters=4,
            train_ways=4, meta_batch_size=2, train_queries=1,
            within_alphabet=True, augment=True, meta_steps=4, eval_every=2,
            num_validation_episodes=4, num_test_episodes=4, output=output,
            verbose=0)
        self.assertEqual(results["steps"], 4)
        self.assertEqual(set(results["alphabets"]), {"Delta", "Gamma"})
        # The best configuration by default: scored with test-time views.
        self.assertEqual(results["config"]["test_time_views"], "default")
        for suffix in (".json", ".png", ".keras"):
            self.assertTrue(os.path.exists(output[:-5] + suffix))

    def test_test_time_views_of_run(self):
        from keras_meta import models

        protonet = ProtoNet(models.conv4(num_outputs=None,
                                         input_shape=(SIZE, SIZE, 1),
                                         filters=4, seed=0), num_ways=4)
        maml = keras_meta.MAML(testing.tiny_classifier(num_ways=4),
                               inner_learning_rate=0.1)
        self.assertEqual(one_shot._test_time_views(protonet, "auto"),
                         "default")
        self.assertIsNone(one_shot._test_time_views(protonet, None))
        self.assertIsNone(one_shot._test_time_views(maml, "auto"))
        with self.assertRaisesRegex(ValueError, "MAML takes no test-time"):
            one_shot._test_time_views(maml, "default")
        # Refused before any training.
        with self.assertRaisesRegex(ValueError, "takes no test-time"):
            one_shot.run(data_dir=self.data_dir, algorithm="maml",
                         image_size=SIZE, train_ways=4, train_queries=1,
                         test_time_views="default", verbose=0)

    def test_evaluate_command(self):
        import contextlib
        import io

        from keras_meta import cli
        from keras_meta import models

        learner = ProtoNet(models.conv4(num_outputs=None,
                                        input_shape=(SIZE, SIZE, 1),
                                        filters=4, seed=0), num_ways=20)
        learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True), metrics=["accuracy"])
        path = os.path.join(self.get_temp_dir(), "protonet.keras")
        learner.save(path)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = cli.main(["evaluate", path, "--benchmark",
                             "omniglot-one-shot", "--data-dir", self.data_dir,
                             "--train-subset", "small2", "--num-episodes",
                             "3"])
        self.assertEqual(code, 0)
        text = printed.getvalue()
        # small2 trained: small1's Alpha (6 characters) and Beta (7).
        self.assertRegex(text, r"Alpha\s+6\s+18\s")
        self.assertRegex(text, r"Beta\s+7\s+21\s")
        self.assertNotIn("Latin", text)


class AffineDistortionsTest(testing.TestCase):
    def test_layers_and_ranges(self):
        self.assertEqual(data.affine_distortions(
            rotation=0, shear=0, scale=(1, 1), translation=0), [])
        self.assertLen(data.affine_distortions(), 4)
        for bad in ({"rotation": -1}, {"rotation": 200}, {"shear": 1.5},
                    {"scale": (1.2, 0.8)}, {"scale": 2}):
            with self.assertRaises(ValueError):
                data.affine_distortions(**bad)

    def test_distorts_each_image_of_an_episode(self):
        rng = np.random.default_rng(0)
        images = (rng.uniform(size=(40, SIZE, SIZE, 1)) > 0.5).astype(
            "float32")
        index = data.ClassIndex(images, np.repeat(np.arange(10), 4))
        kwargs = {"num_ways": 3, "num_shots": 1, "num_queries": 2,
                  "batch_size": 2, "num_episodes": 2, "seed": 0}
        plain = next(iter(data.episodes_from_index(index, **kwargs)))
        distorted = next(iter(data.episodes_from_index(
            index, augment=data.affine_distortions(seed=0), **kwargs)))
        for key in ("support_inputs", "query_inputs"):
            a, b = plain[0][key].numpy(), distorted[0][key].numpy()
            self.assertEqual(a.shape, b.shape)
            # Every image moved; pixel values stay within [0, 1].
            differences = np.abs(a - b).reshape(-1, SIZE * SIZE).max(1)
            self.assertTrue(np.all(differences > 0))
            self.assertTrue(np.all((b >= -1e-6) & (b <= 1 + 1e-6)))
        np.testing.assert_array_equal(plain[1], distorted[1])
