import contextlib
import io
import json
import os
from unittest import mock

import keras
import pytest

from keras_meta import cli
from keras_meta import testing
from keras_meta.cli import checks
from keras_meta.cli import commands
from keras_meta.experiments import choices


class CLITest(testing.TestCase):
    @pytest.mark.slow  # an end-to-end run of the command
    def test_train_writes_results_and_figure(self):
        # Trained with XLA where the backend has it (JAX always compiles).
        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--meta-steps", "60", "--num-test-tasks", "20",
            "--steps-per-execution", "20", "--xla", "on", "--output-dir",
            directory, "--verbose", "0",
        ])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)
        self.assertEqual(results["config"]["meta_steps"], 60)
        self.assertTrue(results["config"]["jit_compile"])
        # This process keeps its settings (only the command sets threads).
        self.assertEqual(results["config"]["intra_op_threads"], (
            0 if keras.backend.backend() == "tensorflow" else None))
        for method in ("maml", "pretrained"):
            for shots in ("K=5", "K=10"):
                rows = results["curves"][method][shots]
                self.assertEqual([r["steps"] for r in rows], list(range(11)))
                self.assertTrue(all(r["mse"] > 0 and r["ci95"] > 0 for r in rows))
        with open(os.path.join(directory, "sinusoid.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertTrue(os.path.exists(os.path.join(directory, "maml.keras")))

        # `evaluate` on the saved learner reproduces train's K=10 numbers:
        # the same tasks and the same step counts by default.
        import contextlib
        import io

        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["evaluate", os.path.join(directory, "maml.keras"),
                             "--num-episodes", "20"])
        self.assertEqual(code, 0)
        rows = output.getvalue().strip().splitlines()[2:]
        self.assertEqual([row.split()[0] for row in rows], ["0", "1", "10"])
        trained = {r["steps"]: r["mse"]
                   for r in results["curves"]["maml"]["K=10"]}
        for row in rows:
            steps, mean = int(row.split()[0]), float(row.split()[1])
            self.assertAlmostEqual(mean, trained[steps], delta=2e-3 * max(
                1.0, trained[steps]))

    @pytest.mark.slow  # an end-to-end run of the command
    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="op determinism is TensorFlow's")
    def test_op_determinism_trains_without_xla_and_says_so(self):
        # Keras compiles without XLA under op determinism (which the
        # command turns on): the run must not claim otherwise.
        import contextlib
        import importlib
        import io
        from unittest import mock

        sinusoid = importlib.import_module("keras_meta.experiments.sinusoid")
        directory = self.get_temp_dir()
        output = io.StringIO()
        with mock.patch.object(sinusoid, "_op_determinism",
                               return_value=True), (
                contextlib.redirect_stdout(output)):
            code = cli.main([
                "train", "--meta-steps", "20", "--num-test-tasks", "4",
                "--steps-per-execution", "10", "--output-dir", directory,
                "--verbose", "1",
            ])
        self.assertEqual(code, 0)
        self.assertIn("[0/3] XLA: off", output.getvalue())
        with open(os.path.join(directory, "results.json")) as f:
            config = json.load(f)["config"]
        self.assertFalse(config["jit_compile"])
        self.assertIn("op determinism", config["xla_probe"]["skipped"])

    @pytest.mark.slow  # an end-to-end run of the command
    def test_diverged_run_fails_and_writes_strict_json(self):
        # An inner step of 50 on sinusoid diverges within ten steps.
        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--meta-steps", "20", "--num-test-tasks", "8",
            "--steps-per-execution", "20", "--inner-learning-rate", "50",
            "--output-dir", directory, "--verbose", "0",
        ])
        self.assertEqual(code, 1)
        with open(os.path.join(directory, "results.json")) as f:
            text = f.read()
        # Python's json module reads NaN and Infinity unless told not to.
        results = json.loads(text, parse_constant=self.fail)
        self.assertTrue(results["non_finite"])
        self.assertFalse(results["targets_met"]["every evaluated MSE is finite"])
        self.assertTrue(any(row["mse"] is None
                            for rows in results["curves"]["maml"].values()
                            for row in rows))

    def test_bad_arguments(self):
        with self.assertRaises(SystemExit):
            cli.main(["train", "--meta-steps", "0"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "nope"])
        for threads in ("-1", "two"):
            with self.assertRaises(SystemExit):
                cli.main(["train", "--threads", threads])

    def test_intra_op_threads(self):
        # One thread for the gradient-based sinusoid job only, unless asked.
        parser, train_parser, *_ = cli.build_parser()

        def threads(*argv):
            args = parser.parse_args(["train", *argv])
            checks.resolve_train_arguments(train_parser, args)
            return commands.intra_op_threads(args)

        self.assertEqual(threads(), 1)
        self.assertEqual(threads("--algorithm", "reptile"), 1)
        self.assertIsNone(threads("--algorithm", "cnp"))
        self.assertIsNone(threads("--algorithm", "protonet", "--data-dir",
                                  "/tmp"))
        self.assertIsNone(threads("--task", "navigation2d"))
        self.assertIsNone(threads("--threads", "0"))
        self.assertEqual(threads("--algorithm", "protonet", "--data-dir",
                                 "/tmp", "--threads", "2"), 2)


def _fake_omniglot(directory, num_characters=6, per_character=20, size=12):
    """Folders shaped like the two Omniglot background subsets."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for subset in ("images_background_small1", "images_background_small2"):
        for c in range(num_characters):
            folder = os.path.join(directory, subset, f"alphabet{c % 2}",
                                  f"character{c:02d}")
            os.makedirs(folder)
            template = rng.uniform(size=(size, size)) > 0.5
            for k in range(per_character):
                noise = rng.uniform(size=(size, size)) > 0.9
                pixels = (template ^ noise).astype("uint8") * 255
                Image.fromarray(pixels).save(
                    os.path.join(folder, f"{k}.png"))


class CLIAlgorithmsTest(testing.TestCase):
    def test_every_algorithm_is_listed(self):
        parser_help = []

        class Capture:
            def write(self, text):
                parser_help.append(text)

            def flush(self):
                pass

        import contextlib

        with contextlib.redirect_stdout(Capture()):
            with self.assertRaises(SystemExit):
                cli.main(["train", "--help"])
        text = "".join(parser_help)
        for name in choices.ALGORITHMS:
            self.assertIn(f"{name}:", text)

    def test_metric_learner_on_omniglot_folders(self):
        data_dir = self.get_temp_dir()
        _fake_omniglot(data_dir)
        output = self.get_temp_dir()
        code = cli.main([
            "train", "--algorithm", "protonet", "--data-dir", data_dir,
            "--meta-steps", "4", "--meta-batch-size", "2",
            "--num-test-tasks", "4", "--filters", "4",
            "--steps-per-execution", "2", "--output-dir", output,
            "--verbose", "0",
        ])
        self.assertEqual(code, 0)
        with open(os.path.join(output, "protonet_5way_1shot.json")) as f:
            results = json.load(f)
        self.assertEqual(results["config"]["test_episodes"], 4)
        self.assertTrue(0.0 <= results["accuracy"] <= 1.0)
        self.assertGreater(results["accuracy_ci95"], 0.0)

    @pytest.mark.slow  # an end-to-end run of the command
    def test_gradient_learner_on_sinusoid(self):
        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--algorithm", "metasgd", "--meta-steps", "20",
            "--num-test-tasks", "4", "--steps-per-execution", "10",
            "--output-dir", directory, "--verbose", "0",
        ])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)
        self.assertEqual(results["config"]["algorithm"], "metasgd")
        self.assertIn("metasgd", results["curves"])
        self.assertTrue(os.path.exists(
            os.path.join(directory, "metasgd.keras")))

    @pytest.mark.slow  # an end-to-end run of the command
    def test_neural_process_on_sinusoid(self):
        import contextlib
        import io

        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--algorithm", "anp", "--meta-steps", "20",
            "--num-test-tasks", "20", "--steps-per-execution", "10",
            "--output-dir", directory, "--verbose", "0",
        ])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)
        self.assertEqual(results["config"]["algorithm"], "anp")
        self.assertEqual(results["config"]["meta_steps"], 20)
        for shots in ("K=10", "K=5"):
            row = results["rows"][shots]
            self.assertGreater(row["mse"], 0.0)
            self.assertTrue(0.0 <= row["coverage_95"] <= 1.0)
        with open(os.path.join(directory, "sinusoid.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        # The saved learner scores the same K=10 test tasks alike.
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["evaluate", os.path.join(directory, "anp.keras"),
                             "--num-episodes", "20"])
        self.assertEqual(code, 0)
        lines = output.getvalue().splitlines()
        (header,) = [line for line in lines if line.startswith("inner steps")]
        (row,) = [line for line in lines if line.startswith("-")]
        # One column per metric, each "mean +- ci".
        means = dict(zip(header.split()[2:], row.split()[1::3]))
        self.assertAlmostEqual(float(means["mse"]),
                               results["rows"]["K=10"]["mse"], delta=1e-3)

    @pytest.mark.slow  # an end-to-end run of the command
    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="keras_meta.rl trains on TensorFlow")
    def test_navigation2d_trains_promp_and_its_baselines(self):
        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--task", "navigation2d", "--meta-steps", "2",
            "--meta-batch-size", "2", "--num-shots", "2",
            "--num-test-tasks", "3", "--output-dir", directory,
            "--verbose", "0"])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)["results"]
        self.assertEqual(sorted(results), ["pretrained", "promp", "random"])
        for row in results.values():
            self.assertEqual(len(row["returns"]["mean"]), 4)
            self.assertTrue(all(-101 < v < 0 for v in row["returns"]["mean"]))
        for picture in ("navigation2d.png", "navigation2d_paths.png"):
            self.assertGreater(
                os.path.getsize(os.path.join(directory, picture)), 1000)
        # The saved learner scores the test goals as training did.
        self.assertAlmostEqual(
            _evaluated_return(os.path.join(directory, "promp.keras"),
                              "navigation2d", 3),
            results["promp"]["returns"]["mean"][3], places=2)

    @pytest.mark.slow  # an end-to-end run of the command, with MuJoCo
    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="keras_meta.rl trains on TensorFlow")
    def test_ant_direction_trains_and_evaluates(self):
        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--task", "ant-dir", "--algorithm", "maml",
            "--meta-steps", "1", "--meta-batch-size", "2", "--num-shots",
            "2", "--num-test-tasks", "2", "--output-dir", directory,
            "--verbose", "0"])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)
        self.assertEqual(results["paper"], {})
        self.assertEqual(sorted(results["results"]),
                         ["maml", "pretrained", "random"])
        self.assertAlmostEqual(
            _evaluated_return(os.path.join(directory, "maml.keras"),
                              "ant-dir", 2),
            results["results"]["maml"]["returns"]["mean"][3], places=2)

    @pytest.mark.slow  # an end-to-end run of the command
    def test_movielens_trains_melu_and_its_baselines(self):
        from tests.recommendation.movielens_test import _generate
        from tests.recommendation.movielens_test import _write_100k

        folder = os.path.join(self.get_temp_dir(), "ml-100k")
        _write_100k(folder, _generate(num_users=150))
        directory = os.path.join(self.get_temp_dir(), "run")
        code = cli.main([
            "train", "--task", "movielens", "--data-dir", folder,
            "--meta-steps", "2", "--meta-batch-size", "4",
            "--output-dir", directory, "--verbose", "0"])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)["results"]
        self.assertEqual(sorted(results), ["global_mean", "melu",
                                           "pretrained"])
        scores = results["melu"]["scores"]["user_cold"]
        self.assertTrue(0 < scores["mean_absolute_error"][0] < 4)
        for name in ("ndcg", "precision_top_k", "ndcg_top_k"):
            self.assertTrue(0 < scores[name][0] <= 1, name)
        self.assertIn("user_cold", results["melu"]["mae_minus_pretrained"])

    @pytest.mark.slow  # an end-to-end run of the command
    def test_movielens_mamo_protocol(self):
        from tests.recommendation.movielens_test import _generate
        from tests.recommendation.movielens_test import _write_100k

        folder = os.path.join(self.get_temp_dir(), "ml-100k")
        _write_100k(folder, _generate(num_users=150))
        directory = os.path.join(self.get_temp_dir(), "run")
        code = cli.main([
            "train", "--task", "movielens", "--protocol", "mamo",
            "--data-dir", folder, "--meta-steps", "2",
            "--meta-batch-size", "4", "--output-dir", directory,
            "--verbose", "0"])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            run = json.load(f)
        self.assertIn("MAMO protocol", run["protocol"])
        self.assertEqual(run["config"]["ranking_k"], 3)
        mixed = run["results"]["melu"]["scores"]["mixed"]
        self.assertTrue(0 < mixed["precision_top_k"][0] <= 1)

    def test_workers_refusals(self):
        def refused(*argv, pattern, env=None):
            stderr = io.StringIO()
            with mock.patch.dict(os.environ, env or {}), \
                    contextlib.redirect_stderr(stderr), \
                    self.assertRaises(SystemExit):
                cli.main(["train", "--meta-batch-size", "4", *argv])
            self.assertIn(pattern, stderr.getvalue())

        refused("--task", "movielens", "--workers", "2",
                pattern="trains in one process")
        refused("--algorithm", "cnp", "--workers", "2",
                pattern="not the neural processes")
        refused("--meta-batch-size", "25", "--workers", "2",
                pattern="pass a multiple of 2, e.g. 24")
        refused("--workers", "2", "--steps-per-execution", "10",
                pattern="keras-team/keras#19246")
        refused("--workers", "2", "--xla", "on", pattern="without XLA")
        refused("--workers", "0", pattern="at least 1")
        refused("--workers", "2", pattern="the Keras backend is jax",
                env={"KERAS_BACKEND": "jax"})
        cluster = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2",
                                          "127.0.0.1:3"]},
                   "task": {"type": "worker", "index": 0}}
        refused("--workers", "2", pattern="pass --workers 3",
                env={"TF_CONFIG": json.dumps(cluster)})

    def test_simulator_processes_refusals(self):
        for argv, pattern in (
                (["--task", "sinusoid"], "has none"),
                (["--task", "navigation2d"], "has none"),
                (["--task", "ant-vel", "--simulator-processes", "0"],
                 "positive number")):
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), \
                    self.assertRaises(SystemExit):
                cli.main(["train", "--simulator-processes", "2", *argv])
            self.assertIn(pattern, stderr.getvalue())

    def test_bad_combinations(self):
        with self.assertRaises(SystemExit):
            cli.main(["train", "--task", "movielens", "--algorithm",
                      "protonet"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--task", "halfcheetah-vel", "--algorithm",
                      "melu"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "melu", "--dataset",
                      "sinusoid"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--task", "movielens", "--data-dir",
                      "/nonexistent"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "promp", "--dataset",
                      "sinusoid"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--task", "navigation2d", "--algorithm",
                      "protonet"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "protonet", "--dataset",
                      "sinusoid"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "protonet", "--data-dir", ""])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "cnp", "--dataset",
                      "omniglot", "--data-dir", "/tmp"])

    def test_missing_omniglot_folder(self):
        from keras_meta.experiments import omniglot

        with self.assertRaisesRegex(ValueError, "does not exist"):
            omniglot.find_subsets("/nonexistent/omniglot")
        with self.assertRaisesRegex(ValueError, "images_background_small1"):
            omniglot.find_subsets(self.get_temp_dir())


class CLIEvaluateTest(testing.TestCase):
    @pytest.mark.slow  # an end-to-end run of the command
    def test_evaluate_before_and_after_adaptation(self):
        import contextlib
        import io

        import keras_meta

        maml = keras_meta.MAML(keras_meta.models.mlp(hidden_units=(8,)),
                               inner_learning_rate=0.01)
        maml.compile(loss="mse", metrics=["mae"])
        path = os.path.join(self.get_temp_dir(), "maml.keras")
        maml.save(path)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["evaluate", path, "--num-episodes", "8",
                             "--inner-steps", "0,1"])
        self.assertEqual(code, 0)
        lines = output.getvalue().strip().splitlines()
        self.assertIn("MAML on sinusoid, 8 episodes", lines[0])
        self.assertIn("loss", lines[1])
        self.assertIn("mae", lines[1])
        self.assertEqual([line.split()[0] for line in lines[2:]], ["0", "1"])
        self.assertIn("+-", lines[2])

        from keras_meta import data
        from keras_meta.experiments import evaluation
        from keras_meta.experiments import sinusoid

        episodes = data.sinusoid(num_shots=10, num_queries=100, num_tasks=8,
                                 batch_size=100,
                                 seed=sinusoid.test_seed(0, 10))
        rows = evaluation.evaluate_steps(maml, episodes, [0, 1])
        maml.eval_inner_steps = 1
        direct = maml.evaluate(episodes, return_dict=True, verbose=0)
        self.assertAlmostEqual(rows[1]["metrics"]["loss"][0], direct["loss"],
                               places=5)
        self.assertAlmostEqual(rows[1]["metrics"]["loss"][1],
                               direct["loss_ci95"], places=5)

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="keras_meta.rl trains on TensorFlow")
    def test_evaluate_halfcheetah(self):
        import contextlib
        import io

        from keras_meta import rl
        from keras_meta.experiments import navigation

        env = rl.HalfCheetahVelocity(horizon=5, variant="rllab")
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(20, 6, hidden_units=(4,), seed=0), env,
            num_trajectories=2)
        learner.compile(optimizer="adam")
        path = os.path.join(self.get_temp_dir(), "cheetah.keras")
        learner.save(path)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = cli.main(["evaluate", path, "--benchmark",
                             "halfcheetah-vel", "--num-episodes", "2",
                             "--inner-steps", "1", "--seed", "3"])
        self.assertEqual(code, 0)
        # The test goals `keras-meta train --task halfcheetah-vel --seed 3`
        # scores, and the learner's own adaptation returns on them.
        expected = rl.summarize_returns(learner.adaptation_returns(
            navigation.test_tasks(env, 2, 3), num_steps=1, seed=5))
        lines = [line for line in output.getvalue().splitlines()
                 if "after" in line]
        self.assertLen(lines, 2)
        for line, mean in zip(lines, expected["mean"]):
            self.assertAlmostEqual(
                float(line.split(":")[1].split("+-")[0]), mean, places=2)
        # A learner scored on the wrong task family is refused.
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors), \
                self.assertRaises(SystemExit):
            cli.main(["evaluate", path, "--benchmark", "halfcheetah-dir"])
        self.assertRegex(errors.getvalue(), "trained on HalfCheetahVelocity"
                         ".*halfcheetah-vel for HalfCheetahVelocity")

    def test_evaluate_errors(self):
        with self.assertRaises(SystemExit):
            cli.main(["evaluate", "/nonexistent.keras"])
        with self.assertRaises(SystemExit):
            cli.main(["evaluate", "x.keras", "--inner-steps", "a"])


def _evaluated_return(checkpoint, benchmark, num_episodes):
    """The mean return after 3 steps that `keras-meta evaluate` prints."""
    import contextlib
    import io

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = cli.main(["evaluate", checkpoint, "--benchmark", benchmark,
                         "--num-episodes", str(num_episodes)])
    if code != 0:
        raise AssertionError(f"keras-meta evaluate exited with {code}")
    last = [line for line in output.getvalue().splitlines()
            if "after 3 steps" in line][0]
    return float(last.split(":")[1].split("+-")[0])


class CLIHelpTest(testing.TestCase):
    def test_help_imports_no_tensorflow(self):
        import subprocess
        import sys

        import keras_meta

        # The public names load on first use in the command's process.
        code = (
            "import sys\n"
            "sys.argv = ['keras-meta']\n"
            "from keras_meta import cli\n"
            "for argv in (['--help'], ['train', '--help'],"
            " ['evaluate', '--help'], ['train', '--algorithm', 'nope'],"
            " ['train', '--meta-steps', '0'], ['--version']):\n"
            "    try:\n"
            "        cli.main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('IMPORTED', 'tensorflow' in sys.modules,"
            " 'keras' in sys.modules)\n")
        result = subprocess.run([sys.executable, "-c", code],
                                capture_output=True, text=True, timeout=120)
        self.assertIn("IMPORTED False False", result.stdout)
        self.assertNotIn("%%", result.stdout)
        self.assertIn("invalid choice: 'nope'", result.stderr)
        self.assertIn("--meta-steps must be positive", result.stderr)
        self.assertIn(f"keras-meta {keras_meta.__version__}", result.stdout)
        self.assertIn("--seed", result.stdout)

    def test_python_m_keras_meta_is_the_command(self):
        import subprocess
        import sys

        result = subprocess.run(
            [sys.executable, "-m", "keras_meta", "train", "--algorithm",
             "nope"], capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 2)
        self.assertIn("invalid choice: 'nope'", result.stderr)
        # Refused before TensorFlow loads: no start-up logs.
        self.assertNotIn("oneDNN", result.stderr)

    def test_command_loads_saved_learners(self):
        import subprocess
        import sys

        import keras_meta

        # The command's process loads the public names after parsing; a
        # saved learner must still deserialize there.
        learner = keras_meta.MAML(keras_meta.models.mlp(seed=0),
                                  inner_learning_rate=0.01)
        learner.compile(loss="mse")
        path = os.path.join(self.get_temp_dir(), "maml.keras")
        learner.save(path)
        result = subprocess.run(
            [sys.executable, "-m", "keras_meta", "evaluate", path,
             "--num-episodes", "2", "--inner-steps", "0,1"],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("MAML on sinusoid", result.stdout)

    def test_library_import_loads_the_learners(self):
        import subprocess
        import sys

        # Outside the command, `import keras_meta` registers every learner
        # for `keras.models.load_model` at once, as before.
        code = ("import keras, keras_meta\n"
                "print(keras.saving.get_registered_object("
                "'keras_meta>MAML') is keras_meta.MAML)\n")
        result = subprocess.run([sys.executable, "-c", code],
                                capture_output=True, text=True, timeout=120)
        self.assertIn("True", result.stdout)


class XLAChoiceTest(testing.TestCase):
    @pytest.mark.slow  # an end-to-end run of the command
    @pytest.mark.tensorflow_only
    def test_both_modes_are_timed_and_train_alike(self):
        import numpy as np

        from keras_meta import data
        from keras_meta.experiments import catalog
        from keras_meta.experiments import sinusoid

        built = {}

        def make(jit):
            keras.utils.set_random_seed(0)
            learner = catalog.build_regressor(
                "maml", inner_learning_rate=0.01, num_inner_steps=None,
                epochs=1, seed=0)
            learner.compile(optimizer="adam", loss="mse",
                            steps_per_execution=5, jit_compile=jit)
            built[jit] = learner
            return learner

        train = data.sinusoid(num_shots=5, batch_size=4, seed=0)
        use_xla, timings = sinusoid.choose_jit_compile(
            make, train, steps_per_execution=5, executions=2, repeats=1)
        self.assertIsInstance(use_xla, bool)
        self.assertEqual(timings["steps_timed"], 10)
        self.assertGreater(timings["xla_ms_per_step"], 0)
        self.assertGreater(timings["plain_ms_per_step"], 0)
        self.assertTrue(built[True].jit_compile)
        self.assertFalse(built[False].jit_compile)
        # The same initial weights and episodes: XLA changes rounding only.
        for plain, xla in zip(built[False].model.get_weights(),
                              built[True].model.get_weights()):
            np.testing.assert_allclose(plain, xla, atol=1e-4, rtol=1e-3)
