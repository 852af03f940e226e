import numpy as np
from keras import ops

from keras_meta import testing
from keras_meta.rl import Navigation2D
from keras_meta.rl import advantages as adv


def _trajectories(seed=0, tasks=2, trajectories=3, horizon=6, obs_dim=2):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(tasks, trajectories, horizon))
    observations = rng.normal(size=(tasks, trajectories, horizon, obs_dim))
    lengths = rng.integers(2, horizon + 1, size=(tasks, trajectories))
    mask = (np.arange(horizon) < lengths[..., None]).astype("float64")
    return observations * mask[..., None], rewards * mask, mask


class AdvantagesTest(testing.TestCase):
    def test_discounted_cumsum_matches_a_loop(self):
        _, rewards, _ = _trajectories()
        expected = np.zeros_like(rewards)
        running = np.zeros(rewards.shape[:-1])
        for t in reversed(range(rewards.shape[-1])):
            running = rewards[..., t] + 0.9 * running
            expected[..., t] = running
        got = ops.convert_to_numpy(adv.discounted_cumsum(
            ops.convert_to_tensor(rewards), 0.9))
        self.assertAllClose(got, expected, atol=1e-10)

    def test_gae_matches_a_hand_computed_trajectory(self):
        observations, rewards, mask = _trajectories(seed=1)
        values = np.random.default_rng(2).normal(size=rewards.shape) * mask
        gamma, lam = 0.95, 0.8
        expected = np.zeros_like(rewards)
        for k in range(rewards.shape[0]):
            for n in range(rewards.shape[1]):
                length = int(mask[k, n].sum())
                running = 0.0
                for t in reversed(range(length)):
                    next_value = values[k, n, t + 1] if t + 1 < length else 0.0
                    delta = rewards[k, n, t] + gamma * next_value - values[
                        k, n, t]
                    running = delta + gamma * lam * running
                    expected[k, n, t] = running
        got = ops.convert_to_numpy(adv.generalized_advantages(
            ops.convert_to_tensor(rewards), ops.convert_to_tensor(values),
            ops.convert_to_tensor(mask), gamma, lam))
        self.assertAllClose(got, expected, atol=1e-10)

    def test_linear_baseline_is_the_ridge_fit_per_task(self):
        observations, rewards, mask = _trajectories(seed=3)
        returns = ops.convert_to_numpy(adv.discounted_cumsum(
            ops.convert_to_tensor(rewards), 0.99)) * mask
        got = ops.convert_to_numpy(adv.fit_linear_baseline(
            ops.convert_to_tensor(observations),
            ops.convert_to_tensor(returns), ops.convert_to_tensor(mask)))
        horizon = rewards.shape[-1]
        for k in range(rewards.shape[0]):
            rows, targets = [], []
            for n in range(rewards.shape[1]):
                for t in range(int(mask[k, n].sum())):
                    o = np.clip(observations[k, n, t], -10, 10)
                    s = t / 100.0
                    rows.append(np.concatenate(
                        [o, o ** 2, [s, s ** 2, s ** 3, 1.0]]))
                    targets.append(returns[k, n, t])
            x, y = np.array(rows), np.array(targets)
            w = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
            for n in range(rewards.shape[1]):
                length = int(mask[k, n].sum())
                o = np.clip(observations[k, n, :length], -10, 10)
                s = np.arange(length)[:, None] / 100.0
                feats = np.concatenate(
                    [o, o ** 2, s, s ** 2, s ** 3, np.ones_like(s)], axis=1)
                self.assertAllClose(got[k, n, :length], feats @ w, atol=1e-8)
                self.assertAllClose(got[k, n, length:],
                                    np.zeros(horizon - length))

    def test_normalize_per_task(self):
        _, rewards, mask = _trajectories(seed=4)
        got = ops.convert_to_numpy(adv.normalize_per_task(
            ops.convert_to_tensor(rewards), ops.convert_to_tensor(mask)))
        for k in range(rewards.shape[0]):
            valid = got[k][mask[k] > 0]
            self.assertAllClose(valid.mean(), 0.0, atol=1e-10)
            self.assertAllClose(valid.std(), 1.0, atol=1e-6)
            padded = got[k][mask[k] == 0]
            self.assertAllClose(padded, np.zeros_like(padded))


class Navigation2DTest(testing.TestCase):
    def test_dynamics_as_in_the_reference_code(self):
        env = Navigation2D()
        tasks = ops.convert_to_tensor(np.array([[0.3, -0.2], [0.0, 0.05]]))
        state, observation = env.reset(tasks, 3)
        self.assertAllClose(ops.convert_to_numpy(state), np.zeros((2, 3, 2)))
        actions = np.array([[[0.5, 5.0], [-3.0, 0.2], [0.0, 0.0]]] * 2)
        state, observation, reward, done = env.step(
            state, ops.convert_to_tensor(actions), tasks)
        moved = 0.1 * np.clip(actions, -1, 1)
        self.assertAllClose(ops.convert_to_numpy(state), moved)
        distance = np.linalg.norm(
            moved - ops.convert_to_numpy(tasks)[:, None], axis=-1)
        self.assertAllClose(ops.convert_to_numpy(reward), -distance)
        self.assertFalse(bool(ops.convert_to_numpy(done).any()))
        # Reaching the goal (within 0.01 per coordinate) ends a trajectory.
        state, _, _, done = env.step(
            ops.convert_to_tensor(np.zeros((2, 3, 2))),
            ops.convert_to_tensor(np.array(
                [[[3.0, -2.0], [0, 0], [0, 0]],
                 [[0.0, 0.45], [0, 0], [0, 0]]])),
            ops.convert_to_tensor(np.array([[0.1, -0.1], [0.0, 0.05]])))
        self.assertEqual(
            ops.convert_to_numpy(done).tolist(),
            [[True, False, False], [True, False, False]])

    def test_tasks_are_seeded_and_in_range(self):
        env = Navigation2D()
        a = env.sample_tasks(500, seed=1)
        self.assertAllClose(a, env.sample_tasks(500, seed=1))
        self.assertFalse(np.allclose(a, env.sample_tasks(500, seed=2)))
        self.assertTrue((np.abs(a) <= 0.5).all())
        self.assertGreater(np.abs(a).max(), 0.45)
        first = [b.numpy() for b in env.task_dataset(4, seed=3).take(3)]
        again = [b.numpy() for b in env.task_dataset(4, seed=3).take(3)]
        self.assertAllClose(np.stack(first), np.stack(again))
        self.assertEqual(first[0].shape, (4, 2))
        self.assertAllClose(first[1], env.sample_tasks(4, seed=(3, 1)))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "horizon"):
            Navigation2D(horizon=0)
        with self.assertRaisesRegex(ValueError, "batch_size"):
            Navigation2D().task_dataset(0)


class LinearBaselinePrecisionTest(testing.TestCase):
    def test_long_trajectories_solve_in_float64(self):
        # HalfCheetah's scale: 40 trajectories of 200 steps with
        # observations near the clip (Gram entries ~1e7 against a 1e-5
        # ridge). Float32 inputs, float64 solve: the values match NumPy's
        # float64 fit.
        rng = np.random.default_rng(0)
        shape = (1, 40, 200)
        observations = rng.uniform(-10, 10, shape + (3,))
        mask = np.ones(shape)
        returns = (observations[..., 0] * 3.0 + observations[..., 1] ** 2
                   + rng.normal(size=shape))
        got = ops.convert_to_numpy(adv.fit_linear_baseline(
            ops.convert_to_tensor(observations.astype("float32")),
            ops.convert_to_tensor(returns.astype("float32")),
            ops.convert_to_tensor(mask.astype("float32"))))
        self.assertEqual(got.dtype, np.float32)
        x = ops.convert_to_numpy(adv.baseline_features(
            observations.astype("float32").astype("float64"), mask))[0]
        x = x.reshape(-1, x.shape[-1])
        y = returns.astype("float32").astype("float64").reshape(-1)
        self.assertGreater(np.abs(x.T @ x).max(), 1e6)
        w = np.linalg.solve(x.T @ x + 1e-5 * np.eye(x.shape[1]), x.T @ y)
        expected = (x @ w).reshape(shape)
        # A float32 solve is off by about 5e-3 here; JAX without
        # `jax_enable_x64` has only float32.
        precise = adv._solve_dtype() == "float64"
        self.assertAllClose(got, expected, atol=1e-4 if precise else 2e-2,
                            rtol=0)

    def test_singular_tasks_give_finite_values(self):
        # Every step alike (a rank-one Gram matrix) or every step padding
        # (a zero one): a linear solver raises; the eigendecomposition
        # with the ridge gives finite values, the ridge fit's.
        observations = np.full((2, 2, 4, 2), 1e4, "float32")
        mask = np.ones((2, 2, 4), "float32")
        mask[1] = 0.0
        returns = np.full((2, 2, 4), 3.0, "float32")
        got = ops.convert_to_numpy(adv.fit_linear_baseline(
            ops.convert_to_tensor(observations), ops.convert_to_tensor(
                returns), ops.convert_to_tensor(mask)))
        self.assertTrue(np.isfinite(got).all())
        self.assertAllClose(got[1], np.zeros((2, 4)))
        # One feature row repeated: the fit reproduces the constant return.
        self.assertAllClose(got[0], returns[0], atol=1e-3)
        with self.assertRaisesRegex(ValueError, "reg_coeff"):
            adv.fit_linear_baseline(observations, returns, mask,
                                    reg_coeff=0.0)
