"""Every example runs, in a tiny mode, on generated data."""

import os
import subprocess
import sys

import keras
import pytest

from keras_meta import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def _omniglot_like(folder):
    """Two extracted 'background subsets' of nested class folders."""
    for i, name in enumerate(("images_background_small1",
                              "images_background_small2")):
        testing.make_image_folder(
            os.path.join(folder, name), num_classes=12, images_per_class=20,
            groups=3, sizes=(20, 28), seed=i)
    return folder


def _movielens_like(folder):
    from tests.recommendation import movielens_test

    users, items, rows = movielens_test._generate(num_users=200,
                                                  num_items=200)
    # Users who rated every new movie (released in 1998), so that MeLU's
    # new-item states have users.
    rated = {(u, i) for u, i, _, _ in rows}
    for u in range(1, 61):
        rows += [(u, i, 1 + (u + i) % 5, 890000000 + i)
                 for i, (year, _) in items.items()
                 if year == 1998 and (u, i) not in rated]
    movielens_test._write_100k(folder, (users, items, rows))
    return folder


# (example, arguments, what its output must contain); `{tmp}` is the
# test's folder.
CASES = (
    ("sinusoid_maml.py", ["--steps", "30", "--plot", "{tmp}/s.png"],
     "wrote"),
    ("neural_process_sinusoid.py", ["--steps", "30", "--plot",
                                    "{tmp}/np.png"], "wrote"),
    ("meta_rl_navigation.py", ["--iterations", "6", "--plot",
                               "{tmp}/nav.png"], "after 3 steps"),
    ("own_images.py", ["--tiny", "--output-dir", "{tmp}/own"], "test, 1-shot"),
    ("leo_embeddings.py", ["--data-dir", "{omniglot}", "--backbone-epochs",
                           "1", "--meta-steps", "20", "--output",
                           "{tmp}/leo.keras"], "accuracy"),
    ("cold_start_recommendation.py", ["--data-dir", "{movielens}",
                                      "--epochs", "1"], "MAE"),
)


class ExamplesTest(testing.TestCase):
    @pytest.mark.slow  # each example runs in a process of its own
    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="examples run on the default backend")
    def test_every_example_runs(self):
        listed = {case[0] for case in CASES}
        present = {name for name in os.listdir(EXAMPLES)
                   if name.endswith(".py")}
        self.assertEqual(listed, present, "every example needs a case")
        tmp = self.get_temp_dir()
        values = {"tmp": tmp,
                  "omniglot": _omniglot_like(os.path.join(tmp, "omniglot")),
                  "movielens": _movielens_like(os.path.join(tmp, "ml"))}
        for example, arguments, expected in CASES:
            with self.subTest(example=example):
                command = [sys.executable, os.path.join(EXAMPLES, example)]
                command += [a.format(**values) for a in arguments]
                result = subprocess.run(
                    command, capture_output=True, text=True, cwd=tmp,
                    env={**os.environ, "PYTHONPATH": ROOT,
                         "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
                self.assertEqual(result.returncode, 0,
                                 result.stderr[-3000:])
                self.assertIn(expected, result.stdout)
