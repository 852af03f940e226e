import keras
import numpy as np
import pytest
from absl.testing import parameterized

from keras_meta import MAML
from keras_meta import testing
from keras_meta.algorithms.maml import step_loss_importance

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _linear_model():
    return testing.linear_regressor()


def _theta(model):
    kernel, bias = (v.numpy() for v in model.trainable_variables)
    return np.concatenate([kernel, bias[:, None]])


def _flat(gradient):
    return np.concatenate([gradient[0], gradient[1][:, None]])


def _step_gradients(theta, inputs, labels, rate, steps, first_order=False):
    """Per step j, the mean over tasks of d L_query(theta_j) / d theta on
    linear regression with squared loss (the closed form of maml_test)."""
    result = np.zeros((steps,) + theta.shape)
    for t in range(len(labels)):
        xs, xq = inputs["support_inputs"][t], inputs["query_inputs"][t]
        a = np.concatenate([xs, np.ones((len(xs), 1))], 1)
        aq = np.concatenate([xq, np.ones((len(xq), 1))], 1)
        ys, yq = inputs["support_labels"][t], labels[t]
        step_matrix = np.eye(4) - rate * 2.0 / len(a) * a.T @ a
        fast = theta.copy()
        for j in range(steps):
            fast = fast - rate * 2.0 / len(a) * a.T @ (a @ fast - ys)
            grad = 2.0 / len(aq) * aq.T @ (aq @ fast - yq)
            if not first_order:
                grad = np.linalg.matrix_power(step_matrix, j + 1).T @ grad
            result[j] += grad / len(labels)
    return result


class StepLossImportanceTest(testing.TestCase):
    def test_schedule(self):
        np.testing.assert_allclose(step_loss_importance(0, 4, 10), [0.25] * 4)
        # Halfway, earlier steps lost half their weight.
        np.testing.assert_allclose(step_loss_importance(5, 4, 10),
                                   [0.125] * 3 + [0.625])
        # Late epochs stop at the floor; then only the last step counts.
        np.testing.assert_allclose(step_loss_importance(9, 4, 10)[:3],
                                   [0.025] * 3)
        np.testing.assert_allclose(step_loss_importance(10, 4, 10),
                                   [0, 0, 0, 1])
        for epoch in range(12):
            self.assertAlmostEqual(step_loss_importance(epoch, 4, 10).sum(), 1)


class MAMLPlusPlusTest(testing.TestCase):
    def test_multi_step_loss_closed_form(self):
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes(num_shots=5,
                                                            num_queries=6)
        maml = MAML(_linear_model(), inner_learning_rate=0.1,
                    num_inner_steps=3, multi_step_loss_epochs=4)
        maml.compile(loss="mse")
        per_step = _step_gradients(_theta(maml.model), inputs, labels, 0.1, 3)
        for epoch in (0, 2, 4):
            maml.on_epoch_begin(epoch)
            weights = step_loss_importance(epoch, 3, 4)
            expected = np.tensordot(weights, per_step, axes=1)
            actual = _flat(testing.meta_gradient(maml, inputs, labels))
            np.testing.assert_allclose(actual, expected, rtol=1e-10,
                                       atol=1e-12)

    def test_first_order_epochs_switch_during_fit(self):
        # SGD(1) for one step per epoch: the first update is first-order MAML,
        # the second is second order from the updated weights.
        keras.config.set_floatx("float64")
        inputs, labels = testing.linear_regression_episodes()
        maml = MAML(_linear_model(), inner_learning_rate=0.1,
                    num_inner_steps=2, first_order_epochs=1)
        maml.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
        theta = _theta(maml.model)
        theta = theta - _step_gradients(theta, inputs, labels, 0.1, 2,
                                        first_order=True)[-1]
        theta = theta - _step_gradients(theta, inputs, labels, 0.1, 2)[-1]
        maml.fit(inputs, labels, batch_size=3, epochs=2, verbose=0,
                 shuffle=False)
        np.testing.assert_allclose(_theta(maml.model), theta, rtol=1e-10,
                                   atol=1e-12)

    @parameterized.named_parameters(("batch_norm", "batch"), ("none", None))
    def test_learned_rates_finite_differences(self, normalization):
        error = testing.classifier_meta_gradient_error(
            MAML, normalization=normalization, inner_learning_rate=0.5,
            num_inner_steps=2, learn_inner_learning_rates=True)
        self.assertLess(error, 1e-6)

    def test_learned_rates_per_step(self):
        # Rates of 0 at step 2 leave the weights after step 1 unchanged.
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.3,
                    num_inner_steps=2, learn_inner_learning_rates=True)
        maml.compile(loss=LOSS)
        rates = maml.step_learning_rates.numpy()
        rates[1] = 0.0
        maml.step_learning_rates.assign(rates)
        inputs, labels = testing.toy_episodes(num_tasks=2)
        two = maml.predict(inputs, verbose=0)
        maml.eval_inner_steps = 1
        self.assertAllClose(two, maml.predict(inputs, verbose=0), 1e-6, 1e-6)

    @pytest.mark.slow_on_jax
    def test_basics_with_every_option(self):
        meta_model = self.run_meta_model_test(
            cls=MAML,
            init_kwargs={
                "model": testing.tiny_classifier(),
                "inner_learning_rate": 0.3,
                "num_inner_steps": 2,
                "learn_inner_learning_rates": True,
                "multi_step_loss_epochs": 2,
                "first_order_epochs": 1,
            },
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )
        # Learned rates moved in training and are saved exactly.
        rates = meta_model.step_learning_rates.numpy()
        self.assertFalse(np.allclose(rates, 0.3))
        path = self.get_temp_dir() + "/maml.keras"
        meta_model.save(path)
        reloaded = keras.models.load_model(path)
        np.testing.assert_array_equal(reloaded.step_learning_rates.numpy(),
                                      rates)

    def test_catalog_anneals_the_outer_rate(self):
        # MAML++'s outer rate as `keras-meta train` sets it: cosine from the
        # base rate down to 1% of it over the run (Antoniou et al., 2019);
        # other learners keep a constant rate.
        import math

        from keras_meta.experiments import catalog

        optimizer = catalog.outer_optimizer("maml++", 1e-3, 100)
        optimizer.build([keras.Variable(0.0)])
        for step in (0, 25, 50, 100, 150):
            optimizer.iterations.assign(step)
            progress = min(step, 100) / 100
            expected = 1e-3 * (0.01 + 0.99 * 0.5 * (
                1 + math.cos(math.pi * progress)))
            self.assertAllClose(optimizer.learning_rate, expected,
                                atol=1e-9, rtol=1e-5)
        constant = catalog.outer_optimizer("maml", 1e-3, 100)
        self.assertAllClose(constant.learning_rate, 1e-3)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "multi_step_loss_epochs"):
            MAML(testing.tiny_classifier(), multi_step_loss_epochs=0)
        with self.assertRaisesRegex(ValueError, "first_order_epochs"):
            MAML(testing.tiny_classifier(), first_order_epochs=-1)


class PerStepBatchNormTest(testing.TestCase):
    def test_finite_differences(self):
        error = testing.classifier_meta_gradient_error(
            MAML, inner_learning_rate=0.5, num_inner_steps=2,
            batch_norm="per_step", learn_inner_learning_rates=True)
        self.assertLess(error, 1e-6)

    def test_each_step_uses_its_own_weights(self):
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.5,
                    num_inner_steps=2, batch_norm="per_step")
        maml.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        baseline = maml.predict(inputs, verbose=0)
        # The wrapped model's own scale and offset are no longer read...
        gamma = maml.model.layers[1].gamma
        gamma.assign(gamma.numpy() * 3.0)
        self.assertAllClose(maml.predict(inputs, verbose=0), baseline)
        # ...while each step's copy is: the first support pass, and the
        # query pass after the last step.
        for step in (0, 2):
            weights = maml.step_norm_weights[0]
            original = weights.numpy()
            changed = original.copy()
            changed[step] *= 3.0
            weights.assign(changed)
            self.assertFalse(np.allclose(maml.predict(inputs, verbose=0),
                                         baseline, atol=1e-4))
            weights.assign(original)

    @pytest.mark.slow_on_jax
    def test_adapted_model_matches_and_save(self):
        meta_model = self.run_meta_model_test(
            cls=MAML,
            init_kwargs={"model": testing.tiny_classifier(),
                         "inner_learning_rate": 0.3, "num_inner_steps": 2,
                         "batch_norm": "per_step"},
            episodes=testing.toy_episodes(),
            loss=LOSS,
        )
        inputs, _ = testing.toy_episodes(num_tasks=1)
        # Per-step BatchNorm is transductive: the adapted model normalizes
        # each batch it is given, as the meta-model normalizes the query.
        self.assertAdaptedModelMatches(meta_model, inputs)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "no trainable BatchNorm"):
            MAML(testing.tiny_classifier(normalization=None),
                 batch_norm="per_step")
        from keras_meta import ProtoMAML

        with self.assertRaisesRegex(ValueError, "not available for"):
            ProtoMAML(testing.tiny_classifier(), num_ways=3,
                      batch_norm="per_step")
