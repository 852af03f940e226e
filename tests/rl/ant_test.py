"""The Ant tasks on gymnasium's Ant-v5, checked against the simulator."""

import importlib.util

import keras
import numpy as np
import pytest

from keras_meta import rl
from keras_meta import testing

pytestmark = [
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="keras_meta.rl trains on the TensorFlow backend"),
    pytest.mark.skipif(importlib.util.find_spec("mujoco") is None,
                       reason="needs the rl extra (gymnasium[mujoco])"),
]


class AntTest(testing.TestCase):
    def test_reward_against_the_simulator(self):
        env = rl.AntVelocity(horizon=5)
        targets = np.array([[0.5], [2.0]], "float32")
        observations = env.reset(targets, 1, seed=3)
        self.assertEqual(observations.shape, (2, 1, 105))
        rng = np.random.default_rng(0)
        for _ in range(3):
            actions = rng.uniform(-1.5, 1.5, size=(2, 1, 8))
            sims = [e.unwrapped for e in env._envs[:2]]
            x_before = [s.data.body("torso").xpos[0] for s in sims]
            _, rewards, done = env.step(actions)
            for k, sim in enumerate(sims):
                # The velocity: the torso's x displacement over 5 steps of
                # 0.01 s; the costs by hand from the clipped action and
                # the clipped contact forces of every body but the world.
                velocity = (sim.data.body("torso").xpos[0] - x_before[k]) / 0.05
                action = np.clip(actions[k, 0], -1, 1)
                contact = np.square(np.clip(sim.data.cfrc_ext[1:], -1, 1))
                expected = (1.0 - abs(velocity - targets[k, 0])
                            - 0.005 * np.square(action).sum()
                            - 0.0005 * contact.sum() + 0.05)
                self.assertAllClose(rewards[k, 0], expected, atol=1e-5)
            self.assertFalse(done.any())

    def test_direction_reward(self):
        env = rl.AntDirection(horizon=3)
        env.reset(np.array([[1.0], [-1.0]]), 1, seed=5)
        actions = np.full((2, 1, 8), 0.3)
        sims = [e.unwrapped for e in env._envs[:2]]
        x_before = [s.data.body("torso").xpos[0] for s in sims]
        _, rewards, _ = env.step(actions)
        for k, direction in enumerate((1.0, -1.0)):
            velocity = (sims[k].data.body("torso").xpos[0] - x_before[k]) / 0.05
            contact = np.square(np.clip(sims[k].data.cfrc_ext[1:], -1, 1))
            expected = (direction * velocity - 0.005 * 8 * 0.09
                        - 0.0005 * contact.sum() + 0.05)
            self.assertAllClose(rewards[k, 0], expected, atol=1e-5)

    def test_an_unhealthy_ant_ends_its_trajectory(self):
        env = rl.AntVelocity(horizon=5)
        env.reset(np.array([[1.0]]), 2, seed=0)
        # Lift the first Ant's torso above the healthy range.
        sim = env._envs[0].unwrapped
        qpos, qvel = sim.data.qpos.copy(), sim.data.qvel.copy()
        qpos[2] = 1.5
        sim.set_state(qpos, qvel)
        observations, rewards, done = env.step(np.zeros((1, 2, 8)))
        self.assertEqual(done.tolist(), [[True, False]])
        # The ended simulator is not stepped again: its observation stays,
        # its reward is 0 and it stays done.
        after, rewards, done = env.step(np.ones((1, 2, 8)))
        self.assertAllClose(after[0, 0], observations[0, 0])
        self.assertEqual(rewards[0, 0], 0.0)
        self.assertEqual(done.tolist(), [[True, False]])
        self.assertFalse(np.allclose(after[0, 1], observations[0, 1]))

    def test_tasks_config_and_errors(self):
        velocities = rl.AntVelocity().sample_tasks(500, seed=0)
        self.assertTrue(0.0 <= velocities.min() and velocities.max() <= 3.0)
        self.assertGreater(velocities.max(), 2.9)
        directions = rl.AntDirection().sample_tasks(200, seed=0)
        self.assertEqual(sorted(set(directions.ravel().tolist())),
                         [-1.0, 1.0])
        env = rl.AntVelocity(horizon=7, max_velocity=2.0)
        restored = rl.AntVelocity.from_config(env.get_config())
        self.assertEqual((restored.horizon, restored.max_velocity), (7, 2.0))
        with self.assertRaisesRegex(ValueError, "horizon"):
            rl.AntDirection(horizon=0)
        with self.assertRaisesRegex(ValueError, "min_velocity"):
            rl.AntVelocity(min_velocity=2.0, max_velocity=1.0)

    def test_a_learner_adapts_and_saves(self):
        env = rl.AntDirection(horizon=4)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(105, 8, hidden_units=(8,), seed=0), env,
            num_trajectories=2)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3))
        returns = learner.adaptation_returns(
            env.sample_tasks(2, seed=1), num_steps=1, seed=0)
        self.assertEqual(returns.shape, (2, 2))
        self.assertTrue(np.isfinite(returns).all())
        learner.fit(env.task_dataset(2, seed=0), steps_per_epoch=1,
                    epochs=1, verbose=0)
        path = self.get_temp_dir() + "/ant.keras"
        learner.save(path)
        restored = keras.models.load_model(path)
        self.assertIsInstance(restored.environment, rl.AntDirection)
        self.assertEqual(restored.environment.horizon, 4)
