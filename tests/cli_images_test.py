"""`keras-meta train --data-dir my_images/` and `keras-meta predict`."""

import contextlib
import csv
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_meta import cli
from keras_meta import testing
from keras_meta.cli import checks
from keras_meta.cli import parser as cli_parser


def _resolved(argv):
    parser, train_parser, *_ = cli_parser.build_parser()
    args = parser.parse_args(argv)
    checks.resolve_train_arguments(train_parser, args)
    return args


def _error(argv):
    """The message a command line exits with."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        with pytest.raises(SystemExit):
            cli.main(argv)
    return stderr.getvalue()


class ImageTaskArgumentsTest(testing.TestCase):
    def test_a_folder_of_class_folders_means_images(self):
        directory = testing.make_image_folder(
            os.path.join(self.get_temp_dir(), "mine"), num_classes=2,
            images_per_class=1)
        args = _resolved(["train", "--data-dir", directory])
        self.assertEqual((args.dataset, args.algorithm), ("images",
                                                          "protonet"))
        self.assertEqual(args.output_dir, os.path.join("keras_meta_runs",
                                                       "images"))
        self.assertEqual(args.meta_steps, 1000)
        omniglot = os.path.join(self.get_temp_dir(), "omniglot")
        os.makedirs(os.path.join(omniglot, "images_background_small1"))
        self.assertEqual(checks.folder_kind(omniglot), "omniglot")
        movielens = os.path.join(self.get_temp_dir(), "ml")
        os.makedirs(movielens)
        open(os.path.join(movielens, "ratings.dat"), "w").close()
        self.assertEqual(checks.folder_kind(movielens), "movielens")
        self.assertIsNone(checks.folder_kind("/nonexistent"))

    def test_bad_arguments(self):
        self.assertIn("needs --data-dir",
                      _error(["train", "--task", "images"]))
        self.assertIn("a neural process for regression", _error(
            ["train", "--task", "images", "--algorithm", "cnp",
             "--data-dir", self.get_temp_dir()]))
        self.assertIn("no such folder", _error(
            ["train", "--task", "images", "--data-dir", "/nonexistent"]))

    def test_bad_folders_say_what_was_found(self):
        empty = os.path.join(self.get_temp_dir(), "empty")
        os.makedirs(os.path.join(empty, "nothing"))
        self.assertIn("holds no images", _error(
            ["train", "--task", "images", "--data-dir", empty]))
        single = testing.make_image_folder(
            os.path.join(self.get_temp_dir(), "single"), num_classes=1,
            images_per_class=3)
        self.assertIn("needs at least 5 classes (2 to train on, 1 to "
                      "validate, 2 to test); the source has 1", _error(
                          ["train", "--data-dir", single]))
        few = testing.make_image_folder(
            os.path.join(self.get_temp_dir(), "few"), num_classes=6,
            images_per_class=3)
        for name in os.listdir(os.path.join(few, "class004"))[1:]:
            os.remove(os.path.join(few, "class004", name))
        message = _error(["train", "--data-dir", few, "--output-dir",
                          os.path.join(self.get_temp_dir(), "out")])
        self.assertIn("'class004' has 1", message)
        self.assertIn("or pass --skip-bad-files to leave them out", message)


class ImageFolderEndToEndTest(testing.TestCase):
    @pytest.mark.slow  # an end-to-end run of the command
    def test_train_then_predict(self):
        root = self.get_temp_dir()
        images = testing.make_image_folder(
            os.path.join(root, "images"), num_classes=12,
            images_per_class=7, sizes=(20, 44))
        run = os.path.join(root, "run")
        code = cli.main([
            "train", "--data-dir", images, "--output-dir", run,
            "--meta-steps", "20", "--steps-per-execution", "2",
            "--num-test-tasks", "8", "--image-size", "16", "--filters",
            "8", "--augment", "--verbose", "0"])
        self.assertEqual(code, 0)
        with open(os.path.join(run, "results.json")) as f:
            results = json.load(f)
        with open(os.path.join(run, "splits.json")) as f:
            splits = json.load(f)
        self.assertEqual(set(results["test"]), {"2-way 1-shot",
                                                "2-way 5-shot"})
        for row in results["test"].values():
            self.assertTrue(0.0 <= row["accuracy"] <= 1.0)
            self.assertGreaterEqual(row["accuracy_ci95"], 0.0)
            self.assertLess(row["accuracy_ci95"], 0.5)
            self.assertEqual(row["episodes"], 8)
        self.assertEqual(results["config"]["classes"],
                         {"train": 8, "validation": 2, "test": 2})
        self.assertEqual(results["config"]["channels"], 3)
        self.assertIn(results["best_epoch"], range(1, 11))
        for picture in ("training_curve.png", "test_episode.png"):
            with open(os.path.join(run, picture), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertFalse(os.path.exists(os.path.join(run,
                                                     "best.weights.h5")))

        # New classes from one example each; the queries are the other
        # images of those classes, named on the command line and by folder.
        support = os.path.join(root, "support")
        for name in splits["test"]:
            os.makedirs(os.path.join(support, name))
            first = sorted(os.listdir(os.path.join(images, name)))[0]
            shutil.copy(os.path.join(images, name, first),
                        os.path.join(support, name))
        output = os.path.join(root, "predictions.csv")
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = cli.main([
                "predict", os.path.join(run, "model.keras"), "--support",
                support, os.path.join(images, splits["test"][0]),
                os.path.join(images, splits["test"][1], "003.bmp"),
                "--output", output])
        self.assertEqual(code, 0)
        with open(output) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 7 + 1)
        self.assertTrue(set(r["class"] for r in rows) <= set(splits["test"]))
        probabilities = np.array([float(r["probability"]) for r in rows])
        self.assertTrue(np.all((probabilities >= 0.5 - 1e-6)
                               & (probabilities <= 1.0)))  # 2 classes
        self.assertIn("2 classes from", stdout.getvalue())

    def test_predict_needs_image_preprocessing(self):
        import keras

        from keras_meta import ProtoNet
        from keras_meta import models

        learner = ProtoNet(models.conv4(num_outputs=None,
                                        input_shape=(8, 8, 1), filters=4,
                                        num_blocks=1), num_ways=2)
        learner.compile(optimizer="sgd",
                        loss=keras.losses.SparseCategoricalCrossentropy())
        path = os.path.join(self.get_temp_dir(), "plain.keras")
        learner.save(path)
        image = os.path.join(self.get_temp_dir(), "a.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
        self.assertIn("carries no image preprocessing", _error(
            ["predict", path, "--support", self.get_temp_dir(), image]))
