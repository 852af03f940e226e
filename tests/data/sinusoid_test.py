import numpy as np
from absl.testing import parameterized

from keras_meta import data
from keras_meta import testing


class SinusoidTest(testing.TestCase):
    def test_shapes_and_ranges(self):
        dataset = data.sinusoid(num_shots=5, num_queries=7, batch_size=4)
        inputs, labels = next(iter(dataset))
        self.assertEqual(tuple(inputs["support_inputs"].shape), (4, 5, 1))
        self.assertEqual(tuple(inputs["support_labels"].shape), (4, 5, 1))
        self.assertEqual(tuple(inputs["query_inputs"].shape), (4, 7, 1))
        self.assertEqual(tuple(labels.shape), (4, 7, 1))
        x = np.concatenate([inputs["support_inputs"], inputs["query_inputs"]], 1)
        self.assertTrue(np.all((x >= -5) & (x <= 5)))

    def test_labels_follow_task_parameters(self):
        dataset = data.sinusoid(num_shots=10, num_tasks=8, batch_size=8, seed=3)
        inputs, labels = next(iter(dataset))
        amplitudes, phases = data.sinusoid_parameters(8, seed=3)
        self.assertTrue(np.all((amplitudes >= 0.1) & (amplitudes <= 5.0)))
        self.assertTrue(np.all((phases >= 0) & (phases <= np.pi)))
        for t in range(8):
            for x, y in (
                (inputs["support_inputs"][t], inputs["support_labels"][t]),
                (inputs["query_inputs"][t], labels[t]),
            ):
                expected = amplitudes[t] * np.sin(np.asarray(x) - phases[t])
                self.assertAllClose(y, expected, atol=1e-5, rtol=1e-5)

    def test_parameters_cover_the_ranges(self):
        amplitudes, phases = data.sinusoid_parameters(400, seed=0)
        self.assertLess(amplitudes.min(), 0.3)
        self.assertGreater(amplitudes.max(), 4.8)
        self.assertLess(phases.min(), 0.1)
        self.assertGreater(phases.max(), 3.0)

    def test_fixed_tasks_are_identical_on_every_pass(self):
        dataset = data.sinusoid(num_tasks=30, batch_size=8, seed=5)
        first = list(dataset.as_numpy_iterator())
        second = list(dataset.as_numpy_iterator())
        self.assertEqual(len(first), 4)  # 8 + 8 + 8 + 6 tasks
        self.assertEqual(first[-1][1].shape[0], 6)
        for a, b in zip(first, second):
            self.assertAllClose(a[1], b[1], atol=0, rtol=0)

    def test_seeds_give_different_tasks(self):
        a = next(iter(data.sinusoid(seed=0)))[1]
        b = next(iter(data.sinusoid(seed=1)))[1]
        self.assertFalse(np.allclose(a, b))

    @parameterized.named_parameters(
        ("num_shots", {"num_shots": 0}, "num_shots"),
        ("batch_size", {"batch_size": -1}, "batch_size"),
        ("num_tasks", {"num_tasks": 0}, "num_tasks"),
        ("range", {"amplitude_range": (5.0, 0.1)}, "low <= high"),
    )
    def test_errors(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            data.sinusoid(**kwargs)
