import json
import os

import keras
import numpy as np
import pytest

from keras_meta import testing
from keras_meta.experiments import navigation_paper

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras_meta.rl trains on the TensorFlow backend")


class NavigationPaperTest(testing.TestCase):
    def test_paired_differences_per_step(self):
        ours = np.array([[-10.0, -4.0], [-12.0, -2.0], [-8.0, -3.0]])
        paper = np.array([[-11.0, -3.0], [-11.0, -3.0], [-11.0, -3.0]])
        result = navigation_paper._paired(ours, paper)
        # Differences per goal: (1, -1), (-1, 1), (3, 0).
        self.assertAllClose(result["mean"], [1.0, 0.0])
        self.assertAllClose(result["ci95"], [
            4.302653 * np.std([1, -1, 3], ddof=1) / np.sqrt(3),
            4.302653 * np.std([-1, 1, 0], ddof=1) / np.sqrt(3)], atol=1e-5)

    @pytest.mark.slow  # trains and evaluates four learners
    def test_a_short_run(self):
        rng = np.random.default_rng(0)
        paper = {name: rng.normal(-30, 5, (5, 40)).tolist()
                 for name in ("maml", "pretrained", "random")}
        output = os.path.join(self.get_temp_dir(), "paper.json")
        navigation_paper.run(
            paper_returns=paper, learners=("maml", "pretrained", "random"),
            seeds=(0,), output=output, iterations=2, meta_batch_size=2,
            num_trajectories=2, eval_every=1, eval_steps=2,
            eval_trajectories=3, baseline_rates=(0.1, 0.5))
        with open(output) as f:
            result = json.load(f)
        maml = result["runs"]["maml"][0]
        self.assertIn(maml["checkpoint_iteration"], (1, 2))
        self.assertLen(maml["validation_curve"], 2)
        self.assertEqual(np.shape(maml["test_per_goal"]), (40, 3))
        # The pairing is with the paper's per-goal returns of the same goal.
        expected = np.asarray(maml["test_per_goal"]) - np.asarray(
            paper["maml"][:3]).T
        self.assertAllClose(maml["minus_paper"]["mean"], expected.mean(0),
                            atol=1e-6)
        pretrained = result["runs"]["pretrained"][0]
        self.assertIn(pretrained["step_size"], (0.1, 0.5))
        scores = {float(r): v for r, v in
                  pretrained["validation_by_step_size"].items()}
        self.assertEqual(pretrained["step_size"], max(scores,
                                                      key=scores.get))
        self.assertEqual(result["summary"]["random"]["seeds"], 1)
