"""The inner-loop pieces against NumPy references on quadratic losses."""

import numpy as np
from keras import ops

from keras_meta import inner
from keras_meta.backend import promotion
from keras_meta import testing

# f(w) = 0.5 * (w - c)^T A (w - c): gradient A (w - c).
A = np.array([[3.0, 0.5], [0.5, 1.0]])
C = np.array([1.0, -2.0])


def _quadratic(weights, state):
    (w,) = weights
    d = w - ops.convert_to_tensor(C, "float64")
    value = 0.5 * ops.sum(d * ops.matmul(ops.convert_to_tensor(A, "float64"),
                                         d))
    return value, state


class GradientDescentTest(testing.TestCase):
    def test_steps_match_numpy(self):
        w0 = np.array([0.3, 0.7])
        (w,), state = inner.gradient_descent(
            _quadratic, [ops.convert_to_tensor(w0, "float64")], "state",
            learning_rate=0.1, num_steps=3)
        expected = w0.copy()
        for _ in range(3):
            expected = expected - 0.1 * A @ (expected - C)
        self.assertAllClose(w, expected, atol=1e-12)
        self.assertEqual(state, "state")

    def test_mask_and_per_weight_rates(self):
        weights = [ops.ones((2,), "float64"), ops.ones((2,), "float64")]

        def loss(ws, state):
            return ops.sum(ops.square(ws[0])) + 3.0 * ops.sum(ws[1]), state

        adapted, _ = inner.gradient_descent(
            loss, weights, None, learning_rate=[0.25, 0.5], num_steps=1,
            mask=[True, False])
        self.assertAllClose(adapted[0], [0.5, 0.5])  # 1 - 0.25 * 2
        self.assertAllClose(adapted[1], [1.0, 1.0])  # masked: unchanged

    def test_gradient_step(self):
        got = inner.gradient_step([np.array([1.0, 2.0])],
                                  [np.array([0.5, -1.0])], 0.1)
        self.assertAllClose(got[0], [0.95, 2.1])


class AdamTest(testing.TestCase):
    def test_steps_match_numpy(self):
        w0 = np.array([0.3, 0.7])
        (w,), _ = inner.adam(
            _quadratic, [ops.convert_to_tensor(w0, "float64")], None,
            learning_rate=0.1, num_steps=3, beta_1=0.5, beta_2=0.9)
        expected, m, v = w0.copy(), np.zeros(2), np.zeros(2)
        for step in range(1, 4):
            g = A @ (expected - C)
            m = 0.5 * m + 0.5 * g
            v = 0.9 * v + 0.1 * g ** 2
            expected = expected - 0.1 * (m / (1 - 0.5 ** step)) / (
                np.sqrt(v / (1 - 0.9 ** step)) + 1e-8)
        self.assertAllClose(w, expected, atol=1e-10)


class ConjugateGradientTest(testing.TestCase):
    def test_solves_a_positive_definite_system(self):
        b = np.array([1.0, 2.0])
        # Float64 as inside a float64 learner's steps: outside them,
        # Keras's promotion rounds some float64 results to float32 on
        # torch (`keras_meta.backend.promotion`).
        with promotion.float64_promotion():
            (x,) = inner.conjugate_gradient(
                lambda v: [ops.matmul(ops.convert_to_tensor(A, "float64"),
                                      v[0])],
                [ops.convert_to_tensor(b, "float64")], num_steps=2)
        self.assertAllClose(x, np.linalg.solve(A, b), atol=1e-10)

    def test_negative_curvature_at_first_returns_b(self):
        b = np.array([1.0, 2.0])
        (x,) = inner.conjugate_gradient(
            lambda v: [-v[0]], [ops.convert_to_tensor(b, "float64")],
            num_steps=3)
        self.assertAllClose(x, b)
