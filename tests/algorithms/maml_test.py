import keras
import numpy as np
import pytest
from absl.testing import parameterized

from keras_meta import MAML
from keras_meta import testing


def _linear_model(num_features, dtype="float64"):
    return testing.linear_regressor(num_features, dtype=dtype)


def _closed_form_meta_gradient(theta, inputs, labels, rate, steps, first_order):
    """MAML on linear regression with squared loss, in closed form.

    With features phi = [x, 1], the support loss (1/n)||A theta - y||^2 has
    gradient (2/n) A^T (A theta - y) and constant Hessian H = (2/n) A^T A,
    so each inner step is affine in theta with Jacobian (I - rate H) and the
    meta-gradient of a task is (I - rate H)^steps g_query(theta_steps).
    First-order MAML drops the Jacobian.
    """
    grads = []
    num_tasks = inputs["support_inputs"].shape[0]
    for t in range(num_tasks):
        xs, ys = inputs["support_inputs"][t], inputs["support_labels"][t]
        xq, yq = inputs["query_inputs"][t], labels[t]
        a = np.concatenate([xs, np.ones((len(xs), 1))], axis=1)
        aq = np.concatenate([xq, np.ones((len(xq), 1))], axis=1)
        hessian = 2.0 / len(a) * a.T @ a
        fast = theta.copy()
        for _ in range(steps):
            fast = fast - rate * 2.0 / len(a) * a.T @ (a @ fast - ys)
        grad = 2.0 / len(aq) * aq.T @ (aq @ fast - yq)
        if not first_order:
            jacobian = np.linalg.matrix_power(
                np.eye(len(theta)) - rate * hessian, steps
            )
            grad = jacobian.T @ grad
        grads.append(grad)
    return np.mean(grads, axis=0)


class MAMLOracleTest(testing.TestCase):
    @parameterized.named_parameters(
        ("second_order_one_step", 1, False),
        ("second_order_two_steps", 2, False),
        ("first_order_one_step", 1, True),
        ("first_order_two_steps", 2, True),
    )
    def test_linear_regression_closed_form(self, steps, first_order):
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        rate = 0.1
        maml = MAML(
            _linear_model(3),
            inner_learning_rate=rate,
            num_inner_steps=steps,
            first_order=first_order,
        )
        maml.compile(loss="mse")
        kernel, bias = (v.numpy() for v in maml.model.trainable_variables)
        theta = np.concatenate([kernel, bias[:, None]])
        expected = _closed_form_meta_gradient(
            theta, inputs, labels, rate, steps, first_order
        )
        gradient = testing.meta_gradient(maml, inputs, labels)
        actual = np.concatenate([gradient[0], gradient[1][:, None]])
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)

    def test_inner_loss_closed_form(self):
        # Adapt with squared error, score the query set with absolute error:
        # the meta-gradient of mean |A_q theta' - y_q| is J^T A_q^T sign(r) / n
        # with J = (I - rate H)^steps from the squared-error inner steps.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        rate, steps = 0.1, 2
        maml = MAML(
            _linear_model(3),
            inner_learning_rate=rate,
            num_inner_steps=steps,
            inner_loss=keras.losses.MeanSquaredError(),
        )
        maml.compile(loss="mae")
        kernel, bias = (v.numpy() for v in maml.model.trainable_variables)
        theta = np.concatenate([kernel, bias[:, None]])
        grads = []
        for t in range(len(labels)):
            xs, ys = inputs["support_inputs"][t], inputs["support_labels"][t]
            a = np.concatenate([xs, np.ones((len(xs), 1))], axis=1)
            aq = np.concatenate(
                [inputs["query_inputs"][t], np.ones((len(labels[t]), 1))], 1
            )
            fast = theta.copy()
            for _ in range(steps):
                fast = fast - rate * 2.0 / len(a) * a.T @ (a @ fast - ys)
            jacobian = np.linalg.matrix_power(
                np.eye(4) - rate * 2.0 / len(a) * a.T @ a, steps
            )
            residual = aq @ fast - labels[t]
            grads.append(jacobian.T @ aq.T @ np.sign(residual) / len(aq))
        gradient = testing.meta_gradient(maml, inputs, labels)
        actual = np.concatenate([gradient[0], gradient[1][:, None]])
        np.testing.assert_allclose(
            actual, np.mean(grads, axis=0), rtol=1e-10, atol=1e-12
        )
        # The inner loss survives a config round trip.
        clone = MAML.from_config(maml.get_config())
        self.assertIsInstance(clone.inner_loss, keras.losses.MeanSquaredError)

    def test_first_and_second_order_differ(self):
        # The library's first- and second-order meta-gradients, each equal
        # to its own closed form (test above), differ by more than 5% on
        # this data: a learner that ignored `first_order` would fail here.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        gradients = {}
        for first_order in (True, False):
            maml = MAML(testing.linear_regressor(dtype="float64"),
                        inner_learning_rate=0.1, num_inner_steps=2,
                        first_order=first_order)
            maml.compile(loss="mse")
            gradient = testing.meta_gradient(maml, inputs, labels)
            gradients[first_order] = np.concatenate(
                [g.ravel() for g in gradient])
        self.assertGreater(
            np.linalg.norm(gradients[True] - gradients[False])
            / np.linalg.norm(gradients[False]), 0.05)

    def _finite_difference_check(self, normalization, steps, exact=True,
                                 batch_norm="inductive", dropout=None,
                                 **options):
        keras.config.set_floatx("float64")
        inputs, labels = testing.toy_episodes(
            num_tasks=2,
            num_ways=3,
            num_shots=2,
            num_queries=2,
            image_shape=(8, 8, 1),
            dtype="float64",
        )
        maml = MAML(
            testing.tiny_classifier(
                num_ways=3,
                image_shape=(8, 8, 1),
                filters=4,
                normalization=normalization,
                dropout=dropout,
                dtype="float64",
            ),
            inner_learning_rate=0.5,
            num_inner_steps=steps,
            batch_norm=batch_norm,
            **options,
        )
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        maml.compile(loss=loss)
        return testing.meta_gradient_error(maml, loss, inputs, labels)

    @parameterized.named_parameters(
        ("batch_norm_one_step", "batch", 1),
        ("batch_norm_two_steps", "batch", 2),
        ("layer_norm_one_step", "layer", 1),
        ("layer_norm_two_steps", "layer", 2),
        ("group_norm_two_steps", "group", 2),
        ("no_norm_two_steps", None, 2),
    )
    def test_finite_differences(self, normalization, steps):
        error = self._finite_difference_check(normalization, steps)
        self.assertLess(error, 1e-6)

    @parameterized.named_parameters(
        ("transductive", "transductive", None),
        ("inductive_dropout_off", "inductive", 0.0),
    )
    def test_finite_differences_per_mode(self, batch_norm, dropout):
        # Inductive queries are normalized with the support statistics under
        # the adapted weights, a second path for the gradient; a model with
        # a Dropout layer (rate 0: deterministic) runs through the private
        # fixed-statistics copy in training.
        error = self._finite_difference_check(
            "batch", 2, batch_norm=batch_norm, dropout=dropout)
        self.assertLess(error, 1e-6)

    @parameterized.named_parameters(
        ("batch_norm", "batch"), ("layer_norm", "layer"))
    def test_normalization_kept_out_of_the_inner_loop(self, normalization):
        # The MAML reference code's setup: the normalization layers' scale
        # and offset are learned by the outer loop alone. Its meta-gradient
        # matches finite differences, and adapting leaves them unchanged
        # while every other weight moves.
        error = self._finite_difference_check(
            normalization, 2, adapt_normalization=False)
        self.assertLess(error, 1e-6)
        inputs, _ = testing.toy_episodes(
            num_tasks=1, num_ways=3, num_shots=2, num_queries=2,
            image_shape=(8, 8, 1), dtype="float64")
        model = testing.tiny_classifier(
            num_ways=3, image_shape=(8, 8, 1), filters=4,
            normalization=normalization, dtype="float64")
        maml = MAML(model, inner_learning_rate=0.5, num_inner_steps=2,
                    adapt_normalization=False)
        maml.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        adapted = maml.adapt(inputs["support_inputs"][0],
                             inputs["support_labels"][0])
        norm_layer = model.layers[1]
        self.assertIn("normalization", norm_layer.name)
        for before, after in zip(model.trainable_variables,
                                 adapted.trainable_variables):
            moved = np.abs(np.asarray(after) - np.asarray(before)).max()
            if any(before is v for v in norm_layer.trainable_variables):
                self.assertEqual(moved, 0.0)
            elif "kernel" in before.path:
                # (A convolution bias before BatchNorm has no gradient.)
                self.assertGreater(moved, 1e-4)
        config = MAML.from_config(maml.get_config()).get_config()
        self.assertFalse(config["adapt_normalization"])

    def test_adapt_normalization_needs_normalization_layers(self):
        with self.assertRaisesRegex(ValueError, "no trainable normalization"):
            MAML(testing.tiny_classifier(normalization=None),
                 adapt_normalization=False)

    @pytest.mark.tensorflow_only
    def test_finite_differences_catch_stock_moments(self):
        # Without the exact moments the second-order meta-gradient of a
        # BatchNorm network is wrong (2e-4 relative here), a hundred times the 1e-6 the check
        # above allows: that check can fail.
        from keras_meta.backend import tensorflow as tf_backend

        original = tf_backend._USE_EXACT_MOMENTS
        tf_backend._USE_EXACT_MOMENTS = False
        try:
            error = self._finite_difference_check("batch", 1)
        finally:
            tf_backend._USE_EXACT_MOMENTS = original
        self.assertGreater(error, 1e-5)


@pytest.mark.tensorflow_only
class FusedBatchStatisticsTest(testing.TestCase):
    """Passes with batch statistics whose moving-statistics update is
    discarded (every pass in the transductive mode; the inner steps' support
    passes in the inductive mode) run TensorFlow's fused
    batch-normalization kernel in float32 (float64 falls back to Keras's
    ops, which the finite-difference tests above check). Its second-order
    meta-gradient is checked here against the float64 one on the same
    weights and data."""

    def _meta_gradient(self, dtype, batch_norm, first_order=False):
        keras.config.set_floatx(dtype)
        inputs, labels = testing.toy_episodes(
            num_tasks=2, num_ways=3, num_shots=2, num_queries=3,
            image_shape=(8, 8, 1), dtype=dtype)
        model = testing.tiny_classifier(
            num_ways=3, image_shape=(8, 8, 1), filters=4,
            normalization="batch", dtype=dtype)
        model.set_weights([w.astype(dtype) for w in self.weights])
        maml = MAML(model, inner_learning_rate=0.5, num_inner_steps=2,
                    batch_norm=batch_norm, first_order=first_order)
        maml.compile(loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        fused = maml._batch_norm_mode.network(model)["fused"]
        gradient = testing.meta_gradient(maml, inputs, labels)
        return fused, np.concatenate([g.ravel() for g in gradient])

    @parameterized.parameters("transductive", "inductive")
    def test_fused_meta_gradient_equals_float64(self, batch_norm):
        keras.config.set_floatx("float64")
        keras.utils.set_random_seed(3)
        self.weights = testing.tiny_classifier(
            num_ways=3, image_shape=(8, 8, 1), filters=4,
            normalization="batch", dtype="float64").get_weights()
        fused, single = self._meta_gradient("float32", batch_norm)
        self.assertIsNotNone(fused)  # The float32 learner ran the kernel.
        unfused, double = self._meta_gradient("float64", batch_norm)
        # float64 inputs are not fused: the reference is Keras's own ops.
        self.assertIsNotNone(unfused)
        error = np.linalg.norm(single - double) / np.linalg.norm(double)
        self.assertLess(error, 1e-5)
        # First order differs by far more: the tolerance can tell the
        # second-order terms' absence.
        _, first = self._meta_gradient("float32", batch_norm,
                                       first_order=True)
        self.assertGreater(
            np.linalg.norm(first - double) / np.linalg.norm(double), 1e-2)

    def test_closed_form_gradient_of_gradient(self):
        # The kernel's gradient's own gradient, in closed form, against a
        # tape over batch normalization's gradient written out in float64.
        import tensorflow as tf

        from keras_meta.backend import tensorflow as tf_backend

        rng = np.random.default_rng(0)
        shape, epsilon = (3, 5, 4, 6), 1e-3
        g, x, upstream_x = (tf.constant(rng.normal(size=shape))
                            for _ in range(3))
        scale, upstream_scale, upstream_offset = (
            tf.constant(rng.normal(size=shape[-1])) for _ in range(3))

        def batch_norm_gradient(g, x, scale):
            centred = x - tf.reduce_mean(x, [0, 1, 2])
            r = tf.math.rsqrt(
                tf.reduce_mean(centred * centred, [0, 1, 2]) + epsilon)
            normalized = centred * r
            d_x = scale * r * (
                g - tf.reduce_mean(g, [0, 1, 2])
                - normalized * tf.reduce_mean(g * normalized, [0, 1, 2]))
            return (d_x, tf.reduce_sum(g * normalized, [0, 1, 2]),
                    tf.reduce_sum(g, [0, 1, 2]))

        with tf.GradientTape(persistent=True) as tape:
            tape.watch([g, x, scale])
            gradients = batch_norm_gradient(g, x, scale)
        expected = tape.gradient(
            gradients, [g, x, scale],
            output_gradients=[upstream_x, upstream_scale, upstream_offset])
        closed_form = tf_backend._batch_norm_gradient_gradient(
            g, x, scale, upstream_x, upstream_scale, upstream_offset,
            epsilon)
        for actual, wanted in zip(closed_form, expected):
            self.assertAllClose(actual, wanted, rtol=1e-12, atol=1e-12)
        # Missing upstream gradients count as zeros.
        partial = tf_backend._batch_norm_gradient_gradient(
            g, x, scale, None, upstream_scale, None, epsilon)
        expected = tape.gradient(
            gradients[1], [g, x, scale], output_gradients=upstream_scale,
            unconnected_gradients=tf.UnconnectedGradients.ZERO)
        for actual, wanted in zip(partial, expected):
            self.assertAllClose(actual, wanted, rtol=1e-12, atol=1e-12)

    def test_closed_form_equals_tensorflows_second_derivative(self):
        # In float32 through the kernel: the meta-gradient with the closed
        # form equals the one with TensorFlow's registered gradient.
        from keras_meta.backend import tensorflow as tf_backend

        keras.utils.set_random_seed(3)
        self.weights = testing.tiny_classifier(
            num_ways=3, image_shape=(8, 8, 1), filters=4,
            normalization="batch").get_weights()
        _, closed_form = self._meta_gradient("float32", "transductive")
        tf_backend.CLOSED_FORM_BATCH_NORM_GRADIENT = False
        try:
            _, stock = self._meta_gradient("float32", "transductive")
        finally:
            tf_backend.CLOSED_FORM_BATCH_NORM_GRADIENT = True
        error = (np.linalg.norm(closed_form - stock)
                 / np.linalg.norm(stock))
        self.assertLess(error, 1e-5)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="PyTorch's native batch-normalization kernel")
class TorchFusedBatchStatisticsTest(testing.TestCase):
    """On torch the transductive passes run `F.batch_norm` in every float
    dtype; in float64 its meta-gradient equals the one through Keras's ops
    (which the finite-difference tests above check) to rounding."""

    def _meta_gradient(self, fuse, first_order=False):
        from keras_meta import backend

        keras.config.set_floatx("float64")
        inputs, labels = testing.toy_episodes(
            num_tasks=2, num_ways=3, num_shots=2, num_queries=3,
            image_shape=(8, 8, 1), dtype="float64")
        model = testing.tiny_classifier(
            num_ways=3, image_shape=(8, 8, 1), filters=4,
            normalization="batch", dtype="float64")
        model.set_weights(self.weights)
        original = backend.fused_batch_statistics_call
        if not fuse:
            backend.fused_batch_statistics_call = None
        try:
            maml = MAML(model, inner_learning_rate=0.5, num_inner_steps=2,
                        batch_norm="transductive", first_order=first_order)
            maml.compile(loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True))
            gradient = testing.meta_gradient(maml, inputs, labels)
            fused = maml._batch_norm_mode.network(model)["fused"]
        finally:
            backend.fused_batch_statistics_call = original
        return fused, np.concatenate([np.asarray(g).ravel()
                                      for g in gradient])

    def test_fused_meta_gradient_equals_keras_ops(self):
        keras.config.set_floatx("float64")
        keras.utils.set_random_seed(3)
        self.weights = testing.tiny_classifier(
            num_ways=3, image_shape=(8, 8, 1), filters=4,
            normalization="batch", dtype="float64").get_weights()
        fused_network, fused = self._meta_gradient(True)
        self.assertIsNotNone(fused_network)
        stock_network, stock = self._meta_gradient(False)
        self.assertIsNone(stock_network)
        error = np.linalg.norm(fused - stock) / np.linalg.norm(stock)
        self.assertLess(error, 1e-10)
        _, first = self._meta_gradient(True, first_order=True)
        self.assertGreater(
            np.linalg.norm(first - stock) / np.linalg.norm(stock), 1e-2)
