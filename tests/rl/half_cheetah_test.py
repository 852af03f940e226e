"""The two HalfCheetah variants: gymnasium's v5 and the MAML paper's
(rllab's), checked against MuJoCo's own kinematics."""

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


def _centre_of_mass(model, qpos, body):
    """The subtree centre of mass of `body` at joint positions `qpos`,
    from a fresh `MjData` (positions only)."""
    import mujoco

    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    return data.subtree_com[body].copy()


class RllabHalfCheetahTest(testing.TestCase):
    def test_variants_and_their_errors(self):
        self.assertEqual(rl.HalfCheetahVelocity().observation_dim, 17)
        self.assertEqual(
            rl.HalfCheetahVelocity(variant="rllab").observation_dim, 20)
        with self.assertRaisesRegex(ValueError, "'v5'.*'rllab'"):
            rl.HalfCheetahDirection(variant="rllab-v2")
        env = rl.HalfCheetahVelocity(variant="rllab", max_velocity=3.0)
        again = rl.HalfCheetahVelocity.from_config(env.get_config())
        self.assertEqual(again.variant, "rllab")
        self.assertEqual(again.max_velocity, 3.0)

    def test_rllab_step_reward_and_observation(self):
        import mujoco

        env = rl.HalfCheetahVelocity(variant="rllab", horizon=5)
        targets = np.array([[0.5], [1.5]])
        obs = env.reset(targets, 2, seed=0)
        self.assertEqual(obs.shape, (2, 2, 20))
        rng = np.random.default_rng(0)
        for _ in range(3):
            actions = 1.5 * rng.standard_normal((2, 2, 6))
            obs, rewards, done = env.step(actions)
        model, body = env._model, env._torso
        for k, data in enumerate(env._envs[:4]):
            # One physics step of 0.01 s per action.
            self.assertAllClose(data.time, 0.03)
            # The forward velocity is the time derivative of the robot's
            # centre of mass: central differences along the joint
            # velocities.
            eps = 1e-6
            ahead, behind = data.qpos.copy(), data.qpos.copy()
            mujoco.mj_integratePos(model, ahead, data.qvel, eps)
            mujoco.mj_integratePos(model, behind, data.qvel, -eps)
            velocity = (_centre_of_mass(model, ahead, body)
                        - _centre_of_mass(model, behind, body))[0] / (2 * eps)
            clipped = np.clip(actions.reshape(4, 6)[k], -1.0, 1.0)
            expected = (-abs(velocity - targets[k // 2, 0])
                        - 0.05 * np.square(clipped).sum())
            self.assertAllClose(rewards.reshape(-1)[k], expected, atol=1e-5)
            # Joint positions but the root's x, velocities, centre of mass.
            self.assertAllClose(
                obs.reshape(4, 20)[k],
                np.concatenate([data.qpos[1:], data.qvel,
                                _centre_of_mass(model, data.qpos, body)]),
                atol=1e-5)
        self.assertFalse(done.any())

    def test_rllab_reset_noise_and_seeds(self):
        env = rl.HalfCheetahVelocity(variant="rllab")
        tasks = env.sample_tasks(50, seed=0)
        first = env.reset(tasks, 10, seed=3)
        qpos = np.array([d.qpos.copy() for d in env._envs])
        qvel = np.array([d.qvel.copy() for d in env._envs])
        # Gaussian noise of scale 0.01 on positions, 0.1 on velocities
        # (500 draws of 9: the sample deviations are within 5%).
        self.assertAllClose(qpos.std(), 0.01, rtol=0.05)
        self.assertAllClose(qvel.std(), 0.1, rtol=0.05)
        self.assertAllClose(env.reset(tasks, 10, seed=3), first)
        self.assertGreater(
            np.abs(env.reset(tasks, 10, seed=4) - first).max(), 1e-3)

    def test_direction_reward_uses_the_same_velocity(self):
        env = rl.HalfCheetahDirection(variant="rllab", horizon=3)
        env.reset(np.array([[-1.0], [1.0]]), 1, seed=0)
        actions = np.full((2, 1, 6), 0.5)
        _, rewards, _ = env.step(actions)
        velocities = np.array([d.subtree_linvel[env._torso, 0]
                               for d in env._envs[:2]])
        self.assertAllClose(rewards[:, 0],
                            np.array([-1.0, 1.0]) * velocities - 0.05 * 1.5,
                            atol=1e-5)

    def test_a_learner_trains_on_the_rllab_variant(self):
        env = rl.HalfCheetahVelocity(variant="rllab", horizon=8)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(20, 6, hidden_units=(16,), seed=0),
            env, num_trajectories=2, seed=0)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3))
        learner.fit(env.task_dataset(2), steps_per_epoch=2, verbose=0)
        returns = learner.adaptation_returns(
            env.sample_tasks(2, seed=1), num_steps=1)
        self.assertEqual(returns.shape, (2, 2))
        self.assertTrue(np.isfinite(returns).all())
