"""The vectorized stateless generator equals TensorFlow's ops bit for bit,
and the sinusoid tasks drawn with it are those drawn one task at a time:
the same inputs, amplitudes and phases bit for bit, and the same labels to
within two units in the last place (TensorFlow's sine rounds differently
in vector lanes and in the scalar remainder of a tensor, so the same input
can round differently at a different position)."""


import numpy as np
import tensorflow as tf

from keras_meta import data
from keras_meta import episode
from keras_meta import testing
from keras_meta.data import philox
from keras_meta.data import sinusoid_tasks as sinusoid_module

# Seed pairs covering signs, zero, both 32-bit halves and the int64 limits.
SEEDS = np.array([
    [0, 0], [7, 12345], [-1, 3], [2**31, -(2**40)], [2**63 - 1, -(2**63)],
    [123456789012, 987654321], [5, -5], [1, 2**32 + 17]], dtype=np.int64)


def _task_oracle(seed, index, num_points, amplitude_range=(0.1, 5.0),
                 phase_range=(0.0, np.pi), input_range=(-5.0, 5.0)):
    """One sinusoid task from TensorFlow's own stateless ops."""
    seeds = tf.random.experimental.stateless_split(
        tf.constant([seed, index], tf.int64), 3)
    amplitude = tf.random.stateless_uniform((), seeds[0], *amplitude_range)
    phase = tf.random.stateless_uniform((), seeds[1], *phase_range)
    x = tf.random.stateless_uniform((num_points, 1), seeds[2], *input_range)
    return amplitude.numpy(), phase.numpy(), x.numpy(), (
        amplitude * tf.sin(x - phase)).numpy()


def _assert_labels(actual, expected):
    np.testing.assert_array_max_ulp(np.asarray(actual), expected, maxulp=2)


class PhiloxTest(testing.TestCase):
    def test_split_equals_tensorflow(self):
        for num in (1, 2, 3, 7):
            mine = philox.split(tf.constant(SEEDS), num).numpy()
            for seed, row in zip(SEEDS, mine):
                expected = tf.random.experimental.stateless_split(
                    tf.constant(seed), num).numpy()
                np.testing.assert_array_equal(row, expected)

    def test_uniform_equals_tensorflow(self):
        for num, (low, high) in ((1, (0.0, 1.0)), (4, (0.1, 5.0)),
                                 (13, (-5.0, 5.0)), (40, (0.0, np.pi))):
            mine = philox.uniform(tf.constant(SEEDS), num, low, high).numpy()
            for seed, row in zip(SEEDS, mine):
                expected = tf.random.stateless_uniform(
                    [num], tf.constant(seed), low, high).numpy()
                np.testing.assert_array_equal(row, expected)

    def test_leading_dimensions(self):
        grid = tf.constant(SEEDS.reshape(2, 4, 2))
        self.assertEqual(tuple(philox.split(grid, 3).shape), (2, 4, 3, 2))
        np.testing.assert_array_equal(
            philox.uniform(grid, 5, 0.0, 1.0).numpy().reshape(8, 5),
            philox.uniform(tf.constant(SEEDS), 5, 0.0, 1.0).numpy())


class SinusoidStreamTest(testing.TestCase):
    def assert_stream(self, dataset, seed, num_shots, num_queries,
                      batch_sizes):
        index = 0
        count = 0
        for (inputs, query_labels), size in zip(dataset, batch_sizes):
            self.assertEqual(query_labels.shape[0], size)
            for row in range(size):
                _, _, x, y = _task_oracle(seed, index, num_shots + num_queries)
                np.testing.assert_array_equal(
                    inputs[episode.SUPPORT_INPUTS][row], x[:num_shots])
                _assert_labels(inputs[episode.SUPPORT_LABELS][row],
                               y[:num_shots])
                np.testing.assert_array_equal(
                    inputs[episode.QUERY_INPUTS][row], x[num_shots:])
                _assert_labels(query_labels[row], y[num_shots:])
                index += 1
            count += 1
        self.assertEqual(count, len(batch_sizes))

    def test_endless_stream_equals_per_task_draws(self):
        # Batches across a chunk boundary: 1024 // 25 * 25 = 1000 tasks.
        dataset = data.sinusoid(num_shots=3, num_queries=2, batch_size=25,
                                seed=11)
        self.assert_stream(dataset.take(2), 11, 3, 2, [25, 25])
        tail = dataset.skip(39).take(2)
        inputs, labels = next(iter(tail))
        _, _, x, y = _task_oracle(11, 39 * 25, 5)
        np.testing.assert_array_equal(inputs[episode.SUPPORT_INPUTS][0],
                                      x[:3])
        _assert_labels(labels[0], y[3:])
        inputs, labels = list(tail)[1]
        _, _, x, y = _task_oracle(11, 40 * 25 + 24, 5)
        _assert_labels(labels[24], y[3:])

    def test_finite_stream_keeps_the_partial_batch(self):
        dataset = data.sinusoid(num_shots=2, num_queries=4, batch_size=4,
                                num_tasks=10, seed=-3)
        self.assert_stream(dataset, -3, 2, 4, [4, 4, 2])
        self.assertEqual(int(dataset.cardinality()), 3)

    def test_parameters_equal_per_task_draws(self):
        amplitudes, phases = data.sinusoid_parameters(5, seed=2)
        for index in range(5):
            amplitude, phase, _, _ = _task_oracle(2, index, 1)
            self.assertEqual(amplitudes[index], amplitude)
            self.assertEqual(phases[index], phase)

    def test_custom_ranges(self):
        _, _, x, y = sinusoid_module._tasks(
            tf.constant([4], tf.int64), 9, (1, 2), (0.5, 0.75), (0, 1), 6)
        _, _, x_oracle, y_oracle = _task_oracle(
            9, 4, 6, (1.0, 2.0), (0.5, 0.75), (0.0, 1.0))
        np.testing.assert_array_equal(x[0], x_oracle)
        _assert_labels(y[0], y_oracle)
