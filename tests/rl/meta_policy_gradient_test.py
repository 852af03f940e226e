import os

import keras
import numpy as np
import pytest

from keras_meta import backend
from keras_meta import rl
from keras_meta import testing

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras_meta.rl trains on the TensorFlow backend")


def _linear_policy(dtype="float64", seed=0):
    policy = keras.Sequential([
        keras.Input((2,), dtype=dtype),
        rl.GaussianPolicyHead(2, initial_log_std=-0.3, dtype=dtype)])
    rng = np.random.default_rng(seed)
    policy.set_weights([rng.normal(size=w.shape) * 0.5
                        for w in policy.get_weights()])
    return policy


def _samples(policy, seed=0, trajectories=3, horizon=4):
    rng = np.random.default_rng(seed)
    observations = rng.normal(size=(trajectories, horizon, 2))
    outputs = keras.ops.convert_to_numpy(
        policy(keras.ops.convert_to_tensor(observations.reshape(-1, 2))))
    means = outputs[:, :2].reshape(trajectories, horizon, 2)
    log_stds = outputs[:, 2:].reshape(trajectories, horizon, 2)
    actions = means + np.exp(log_stds) * rng.normal(size=means.shape)
    mask = np.ones((trajectories, horizon))
    mask[0, -1] = 0.0
    z = (actions - means) / np.exp(log_stds)
    log_probs = (-0.5 * z ** 2 - log_stds - 0.5 * np.log(2 * np.pi)).sum(-1)
    return {"observations": observations, "actions": actions,
            "means": means, "log_stds": log_stds, "mask": mask,
            "advantages": rng.normal(size=(trajectories, horizon)) * mask,
            "log_probs": log_probs}


def _roles(policy):
    head = policy.layers[-1]
    by_id = {id(head.mean.kernel): "kernel", id(head.mean.bias): "bias",
             id(head.log_std): "log_std"}
    return [by_id[id(v)] for v in policy.trainable_variables]


def _score(policy, samples, theta=None):
    """The score d log pi(a|s) / d(kernel, bias, log_std) of every step, by
    hand, flattened in the policy's variable order."""
    values = ([v.numpy() for v in policy.trainable_variables]
              if theta is None else _unflatten(policy, theta))
    params = dict(zip(_roles(policy), values))
    s, a = samples["observations"], samples["actions"]
    mu = s @ params["kernel"] + params["bias"]
    var = np.exp(2 * params["log_std"])
    d_mu = (a - mu) / var
    lead = s.shape[:-1]
    scores = {
        "kernel": (s[..., :, None] * d_mu[..., None, :]).reshape(
            lead + (-1,)),
        "bias": d_mu,
        "log_std": (a - mu) ** 2 / var - 1.0,
    }
    return np.concatenate([scores[r] for r in _roles(policy)], axis=-1)


def _unflatten(policy, theta):
    out, i = [], 0
    for v in policy.trainable_variables:
        n = int(np.prod(v.shape))
        out.append(theta[i:i + n].reshape(v.shape))
        i += n
    return out


def _flat(values):
    return np.concatenate([np.asarray(v).ravel() for v in values])


def _tensors(samples):
    return {k: keras.ops.convert_to_tensor(v) for k, v in samples.items()}


def _pre_and_post_batches(learner):
    """One task's pre-adaptation samples and post-adaptation samples drawn
    from the policy adapted on them (inner rate 0.5), so that at the
    current weights the importance ratios are 1 and the KL to the sampling
    policy is 0."""
    policy = learner.policy
    pre = _samples(policy, seed=2)
    adapted = learner.inner_update(
        learner._weights(), _tensors(pre), 0.5, create_graph=False)
    post_policy = keras.models.clone_model(policy)
    post_policy.set_weights([np.asarray(w) for w in adapted])
    post = _samples(post_policy, seed=3)
    return [_tensors({k: v[None] for k, v in b.items()})
            for b in (pre, post)]


def _inner_gradient_and_hessian(learner, samples):
    import tensorflow as tf

    weights = learner._weights()
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(weights)
        (_, _), gradients = backend.value_and_grad(
            lambda w: (learner.inner_loss(w, samples), ()), weights)
        flat = tf.concat([tf.reshape(g, [-1]) for g in gradients], 0)
    hessian = tf.concat(
        [tf.reshape(j, [flat.shape[0], -1])
         for j in outer.jacobian(flat, weights)], axis=1)
    return flat.numpy(), hessian.numpy()


class PolicyGradientOracleTest(testing.TestCase):
    def test_inner_gradient_is_the_score_function_estimator(self):
        policy = _linear_policy()
        samples = _samples(policy)
        mask, advantages = samples["mask"], samples["advantages"]
        expected = -(advantages[..., None] * mask[..., None]
                     * _score(policy, samples)).sum((0, 1)) / mask.sum()
        for estimator in ("vanilla", "lvc"):
            learner = rl.MetaPolicyGradient(
                policy, rl.Navigation2D(horizon=4),
                inner_estimator=estimator)
            gradient, _ = _inner_gradient_and_hessian(
                learner, _tensors(samples))
            self.assertAllClose(gradient, expected, rtol=1e-9, atol=1e-12)

    def test_lvc_curvature_matches_a_numpy_reference(self):
        policy = _linear_policy(seed=1)
        samples = _samples(policy, seed=1)
        mask, advantages = samples["mask"], samples["advantages"]
        theta = _flat([v.numpy() for v in policy.trainable_variables])
        weight = (advantages * mask / mask.sum())[..., None, None]
        # Hessian of log pi per step: central differences of the exact
        # score above.
        eps = 1e-6
        columns = []
        for i in range(theta.size):
            step = np.zeros_like(theta)
            step[i] = eps
            columns.append((_score(policy, samples, theta + step)
                            - _score(policy, samples, theta - step))
                           / (2 * eps))
        log_prob_hessian = np.stack(columns, axis=-1)
        score = _score(policy, samples)
        outer = score[..., :, None] * score[..., None, :]
        vanilla = -(weight * log_prob_hessian).sum((0, 1))
        lvc = -(weight * (log_prob_hessian + outer)).sum((0, 1))
        results = {}
        for estimator in ("vanilla", "lvc"):
            learner = rl.MetaPolicyGradient(
                policy, rl.Navigation2D(horizon=4),
                inner_estimator=estimator)
            _, results[estimator] = _inner_gradient_and_hessian(
                learner, _tensors(samples))
        self.assertAllClose(results["vanilla"], vanilla, atol=1e-6)
        self.assertAllClose(results["lvc"], lvc, atol=1e-6)
        # The two estimators differ, by the score's outer product.
        difference = np.abs(lvc - vanilla).max()
        self.assertGreater(difference, 0.1)


class MetaGradientTest(testing.TestCase):
    def _learner_and_batches(self, cls, **kwargs):
        keras.utils.set_random_seed(0)
        policy = keras.Sequential([
            keras.Input((2,), dtype="float64"),
            keras.layers.Dense(6, activation="tanh", dtype="float64"),
            rl.GaussianPolicyHead(2, initial_log_std=-0.5, dtype="float64")])
        learner = cls(policy, rl.Navigation2D(horizon=4),
                      inner_learning_rate=0.5, **kwargs)
        return learner, _pre_and_post_batches(learner)

    def _check(self, cls, **kwargs):
        learner, batches = self._learner_and_batches(cls, **kwargs)
        variables = learner.trainable_variables
        (_, _), gradients = backend.loss_and_gradients(
            lambda: (learner.meta_loss(batches), ()), variables)
        gradient = _flat([g.numpy() for g in gradients])
        first_learner, _ = self._learner_and_batches(
            cls, first_order=True, **kwargs)
        (_, _), first = backend.loss_and_gradients(
            lambda: (first_learner.meta_loss(batches), ()),
            first_learner.trainable_variables)
        first = _flat([g.numpy() for g in first])
        direction = np.random.default_rng(0).normal(size=gradient.shape)
        theta = _flat([v.numpy() for v in learner.policy.trainable_variables])
        eps = 1e-5

        def loss_at(values):
            for v, value in zip(learner.policy.trainable_variables,
                                _unflatten(learner.policy, values)):
                v.assign(value)
            return float(learner.meta_loss(batches))

        numeric = (loss_at(theta + eps * direction)
                   - loss_at(theta - eps * direction)) / (2 * eps)
        loss_at(theta)
        self.assertAllClose(gradient @ direction, numeric, rtol=1e-6)
        # The check can tell second order from first order.
        self.assertGreater(abs(first @ direction - numeric),
                           1e3 * abs(gradient @ direction - numeric))

    def test_maml_meta_gradient_matches_finite_differences(self):
        self._check(rl.MAMLRL)

    def test_promp_meta_gradient_matches_finite_differences(self):
        self._check(rl.ProMP)


def _deterministic_return(policy_weights, policy, tasks, horizon):
    """Mean return of a deterministic (mean-action) rollout, in NumPy."""
    policy.set_weights(policy_weights)
    state = np.zeros((len(tasks), 2))
    total = np.zeros(len(tasks))
    alive = np.ones(len(tasks))
    for _ in range(horizon):
        mean = policy.predict(state, verbose=0)[:, :2]
        state = state + 0.1 * np.clip(mean, -1, 1)
        total -= alive * np.linalg.norm(state - tasks, axis=-1)
        # A trajectory ends on reaching the goal.
        alive *= 1.0 - (np.abs(state - tasks) < 0.01).all(axis=-1)
    return total.mean()


class OnPolicyTest(testing.TestCase):
    def test_rollouts_of_step_k_use_the_weights_after_step_k_minus_1(self):
        env = rl.Navigation2D(horizon=10)
        policy = rl.gaussian_mlp_policy(
            2, 2, hidden_units=(8,), initial_log_std=-12.0, seed=1)
        learner = rl.MAMLRL(policy, env, num_inner_steps=0,
                            num_trajectories=2, seed=0)
        learner.compile(optimizer=keras.optimizers.Adam(0.05))
        snapshots = [policy.get_weights()]

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                snapshots.append(policy.get_weights())

        steps = 4
        history = learner.fit(
            env.task_dataset(3, seed=5), steps_per_epoch=1, epochs=steps,
            callbacks=[Record()], verbose=0).history
        check = keras.models.clone_model(policy)
        for k in range(steps):
            tasks = env.sample_tasks(3, seed=(5, k))
            expected = _deterministic_return(snapshots[k], check, tasks, 10)
            self.assertAllClose(history["return_before"][k], expected,
                                rtol=1e-4)
            if k:
                stale = _deterministic_return(
                    snapshots[k - 1], check, tasks, 10)
                self.assertGreater(abs(stale - expected), 1e-2)


class TrainingTest(testing.TestCase):
    @pytest.mark.slow  # trains a policy for many steps
    def test_promp_learns(self):
        env = rl.Navigation2D()
        keras.utils.set_random_seed(0)
        learner = rl.ProMP(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(32, 32), seed=0), env,
            num_trajectories=10, seed=0)
        learner.compile(optimizer=keras.optimizers.Adam(3e-3))
        tasks = env.sample_tasks(10, seed=99)
        before = learner.adaptation_returns(tasks, num_steps=1).mean(0)
        learner.fit(env.task_dataset(5, seed=0), steps_per_epoch=12,
                    epochs=1, verbose=0)
        after = learner.adaptation_returns(tasks, num_steps=1).mean(0)
        # Untrained: about -70 before and after one step.
        self.assertLess(before[1], -55.0)
        self.assertGreater(after[0], before[0] + 10.0)
        self.assertGreater(after[1], before[1] + 10.0)
        # One adaptation step improves the trained policy's return, on
        # every one of the 10 goals' 10 trajectories on average.
        self.assertGreater(after[1], after[0] + 1.0)

    def test_adapted_policy_is_what_adaptation_returns_scores(self):
        env = rl.Navigation2D(horizon=15)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=2), env,
            num_trajectories=4)
        task = env.sample_tasks(1, seed=4)[0]
        adapted = learner.adapt(task, num_steps=1, seed=7)
        self.assertIsNot(adapted, learner.policy)
        self.assertFalse(np.allclose(adapted.get_weights()[0],
                                     learner.policy.get_weights()[0]))
        returns = learner.adaptation_returns(task[None], num_steps=1, seed=7)
        noise = np.random.default_rng(7).standard_normal(
            (2, 15, 1, 4, 2))[1][:, 0]
        state = np.zeros((4, 2))
        total = np.zeros(4)
        for t in range(15):
            outputs = adapted.predict(state, verbose=0)
            action = outputs[:, :2] + np.exp(outputs[:, 2:]) * noise[t]
            state = state + 0.1 * np.clip(action, -1, 1)
            total -= np.linalg.norm(state - task, axis=-1)
        self.assertAllClose(returns[0, 1], total.mean(), rtol=1e-4)


class ErrorsAndSavingTest(testing.TestCase):
    def test_bad_input(self):
        env = rl.Navigation2D()
        policy = rl.gaussian_mlp_policy(2, 2, hidden_units=(4,))
        with self.assertRaisesRegex(ValueError, "PureFunctionEnvironment"):
            rl.MAMLRL(policy, object())
        with self.assertRaisesRegex(ValueError, "4 outputs"):
            rl.MAMLRL(rl.gaussian_mlp_policy(2, 3), env)
        with self.assertRaisesRegex(ValueError, "inner_estimator"):
            rl.MetaPolicyGradient(policy, env, inner_estimator="dice")
        learner = rl.ProMP(policy, env)
        with self.assertRaisesRegex(ValueError, r"\[num_tasks, 2\]"):
            learner.adaptation_returns(np.zeros((3, 5)))
        with self.assertRaisesRegex(ValueError, "one task"):
            learner.adapt(np.zeros((2, 2)))
        learner.compile(optimizer="adam")
        with self.assertRaisesRegex(NotImplementedError,
                                    "adaptation_returns"):
            learner.evaluate(env.task_dataset(2, num_batches=1), verbose=0)

    def test_save_and_load(self):
        env = rl.Navigation2D(horizon=20)
        learner = rl.ProMP(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(4,), seed=0), env,
            inner_learning_rate=0.3, num_trajectories=3)
        learner.compile(optimizer=keras.optimizers.Adam(1e-2))
        learner.fit(env.task_dataset(2), steps_per_epoch=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "promp.keras")
        learner.save(path)
        loaded = keras.models.load_model(path)
        self.assertIsInstance(loaded, rl.ProMP)
        self.assertEqual(loaded.inner_learning_rate, 0.3)
        self.assertEqual(loaded.environment.horizon, 20)
        for a, b in zip(loaded.policy.get_weights(),
                        learner.policy.get_weights()):
            self.assertAllClose(a, b)
        tasks = env.sample_tasks(3, seed=0)
        self.assertAllClose(loaded.adaptation_returns(tasks),
                            learner.adaptation_returns(tasks), rtol=1e-5)


class StrategyTest(testing.TestCase):
    def _train(self, strategy, trust_region=None):
        env = rl.Navigation2D(horizon=8)
        with strategy.scope():
            policy = rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=1)
            learner = rl.MAMLRL(policy, env, num_trajectories=2, seed=0,
                                trust_region=trust_region)
            learner.compile(optimizer=keras.optimizers.SGD(0.1))
        initial = policy.get_weights()
        history = learner.fit(env.task_dataset(4, seed=0), steps_per_epoch=3,
                              verbose=0)
        return initial, policy.get_weights(), history.history

    def test_two_replicas_train_as_one_device(self):
        import tensorflow as tf

        initial, one, one_logs = self._train(tf.distribute.get_strategy())
        # Several MirroredStrategy objects in one process reuse the keys of
        # CPU collective ops; reducing to one device avoids collectives.
        mirrored = tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
        _, two, two_logs = self._train(mirrored)
        # Each replica rolls out its half of every meta-batch with that
        # half's share of the global noise, so the returns are one
        # device's; the weights differ by float32 rounding of the summed
        # gradients.
        for key in ("return_before", "return_after"):
            np.testing.assert_allclose(two_logs[key], one_logs[key],
                                       rtol=1e-5, err_msg=key)
        for before, a, b in zip(initial, one, two):
            np.testing.assert_allclose(b, a, atol=1e-6)
        self.assertGreater(max(np.abs(a - b).max()
                               for a, b in zip(initial, one)), 1e-3)

    def test_trust_region_step_is_refused_on_several_replicas(self):
        import tensorflow as tf

        mirrored = tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
        with self.assertRaisesRegex(ValueError, "TRPO outer step"):
            self._train(mirrored, trust_region=0.01)
