"""Benchmarks on mocked TFDS data whose pixels encode each example's class."""

import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_meta import testing
from keras_meta.data import benchmarks
from keras_meta.data import splits
from keras_meta.data import tfds_source

pytestmark = pytest.mark.tensorflow_only


def _image(code, shape):
    """An image whose first two channels spell `code` in base 256."""
    image = np.zeros(shape, np.uint8)
    image[..., 0] = code // 256
    image[..., 1] = code % 256
    if shape[-1] == 3:
        image[..., 2] = 0
    return image


def _code(images):
    """Decodes per-example class codes from float images [n, h, w, c]."""
    images = np.asarray(images)
    flat = np.round(images.reshape(images.shape[0], -1, images.shape[-1])[:, 0]
                    * 255).astype(int)
    return flat[:, 0] * 256 + flat[:, 1]


def _mock(examples_by_split):
    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        examples = examples_by_split[str(split)]
        return tf.data.Dataset.from_tensor_slices(
            {k: np.stack(v) for k, v in examples.items()})

    return tfds.testing.mock_data(as_dataset_fn=as_dataset)


def _classes(dataset, num_batches=None):
    seen = set()
    batches = dataset if num_batches is None else dataset.take(num_batches)
    for inputs, labels in batches.as_numpy_iterator():
        for task in range(len(labels)):
            codes = _code(inputs["support_inputs"][task])
            for label in np.unique(inputs["support_labels"][task]):
                group = codes[inputs["support_labels"][task] == label]
                assert len(set(group)) == 1  # one class per episode label
            seen.update(codes.tolist())
            seen.update(_code(inputs["query_inputs"][task]).tolist())
    return seen


def _labelled_examples(labels, per_class, shape, extra=None):
    examples = {"image": [], "label": []}
    for key in extra or {}:
        examples[key] = []
    for label in labels:
        for _ in range(per_class):
            examples["image"].append(_image(label, shape))
            examples["label"].append(np.int64(label))
            for key, fn in (extra or {}).items():
                examples[key].append(np.int64(fn(label)))
    return examples


class BenchmarksTest(testing.TestCase):
    def _check(self, sets, expected):
        seen = {}
        for name, dataset in zip(benchmarks.SPLITS, sets):
            if expected[name] is None:
                self.assertIsNone(dataset)
                continue
            seen[name] = _classes(dataset, num_batches=20)
            self.assertTrue(seen[name] <= expected[name],
                            (name, seen[name] - expected[name]))
        names = list(seen)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                self.assertFalse(seen[a] & seen[b], (a, b))
        return seen

    def test_cifar_fs(self):
        data = _labelled_examples(range(100), 3, (32, 32, 3),
                                  {"coarse_label": lambda l: l // 5})
        with _mock({"train": data, "test": data}):
            sets = benchmarks.cifar_fs(num_ways=5, num_shots=1,
                                       num_queries=2, batch_size=4,
                                       num_validation_episodes=40,
                                       num_test_episodes=40)
        index = {n: i for i, n in enumerate(splits.CIFAR100_CLASSES)}
        val = {index[n] for n in splits.CIFAR_FS_VALIDATION}
        test = {index[n] for n in splits.CIFAR_FS_TEST}
        seen = self._check(sets, {"train": set(range(100)) - val - test,
                                  "validation": val, "test": test})
        self.assertEqual(seen["test"], test)  # 40 episodes reach all 20
        self.assertEqual(len(list(sets[2])), 10)  # 600 -> 40 fixed episodes

    def test_fc100(self):
        coarse = lambda label: (label * 7) % 20  # noqa: E731
        data = _labelled_examples(range(100), 3, (32, 32, 3),
                                  {"coarse_label": coarse})
        with _mock({"train": data, "test": data}):
            sets = benchmarks.fc100(num_ways=5, num_shots=1, num_queries=2,
                                    batch_size=4, num_validation_episodes=8,
                                    num_test_episodes=8)
        expected = {
            split: {l for l in range(100) if coarse(l) in superclasses}
            for split, superclasses in splits.FC100_SUPERCLASSES.items()
        }
        self.assertEqual([len(expected[s]) for s in benchmarks.SPLITS],
                         [60, 20, 20])
        self._check(sets, expected)

    def test_cub(self):
        data = _labelled_examples(range(200), 2, (12, 10, 3))
        with _mock({"train": data, "test": data}):
            sets = benchmarks.cub(num_ways=5, num_shots=2, num_queries=2,
                                  batch_size=2, image_size=(8, 8),
                                  num_validation_episodes=4,
                                  num_test_episodes=4)
        inputs, _ = next(iter(sets[0]))
        self.assertEqual(tuple(inputs["support_inputs"].shape), (2, 10, 8, 8, 3))
        self._check(sets, {
            "train": set(range(0, 200, 2)),
            "validation": set(range(1, 200, 4)),
            "test": set(range(3, 200, 4)),
        })

    def test_vgg_flower(self):
        data = _labelled_examples(range(102), 2, (9, 9, 3))
        with _mock({"train": data, "validation": data, "test": data}):
            sets = benchmarks.vgg_flower(num_ways=5, num_shots=1,
                                         num_queries=1, batch_size=2,
                                         image_size=(8, 8),
                                         num_validation_episodes=4,
                                         num_test_episodes=4)
        val = {c - 1 for c in splits.VGG_FLOWER_VALIDATION}
        test = {c - 1 for c in splits.VGG_FLOWER_TEST}
        self._check(sets, {"train": set(range(102)) - val - test,
                           "validation": val, "test": test})

    def test_mini_imagenet(self):
        wnids = list(tfds.builder("imagenet2012").info.features["label"].names)
        mini = {s: {wnids.index(w) for w in v}
                for s, v in splits.MINI_IMAGENET.items()}
        everything = sorted(set().union(*mini.values()) | {0, 1, 999})
        data = _labelled_examples(everything, 4, (10, 10, 3))
        with _mock({"train": data}):
            sets = benchmarks.mini_imagenet(num_ways=5, num_shots=1,
                                            num_queries=2, batch_size=2,
                                            image_size=(6, 6),
                                            examples_per_class=3,
                                            num_validation_episodes=4,
                                            num_test_episodes=4)
            _, labels, _, _, _ = tfds_source.load_tfds(
                "imagenet2012", splits=["train"], keep_labels=mini["test"],
                max_per_class=3, image_size=(6, 6))
        self._check(sets, mini)
        self.assertEqual(sorted(np.unique(labels, return_counts=True)[1]),
                         [3] * 20)

    def _omniglot_data(self):
        """Characters whose gray level (R = G = B) is a small unique code."""
        alphabets = sorted(splits.OMNIGLOT_BACKGROUND
                           + splits.OMNIGLOT_EVALUATION)
        chosen = {"train": ["Latin", "Greek", "Armenian", "Hebrew"],
                  "test": ["Angelic", "Gurmukhi", "Tengwar", "ULOG"]}
        data, codes = {}, {}
        for split, names in chosen.items():
            examples = {k: [] for k in
                        ("image", "label", "alphabet", "alphabet_char_id")}
            for name in names:
                a = alphabets.index(name)
                chars = range(39, 45) if name == "Gurmukhi" else range(6)
                for c in chars:
                    code = len(codes) + 1
                    codes[code] = (name, c + 1)
                    for _ in range(3):
                        examples["image"].append(
                            np.full((12, 12, 3), code, np.uint8))
                        examples["label"].append(np.int64(a * 100 + c))
                        examples["alphabet"].append(np.int64(a))
                        examples["alphabet_char_id"].append(np.int64(c))
            data[split] = examples
        return data, codes

    @staticmethod
    def _gray_codes(images):
        images = np.asarray(images)
        return set(np.round(images.reshape(len(images), -1)[:, 0] * 255)
                   .astype(int).tolist())

    def test_omniglot_vinyals(self):
        data, codes = self._omniglot_data()
        with _mock(data):
            sets = benchmarks.omniglot(num_ways=3, num_queries=1,
                                       batch_size=2, image_size=(6, 6),
                                       num_validation_episodes=20,
                                       num_test_episodes=100)
        expected = {s: set() for s in benchmarks.SPLITS}
        for code, (alphabet, char) in codes.items():
            expected[splits.omniglot_vinyals_split(alphabet, char)].add(code)
        # Gurmukhi 42-45 are test characters, 40-41 training ones.
        self.assertEqual(len(expected["test"]), 6 + 6 + 4)
        self.assertEqual(len(expected["validation"]), 12)
        seen = {}
        for split, dataset in zip(benchmarks.SPLITS, sets):
            seen[split] = set()
            for inputs, _ in dataset.take(50).as_numpy_iterator():
                self.assertEqual(inputs["support_inputs"].shape[1:],
                                 (3, 6, 6, 1))
                for task in inputs["query_inputs"]:
                    seen[split] |= self._gray_codes(task)
            self.assertTrue(seen[split] <= expected[split], split)
        self.assertEqual(seen["test"], expected["test"])
        self.assertFalse(seen["train"] & seen["test"])

    def test_omniglot_lake_within_alphabet(self):
        data, codes = self._omniglot_data()
        data["small1"] = data["train"]
        with _mock(data):
            train, validation, test = benchmarks.omniglot(
                protocol="lake", background="small1", num_ways=5,
                batch_size=2, image_size=(6, 6), num_test_episodes=10)
        self.assertIsNone(validation)
        for dataset, allowed in ((test, ("Angelic", "Gurmukhi", "Tengwar",
                                         "ULOG")),
                                 (train.take(5), ("Latin", "Greek",
                                                  "Armenian", "Hebrew"))):
            for inputs, _ in dataset.as_numpy_iterator():
                for task in inputs["support_inputs"]:
                    episode_codes = self._gray_codes(task)
                    self.assertEqual(len(episode_codes), 5)
                    alphabets = {codes[c][0] for c in episode_codes}
                    self.assertEqual(len(alphabets), 1)
                    self.assertIn(alphabets.pop(), allowed)

    def test_unknown_names(self):
        with self.assertRaisesRegex(ValueError, "Unknown benchmark 'imagenet'"):
            benchmarks.get("imagenet")
        with self.assertRaisesRegex(ValueError, "Unknown protocol"):
            benchmarks.omniglot(protocol="snell")
        with self.assertRaisesRegex(ValueError, "Unknown background"):
            benchmarks.omniglot(protocol="lake", background="small3")


class PrepareTest(testing.TestCase):
    def test_failed_download_leaves_nothing_and_says_how(self):
        data_dir = self.get_temp_dir()
        builder = tfds.builder("mnist", data_dir=data_dir)
        with mock.patch.object(
            type(builder), "download_and_prepare",
            side_effect=ConnectionError("no network"),
        ):
            with self.assertRaisesRegex(ValueError,
                                        "could not prepare 'mnist'.*tfds build"):
                tfds_source.prepare(builder)
        self.assertFalse(os.path.exists(builder.data_dir))

    def test_no_download(self):
        builder = tfds.builder("mnist", data_dir=self.get_temp_dir())
        with self.assertRaisesRegex(ValueError, "not prepared.*download=False"):
            tfds_source.prepare(builder, download=False)


class PreparedDatasetTest(testing.TestCase):
    """A real (generated, offline) TFDS dataset, prepared on disk."""

    def _builder(self):
        builder = tfds.testing.DummyMnist(data_dir=self.get_temp_dir())
        builder.download_and_prepare()
        return builder

    def test_unknown_split(self):
        builder = self._builder()
        with self.assertRaisesRegex(ValueError, "Unknown split 'valid'.*"
                                    "'test', 'train'"):
            tfds_source.load_tfds(builder, splits=["valid"])

    def test_episodes_from_builder(self):
        from keras_meta import data

        builder = self._builder()
        dataset = data.episodes(builder, split="train", num_ways=2,
                                num_shots=1, num_queries=1, batch_size=2,
                                seed=0, num_episodes=2)
        inputs, labels = next(iter(dataset))
        self.assertEqual(tuple(inputs["support_inputs"].shape),
                         (2, 2, 28, 28, 1))
