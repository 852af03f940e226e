import numpy as np
import tensorflow as tf

from keras_meta import data
from keras_meta import testing


def _episodes(num_shots=6, num_queries=2, num_tasks=40, batch_size=8):
    return data.sinusoid(num_shots=num_shots, num_queries=num_queries,
                         num_tasks=num_tasks, batch_size=batch_size, seed=0)


class RandomContextTest(testing.TestCase):
    def test_context_sizes_and_targets(self):
        plain = list(_episodes().as_numpy_iterator())
        sizes = []
        for (inputs, labels), (before, before_labels) in zip(
                data.random_context(_episodes(), min_size=2,
                                    seed=3).as_numpy_iterator(), plain):
            w = inputs["support_weights"]
            k = w.sum(1).astype(int)
            sizes += k.tolist()
            # The first k support points are the context.
            self.assertAllClose(w, np.arange(6)[None] < k[:, None])
            # Every support point, then the queries, are the targets.
            self.assertAllClose(inputs["query_inputs"], np.concatenate(
                [before["support_inputs"], before["query_inputs"]], 1))
            self.assertAllClose(labels, np.concatenate(
                [before["support_labels"], before_labels], 1))
            self.assertAllClose(inputs["support_inputs"],
                                before["support_inputs"])
        # Uniform on 2..6: every size appears, none outside.
        self.assertEqual(sorted(set(sizes)), [2, 3, 4, 5, 6])

    def test_seeded_and_repeatable(self):
        def sizes(seed):
            return np.concatenate([
                inputs["support_weights"].sum(1) for inputs, _ in
                data.random_context(_episodes(), seed=seed)
                .as_numpy_iterator()])

        self.assertAllClose(sizes(0), sizes(0))
        self.assertFalse(np.array_equal(sizes(0), sizes(1)))

    def test_without_context_among_targets(self):
        inputs, labels = next(data.random_context(
            _episodes(), min_size=4, max_size=5,
            targets_include_context=False).as_numpy_iterator())
        self.assertEqual(labels.shape, (8, 2, 1))
        self.assertEqual(inputs["query_inputs"].shape, (8, 2, 1))
        self.assertTrue(set(inputs["support_weights"].sum(1)) <= {4.0, 5.0})

    def test_existing_weights_are_kept(self):
        inputs, labels = next(iter(_episodes(num_tasks=2, batch_size=2)))
        inputs = dict(inputs)
        inputs["support_weights"] = tf.constant(
            [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], tf.float32)
        query_weights = tf.constant([[1, 0], [1, 1]], tf.float32)
        dataset = tf.data.Dataset.from_tensors((inputs, labels,
                                                query_weights))
        out, out_labels, weights = next(data.random_context(
            dataset, min_size=6).as_numpy_iterator())
        # Context size 6, but padding stays padding, as a context point and
        # as a target.
        self.assertAllClose(out["support_weights"],
                            inputs["support_weights"])
        self.assertAllClose(weights, [[1, 1, 1, 1, 0, 0, 1, 0],
                                      [1, 1, 1, 1, 1, 1, 1, 1]])
        self.assertEqual(out_labels.shape, (2, 8, 1))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "min_size <= max_size"):
            data.random_context(_episodes(), min_size=4, max_size=3)
        with self.assertRaisesRegex(ValueError, "6 support points"):
            data.random_context(_episodes(), max_size=7)
        with self.assertRaisesRegex(ValueError, "batched episodes"):
            data.random_context(tf.data.Dataset.range(3))
