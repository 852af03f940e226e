"""The inner-loop pieces against NumPy references on quadratic losses."""

import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta import inner
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

    def test_looped_steps_equal_unrolled_ones_to_second_order(self):
        # A cubic term makes the second-order terms of the meta-gradient
        # non-trivial; the state counts the steps.
        def loss(weights, state):
            value, _ = _quadratic(weights, state)
            return value + ops.sum(weights[0] ** 3), state + 1.0

        def outer(loop, first_order):
            def meta_loss(weights):
                (w,), steps = inner.gradient_descent(
                    loss, weights, ops.convert_to_tensor(0.0, "float64"),
                    learning_rate=0.1, num_steps=3, loop=loop,
                    first_order=first_order)
                return ops.sum(w ** 2), steps

            # Compiled, as in a training step (a graph loop on
            # TensorFlow).
            @backend.compiled
            def value_and_gradient(w0):
                (value, steps), (gradient,) = backend.value_and_grad(
                    meta_loss, [w0])
                return value, steps, gradient

            return [ops.convert_to_numpy(x) for x in value_and_gradient(
                ops.convert_to_tensor([0.3, 0.7], "float64"))]

        for first_order in (False, True):
            unrolled = outer(False, first_order)
            looped = outer(True, first_order)
            self.assertEqual(looped[1], 3.0)
            for a, b in zip(looped, unrolled):
                self.assertAllClose(a, b, atol=1e-12)
        # The first-order gradient differs: the comparison can tell.
        self.assertGreater(np.abs(outer(True, True)[2]
                                  - outer(True, False)[2]).max(), 1e-3)

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
