import keras
import numpy as np

from keras_meta import CAVIA
from keras_meta import MAML
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

    def test_film_finite_differences(self):
        # Through the FiLM map, the BatchNorm layer it follows and two
        # inner steps on the context.
        error = testing.classifier_meta_gradient_error(
            CAVIA, num_context_params=3, inner_learning_rate=0.5,
            num_inner_steps=2)
        self.assertLess(error, 1e-6)

    def test_film_context_moves_the_logits(self):
        # Appended as constant channels, the context is cancelled by the
        # first BatchNormalization; through FiLM it moves every logit.
        inputs, labels = testing.toy_episodes(
            num_tasks=2, num_ways=3, num_shots=2, num_queries=3,
            image_shape=(6, 6, 1))
        model = testing.tiny_classifier(num_ways=3)
        cavia = CAVIA(model, num_context_params=4, inner_learning_rate=1.0,
                      num_inner_steps=2)
        self.assertEqual(cavia.conditioning, "film")
        cavia.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        adapted = cavia.predict(inputs, verbose=0)
        cavia.eval_inner_steps = 0
        unadapted = cavia.predict(inputs, verbose=0)
        change = np.linalg.norm(adapted - unadapted) / np.linalg.norm(
            unadapted)
        self.assertGreater(change, 0.05)
        # A zero context is the wrapped model itself.
        maml = MAML(model, eval_inner_steps=0)
        maml.compile(loss=cavia.loss)
        self.assertAllClose(unadapted, maml.predict(inputs, verbose=0),
                            1e-5, 1e-5)

    def test_film_after_a_named_layer(self):
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=1, num_queries=2)
        model = testing.tiny_classifier(num_ways=3)
        relu = model.layers[2]
        cavia = CAVIA(model, num_context_params=2, film_layer=relu.name)
        self.assertEqual(
            [layer.name for layer in cavia._film.network.layers][4],
            f"{relu.name}_film")
        cavia.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        learner = cavia.adapt(inputs["support_inputs"][0],
                              inputs["support_labels"][0])
        self.assertAllClose(
            learner.predict(inputs["query_inputs"][0], verbose=0),
            cavia.predict(inputs, verbose=0)[0], 1e-5, 1e-5)
        # The adapted model holds only stock layers and the model's own
        # weights, and the wrapped model is untouched.
        self.assertEqual(len(learner.weights), len(model.weights) + 2)
        self.assertEqual(len(model.layers), 6)

    def test_errors(self):
        inputs, _ = testing.linear_regression_episodes(dtype="float32")
        cavia = CAVIA(_regressor(3), num_context_params=2)
        cavia.compile(loss="mse")
        with self.assertRaisesRegex(ValueError, "should take 5 features"):
            cavia.predict(inputs, verbose=0)
        with self.assertRaisesRegex(ValueError, "num_context_params"):
            CAVIA(_regressor(2), num_context_params=0)
        with self.assertRaisesRegex(ValueError, "names no top-level layer"):
            CAVIA(testing.tiny_classifier(), num_context_params=2,
                  film_layer="missing")

        class Subclassed(keras.Model):
            def __init__(self):
                super().__init__()
                self.norm = keras.layers.BatchNormalization()
                self.dense = keras.layers.Dense(3)

            def call(self, inputs, training=False):
                return self.dense(self.norm(inputs, training=training))

        model = Subclassed()
        model(np.zeros((1, 4), "float32"))
        with self.assertRaisesRegex(ValueError, "film_layer=None"):
            CAVIA(model, num_context_params=2)
