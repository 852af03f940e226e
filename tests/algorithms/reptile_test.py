import keras
import numpy as np
import pytest

from keras_meta import Reptile
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class ReptileTest(testing.TestCase):
    def test_linear_regression_closed_form(self):
        # The meta-gradient is theta - mean(phi), phi after k SGD steps.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        model = testing.linear_regressor()
        reptile = Reptile(model, inner_learning_rate=0.1, num_inner_steps=3)
        reptile.compile(loss="mse")
        kernel, bias = (v.numpy() for v in model.trainable_variables)
        theta = np.concatenate([kernel, bias[:, None]])
        adapted = []
        for t in range(len(labels)):
            xs = inputs["support_inputs"][t]
            a = np.concatenate([xs, np.ones((len(xs), 1))], 1)
            phi = theta.copy()
            for _ in range(3):
                phi = phi - 0.1 * 2.0 / len(a) * a.T @ (
                    a @ phi - inputs["support_labels"][t])
            adapted.append(phi)
        expected = theta - np.mean(adapted, axis=0)
        gradient = testing.meta_gradient(reptile, inputs, labels)
        np.testing.assert_allclose(
            np.concatenate([gradient[0], gradient[1][:, None]]), expected,
            rtol=1e-10, atol=1e-12)

    def _numpy_adapted(self, theta, xs, ys, steps, adam):
        a = np.concatenate([xs, np.ones((len(xs), 1))], 1)
        phi, second = theta.copy(), np.zeros_like(theta)
        for step in range(1, steps + 1):
            g = 2.0 / len(a) * a.T @ (a @ phi - ys)
            if not adam:
                phi = phi - 0.1 * g
                continue
            # beta_1 = 0: the first moment is the gradient itself.
            second = 0.999 * second + 0.001 * g ** 2
            phi = phi - 0.1 * g / (
                np.sqrt(second / (1.0 - 0.999 ** step)) + 1e-8)
        return phi

    def test_inner_adam_and_adapting_on_queries_closed_form(self):
        # Adam (beta_1 = 0, fresh moments per task) on the support and
        # query examples together, against NumPy.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        model = testing.linear_regressor()
        reptile = Reptile(model, inner_learning_rate=0.1, num_inner_steps=3,
                          inner_optimizer="adam", adapt_on_queries=True)
        reptile.compile(loss="mse")
        kernel, bias = (v.numpy() for v in model.trainable_variables)
        theta = np.concatenate([kernel, bias[:, None]])
        adapted = []
        for t in range(len(labels)):
            xs = np.concatenate([inputs["support_inputs"][t],
                                 inputs["query_inputs"][t]])
            ys = np.concatenate([inputs["support_labels"][t], labels[t]])
            adapted.append(self._numpy_adapted(theta, xs, ys, 3, True))
        expected = theta - np.mean(adapted, axis=0)
        gradient = testing.meta_gradient(reptile, inputs, labels)
        np.testing.assert_allclose(
            np.concatenate([gradient[0], gradient[1][:, None]]), expected,
            rtol=1e-6, atol=1e-12)
        # Evaluation adapts on the support set alone.
        reptile.eval_inner_steps = 3
        learner = reptile.adapt(inputs["support_inputs"][0],
                                inputs["support_labels"][0])
        phi = self._numpy_adapted(theta, inputs["support_inputs"][0],
                                  inputs["support_labels"][0], 3, True)
        np.testing.assert_allclose(learner.layers[-1].kernel.numpy(),
                                   phi[:-1], rtol=1e-6, atol=1e-12)

    def test_reported_loss_is_the_query_loss(self):
        reptile = Reptile(testing.tiny_classifier(), inner_learning_rate=0.3,
                          num_inner_steps=2)
        reptile.compile(optimizer=keras.optimizers.SGD(0.0), loss=LOSS)
        inputs, labels = testing.toy_episodes(num_tasks=2)
        logs = reptile.train_on_batch(inputs, labels, return_dict=True)
        evaluated = reptile.evaluate(inputs, labels, verbose=0)
        # `evaluate()` returns the loss, then its confidence interval.
        self.assertAllClose(logs["loss"], evaluated[0], 1e-5, 1e-5)

    def test_basics(self):
        self.run_meta_model_test(
            cls=Reptile,
            init_kwargs={"model": testing.tiny_classifier(),
                         "inner_learning_rate": 0.3, "num_inner_steps": 2},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    @pytest.mark.tensorflow_only
    def test_mirrored_strategy_matches_one_device(self):
        # The hand-built update is divided by the replica count, so two
        # replicas of two tasks each give the update of one device of four.
        import tensorflow as tf

        inputs, labels = testing.toy_episodes(num_tasks=4)

        def train(strategy):
            with strategy.scope():
                keras.utils.set_random_seed(3)
                reptile = Reptile(testing.tiny_classifier(),
                                  inner_learning_rate=0.3, num_inner_steps=2)
                reptile.compile(optimizer=keras.optimizers.SGD(0.5),
                                loss=LOSS)
            dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
            reptile.fit(dataset.batch(4).repeat(3), epochs=1, verbose=0)
            return [v.numpy() for v in reptile.model.trainable_variables]

        one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
        mirrored = train(tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice()))
        self.assertAllClose(mirrored, one, atol=2e-6, rtol=2e-5)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "inner_learning_rate"):
            Reptile(testing.tiny_classifier(), inner_learning_rate=0)
        with self.assertRaisesRegex(ValueError, "num_inner_steps"):
            Reptile(testing.tiny_classifier(), num_inner_steps=0)
        with self.assertRaisesRegex(ValueError, "inner_optimizer"):
            Reptile(testing.tiny_classifier(), inner_optimizer="rmsprop")
