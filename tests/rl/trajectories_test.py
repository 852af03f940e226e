import os

import keras
import numpy as np
import pytest

from keras_meta import rl
from keras_meta import testing

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras_meta.rl trains on the TensorFlow backend")


def _learner(horizon=12, seed=0):
    policy = keras.Sequential([
        keras.Input((2,)), rl.GaussianPolicyHead(2, initial_log_std=-0.5)])
    rng = np.random.default_rng(seed)
    policy.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                        for w in policy.get_weights()])
    return rl.MAMLRL(policy, rl.Navigation2D(horizon=horizon),
                     num_trajectories=4, inner_learning_rate=0.5)


def _numpy_path(policy, goal, horizon):
    # The linear head's mean action, moved by at most 0.1 per coordinate,
    # stopping within 0.01 of the goal in both coordinates.
    head = policy.layers[-1].mean
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    position, path = np.zeros(2), [np.zeros(2)]
    for _ in range(horizon):
        position = position + 0.1 * np.clip(position @ kernel + bias, -1, 1)
        path.append(position)
        if np.all(np.abs(position - goal) < 0.01):
            break
    return np.array(path)


class NavigationPathsTest(testing.TestCase):
    def test_paths_follow_each_adapted_policy(self):
        learner = _learner()
        goal = np.array([0.3, -0.2], "float32")
        paths = rl.navigation_paths(learner, goal, num_steps=2, seed=3)
        self.assertLen(paths, 3)
        for steps, path in enumerate(paths):
            adapted = learner.adapt(goal, num_steps=steps, seed=3)
            self.assertAllClose(path, _numpy_path(adapted, goal, 12),
                                atol=1e-5)
            self.assertAllClose(path[0], [0.0, 0.0])
        # Adaptation changed the policy, so the path.
        self.assertGreater(np.abs(paths[1] - paths[0]).max(), 1e-3)

    def test_a_path_ends_at_the_goal(self):
        # A policy that always moves +0.1 in both coordinates reaches
        # (0.3, 0.3) after 3 steps and stops there.
        learner = _learner(horizon=10)
        head = learner.policy.layers[-1].mean
        head.kernel.assign(np.zeros((2, 2), "float32"))
        head.bias.assign(np.full(2, 5.0, "float32"))
        path = rl.navigation_paths(learner, [0.3, 0.3], num_steps=0)[0]
        self.assertLen(path, 4)
        self.assertAllClose(path[-1], [0.3, 0.3], atol=1e-6)

    def test_picture(self):
        learner = _learner()
        goals = np.array([[0.3, -0.2], [-0.4, 0.1], [0.0, 0.45]], "float32")
        path = os.path.join(self.get_temp_dir(), "paths.png")
        fig = rl.plot_navigation_paths(learner, goals, num_steps=1,
                                       path=path)
        visible = [a for a in fig.axes if a.get_visible()]
        self.assertLen(visible, 3)
        for axis in visible:
            # One line per step count, then the start and the goal.
            self.assertLen(axis.lines, 2 + 2)
        self.assertGreater(os.path.getsize(path), 1000)

    def test_errors(self):
        learner = _learner()
        with self.assertRaisesRegex(ValueError, "2 numbers"):
            rl.navigation_paths(learner, [0.1, 0.2, 0.3])
        with self.assertRaisesRegex(ValueError, "num_steps"):
            rl.navigation_paths(learner, [0.1, 0.2], num_steps=-1)
        with self.assertRaisesRegex(ValueError, "1 to 8 goals"):
            rl.plot_navigation_paths(learner, np.zeros((9, 2)))
        cheetah = rl.MAMLRL(
            rl.gaussian_mlp_policy(17, 6, hidden_units=(4,), seed=0),
            rl.HalfCheetahVelocity())
        with self.assertRaisesRegex(ValueError, "Navigation2D.*"
                                    "adaptation_returns"):
            rl.navigation_paths(cheetah, [0.1, 0.2])
