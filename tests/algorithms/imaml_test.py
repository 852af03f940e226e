import keras
import numpy as np
import pytest
from absl.testing import parameterized

from keras_meta import IMAML
from keras_meta import inner
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _linear_model():
    return testing.linear_regressor()


class IMAMLTest(testing.TestCase):
    def _setup(self, steps, rate=0.1, strength=2.0, cg_steps=4):
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        imaml = IMAML(_linear_model(), inner_learning_rate=rate,
                      num_inner_steps=steps, l2_regularizer=strength,
                      cg_steps=cg_steps)
        imaml.compile(loss="mse")
        kernel, bias = (v.numpy() for v in imaml.model.trainable_variables)
        theta = np.concatenate([kernel, bias[:, None]])
        gradient = testing.meta_gradient(imaml, inputs, labels)
        actual = np.concatenate([gradient[0], gradient[1][:, None]])
        return inputs, labels, theta, actual

    @staticmethod
    def _task(inputs, labels, t):
        xs, xq = inputs["support_inputs"][t], inputs["query_inputs"][t]
        a = np.concatenate([xs, np.ones((len(xs), 1))], 1)
        aq = np.concatenate([xq, np.ones((len(xq), 1))], 1)
        return a, inputs["support_labels"][t], aq, labels[t]

    @parameterized.named_parameters(("one_step", 1), ("five_steps", 5))
    def test_implicit_gradient_at_the_inner_iterate(self, steps):
        # With a quadratic support loss the Hessian H = (2/n) A^T A is
        # constant, and 4 CG steps on 4 weights solve exactly: the
        # meta-gradient is (I + H / lambda)^-1 g_query(phi_k), phi_k the k-th
        # iterate of the monotone gradient descent on the proximal
        # objective (a step that does not lower it is undone and the rate
        # halved; an accepted one grows the rate by a quarter).
        inputs, labels, theta, actual = self._setup(steps, rate=0.5)
        expected, rejections = [], 0
        for t in range(len(labels)):
            a, ys, aq, yq = self._task(inputs, labels, t)
            hessian = 2.0 / len(a) * a.T @ a

            def objective(phi):
                return (np.mean((a @ phi - ys) ** 2)
                        + np.sum((phi - theta) ** 2))

            def gradient(phi):
                return (2.0 / len(a) * a.T @ (a @ phi - ys)
                        + 2.0 * (phi - theta))

            phi, rate = theta.copy(), 0.5
            for _ in range(steps):
                candidate = phi - rate * gradient(phi)
                if objective(candidate) <= objective(phi):
                    phi, rate = candidate, 1.25 * rate
                else:
                    rate, rejections = 0.5 * rate, rejections + 1
            g_query = 2.0 / len(aq) * aq.T @ (aq @ phi - yq)
            expected.append(np.linalg.solve(np.eye(4) + hessian / 2.0,
                                            g_query))
        np.testing.assert_allclose(actual, np.mean(expected, axis=0),
                                   rtol=1e-8, atol=1e-10)
        if steps > 1:
            # The rate of 0.5 overshoots: both branches of the rule ran.
            self.assertGreater(rejections, 0)

    @pytest.mark.slow_on_jax
    def test_converged_inner_loop_gives_the_true_meta_gradient(self):
        # phi*(theta) = (H + lambda I)^-1 (lambda theta + (2/n) A^T y) in
        # closed form; the derivative of L_query(phi*(theta)) is
        # lambda (H + lambda I)^-1 g_query(phi*).
        inputs, labels, theta, actual = self._setup(60, rate=0.15)
        expected = []
        for t in range(len(labels)):
            a, ys, aq, yq = self._task(inputs, labels, t)
            system = 2.0 / len(a) * a.T @ a + 2.0 * np.eye(4)
            phi = np.linalg.solve(system, 2.0 * theta + 2.0 / len(a) * a.T @ ys)
            g_query = 2.0 / len(aq) * aq.T @ (aq @ phi - yq)
            expected.append(2.0 * np.linalg.solve(system, g_query))
        np.testing.assert_allclose(actual, np.mean(expected, axis=0),
                                   rtol=1e-7, atol=1e-9)

    def _network_gradients(self, gradients=True, **kwargs):
        # A tanh network: the support loss is not convex in its weights.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes(num_tasks=2)
        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(4, activation="tanh", dtype="float64",
                               kernel_initializer=keras.initializers
                               .RandomNormal(stddev=1.5, seed=1)),
            keras.layers.Dense(1, dtype="float64",
                               kernel_initializer=keras.initializers
                               .RandomNormal(stddev=1.5, seed=2)),
        ])
        imaml = IMAML(model, **kwargs)
        imaml.compile(loss="mse")
        history = imaml.fit(inputs, labels, epochs=1, verbose=0,
                            batch_size=2)
        residual = history.history["inner_residual"][0]
        if not gradients:
            return None, residual
        # `fit()` moved the weights: measure at the new point.
        gradient = testing.meta_gradient(imaml, inputs, labels)
        numeric = testing.finite_difference_gradient(
            testing.meta_loss_function(
                imaml, keras.losses.MeanSquaredError(), inputs, labels),
            [v.numpy() for v in imaml.trainable_variables])
        flat = np.concatenate([g.ravel() for g in gradient])
        flat_numeric = np.concatenate([g.ravel() for g in numeric])
        cosine = flat @ flat_numeric / (
            np.linalg.norm(flat) * np.linalg.norm(flat_numeric))
        return cosine, residual

    @pytest.mark.slow_on_jax
    def test_implicit_gradient_of_a_solved_nonconvex_inner_problem(self):
        # The inner problem solved (residual below 1e-2) and lambda large
        # enough for `I + H / lambda` to be positive definite; 21 CG steps
        # solve exactly for the 21 weights. The finite differences differentiate
        # the solved inner problem itself.
        cosine, residual = self._network_gradients(
            inner_learning_rate=0.1, num_inner_steps=15,
            l2_regularizer=8.0, cg_steps=21)
        self.assertLess(residual, 1e-2)
        self.assertGreater(cosine, 0.99)

    def test_unsolved_inner_problem_is_reported(self):
        # Two tiny steps leave the proximal problem far from solved: the
        # residual metric says so.
        _, residual = self._network_gradients(
            gradients=False, inner_learning_rate=1e-4, num_inner_steps=2,
            l2_regularizer=4.0, cg_steps=21)
        self.assertGreater(residual, 0.5)

    def test_negative_curvature_stops_conjugate_gradient(self):
        # A = diag(2, -1): the second CG direction has negative curvature,
        # so CG keeps the first iterate; with b along the negative
        # eigenvector it returns b itself.
        matrix = np.diag([2.0, -1.0])

        def matvec(vectors):
            return [keras.ops.sum(
                keras.ops.multiply(matrix, vectors[0][None, :]), axis=1)]

        x = inner.conjugate_gradient(matvec, [np.array([1.0, 1.0])], 2)
        self.assertTrue(np.all(np.isfinite(keras.ops.convert_to_numpy(x[0]))))
        x = inner.conjugate_gradient(matvec, [np.array([0.0, 3.0])], 2)
        self.assertAllClose(x[0], np.array([0.0, 3.0]))
        x = inner.conjugate_gradient(
            lambda v: [2.0 * v[0]], [np.array([1.0, -4.0])], 2)
        self.assertAllClose(x[0], np.array([0.5, -2.0]))

    def test_cg_steps_matter(self):
        # One CG step is not the exact solve: the oracle above can fail.
        inputs, labels, theta, exact = self._setup(5)
        _, _, _, rough = self._setup(5, cg_steps=1)
        self.assertGreater(np.linalg.norm(rough - exact)
                           / np.linalg.norm(exact), 1e-3)

    @pytest.mark.slow_on_jax
    def test_basics(self):
        self.run_meta_model_test(
            cls=IMAML,
            init_kwargs={"model": testing.tiny_classifier(),
                         "inner_learning_rate": 0.1, "num_inner_steps": 3,
                         "cg_steps": 2},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "l2_regularizer"):
            IMAML(testing.tiny_classifier(), l2_regularizer=-1.0)
        with self.assertRaisesRegex(ValueError, "cg_steps"):
            IMAML(testing.tiny_classifier(), cg_steps=0)
