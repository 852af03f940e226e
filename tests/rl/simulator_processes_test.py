"""Simulators stepped in worker processes (`num_processes`) give the same
numbers as in one process."""

import importlib.util
import os

import keras
import numpy as np
import pytest

from keras_meta import rl
from keras_meta import testing
from keras_meta.rl import simulators

pytestmark = [
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="keras_meta.rl trains on the TensorFlow "
                              "backend"),
    pytest.mark.skipif(importlib.util.find_spec("mujoco") is None,
                       reason="needs the rl extra (gymnasium[mujoco])"),
]


def _rollout(env, tasks, num_trajectories, steps, seed=4):
    """Observations, rewards and dones of `steps` random actions."""
    rng = np.random.default_rng(0)
    outputs = [env.reset(tasks, num_trajectories, seed=seed)]
    for _ in range(steps):
        actions = rng.uniform(-1.5, 1.5, (len(tasks), num_trajectories,
                                          env.action_dim))
        outputs.extend(env.step(actions))
    return outputs


class SimulatorProcessesTest(testing.TestCase):
    def assert_same_rollouts(self, make, num_processes, steps=15):
        tasks = make(1).sample_tasks(3, seed=1)
        one = make(1)
        expected = _rollout(one, tasks, 2, steps)
        several = make(num_processes)
        try:
            got = _rollout(several, tasks, 2, steps)
            # A second reset with more simulators than the first.
            more = _rollout(several, make(1).sample_tasks(4, seed=2), 3, 3)
        finally:
            several.close()
        self.assertLen(got, len(expected))
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(
            more[-2], _rollout(one, make(1).sample_tasks(4, seed=2), 3,
                               3)[-2])

    def test_half_cheetah_rllab(self):
        self.assert_same_rollouts(
            lambda n: rl.HalfCheetahVelocity(variant="rllab", horizon=20,
                                             num_processes=n), 2)

    def test_half_cheetah_v5_uneven_shares(self):
        self.assert_same_rollouts(
            lambda n: rl.HalfCheetahDirection(variant="v5", horizon=20,
                                              num_processes=n), 4, steps=5)

    def test_ant_with_terminations(self):
        # Large random actions topple some Ants within 60 steps: ended
        # trajectories stop stepping in every worker alike.
        tasks = rl.AntVelocity().sample_tasks(2, seed=1)
        one = _rollout(rl.AntVelocity(horizon=60), tasks, 3, 60)
        env = rl.AntVelocity(horizon=60, num_processes=2)
        try:
            got = _rollout(env, tasks, 3, 60)
        finally:
            env.close()
        for a, b in zip(got, one):
            np.testing.assert_array_equal(a, b)
        self.assertTrue(one[-1].any() and not one[-1].all())

    def test_learner_returns_equal(self):
        def returns(num_processes):
            env = rl.HalfCheetahVelocity(variant="rllab", horizon=10,
                                         num_processes=num_processes)
            policy = rl.gaussian_mlp_policy(env.observation_dim,
                                            env.action_dim,
                                            hidden_units=(8,), seed=0)
            learner = rl.MAMLRL(policy, env, num_trajectories=2, seed=0)
            try:
                return learner.adaptation_returns(
                    env.sample_tasks(3, seed=5), num_steps=1, seed=3)
            finally:
                env.close()

        np.testing.assert_array_equal(returns(2), returns(1))

    def test_workers_load_no_tensorflow_and_stop_on_close(self):
        env = rl.HalfCheetahVelocity(variant="rllab", horizon=5,
                                     num_processes=2)
        env.reset(env.sample_tasks(2, seed=0), 1, seed=0)
        workers = list(env._simulators().workers)
        self.assertLen(workers, 2)
        maps = f"/proc/{workers[0].pid}/maps"
        if os.path.exists(maps):
            with open(maps) as f:
                libraries = f.read()
            self.assertIn("mujoco", libraries)
            self.assertNotIn("tensorflow", libraries)
        env.close()
        for worker in workers:
            self.assertIsNotNone(worker.poll())

    def test_worker_errors_are_raised_with_their_traceback(self):
        pool = simulators.ProcessPool("ant", {"legs": 3}, 2)
        with self.assertRaisesRegex(RuntimeError,
                                    "(?s)worker 0 failed.*TypeError"):
            pool.reset([0, 1])
        self.assertEqual(pool.workers, [])

    def test_shares(self):
        self.assertEqual(simulators.shares(5, 2), [(0, 2), (2, 5)])
        self.assertEqual(simulators.shares(2, 3), [(0, 1), (1, 1), (1, 2)])

    def test_bad_num_processes(self):
        for value in (0, 1.5, True):
            with self.assertRaisesRegex(ValueError, "num_processes"):
                rl.HalfCheetahVelocity(num_processes=value)
        env = rl.AntDirection(num_processes=3)
        self.assertEqual(
            type(env).from_config(env.get_config()).num_processes, 3)
