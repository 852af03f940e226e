import os

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_meta import data
from keras_meta import testing

pytestmark = pytest.mark.tensorflow_only


def _identity_source(counts, shape=(4, 4, 1)):
    """Examples whose pixels all hold their example id (from 1)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    ids = np.arange(1, len(labels) + 1, dtype="float32")
    images = np.ones((len(labels),) + shape, "float32") * ids[:, None, None, None]
    return tf.data.Dataset.from_tensor_slices((images, labels)), labels


def _ids(images):
    images = np.asarray(images)
    return images.reshape(images.shape[0], -1)[:, 0].astype(int)


class EpisodesTest(testing.TestCase):
    def test_invariants(self):
        counts = [20, 8, 12, 20, 9, 15, 20, 30]
        source, labels = _identity_source(counts)
        ways, shots, queries = 4, 2, 3
        dataset = data.episodes(source, num_ways=ways, num_shots=shots,
                                num_queries=queries, batch_size=5, seed=1,
                                num_episodes=60)
        seen_classes = set()
        for inputs, query_labels in dataset.as_numpy_iterator():
            self.assertEqual(inputs["support_inputs"].shape[1:],
                             (ways * shots, 4, 4, 1))
            self.assertEqual(inputs["query_inputs"].shape[1:],
                             (ways * queries, 4, 4, 1))
            for t in range(len(query_labels)):
                support = _ids(inputs["support_inputs"][t])
                query = _ids(inputs["query_inputs"][t])
                both = np.concatenate([support, query])
                self.assertEqual(len(set(both)), len(both))  # no repeats
                s_y, q_y = inputs["support_labels"][t], query_labels[t]
                self.assertEqual(sorted(np.bincount(s_y)), [shots] * ways)
                self.assertEqual(sorted(np.bincount(q_y)), [queries] * ways)
                classes = {}
                for ids, ys in ((support, s_y), (query, q_y)):
                    for i, y in zip(ids, ys):
                        classes.setdefault(int(y), set()).add(labels[i - 1])
                # Each episode label is one class; labels name distinct ones.
                self.assertTrue(all(len(c) == 1 for c in classes.values()))
                drawn = [next(iter(c)) for c in classes.values()]
                self.assertEqual(len(set(drawn)), ways)
                seen_classes.update(drawn)
        self.assertEqual(seen_classes, set(range(len(counts))))

    def test_label_permutation_varies(self):
        source, labels = _identity_source([10] * 5)
        dataset = data.episodes(source, num_ways=5, num_shots=1,
                                num_queries=1, batch_size=20, seed=0,
                                num_episodes=20)
        inputs, _ = next(dataset.as_numpy_iterator())
        first_class = {labels[_ids(x)[0] - 1] for x in inputs["support_inputs"]}
        self.assertGreater(len(first_class), 1)

    def test_determinism(self):
        source, _ = _identity_source([10] * 6)

        def take(seed, num_episodes=None):
            dataset = data.episodes(source, num_ways=3, num_shots=1,
                                    num_queries=2, batch_size=4, seed=seed,
                                    num_episodes=num_episodes)
            return [b[0]["query_inputs"] for b in
                    dataset.take(3).as_numpy_iterator()]

        self.assertAllClose(take(7), take(7), atol=0, rtol=0)
        self.assertFalse(np.array_equal(take(7)[0], take(8)[0]))
        fixed = data.episodes(source, num_ways=3, num_shots=1, num_queries=2,
                              batch_size=4, seed=3, num_episodes=10)
        first = list(fixed.as_numpy_iterator())
        second = list(fixed.as_numpy_iterator())
        self.assertEqual([len(b[1]) for b in first], [4, 4, 2])
        for a, b in zip(first, second):
            self.assertAllClose(a[0]["support_inputs"], b[0]["support_inputs"],
                                atol=0, rtol=0)

    def test_classes_restrict_the_split(self):
        source, labels = _identity_source([6] * 10)
        dataset = data.episodes(source, num_ways=3, num_shots=1,
                                num_queries=1, batch_size=8, seed=0,
                                classes=[2, 5, 7, 9], num_episodes=40)
        drawn = set()
        for inputs, _ in dataset.as_numpy_iterator():
            for task in inputs["support_inputs"]:
                drawn.update(labels[_ids(task) - 1].tolist())
        self.assertEqual(drawn, {2, 5, 7, 9})

    def test_class_index_subset(self):
        examples = np.arange(12, dtype="float32")[:, None]
        labels = np.repeat([0, 1, 2], [3, 4, 5])
        index = data.ClassIndex(examples, labels,
                                class_names=["a", "b", "c"],
                                groups=np.repeat([7, 8, 9], [3, 4, 5]))
        subset = index.subset([2, 0])
        self.assertEqual(subset.class_names, ["c", "a"])
        np.testing.assert_array_equal(subset.counts, [5, 3])
        np.testing.assert_array_equal(subset.groups, [9, 7])
        np.testing.assert_array_equal(
            subset.examples[:, 0], [7, 8, 9, 10, 11, 0, 1, 2])
        with self.assertRaisesRegex(ValueError, "must lie in"):
            index.subset([3])
        with self.assertRaisesRegex(ValueError, "more than once"):
            index.subset([1, 1])

    def test_rotations_are_classes(self):
        # One class with one asymmetric image per example.
        base = np.zeros((6, 3, 3, 1), "float32")
        base[:, 0, 0, 0] = 1.0
        base[:, 2, 1, 0] = np.arange(6) + 2.0
        source = tf.data.Dataset.from_tensor_slices(
            (base, np.zeros(6, "int64")))
        dataset = data.episodes(source, num_ways=4, num_shots=1,
                                num_queries=1, batch_size=1, seed=0,
                                rotations=True, num_episodes=5)
        for inputs, _ in dataset.as_numpy_iterator():
            images = np.concatenate(
                [inputs["support_inputs"][0], inputs["query_inputs"][0]])
            labels = np.concatenate(
                [inputs["support_labels"][0], np.repeat(np.arange(4), 1)])
            corners = []
            for label in range(4):
                group = images[labels == label]
                # Where the marker pixel went tells the rotation.
                spots = {tuple(np.argwhere(g[..., 0] == 1.0)[0]) for g in group}
                self.assertEqual(len(spots), 1)
                corners.append(spots.pop())
            self.assertEqual(len(set(corners)), 4)

    def test_image_folder(self):
        directory = self.get_temp_dir()
        rng = np.random.default_rng(0)
        for alphabet, characters in (("Alpha", 3), ("Beta", 2)):
            for c in range(characters):
                folder = os.path.join(directory, alphabet, f"character{c:02d}")
                os.makedirs(folder)
                for k in range(4):
                    pixels = rng.integers(0, 256, (10, 10, 1), dtype=np.uint8)
                    tf.io.write_file(os.path.join(folder, f"{k}.png"),
                                     tf.io.encode_png(pixels))
        index = data.load_class_index(directory, image_size=(6, 6))
        self.assertEqual(index.class_names[0], os.path.join("Alpha", "character00"))
        self.assertEqual(index.num_classes, 5)
        self.assertEqual(index.examples.shape, (20, 6, 6, 1))
        self.assertTrue(0.0 <= index.examples.min() <= index.examples.max() <= 1.0)
        dataset = data.episodes(directory, num_ways=5, num_shots=2,
                                num_queries=2, batch_size=2, image_size=(6, 6),
                                seed=0, classes=None)
        inputs, labels = next(iter(dataset))
        self.assertEqual(tuple(inputs["support_inputs"].shape), (2, 10, 6, 6, 1))
        self.assertEqual(inputs["support_inputs"].dtype, tf.float32)

    def test_tfds_source_with_mock_data(self):
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=300):
            dataset = data.episodes("mnist", split="train", num_ways=5,
                                    num_shots=1, num_queries=2, batch_size=2,
                                    seed=0)
            inputs, labels = next(iter(dataset))
        self.assertEqual(tuple(inputs["query_inputs"].shape), (2, 10, 28, 28, 1))
        self.assertLessEqual(float(tf.reduce_max(inputs["query_inputs"])), 1.0)

    def test_trains_maml(self):
        # Episodes plug straight into a MetaModel.
        import keras

        from keras_meta import MAML

        source, _ = _identity_source([6] * 6, shape=(6, 6, 1))
        dataset = data.episodes(source, num_ways=3, num_shots=1,
                                num_queries=2, batch_size=2, seed=0)
        maml = MAML(testing.tiny_classifier(num_ways=3), inner_learning_rate=0.1)
        maml.compile(optimizer="sgd", loss=keras.losses.
                     SparseCategoricalCrossentropy(from_logits=True))
        history = maml.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))


class PlotEpisodeTest(testing.TestCase):
    def test_writes_png(self):
        source, _ = _identity_source([5] * 4, shape=(8, 8, 1))
        batch = next(iter(data.episodes(source, num_ways=3, num_shots=1,
                                        num_queries=2, batch_size=2, seed=0)))
        path = os.path.join(self.get_temp_dir(), "episode.png")
        import matplotlib

        backend = matplotlib.get_backend()
        figure = data.plot_episode(batch, path, task=1,
                                   predictions=np.zeros((2, 6), int))
        self.assertEqual(len(figure.axes), 2 * 6)  # Support row, query row.
        titles = [axis.get_title() for axis in figure.axes]
        self.assertEqual(titles[6:], ["0"] * 6)  # The predictions.
        colors = [axis.title.get_color() for axis in figure.axes[6:]]
        self.assertEqual(colors.count("tab:green"), 2)  # Label 0's queries.
        self.assertEqual(matplotlib.get_backend(), backend)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_rejects_non_images(self):
        batch = next(iter(data.sinusoid(batch_size=2)))
        with self.assertRaisesRegex(ValueError, "draws image episodes"):
            data.plot_episode(batch, "unused.png")


class EpisodesErrorsTest(testing.TestCase):
    def _source(self, counts=(5, 5, 2)):
        return _identity_source(list(counts))[0]

    def test_small_class_is_named(self):
        with self.assertRaisesRegex(ValueError, "class '2' has 2"):
            data.episodes(self._source(), num_ways=2, num_shots=2,
                          num_queries=1, batch_size=1)

    def test_too_few_classes(self):
        with self.assertRaisesRegex(ValueError, "at least 5 classes"):
            data.episodes(self._source((5, 5)), num_ways=5, num_shots=1,
                          num_queries=1, batch_size=1)

    def test_non_integer_labels(self):
        source = tf.data.Dataset.from_tensor_slices(
            (np.zeros((4, 2, 2, 1), "float32"), np.array([0.5, 1, 1, 2])))
        with self.assertRaisesRegex(ValueError, "integer class labels"):
            data.episodes(source, num_ways=2, num_shots=1, num_queries=1,
                          batch_size=1)

    def test_mixed_image_sizes(self):
        directory = self.get_temp_dir()
        for c, size in enumerate((8, 9)):
            folder = os.path.join(directory, f"class{c}")
            os.makedirs(folder)
            tf.io.write_file(os.path.join(folder, "a.png"), tf.io.encode_png(
                np.zeros((size, size, 1), np.uint8)))
        with self.assertRaisesRegex(ValueError, "image_size=\\(height"):
            data.load_class_index(directory)

    def test_empty_folder(self):
        with self.assertRaisesRegex(ValueError, "holds no images"):
            data.load_class_index(self.get_temp_dir())

    @parameterized.named_parameters(
        ("ways", {"num_ways": 0}, "num_ways"),
        ("shots", {"num_shots": -1}, "num_shots"),
        ("episodes", {"num_episodes": 0}, "num_episodes"),
    )
    def test_bad_counts(self, override, message):
        kwargs = dict(num_ways=2, num_shots=1, num_queries=1, batch_size=1)
        kwargs.update(override)
        with self.assertRaisesRegex(ValueError, message):
            data.episodes(self._source(), **kwargs)


class VariableEpisodesTest(testing.TestCase):
    def test_variable_ways_and_shots(self):
        counts = [12] * 10
        source, labels = _identity_source(counts)
        dataset = data.episodes(source, num_ways=(2, 5), num_shots=(1, 4),
                                num_queries=2, batch_size=8, seed=0,
                                num_episodes=80)
        ways_seen, shots_seen = set(), set()
        for inputs, query_labels, query_weights in dataset.as_numpy_iterator():
            self.assertEqual(inputs["support_inputs"].shape[1], 20)
            self.assertEqual(inputs["query_inputs"].shape[1], 10)
            for t in range(len(query_labels)):
                s_w = inputs["support_weights"][t].reshape(5, 4)
                q_w = query_weights[t].reshape(5, 2)
                ways = int(q_w[:, 0].sum())
                ways_seen.add(ways)
                # Real ways come first; their queries all count.
                self.assertTrue(np.all(q_w[:ways] == 1))
                self.assertTrue(np.all(q_w[ways:] == 0))
                self.assertTrue(np.all(s_w[ways:] == 0))
                shots = s_w[:ways].sum(axis=1).astype(int)
                shots_seen.update(shots.tolist())
                self.assertTrue(np.all((shots >= 1) & (shots <= 4)))
                # Real support examples are distinct and disjoint from
                # the real queries.
                s_ids = _ids(inputs["support_inputs"][t]).reshape(5, 4)
                q_ids = _ids(inputs["query_inputs"][t]).reshape(5, 2)
                real = np.concatenate([s_ids[s_w == 1], q_ids[q_w == 1]])
                self.assertEqual(len(set(real)), len(real))
        self.assertEqual(ways_seen, {2, 3, 4, 5})
        self.assertEqual(shots_seen, {1, 2, 3, 4})

    def test_padding_is_ignored_by_maml(self):
        import keras

        from keras_meta import MAML

        source, _ = _identity_source([8] * 6, shape=(6, 6, 1))
        dataset = data.episodes(source, num_ways=(2, 3), num_shots=(1, 2),
                                num_queries=2, batch_size=2, seed=0,
                                num_episodes=4)
        inputs, labels, weights = next(dataset.as_numpy_iterator())
        maml = MAML(testing.tiny_classifier(num_ways=3), inner_learning_rate=0.5)
        maml.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        before = maml.predict(inputs, verbose=0)
        # Changing padded support examples changes nothing but BatchNorm
        # statistics; a model without BatchNorm must predict the same.
        model = keras.Sequential([keras.Input((6, 6, 1)),
                                  keras.layers.Flatten(),
                                  keras.layers.Dense(3)])
        plain = MAML(model, inner_learning_rate=0.5)
        plain.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        reference = plain.predict(inputs, verbose=0)
        changed = dict(inputs)
        pad = inputs["support_weights"] == 0
        support = inputs["support_inputs"].copy()
        support[pad] = 123.0
        changed["support_inputs"] = support
        self.assertTrue(pad.any())
        self.assertAllClose(plain.predict(changed, verbose=0), reference,
                            atol=1e-5, rtol=1e-5)
        self.assertEqual(before.shape, reference.shape)
        result = plain.evaluate(dataset, verbose=0, return_dict=True)
        self.assertTrue(np.isfinite(result["loss"]))

    def test_bad_ranges(self):
        source, _ = _identity_source([5] * 4)
        with self.assertRaisesRegex(ValueError, "low <= high"):
            data.episodes(source, num_ways=(4, 2), num_shots=1,
                          num_queries=1, batch_size=1)
        with self.assertRaisesRegex(ValueError, "positive integer or a"):
            data.episodes(source, num_ways=(1, 2, 3), num_shots=1,
                          num_queries=1, batch_size=1)


class StreamingTest(testing.TestCase):
    def _folder(self):
        directory = self.get_temp_dir()
        rng = np.random.default_rng(1)
        for c in range(4):
            folder = os.path.join(directory, f"class{c}")
            os.makedirs(folder)
            for k in range(5):
                pixels = rng.integers(0, 256, (7, 7, 1), dtype=np.uint8)
                tf.io.write_file(os.path.join(folder, f"{k}.png"),
                                 tf.io.encode_png(pixels))
        return directory

    def test_stream_matches_memory(self):
        directory = self._folder()
        kwargs = dict(num_ways=3, num_shots=2, num_queries=2, batch_size=2,
                      seed=4, num_episodes=6, image_size=(5, 5))
        streamed = data.episodes(directory, cache="stream", **kwargs)
        in_memory = data.episodes(directory, cache="memory", **kwargs)
        index = data.load_class_index(directory, cache="stream")
        self.assertIsNotNone(index.decode)
        self.assertEqual(index.examples.dtype.kind, "U")  # paths, not pixels
        for a, b in zip(streamed.as_numpy_iterator(),
                        in_memory.as_numpy_iterator()):
            self.assertAllClose(a[0]["support_inputs"], b[0]["support_inputs"],
                                atol=1e-6, rtol=1e-6)
            self.assertAllClose(a[1], b[1], atol=0, rtol=0)

    def test_auto_streams_large_folders(self):
        from keras_meta.data import episode_sources

        directory = self._folder()
        _, _, _, decode, _ = episode_sources._load_folder(
            directory, None, None, "auto", memory_limit=100)
        self.assertIsNotNone(decode)
        _, _, _, decode, _ = episode_sources._load_folder(
            directory, None, None)
        self.assertIsNone(decode)

    def test_index_streams_folders_only(self):
        source, _ = _identity_source([5] * 4)
        with self.assertRaisesRegex(ValueError, "streams image folders only"):
            data.load_class_index(source, cache="stream")


class StreamedSourceTest(testing.TestCase):
    def test_streamed_dataset_invariants_and_determinism(self):
        counts = [9] * 8
        source, labels = _identity_source(counts)
        kwargs = dict(num_ways=3, num_shots=2, num_queries=2, batch_size=4,
                      seed=5, num_episodes=12, cache="stream")
        dataset = data.episodes(source, **kwargs)
        first = list(dataset.as_numpy_iterator())
        second = list(dataset.as_numpy_iterator())
        self.assertEqual([len(b[1]) for b in first], [4, 4, 4])
        for a, b in zip(first, second):
            self.assertAllClose(a[0]["query_inputs"], b[0]["query_inputs"],
                                atol=0, rtol=0)
        for inputs, query_labels in first:
            for t in range(len(query_labels)):
                support = _ids(inputs["support_inputs"][t])
                query = _ids(inputs["query_inputs"][t])
                both = np.concatenate([support, query])
                self.assertEqual(len(set(both)), len(both))
                for ids, ys in ((support, inputs["support_labels"][t]),
                                (query, query_labels[t])):
                    for y in range(3):
                        self.assertEqual(len({labels[i - 1]
                                              for i in ids[ys == y]}), 1)

    def test_streamed_tfds_with_variable_ways(self):
        import tensorflow_datasets as tfds

        with tfds.testing.mock_data(num_examples=400):
            dataset = data.episodes("mnist", split="train", num_ways=(2, 4),
                                    num_shots=1, num_queries=2, batch_size=2,
                                    seed=0, num_episodes=4, cache="stream")
            inputs, labels, weights = next(iter(dataset))
        self.assertEqual(tuple(inputs["support_inputs"].shape),
                         (2, 4, 28, 28, 1))
        self.assertEqual(tuple(weights.shape), (2, 8))

    def test_buffer_must_hold_a_class_share(self):
        from keras_meta.data.streaming import stream_episodes

        source, _ = _identity_source([5] * 4)
        with self.assertRaisesRegex(ValueError, "buffer_per_class"):
            stream_episodes(source, ways_range=(2, 2), shots_range=(1, 1),
                            num_queries=2, batch_size=1, buffer_per_class=2)


class FolderGroupsTest(testing.TestCase):
    def _folder(self):
        directory = self.get_temp_dir()
        rng = np.random.default_rng(0)
        for alphabet, characters in (("Alpha", 3), ("Beta", 4)):
            for c in range(characters):
                folder = os.path.join(directory, alphabet, f"char{c}")
                os.makedirs(folder)
                for k in range(3):
                    pixels = np.full((4, 4, 1), 0, np.uint8)
                    # Each image says its alphabet in its first pixel.
                    pixels[0, 0, 0] = 100 if alphabet == "Alpha" else 200
                    pixels[1:, 1:, 0] = rng.integers(0, 99, (3, 3))
                    tf.io.write_file(os.path.join(folder, f"{k}.png"),
                                     tf.io.encode_png(pixels))
        return directory

    def test_nested_folders_give_groups(self):
        index = data.load_class_index(self._folder(), channels=1)
        self.assertEqual(index.groups.tolist(), [0] * 3 + [1] * 4)

    def test_within_groups_with_rotations(self):
        dataset = data.episodes(
            self._folder(), num_ways=5, num_shots=1, num_queries=1,
            batch_size=8, rotations=True, within_groups=True, seed=0,
            num_episodes=32, channels=1)
        alphabets_seen = set()
        for inputs, _ in dataset:
            images = np.concatenate([inputs["support_inputs"].numpy(),
                                     inputs["query_inputs"].numpy()], 1)
            for episode in images:
                # The alphabet marker survives rotation at some corner.
                corners = np.stack([episode[:, 0, 0, 0], episode[:, 0, -1, 0],
                                    episode[:, -1, 0, 0],
                                    episode[:, -1, -1, 0]], 1)
                marks = {round(float(v) * 255) for v in corners.max(1)}
                # One alphabet per episode, rotations included.
                self.assertEqual(len(marks), 1, marks)
                alphabets_seen |= marks
        self.assertEqual(alphabets_seen, {100, 200})


class StorageTest(testing.TestCase):
    def _folder(self, size=7):
        directory = self.get_temp_dir()
        rng = np.random.default_rng(2)
        for c in range(4):
            folder = os.path.join(directory, f"class{c}")
            os.makedirs(folder)
            for k in range(5):
                pixels = rng.integers(0, 256, (size, size, 1), dtype=np.uint8)
                tf.io.write_file(os.path.join(folder, f"{k}.png"),
                                 tf.io.encode_png(pixels))
        return directory

    def _episodes(self, source, **kwargs):
        dataset = data.episodes(source, num_ways=3, num_shots=2,
                                num_queries=2, batch_size=2, seed=4,
                                num_episodes=4, rotations=True, **kwargs)
        return list(dataset.as_numpy_iterator())

    def _assert_same(self, a, b, atol=0.0):
        for (inputs_a, labels_a), (inputs_b, labels_b) in zip(a, b):
            for key in ("support_inputs", "query_inputs"):
                self.assertEqual(inputs_a[key].dtype, np.float32)
                self.assertAllClose(inputs_a[key], inputs_b[key], atol=atol,
                                    rtol=0)
            np.testing.assert_array_equal(labels_a, labels_b)

    @pytest.mark.tensorflow_only
    def test_episodes_under_a_distribution_strategy(self):
        # Outside a strategy's scope the pipeline reads a large index from
        # a variable, inside from a constant; the episodes are the same,
        # and a meta-learner trains on either across two replicas.
        import sys
        from unittest import mock

        import keras

        import keras_meta

        index = data.load_class_index(self._folder())
        strategy = tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice())

        def make():
            return data.episodes_from_index(
                index, num_ways=2, num_shots=1, num_queries=1, batch_size=2,
                seed=3, num_episodes=4)

        module = sys.modules["keras_meta.data.episode_sources"]
        with mock.patch.object(module, "VARIABLE_CAPTURE_BYTES", 0):
            outside = make()
            self.assertIsInstance(
                module._captured_array(index.examples), tf.Variable)
        with strategy.scope():
            inside = make()
            net = keras_meta.ProtoNet(keras.Sequential(
                [keras.Input((7, 7, 1)), keras.layers.Flatten(),
                 keras.layers.Dense(4)]), num_ways=2)
            net.compile(optimizer="sgd", loss=keras.losses.
                        SparseCategoricalCrossentropy(from_logits=True))
        self._assert_same(list(outside.as_numpy_iterator()),
                          list(inside.as_numpy_iterator()))
        for dataset in (outside, inside):
            history = net.fit(dataset, epochs=1, verbose=0)
            self.assertTrue(np.isfinite(history.history["loss"][0]))

    def test_unresized_pixels_are_kept_as_uint8(self):
        directory = self._folder()
        for size in (None, (7, 7)):
            index = data.load_class_index(directory, image_size=size)
            self.assertEqual(index.examples.dtype, np.uint8)
        full = data.load_class_index(directory, storage="float32")
        self.assertEqual(full.examples.dtype, np.float32)
        self.assertEqual(full.examples.nbytes, 4 * index.examples.nbytes)
        # The episodes are the float32 ones, value for value.
        self._assert_same(self._episodes(directory),
                          self._episodes(directory, storage="float32"))

    def test_resized_images(self):
        directory = self._folder()
        index = data.load_class_index(directory, image_size=(5, 5))
        self.assertEqual(index.examples.dtype, np.float32)
        rounded = data.load_class_index(directory, image_size=(5, 5),
                                        storage="uint8")
        self.assertEqual(rounded.examples.dtype, np.uint8)
        self.assertAllClose(rounded.examples / 255.0, index.examples,
                            atol=0.5 / 255 + 1e-7, rtol=0)
        exact = self._episodes(directory, image_size=(5, 5))
        self._assert_same(
            self._episodes(directory, image_size=(5, 5), storage="uint8"),
            exact, atol=0.5 / 255 + 1e-7)

    def test_uint8_dataset_source(self):
        rng = np.random.default_rng(3)
        pixels = rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8)
        labels = np.repeat(np.arange(4), 5)
        source = tf.data.Dataset.from_tensor_slices((pixels, labels))
        index = data.load_class_index(source)
        self.assertEqual(index.examples.dtype, np.uint8)
        self._assert_same(self._episodes(source),
                          self._episodes(source, storage="float32"))

    def test_bad_storage(self):
        with self.assertRaisesRegex(ValueError, "storage"):
            data.load_class_index(self._folder(), storage="float16")
