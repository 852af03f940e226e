import keras
import numpy as np

from keras_meta import CAVIA
from keras_meta import models
from keras_meta import testing


def _regressor(num_context, dtype=None):
    keras.utils.set_random_seed(5)
    model = models.mlp(input_shape=(3 + num_context,), hidden_units=(6,),
                       activation="tanh", seed=2)
    if dtype is None:
        return model
    config = model.get_config()
    for layer in config["layers"]:
        layer["config"]["dtype"] = dtype
    typed = keras.Sequential.from_config(config)
    typed.set_weights(model.get_weights())
    return typed


class CAVIATest(testing.TestCase):
    def test_finite_differences(self):
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        cavia = CAVIA(_regressor(2, "float64"), num_context_params=2,
                      inner_learning_rate=0.5, num_inner_steps=2)
        cavia.compile(loss="mse")
        error = testing.meta_gradient_error(
            cavia, keras.losses.MeanSquaredError(), inputs, labels)
        self.assertLess(error, 1e-6)

    def test_only_the_context_adapts(self):
        inputs, labels = testing.linear_regression_episodes(dtype="float32")
        model = _regressor(2)
        cavia = CAVIA(model, num_context_params=2, inner_learning_rate=0.5,
                      num_inner_steps=3)
        cavia.compile(loss="mse")
        before = cavia.evaluate(inputs, labels, verbose=0)
        cavia.eval_inner_steps = 0
        unadapted = cavia.evaluate(inputs, labels, verbose=0)
        self.assertLess(before, unadapted)
        cavia.eval_inner_steps = 3
        learner = cavia.adapt(inputs["support_inputs"][0],
                              inputs["support_labels"][0])
        network = learner.layers[-1]
        for a, b in zip(network.weights, model.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        self.assertAllClose(learner.predict(inputs["query_inputs"][0],
                                            verbose=0),
                            cavia.predict(inputs, verbose=0)[0], 1e-5, 1e-5)

    def test_basics(self):
        inputs, labels = testing.linear_regression_episodes(
            num_tasks=4, dtype="float32")
        self.run_meta_model_test(
            cls=CAVIA,
            init_kwargs={"model": _regressor(2), "num_context_params": 2,
                         "inner_learning_rate": 0.5},
            episodes=(inputs, labels),
            loss="mse",
        )

    def test_errors(self):
        inputs, _ = testing.linear_regression_episodes(dtype="float32")
        cavia = CAVIA(_regressor(3), num_context_params=2)
        cavia.compile(loss="mse")
        with self.assertRaisesRegex(ValueError, "should take 5 features"):
            cavia.predict(inputs, verbose=0)
        with self.assertRaisesRegex(ValueError, "num_context_params"):
            CAVIA(_regressor(2), num_context_params=0)
