"""`keras_meta.losses` against NumPy references."""

import keras
import numpy as np

from keras_meta import losses
from keras_meta import testing


class WeightedMeanTest(testing.TestCase):
    def test_matches_numpy(self):
        values = np.arange(12, dtype="float64").reshape(3, 4)
        weights = np.array([1.0, 0.0, 2.0])
        self.assertAllClose(
            losses.weighted_mean(values, weights),
            (values * weights[:, None]).sum() / (4 * weights.sum()))
        self.assertAllClose(losses.weighted_mean(values), values.mean())

    def test_all_padding_is_zero_not_nan(self):
        self.assertAllClose(
            losses.weighted_mean(np.ones(3), np.zeros(3)), 0.0)


class UnreducedTest(testing.TestCase):
    def test_one_value_per_example(self):
        fn = losses.unreduced("mse")
        out = fn(np.zeros((5, 2)), np.ones((5, 2)))
        self.assertEqual(tuple(out.shape), (5,))
        self.assertAllClose(out, np.ones(5))
        fn = losses.unreduced(keras.losses.MeanAbsoluteError())
        self.assertAllClose(fn(np.zeros((2, 1)), np.full((2, 1), 3.0)),
                            [3.0, 3.0])

    def test_averages_over_batch(self):
        self.assertTrue(losses.averages_over_batch("mse"))
        self.assertTrue(losses.averages_over_batch(
            keras.losses.MeanSquaredError()))
        self.assertFalse(losses.averages_over_batch(
            keras.losses.MeanSquaredError(reduction="sum")))
        self.assertFalse(losses.averages_over_batch(None))
        self.assertFalse(losses.averages_over_batch({"a": "mse"}))


class GaussianNegativeLogLikelihoodTest(testing.TestCase):
    def test_matches_the_closed_form(self):
        y = np.array([[0.5], [-1.0]])
        mean = np.array([[0.0], [1.0]])
        std = np.array([[2.0], [0.5]])
        expected = (0.5 * np.log(2 * np.pi * std ** 2)
                    + (y - mean) ** 2 / (2 * std ** 2)).sum(-1).mean()
        got = losses.GaussianNegativeLogLikelihood()(
            y, np.concatenate([mean, std], -1))
        self.assertAllClose(got, expected, rtol=1e-6)
