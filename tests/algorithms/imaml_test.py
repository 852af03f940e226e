import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import IMAML
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
        # step of gradient descent on the proximal objective.
        inputs, labels, theta, actual = self._setup(steps)
        expected = []
        for t in range(len(labels)):
            a, ys, aq, yq = self._task(inputs, labels, t)
            hessian = 2.0 / len(a) * a.T @ a
            phi = theta.copy()
            for _ in range(steps):
                phi = phi - 0.1 * (2.0 / len(a) * a.T @ (a @ phi - ys)
                                   + 2.0 * (phi - theta))
            g_query = 2.0 / len(aq) * aq.T @ (aq @ phi - yq)
            expected.append(np.linalg.solve(np.eye(4) + hessian / 2.0,
                                            g_query))
        np.testing.assert_allclose(actual, np.mean(expected, axis=0),
                                   rtol=1e-8, atol=1e-10)

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

    def test_cg_steps_matter(self):
        # One CG step is not the exact solve: the oracle above can fail.
        inputs, labels, theta, exact = self._setup(5)
        _, _, _, rough = self._setup(5, cg_steps=1)
        self.assertGreater(np.linalg.norm(rough - exact)
                           / np.linalg.norm(exact), 1e-3)

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
