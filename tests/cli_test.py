import json
import os

from keras_meta import cli
from keras_meta import testing


class CLITest(testing.TestCase):
    def test_train_writes_results_and_figure(self):
        directory = self.get_temp_dir()
        code = cli.main([
            "train", "--meta-steps", "60", "--num-test-tasks", "20",
            "--steps-per-execution", "20", "--output-dir", directory,
            "--verbose", "0",
        ])
        self.assertEqual(code, 0)
        with open(os.path.join(directory, "results.json")) as f:
            results = json.load(f)
        self.assertEqual(results["config"]["meta_steps"], 60)
        for method in ("maml", "pretrained"):
            for shots in ("K=5", "K=10"):
                rows = results["curves"][method][shots]
                self.assertEqual([r["steps"] for r in rows], list(range(11)))
                self.assertTrue(all(r["mse"] > 0 and r["ci95"] > 0 for r in rows))
        with open(os.path.join(directory, "sinusoid.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertTrue(os.path.exists(os.path.join(directory, "maml.keras")))

    def test_bad_arguments(self):
        with self.assertRaises(SystemExit):
            cli.main(["train", "--meta-steps", "0"])
        with self.assertRaises(SystemExit):
            cli.main(["train", "--algorithm", "nope"])
