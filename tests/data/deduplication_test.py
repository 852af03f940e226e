import os

import numpy as np
import pytest
import tensorflow as tf

from keras_meta import data
from keras_meta import testing
from keras_meta.experiments import omniglot

pytestmark = pytest.mark.tensorflow_only


def _write_subset(directory, alphabets, seed):
    """Alphabet folders of random 8x8 PNG characters; an alphabet's images
    depend only on its name and `seed`, so two subsets share the
    alphabets they name alike."""
    for alphabet, characters in alphabets:
        rng = np.random.default_rng(
            [seed, sum(map(ord, alphabet))])
        for c in range(characters):
            folder = os.path.join(directory, alphabet, f"character{c:02d}")
            os.makedirs(folder)
            for k in range(3):
                pixels = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
                tf.io.write_file(os.path.join(folder, f"{k}.png"),
                                 tf.io.encode_png(pixels))


class RemoveSharedClassesTest(testing.TestCase):
    def _subsets(self):
        root = self.get_temp_dir()
        train = os.path.join(root, "train")
        test = os.path.join(root, "test")
        _write_subset(train, [("Greek", 3), ("Braille", 2)], seed=0)
        _write_subset(test, [("Greek", 3), ("Tagalog", 4)], seed=0)
        return (data.load_class_index(train, channels=1),
                data.load_class_index(test, channels=1))

    def test_shared_classes_are_removed(self):
        train, test = self._subsets()
        filtered, removed = data.remove_shared_classes(test, train)
        self.assertEqual(len(removed), 3)
        self.assertTrue(all(name.startswith("Greek") for name in removed))
        self.assertEqual(filtered.num_classes, 4)
        self.assertEqual(filtered.examples.shape, (12, 8, 8, 1))
        # No test image is a training image.
        train_images = {e.tobytes() for e in train.examples}
        self.assertFalse(any(e.tobytes() in train_images
                             for e in filtered.examples))
        # Without the filter the check above fails: it can fail.
        self.assertTrue(any(e.tobytes() in train_images
                            for e in test.examples))

    def test_fingerprints_ignore_example_order(self):
        train, _ = self._subsets()
        order = np.arange(len(train.examples))[::-1]
        reversed_index = data.ClassIndex(
            train.examples[order],
            np.repeat(np.arange(train.num_classes), train.counts)[order],
            class_names=train.class_names)
        self.assertEqual(data.class_fingerprints(reversed_index),
                         data.class_fingerprints(train))

    @pytest.mark.slow  # builds the whole Omniglot benchmark
    def test_omniglot_benchmark_never_tests_on_training_images(self):
        # The real subsets share the Greek and Latin alphabets byte for
        # byte; the benchmark's test classes must exclude them.
        root = os.path.join(os.path.dirname(__file__), "..", "..", "..",
                            "shared", "data", "omniglot")
        if not os.path.isdir(root):
            self.skipTest("the Omniglot background subsets are not here")
        small1, small2 = omniglot.find_subsets(root)
        train = data.load_class_index(small1, image_size=(14, 14),
                                      channels=1)
        test = data.load_class_index(small2, image_size=(14, 14),
                                     channels=1)
        filtered, removed = data.remove_shared_classes(test, train)
        self.assertEqual((test.num_classes, filtered.num_classes),
                         (156, 106))
        self.assertEqual(
            sorted({n.split(os.sep)[0] for n in filtered.class_names}),
            ["Japanese_(katakana)", "Sanskrit", "Tagalog"])
        train_images = {e.tobytes() for e in train.examples}
        self.assertFalse(any(e.tobytes() in train_images
                             for e in filtered.examples))
