import json
import os

import numpy as np

from keras_meta import rl
from keras_meta import testing

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks",
                         "reference", "maml_rl_point_results.json")


def _straight_line_return(goal, max_step=0.1, horizon=100):
    """The return of moving straight at the goal at full speed."""
    state, total = np.zeros(2), 0.0
    for _ in range(horizon):
        state = state + np.clip(goal - state, -max_step, max_step)
        total -= np.linalg.norm(state - goal)
        if (np.abs(state - goal) < 0.01).all():
            break
    return total


class PaperGoalsTest(testing.TestCase):
    def test_goals(self):
        goals = rl.Navigation2D.paper_test_goals()
        self.assertEqual(goals.shape, (40, 2))
        self.assertTrue((np.abs(goals) <= 0.5).all())
        self.assertAllClose(goals, rl.Navigation2D.paper_test_goals())

    def test_goals_pair_with_the_papers_result_files(self):
        # The paper's oracle (a policy trained with the goal in its input)
        # scores each goal near a straight run to it: its per-goal returns
        # follow ours on the reproduced goals, in order, and not on goals
        # drawn otherwise.
        with open(REFERENCE) as f:
            reference = json.load(f)["returns_per_step_and_goal"]
        oracle = np.asarray(reference["oracle"][0])
        self.assertEqual(oracle.shape, (40,))

        def correlation(goals):
            ours = [_straight_line_return(g) for g in goals]
            return np.corrcoef(ours, oracle)[0, 1]

        self.assertGreater(correlation(rl.Navigation2D.paper_test_goals()),
                           0.7)
        for seed in (0, 2, 3):
            other = np.random.RandomState(seed).uniform(-0.5, 0.5, (40, 2))
            self.assertLess(abs(correlation(other)), 0.5)
        # The means the paper reports for MAML after 0-3 steps.
        self.assertAllClose(
            np.mean(reference["maml"], axis=1)[:4], [-40.4, -11.7, -3.3, -3.2],
            atol=0.05)


CHEETAH = os.path.join(os.path.dirname(REFERENCE),
                       "maml_rl_cheetah_results.json")


class CheetahPaperGoalsTest(testing.TestCase):
    def test_goals_pair_with_the_papers_result_files(self):
        goals = rl.HalfCheetahVelocity.paper_test_goals()
        self.assertEqual(goals.shape, (40, 1))
        self.assertTrue(((goals >= 0) & (goals <= 2)).all())
        with open(CHEETAH) as f:
            reference = json.load(f)["returns_per_step_and_goal"]
        # A random policy barely moves, so its return before adaptation
        # falls in proportion to the target velocity: the paper's per-goal
        # returns follow the reproduced goals in order, not other draws.
        random = np.asarray(reference["random"][0])
        self.assertLess(np.corrcoef(goals[:, 0], random)[0, 1], -0.99)
        for seed in (0, 2, 3):
            other = np.random.RandomState(seed).uniform(0, 2, 40)
            self.assertLess(abs(np.corrcoef(other, random)[0, 1]), 0.5)
        self.assertAllClose(
            np.mean(reference["maml"], axis=1), [-129.5, -78.6, -66.6, -60.8],
            atol=0.05)
