import importlib.util

import keras
import numpy as np
import pytest

from keras_meta import rl
from keras_meta import testing

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras_meta.rl trains on the TensorFlow backend")


class NumpyNavigation(rl.SimulatorEnvironment):
    """2D navigation stepped in NumPy, as a simulator would be."""

    observation_dim = 2
    action_dim = 2
    task_dim = 2

    def __init__(self, horizon=100):
        self.horizon = horizon

    def sample_tasks(self, num_tasks, seed=None):
        return rl.Navigation2D().sample_tasks(num_tasks, seed)

    def reset(self, tasks, num_trajectories, seed=None):
        self.goals = np.asarray(tasks)[:, None, :]
        self.state = np.zeros((len(tasks), num_trajectories, 2), "float32")
        return self.state.copy()

    def step(self, actions):
        self.state = self.state + 0.1 * np.clip(actions, -1, 1)
        offset = self.state - self.goals
        reward = -np.linalg.norm(offset, axis=-1)
        done = (np.abs(offset) < 0.01).all(-1)
        return self.state.copy(), reward, done


class SimulatorTest(testing.TestCase):
    def test_simulated_rollouts_score_as_the_graph_ones(self):
        policy = rl.gaussian_mlp_policy(
            2, 2, hidden_units=(8,), initial_log_std=-12.0, seed=3)
        graph = rl.MAMLRL(policy, rl.Navigation2D(horizon=30),
                          num_trajectories=2)
        simulated = rl.MAMLRL(policy, NumpyNavigation(horizon=30),
                              num_trajectories=2)
        tasks = rl.Navigation2D().sample_tasks(4, seed=0)
        self.assertAllClose(
            simulated.adaptation_returns(tasks, num_steps=0),
            graph.adaptation_returns(tasks, num_steps=0), rtol=1e-4)

    def test_simulated_adaptation_matches_the_graph_one(self):
        # A stochastic policy, two adaptation steps: the same noise, the
        # same rollouts, the same inner updates.
        policy = rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=3)
        graph = rl.MAMLRL(policy, rl.Navigation2D(horizon=30),
                          num_trajectories=3)
        simulated = rl.MAMLRL(policy, NumpyNavigation(horizon=30),
                              num_trajectories=3)
        tasks = rl.Navigation2D().sample_tasks(4, seed=0)
        expected = graph.adaptation_returns(tasks, num_steps=2, seed=7)
        self.assertAllClose(
            simulated.adaptation_returns(tasks, num_steps=2, seed=7),
            expected, rtol=1e-4, atol=1e-4)
        # The steps change the returns: the comparison covers adaptation.
        self.assertGreater(np.abs(expected[:, 1:] - expected[:, :1]).max(),
                           0.5)
        self.assertAllClose(
            simulated.adapt(tasks[0], seed=7).get_weights(),
            graph.adapt(tasks[0], seed=7).get_weights(), atol=1e-5,
            rtol=1e-4)

    @pytest.mark.slow  # a simulator's training loop
    def test_fit_alternates_sampling_and_updates_and_learns(self):
        env = NumpyNavigation()
        keras.utils.set_random_seed(0)
        learner = rl.ProMP(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(32, 32), seed=0), env,
            num_trajectories=10, seed=0)
        learner.compile(optimizer=keras.optimizers.Adam(3e-3))
        tasks = env.sample_tasks(10, seed=99)
        before = learner.adaptation_returns(tasks, num_steps=1).mean(0)
        seen = []

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                seen.append(dict(logs))

        history = learner.fit(env.task_dataset(5, seed=0), steps_per_epoch=6,
                              epochs=2, callbacks=[Record()], verbose=0)
        self.assertEqual(len(seen), 12)
        self.assertEqual(len(history.history["return_after"]), 2)
        self.assertEqual(int(learner.optimizer.iterations), 12 * 5)
        after = learner.adaptation_returns(tasks, num_steps=1).mean(0)
        self.assertGreater(after[0], before[0] + 10.0)
        self.assertGreater(after[1], before[1] + 10.0)

    def test_half_cheetah_tasks_without_the_simulator(self):
        velocity = rl.HalfCheetahVelocity()
        tasks = velocity.sample_tasks(500, seed=0)
        self.assertEqual(tasks.shape, (500, 1))
        self.assertTrue((tasks >= 0).all() and (tasks <= 2).all())
        self.assertAllClose(velocity._reward(np.array([1.5, 0.0]),
                                             np.array([1.0, 2.0])),
                            np.array([-0.5, -2.0]))
        directions = rl.HalfCheetahDirection().sample_tasks(200, seed=0)
        self.assertEqual(set(directions[:, 0].tolist()), {-1.0, 1.0})
        self.assertEqual(velocity.horizon, 200)

    def test_fit_refuses_what_it_cannot_honour(self):
        learner = rl.MAMLRL(rl.gaussian_mlp_policy(2, 2, hidden_units=(4,)),
                            NumpyNavigation(horizon=5))
        learner.compile(optimizer="adam")
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            learner.fit(NumpyNavigation().task_dataset(2))
        with self.assertRaisesRegex(ValueError, "validation_data"):
            learner.fit(NumpyNavigation().task_dataset(2), steps_per_epoch=1,
                        validation_data=[1])
        # Sampling outside the step cannot be split between replicas.
        import tensorflow as tf

        mirrored = tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
        with mirrored.scope():
            learner = rl.MAMLRL(
                rl.gaussian_mlp_policy(2, 2, hidden_units=(4,)),
                NumpyNavigation(horizon=5))
            learner.compile(optimizer="adam")
        with self.assertRaisesRegex(ValueError, "one replica"):
            learner.fit(NumpyNavigation().task_dataset(2), steps_per_epoch=1)

    @pytest.mark.skipif(importlib.util.find_spec("mujoco") is None,
                        reason="needs the rl extra (gymnasium[mujoco])")
    def test_half_cheetah_runs_end_to_end(self):
        env = rl.HalfCheetahVelocity(horizon=8)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(17, 6, hidden_units=(16,), seed=0),
            env, num_trajectories=2, seed=0)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3))
        learner.fit(env.task_dataset(2), steps_per_epoch=2, verbose=0)
        returns = learner.adaptation_returns(
            env.sample_tasks(2, seed=1), num_steps=1)
        self.assertEqual(returns.shape, (2, 2))
        self.assertTrue(np.isfinite(returns).all())
        # Rewards as the MAML paper's code defines them.
        direction = rl.HalfCheetahDirection(horizon=3)
        direction.reset(np.array([[-1.0], [1.0]]), 1, seed=0)
        start = np.array([e.unwrapped.data.qpos[0]
                          for e in direction._envs[:2]])
        actions = np.full((2, 1, 6), 0.5)
        _, rewards, done = direction.step(actions)
        # The forward velocity: the torso's x displacement over the step.
        velocities = np.array([
            (e.unwrapped.data.qpos[0] - x) / e.unwrapped.dt
            for e, x in zip(direction._envs[:2], start)])
        self.assertAllClose(rewards[:, 0],
                            np.array([-1.0, 1.0]) * velocities - 0.05 * 1.5,
                            atol=1e-3)
        self.assertFalse(done.any())


class ResumeTest(testing.TestCase):
    def _learner(self, env):
        keras.utils.set_random_seed(0)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=0), env,
            num_trajectories=2, seed=0)
        learner.compile(optimizer=keras.optimizers.Adam(1e-2))
        return learner

    def _check_exact_resume(self, env):
        import keras_meta

        data = env.task_dataset(3, seed=1)
        reference = self._learner(env)
        reference.fit(data, steps_per_epoch=2, epochs=3, verbose=0)
        backup_dir = self.get_temp_dir()

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 2:
                    raise KeyboardInterrupt("interrupted")

        interrupted = self._learner(env)
        with self.assertRaises(KeyboardInterrupt):
            interrupted.fit(
                env.task_dataset(3, seed=1), steps_per_epoch=2, epochs=3,
                verbose=0, callbacks=[
                    keras_meta.callbacks.BackupAndRestore(backup_dir),
                    Interrupt()])
        resumed = self._learner(env)
        resumed.fit(env.task_dataset(3, seed=1), steps_per_epoch=2, epochs=3,
                    verbose=0, callbacks=[
                        keras_meta.callbacks.BackupAndRestore(backup_dir)])
        self.assertEqual(int(resumed.optimizer.iterations), 6)
        for a, b in zip(resumed.policy.get_weights(),
                        reference.policy.get_weights()):
            self.assertAllClose(a, b, atol=1e-6)

    @pytest.mark.slow  # a simulator's training loop
    def test_backup_and_restore_is_exact_in_graph(self):
        self._check_exact_resume(rl.Navigation2D(horizon=10))

    @pytest.mark.slow  # a simulator's training loop
    def test_backup_and_restore_is_exact_with_a_simulator(self):
        self._check_exact_resume(NumpyNavigation(horizon=10))
