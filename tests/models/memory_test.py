import numpy as np
from keras import ops

from keras_meta import testing
from keras_meta.models import memory


def _numpy_least_used(usage, count):
    # A stable sort: the lower index first among equal usages.
    order = np.argsort(usage, axis=-1, kind="stable")[:, :count]
    return np.eye(usage.shape[-1])[order]


class LeastUsedTest(testing.TestCase):
    def test_a_fresh_memory_writes_to_its_first_slots(self):
        # A fresh memory's usage is all ties: every backend must pick the
        # same slots (torch's `topk` alone returns tied slots in no fixed
        # order).
        chosen = memory._least_used(ops.zeros((2, 6)), 3, "float32")
        self.assertAllClose(chosen, _numpy_least_used(np.zeros((2, 6)), 3))

    def test_matches_a_stable_sort_with_ties(self):
        rng = np.random.default_rng(0)
        usage = rng.integers(0, 3, size=(5, 8)).astype("float32")
        usage[0] = [0.5, 0.1, 0.1, 0.0, 0.5, 0.0, 0.1, 0.2]
        chosen = memory._least_used(ops.convert_to_tensor(usage), 4,
                                    "float32")
        expected = _numpy_least_used(usage, 4)
        self.assertAllClose(chosen, expected)
        # Row 0 by hand: slots 3 and 5 (usage 0), then 1 and 2 (0.1).
        self.assertEqual(np.argmax(expected[0], -1).tolist(), [3, 5, 1, 2])
