import keras
import numpy as np

from keras_meta import MetaSGD
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class MetaSGDTest(testing.TestCase):
    def test_linear_regression_closed_form(self):
        # One step phi = theta - alpha * g_s with per-parameter alpha. With
        # H = (2/n) A^T A: dL/dtheta = (I - diag(alpha) H)^T g_q(phi) and
        # dL/dalpha = -g_s(theta) * g_q(phi), averaged over tasks.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        model = testing.linear_regressor()
        meta_sgd = MetaSGD(model, inner_learning_rate=0.1)
        meta_sgd.compile(loss="mse")
        rng = np.random.default_rng(0)
        for rate in meta_sgd.parameter_learning_rates:
            rate.assign(rng.uniform(0.02, 0.2, size=rate.shape))
        kernel, bias = (v.numpy() for v in model.trainable_variables)
        theta = np.concatenate([kernel, bias[:, None]])
        alpha = np.concatenate([
            meta_sgd.parameter_learning_rates[0].numpy(),
            meta_sgd.parameter_learning_rates[1].numpy()[:, None]])
        d_theta, d_alpha = np.zeros_like(theta), np.zeros_like(theta)
        for t in range(len(labels)):
            a = np.concatenate([inputs["support_inputs"][t],
                                np.ones((4, 1))], 1)
            aq = np.concatenate([inputs["query_inputs"][t],
                                 np.ones((5, 1))], 1)
            g_s = 2.0 / 4 * a.T @ (a @ theta - inputs["support_labels"][t])
            phi = theta - alpha * g_s
            g_q = 2.0 / 5 * aq.T @ (aq @ phi - labels[t])
            hessian = 2.0 / 4 * a.T @ a
            d_theta += (np.eye(4) - alpha * hessian).T @ g_q / len(labels)
            d_alpha += -g_s * g_q / len(labels)
        gradient = testing.meta_gradient(meta_sgd, inputs, labels)
        variables = [v.path for v in meta_sgd.trainable_variables]
        by_name = dict(zip(variables, gradient))
        kernel_rate, bias_rate = (
            by_name[r.path] for r in meta_sgd.parameter_learning_rates)
        kernel, bias = (by_name[v.path] for v in model.trainable_variables)
        np.testing.assert_allclose(
            np.concatenate([kernel, bias[:, None]]), d_theta,
            rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            np.concatenate([kernel_rate, bias_rate[:, None]]), d_alpha,
            rtol=1e-10, atol=1e-12)

    def test_finite_differences(self):
        error = testing.classifier_meta_gradient_error(
            MetaSGD, inner_learning_rate=0.5, num_inner_steps=2)
        self.assertLess(error, 1e-6)

    def test_basics_and_rates_restored(self):
        meta_model = self.run_meta_model_test(
            cls=MetaSGD,
            init_kwargs={"model": testing.tiny_classifier(),
                         "inner_learning_rate": 0.3},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )
        rates = [r.numpy() for r in meta_model.parameter_learning_rates]
        self.assertFalse(all(np.allclose(r, 0.3) for r in rates))
        path = self.get_temp_dir() + "/meta_sgd.keras"
        meta_model.save(path)
        reloaded = keras.models.load_model(path)
        for rate, value in zip(reloaded.parameter_learning_rates, rates):
            np.testing.assert_array_equal(rate.numpy(), value)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "every parameter"):
            MetaSGD(testing.tiny_classifier(), learn_inner_learning_rates=True)


class MetaSGDInitializerTest(testing.TestCase):
    def test_random_rates_and_round_trip(self):
        import os

        meta_sgd = MetaSGD(
            testing.tiny_classifier(),
            learning_rate_initializer=keras.initializers.RandomUniform(
                0.005, 0.1, seed=3))
        rates = np.concatenate([r.numpy().ravel()
                                for r in meta_sgd.parameter_learning_rates])
        self.assertTrue(np.all((rates >= 0.005) & (rates <= 0.1)))
        self.assertGreater(rates.std(), 0.01)
        meta_sgd.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        path = os.path.join(self.get_temp_dir(), "meta_sgd.keras")
        meta_sgd.save(path)
        reloaded = keras.models.load_model(path)
        for a, b in zip(reloaded.parameter_learning_rates,
                        meta_sgd.parameter_learning_rates):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
