"""Every learner learns: meta-training lowers the query loss well below
chance on an easy task family, with every learner's own inner loop."""

import math

import keras
import pytest
from absl.testing import parameterized

from keras_meta import testing

# The learning dynamics are the algorithm's, not the backend's: the
# finite-difference oracles check the JAX backend's gradients.
pytestmark = pytest.mark.tensorflow_only

NUM_WAYS = 3
# First-order MAML, CAVIA (8 context values), SNAIL (whose sequence
# network diverges at Adam's 1e-2) and MANN (whose loss sits at ln 3 for
# about 60 steps before it finds the labels in its memory) learn more
# slowly.
STEPS = {"fomaml": 80, "cavia": 120, "snail": 160, "mann": 240}
LEARNING_RATES = {"snail": 1e-3, "mann": 1e-2}


def _episodes(seed, num_tasks=4):
    # Each task draws fresh class prototypes: only a learner that adapts to
    # its support set beats chance on its queries.
    return testing.toy_episodes(num_tasks=num_tasks, num_ways=NUM_WAYS,
                                seed=seed)


def _cases():
    return [(name, name, factory)
            for name, factory, _ in testing.every_learner(NUM_WAYS,
                                                          dropout=None)]


class TrainingLearnsTest(testing.TestCase):
    @parameterized.named_parameters(*_cases())
    @pytest.mark.slow  # trains every learner for many steps
    def test_training_lowers_the_query_loss(self, name, factory):
        keras.utils.set_random_seed(0)
        learner = factory("inductive")
        learner.compile(
            optimizer=keras.optimizers.Adam(LEARNING_RATES.get(name, 1e-2)),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
        test = _episodes(99, num_tasks=16)
        before = learner.evaluate(*test, verbose=0, return_dict=True)["loss"]
        for seed in range(STEPS.get(name, 40)):
            learner.train_on_batch(*_episodes(seed))
        after = learner.evaluate(*test, verbose=0, return_dict=True)["loss"]
        # Lower than before training, and well below chance (ln 3).
        self.assertLess(after, before - 0.02)
        self.assertLess(after, 0.8 * math.log(NUM_WAYS))
