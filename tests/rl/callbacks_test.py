import keras
import numpy as np
import pytest

from keras_meta import rl
from keras_meta import testing
from keras_meta.experiments import navigation

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras_meta.rl trains on the TensorFlow backend")


class WeightsPerEpoch(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


class AdaptationReturnsTest(testing.TestCase):
    def fit(self, restore_best_weights):
        env = rl.Navigation2D(horizon=10)
        learner = navigation.build("maml", env, inner_learning_rate=0.5,
                                   num_trajectories=2, seed=0)
        # A large outer rate, so that the weights and returns move.
        learner.compile(optimizer=keras.optimizers.Adam(0.05))
        tasks = env.sample_tasks(6, seed=3)
        callback = rl.AdaptationReturns(
            tasks, num_steps=2, seed=5, num_trajectories=3,
            restore_best_weights=restore_best_weights)
        recorder = WeightsPerEpoch()
        learner.fit(env.task_dataset(2, seed=0), steps_per_epoch=1,
                    epochs=4, callbacks=[callback, recorder], verbose=0)
        return learner, callback, recorder, tasks

    def test_restores_the_best_evaluation(self):
        learner, callback, recorder, _ = self.fit(True)
        scores = [np.mean(h["mean"][1:]) for h in callback.history]
        self.assertLen(scores, 4)
        self.assertEqual(callback.best_epoch, int(np.argmax(scores)) + 1)
        self.assertAllClose(callback.best_score, max(scores))
        for got, want in zip(learner.get_weights(),
                             recorder.weights[callback.best_epoch - 1]):
            self.assertAllClose(got, want, atol=0, rtol=0)

    def test_keeps_the_last_weights_by_default(self):
        learner, callback, recorder, tasks = self.fit(False)
        self.assertIsNone(callback.best_weights)
        for got, want in zip(learner.get_weights(), recorder.weights[-1]):
            self.assertAllClose(got, want, atol=0, rtol=0)
        # The last evaluation used the callback's trajectory count and
        # seed: it equals the same call on the final weights.
        returns = learner.adaptation_returns(
            tasks, num_steps=2, num_trajectories=3, seed=5)
        self.assertAllClose(callback.history[-1]["mean"], returns.mean(0),
                            rtol=1e-5)
        other = learner.adaptation_returns(tasks, num_steps=2, seed=5)
        self.assertGreater(np.abs(other.mean(0) - returns.mean(0)).max(),
                           1e-3)
