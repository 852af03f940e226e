import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import R2D2
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _encoder(units, dtype=None):
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Flatten(dtype=dtype),
        keras.layers.Dense(units, activation="tanh", dtype=dtype,
                           kernel_initializer=keras.initializers
                           .GlorotUniform(seed=3)),
    ])


class R2D2Test(testing.TestCase):
    @parameterized.named_parameters(
        ("woodbury", 16, 2), ("primal", 4, 3))
    def test_ridge_solution_matches_numpy(self, units, num_shots):
        # 3 ways x num_shots support examples against `units` dimensions
        # plus the bias column: 6 < 17 takes the Woodbury form, 9 > 5 the
        # primal one.
        encoder = _encoder(units)
        r2d2 = R2D2(encoder, num_ways=3, l2_regularizer=0.5)
        r2d2.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_shots=num_shots)
        expected = []
        for t in range(2):
            x = keras.ops.convert_to_numpy(
                encoder(inputs["support_inputs"][t])).astype("float64")
            q = keras.ops.convert_to_numpy(
                encoder(inputs["query_inputs"][t])).astype("float64")
            x = np.concatenate([x, np.ones((len(x), 1))], 1)
            q = np.concatenate([q, np.ones((len(q), 1))], 1)
            y = np.eye(3)[inputs["support_labels"][t]]
            w = np.linalg.solve(x.T @ x + 0.5 * np.eye(units + 1), x.T @ y)
            expected.append(q @ w)
        self.assertAllClose(r2d2.predict(inputs, verbose=0),
                            np.stack(expected), atol=1e-4, rtol=1e-3)

    @parameterized.named_parameters(("woodbury", 16), ("primal", 4))
    def test_meta_gradient_finite_differences(self, units):
        keras.config.set_floatx("float64")
        inputs, labels = testing.toy_episodes(num_tasks=2, num_shots=2,
                                              dtype="float64")
        # A float64 loss: a Keras loss computes in the float type current
        # when it is made.
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        r2d2 = R2D2(_encoder(units, dtype="float64"), num_ways=3)
        r2d2.compile(loss=loss)
        self.assertLess(
            testing.meta_gradient_error(r2d2, loss, inputs, labels), 1e-6)

    def test_every_weight_gets_a_gradient(self):
        # A scalar offset of all logits would get none under softmax.
        r2d2 = R2D2(_encoder(8), num_ways=3)
        r2d2.compile(loss=LOSS)
        inputs, labels = testing.toy_episodes(num_tasks=2)
        gradient = testing.meta_gradient(r2d2, inputs, labels)
        for variable, value in zip(r2d2.trainable_variables, gradient):
            self.assertGreater(np.abs(value).max(), 0.0, variable.path)

    def test_basics(self):
        self.run_meta_model_test(
            cls=R2D2,
            init_kwargs={"model": _encoder(8), "num_ways": 3},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_adapted_model_matches(self):
        r2d2 = R2D2(_encoder(8), num_ways=3)
        r2d2.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=1)
        self.assertAdaptedModelMatches(r2d2, inputs)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "l2_regularizer"):
            R2D2(_encoder(8), num_ways=3, l2_regularizer=0.0)
