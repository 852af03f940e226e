"""A rematerialized inner loop (`remat_inner_steps=True`) takes the same
training step.

Rematerializing recomputes each inner step in the backward pass instead of
keeping its activations; the meta-gradient must not change. Each check
trains one step both ways from the same weights and compares the logs and
every updated weight, for the learners of the MAML family, whose inner
steps read meta-parameters from their closures (Meta-SGD's and MAML++'s
learned rates, CAVIA's network, ProtoMAML's head, ANIL's frozen body).
"""

import keras
import numpy as np
import pytest
from absl.testing import parameterized

import keras_meta
from keras_meta import testing

NUM_WAYS = 3
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
FAMILY = ("maml", "maml++", "metasgd", "anil", "boil", "cavia", "protomaml")


def _factories():
    return {name: factory for name, factory, _ in testing.every_learner(
        NUM_WAYS, dropout=0.0) if name in FAMILY}


def _one_step(factory, remat, batch_norm="inductive", task_gradients="auto"):
    keras.utils.set_random_seed(0)
    learner = factory(batch_norm)
    learner.remat_inner_steps = remat
    learner.task_gradients = task_gradients
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS,
                    metrics=["accuracy"])
    inputs, labels = testing.toy_episodes(
        num_tasks=2, num_ways=NUM_WAYS, num_shots=2, num_queries=3)
    before = [np.array(keras.ops.convert_to_numpy(v))
              for v in learner.trainable_variables]
    logs = learner.train_on_batch(inputs, labels, return_dict=True)
    after = [np.array(keras.ops.convert_to_numpy(v))
             for v in learner.trainable_variables]
    return logs, before, after


class RematTest(testing.TestCase):
    @parameterized.named_parameters(*[(name, name) for name in FAMILY])
    def test_same_step(self, name):
        factory = _factories()[name]
        expected_logs, before, expected = _one_step(factory, False)
        logs, _, after = _one_step(factory, True)
        self.assertSameTrainingStep(logs, expected_logs, before, after,
                                    expected)

    def test_same_step_with_per_step_batch_norm(self):
        factory = _factories()["maml++"]
        expected_logs, before, expected = _one_step(factory, False,
                                                    batch_norm="per_step")
        logs, _, after = _one_step(factory, True, batch_norm="per_step")
        self.assertSameTrainingStep(logs, expected_logs, before, after,
                                    expected)

    def test_saved_in_config(self):
        learner = keras_meta.MAML(testing.tiny_classifier(num_ways=NUM_WAYS),
                                  remat_inner_steps=True)
        self.assertTrue(learner.get_config()["remat_inner_steps"])
        restored = keras_meta.MAML.from_config(learner.get_config())
        self.assertTrue(restored.remat_inner_steps)

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="TensorFlow's whole-batch loop")
    def test_whole_batch_gradient_is_refused(self):
        # Differentiated outside the loop over tasks, the recomputation
        # would capture its inputs anew and lose their gradients: refused
        # with the fix named.
        with self.assertRaisesRegex(ValueError, "task-by-task gradients"):
            _one_step(_factories()["maml"], True, task_gradients=False)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="TensorFlow's rematerialization helper")
class TensorFlowRematTest(testing.TestCase):
    def test_closure_gradients_and_second_order(self):
        import tensorflow as tf

        from keras_meta import backend

        rng = np.random.default_rng(0)
        w0 = tf.constant(rng.normal(size=(3, 3)))
        x = tf.constant(rng.normal(size=(5, 3)))
        scale0 = tf.constant(0.7, tf.float64)

        def meta_gradient(remat):
            @tf.function
            def run():
                with tf.GradientTape() as tape:
                    tape.watch([w0, scale0])
                    w, scale = w0 * 1.0, scale0 * 1.0

                    def step(w):  # reads `scale` and `x` from its closure
                        with tf.GradientTape() as inner:
                            inner.watch(w)
                            loss = tf.reduce_sum(tf.tanh(x @ w) ** 2) * scale
                        return w - 0.1 * inner.gradient(loss, w)

                    for _ in range(3):
                        w = (backend.remat(step) if remat else step)(w)
                    loss = tf.reduce_sum(tf.sin(x @ w))
                return tape.gradient(loss, [w0, scale0])

            return [g.numpy() for g in run()]

        expected, got = meta_gradient(False), meta_gradient(True)
        for g, e in zip(got, expected):
            self.assertGreater(np.max(np.abs(e)), 1e-3)
            self.assertAllClose(g, e, rtol=1e-12, atol=1e-12)

    def test_variable_read_is_refused(self):
        import tensorflow as tf

        from keras_meta import backend

        variable = tf.Variable(2.0)

        @tf.function
        def run():
            with tf.GradientTape() as tape:
                out = backend.remat(lambda x: x * variable)(tf.constant(3.0))
            return tape.gradient(out, variable)

        with self.assertRaisesRegex(ValueError, "reads the variable"):
            run()
