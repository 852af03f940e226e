"""Folders of mixed image files, class splits, short classes, augment."""

import json
import os
import warnings

import numpy as np
from PIL import Image

from keras_meta import data
from keras_meta import testing
from keras_meta.data import class_splits
from keras_meta.data import image_files


def _write(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array, mode).save(path)


class MixedFolderTest(testing.TestCase):
    def _folder(self, **kwargs):
        return testing.make_image_folder(
            os.path.join(self.get_temp_dir(), "images"), **kwargs)

    def test_every_format_and_mode_loads(self):
        directory = self._folder(num_classes=8, images_per_class=8)
        index = data.load_class_index(directory, image_size=(12, 12))
        self.assertEqual(index.examples.shape, (64, 12, 12, 3))
        self.assertEqual(index.num_classes, 8)
        self.assertGreaterEqual(index.examples.min(), 0.0)
        self.assertLessEqual(index.examples.max(), 1.0)
        for words in ("RGBA", "palette", "16-bit grayscale",
                      "grayscale+alpha", "3-channel RGB",
                      "transparency composited over white"):
            self.assertIn(words, index.description)
        gray = data.load_class_index(directory, image_size=(12, 12),
                                     channels=1)
        self.assertEqual(gray.examples.shape, (64, 12, 12, 1))

    def test_pixel_values_by_mode(self):
        # The same grey level stored in five modes reads back the same;
        # transparent pixels read as white.
        directory = self.get_temp_dir()
        level = np.full((4, 4), 100, np.uint8)
        _write(os.path.join(directory, "a", "l.png"), level, "L")
        _write(os.path.join(directory, "a", "rgb.bmp"),
               np.stack([level] * 3, -1), "RGB")
        _write(os.path.join(directory, "a", "p.gif"),
               np.stack([level] * 3, -1), "RGB")
        Image.fromarray((level.astype(np.uint16) * 257)).save(
            os.path.join(directory, "a", "i16.png"))
        clear = np.zeros((4, 4, 4), np.uint8)
        _write(os.path.join(directory, "a", "clear.png"), clear, "RGBA")
        paths, _, _ = image_files.scan(directory)
        channels, _, modes = image_files.inspect_files(paths)
        self.assertEqual(modes, {"L": 1, "RGB": 1, "P": 1, "I;16": 1,
                                 "RGBA": 1})
        # Grey pixels in colour modes count as grey.
        self.assertEqual(channels, 1)
        red = np.zeros((4, 4, 3), np.uint8)
        red[..., 0] = 200
        _write(os.path.join(directory, "b", "red.jpg"), red, "RGB")
        self.assertEqual(image_files.inspect_files(
            image_files.scan(directory)[0])[0], 3)
        images, readable = image_files.read_images(paths, channels=1)
        self.assertTrue(readable.all())
        values = {os.path.basename(p): float(np.asarray(
            image, np.float32).mean()) / (255.0 if image.dtype == np.uint8
                                          else 1.0)
                  for p, image in zip(paths, images)}
        self.assertAllClose(values["clear.png"], 1.0)
        for name in ("l.png", "rgb.bmp", "p.gif", "i16.png"):
            self.assertAllClose(values[name], 100 / 255, atol=2e-3)

    def test_unreadable_files_are_named_or_skipped(self):
        directory = self._folder(num_classes=3, images_per_class=4)
        bad = os.path.join(directory, "class001", "broken.png")
        with open(bad, "w") as f:
            f.write("not an image")
        with self.assertRaisesRegex(ValueError, "broken.png.*on_error='skip'"):
            data.load_class_index(directory, image_size=(8, 8))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            index = data.load_class_index(directory, image_size=(8, 8),
                                          on_error="skip")
        self.assertEqual(len(index.examples), 12)
        self.assertIn("skipped 1 unreadable", index.description)
        self.assertTrue(any("broken.png" in str(w.message) for w in caught))

    def test_sizes_need_image_size(self):
        directory = self._folder(num_classes=2, images_per_class=3)
        with self.assertRaisesRegex(ValueError, "image_size=\\(height"):
            data.load_class_index(directory)

    def test_images_outside_class_folders(self):
        directory = self.get_temp_dir()
        _write(os.path.join(directory, "loose.png"),
               np.zeros((4, 4), np.uint8), "L")
        with self.assertRaisesRegex(ValueError, "not in class sub-folders"):
            data.load_class_index(directory)

    def test_bad_channels(self):
        with self.assertRaisesRegex(ValueError, "'auto', 1 or 3"):
            data.load_class_index(self._folder(num_classes=2,
                                               images_per_class=2),
                                  image_size=(8, 8), channels=4)

    def test_short_classes_are_listed_or_skipped(self):
        directory = self._folder(num_classes=4, images_per_class=5)
        for name in sorted(os.listdir(os.path.join(directory,
                                                   "class002")))[2:]:
            os.remove(os.path.join(directory, "class002", name))
        kwargs = dict(num_ways=2, num_shots=1, num_queries=3, batch_size=2,
                      image_size=(8, 8), seed=0)
        with self.assertRaisesRegex(
                ValueError, "1 of 4 classes have fewer: class 'class002' "
                            "has 2"):
            data.episodes(directory, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = data.episodes(directory, on_error="skip", **kwargs)
        self.assertTrue(any("left out" in str(w.message) for w in caught))
        inputs, _ = next(iter(dataset))
        self.assertEqual(inputs["support_inputs"].shape, (2, 2, 8, 8, 3))

    def test_augment_applies_to_every_image(self):
        directory = self._folder(num_classes=3, images_per_class=4)
        kwargs = dict(num_ways=2, num_shots=1, num_queries=2, batch_size=2,
                      image_size=(8, 8), seed=0, num_episodes=2)
        plain = next(iter(data.episodes(directory, **kwargs)))
        inverted = next(iter(data.episodes(
            directory, augment=lambda images: 1.0 - images, **kwargs)))
        for key in ("support_inputs", "query_inputs"):
            self.assertAllClose(inverted[0][key], 1.0 - plain[0][key])
        self.assertAllClose(inverted[1], plain[1])

    def test_augment_with_keras_layers(self):
        import keras

        directory = self._folder(num_classes=3, images_per_class=4)
        dataset = data.episodes(
            directory, num_ways=2, num_shots=1, num_queries=2,
            batch_size=2, image_size=(8, 8), seed=0,
            augment=[keras.layers.RandomFlip("horizontal"),
                     keras.layers.RandomTranslation(0.1, 0.1)])
        inputs, labels = next(iter(dataset))
        self.assertEqual(inputs["query_inputs"].shape, (2, 4, 8, 8, 3))
        with self.assertRaisesRegex(ValueError, "`augment` must be"):
            data.episodes(directory, num_ways=2, num_shots=1, num_queries=2,
                          batch_size=2, image_size=(8, 8), augment=3)

    def test_support_and_images_for_prediction(self):
        directory = self._folder(num_classes=3, images_per_class=2)
        preprocessing = {"kind": "image", "image_size": [10, 10],
                         "channels": 1}
        support, labels, names = data.load_support(
            directory, preprocessing=preprocessing)
        self.assertEqual(support.shape, (6, 10, 10, 1))
        self.assertEqual(support.dtype, np.float32)
        self.assertEqual(labels.tolist(), [0, 0, 1, 1, 2, 2])
        self.assertEqual(names, ["class000", "class001", "class002"])
        images, files = data.load_images(
            [os.path.join(directory, "class001")], image_size=(10, 10),
            channels=3)
        self.assertEqual(images.shape, (2, 10, 10, 3))
        self.assertEqual(len(files), 2)
        with self.assertRaisesRegex(ValueError, "image_size="):
            data.load_images([directory])
        one = os.path.join(self.get_temp_dir(), "one")
        _write(os.path.join(one, "only", "a.png"), np.zeros((4, 4),
                                                            np.uint8), "L")
        with self.assertRaisesRegex(ValueError, "at least 2 classes"):
            data.load_support(one, preprocessing=preprocessing)


class ClassSplitTest(testing.TestCase):
    def test_seeded_disjoint_and_written(self):
        names = [f"c{i:02d}" for i in range(20)]
        path = os.path.join(self.get_temp_dir(), "run", "splits.json")
        splits = data.split_classes(names, path=path, seed=3)
        self.assertEqual([len(splits[s]) for s in class_splits.SPLITS],
                         [13, 3, 4])
        every = sum((splits[s] for s in class_splits.SPLITS), [])
        self.assertCountEqual(every, names)
        self.assertEqual(splits, data.split_classes(names, seed=3))
        self.assertNotEqual(splits["test"],
                            data.split_classes(names, seed=4)["test"])
        # Read back, not drawn again, whatever the seed.
        self.assertEqual(data.split_classes(names, path=path, seed=9),
                         splits)
        with open(path) as f:
            self.assertEqual(json.load(f)["by"], "class")

    def test_groups_stay_together(self):
        names = [f"alphabet{g}/char{c}" for g in range(6) for c in range(3)]
        splits = data.split_classes(names, seed=0)
        self.assertEqual(splits["by"], "group")
        for split in class_splits.SPLITS:
            others = set(class_splits.SPLITS) - {split}
            groups = {name.split("/")[0] for name in splits[split]}
            for other in others:
                self.assertFalse(groups & {n.split("/")[0]
                                           for n in splits[other]})

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "at least 5 classes.*has 4"):
            data.split_classes(["a", "b", "c", "d"])
        with self.assertRaisesRegex(ValueError, "summing to 1"):
            data.split_classes(list("abcdef"), fractions=(0.5, 0.5, 0.5))
        path = os.path.join(self.get_temp_dir(), "splits.json")
        with open(path, "w") as f:
            json.dump({"train": ["a"], "validation": ["a"], "test": []}, f)
        with self.assertRaisesRegex(ValueError, "class 'a' in both"):
            data.split_classes(list("abcdef"), path=path)
        with open(path, "w") as f:
            json.dump({"train": ["zz"], "validation": [], "test": []}, f)
        with self.assertRaisesRegex(ValueError, "classes the source lacks"):
            data.split_classes(list("abcdef"), path=path)
