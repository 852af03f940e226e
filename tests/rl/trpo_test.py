"""The TRPO outer step of the meta-policy-gradient learners."""

import keras
import numpy as np
import pytest

from keras_meta import backend
from keras_meta import rl
from keras_meta import testing
from tests.rl.meta_policy_gradient_test import _flat
from tests.rl.meta_policy_gradient_test import _linear_policy
from tests.rl.meta_policy_gradient_test import _pre_and_post_batches
from tests.rl.meta_policy_gradient_test import _unflatten

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras_meta.rl trains on the TensorFlow backend")

RADIUS = 0.01


def _learner_and_batches(damping=1e-3, **kwargs):
    policy = _linear_policy()
    learner = rl.MAMLRL(policy, rl.Navigation2D(horizon=4),
                        inner_learning_rate=0.5, trust_region=RADIUS,
                        cg_iterations=20, cg_damping=damping, **kwargs)
    return learner, _pre_and_post_batches(learner)


def _kl_gradient(learner, batches, theta):
    weights = [keras.ops.convert_to_tensor(w)
               for w in _unflatten(learner.policy, theta)]
    (_, _), gradients = backend.value_and_grad(
        lambda w: (learner.meta_terms(w, batches)[1], ()), weights)
    return _flat([g.numpy() for g in gradients])


def _terms(learner, batches, theta):
    weights = [keras.ops.convert_to_tensor(w)
               for w in _unflatten(learner.policy, theta)]
    loss, kl = learner.meta_terms(weights, batches)
    return float(loss), float(kl)


class TrustRegionStepTest(testing.TestCase):
    def test_fisher_vector_product_matches_finite_differences(self):
        learner, batches = _learner_and_batches(damping=0.0)
        theta = _flat([v.numpy() for v in learner.policy.trainable_variables])
        # At the sampling policies the KL and its gradient vanish.
        self.assertAllClose(_terms(learner, batches, theta)[1], 0.0,
                            atol=1e-12)
        self.assertAllClose(_kl_gradient(learner, batches, theta),
                            np.zeros_like(theta), atol=1e-10)
        vector = np.random.default_rng(0).normal(size=theta.shape)
        product = learner.fisher_vector_product(
            learner._weights(), batches,
            [keras.ops.convert_to_tensor(v)
             for v in _unflatten(learner.policy, vector)])
        eps = 1e-5
        numeric = (_kl_gradient(learner, batches, theta + eps * vector)
                   - _kl_gradient(learner, batches, theta - eps * vector)
                   ) / (2 * eps)
        self.assertAllClose(_flat([p.numpy() for p in product]), numeric,
                            rtol=1e-6, atol=1e-9)

    def test_step_matches_a_numpy_trust_region_step(self):
        damping = 1e-3
        learner, batches = _learner_and_batches(damping=damping)
        variables = learner.policy.trainable_variables
        theta = _flat([v.numpy() for v in variables])
        n = len(theta)
        # The Fisher matrix column by column (finite differences of the KL
        # gradient), the outer loss's gradient by finite differences.
        eps = 1e-5
        fisher = np.stack([
            (_kl_gradient(learner, batches, theta + eps * e)
             - _kl_gradient(learner, batches, theta - eps * e)) / (2 * eps)
            for e in np.eye(n)], axis=1)
        fisher = 0.5 * (fisher + fisher.T) + damping * np.eye(n)
        gradient = np.array([
            (_terms(learner, batches, theta + eps * e)[0]
             - _terms(learner, batches, theta - eps * e)[0]) / (2 * eps)
            for e in np.eye(n)])
        direction = -np.linalg.solve(fisher, gradient)
        step = np.sqrt(2 * RADIUS / (direction @ fisher @ direction)) * (
            direction)
        loss = _terms(learner, batches, theta)[0]
        expected = theta
        for k in range(15):
            candidate = theta + 0.8 ** k * step
            new_loss, kl = _terms(learner, batches, candidate)
            if new_loss < loss and kl <= RADIUS:
                expected = candidate
                break
        self.assertFalse(np.array_equal(expected, theta))
        returned = learner.trust_region_step(batches)
        self.assertAllClose(float(returned), loss, rtol=1e-12)
        self.assertAllClose(_flat([v.numpy() for v in variables]), expected,
                            rtol=1e-5, atol=1e-7)
        # The step stays in the trust region and lowers the outer loss.
        new_loss, kl = _terms(learner, batches, expected)
        self.assertLessEqual(kl, RADIUS)
        self.assertLess(new_loss, loss)

    def test_a_step_that_cannot_qualify_keeps_the_weights(self):
        # With zero advantages the outer loss is the same everywhere, so
        # no candidate lowers it: the line search rejects every step.
        learner, batches = _learner_and_batches()
        for batch in batches:
            batch["advantages"] = keras.ops.zeros_like(batch["advantages"])
        before = [v.numpy() for v in learner.policy.trainable_variables]
        learner.trust_region_step(batches)
        for old, variable in zip(before,
                                 learner.policy.trainable_variables):
            self.assertAllClose(variable.numpy(), old, atol=0.0)

    @pytest.mark.slow  # traces the TRPO step (about 20 s)
    def test_fit(self):
        env = rl.Navigation2D(horizon=6)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=0), env,
            num_trajectories=4, trust_region=RADIUS)
        learner.compile()
        before = [v.numpy() for v in learner.policy.trainable_variables]
        learner.fit(env.task_dataset(3, seed=0), steps_per_epoch=2,
                    epochs=1, verbose=0)
        moved = max(np.abs(v.numpy() - b).max() for v, b in zip(
            learner.policy.trainable_variables, before))
        self.assertGreater(moved, 0.0)

    def test_config_and_errors(self):
        env = rl.Navigation2D(horizon=6)
        learner = rl.MAMLRL(
            rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=0), env,
            trust_region=RADIUS)
        config = learner.get_config()
        self.assertEqual((config["trust_region"], config["cg_iterations"],
                          config["cg_damping"]), (RADIUS, 10, 1e-5))
        restored = rl.MAMLRL.from_config(config)
        self.assertEqual(restored.trust_region, RADIUS)
        with self.assertRaisesRegex(ValueError, "trust_region"):
            rl.MAMLRL(rl.gaussian_mlp_policy(2, 2, hidden_units=(4,)), env,
                      trust_region=0.0)
        with self.assertRaisesRegex(ValueError, "cg_iterations"):
            rl.MAMLRL(rl.gaussian_mlp_policy(2, 2, hidden_units=(4,)), env,
                      trust_region=0.01, cg_iterations=0)
