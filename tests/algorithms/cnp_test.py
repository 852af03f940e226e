import math

import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import CNP
from keras_meta import testing

LOSS = keras_meta.losses.GaussianNegativeLogLikelihood()


def _cnp(min_std=0.1):
    encoder, decoder = keras_meta.models.neural_process_networks(
        x_dim=1, y_dim=1, representation_dim=8, hidden_units=(16,), seed=3)
    return CNP(decoder, encoder=encoder, min_std=min_std)


def _episodes(num_tasks=3, num_shots=5, seed=0):
    episodes = keras_meta.data.sinusoid(
        num_shots=num_shots, num_queries=7, num_tasks=num_tasks,
        batch_size=num_tasks, seed=seed)
    inputs, labels = next(iter(episodes))
    return ({k: v.numpy() for k, v in inputs.items()}, labels.numpy())


def _numpy_dense(layers, x):
    for i, layer in enumerate(layers):
        kernel, bias = (v.numpy() for v in layer.weights)
        x = x @ kernel + bias
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


class CNPTest(testing.TestCase):
    def test_matches_numpy(self):
        cnp = _cnp()
        cnp.compile(loss=LOSS)
        inputs, _ = _episodes()
        expected = []
        for t in range(3):
            pairs = np.concatenate([inputs["support_inputs"][t],
                                    inputs["support_labels"][t]], -1)
            r = _numpy_dense(cnp.encoder.layers, pairs).mean(0)
            queries = inputs["query_inputs"][t]
            raw = _numpy_dense(cnp.model.layers, np.concatenate(
                [queries, np.repeat(r[None], len(queries), 0)], -1))
            std = 0.1 + 0.9 * np.log1p(np.exp(raw[:, 1:]))
            expected.append(np.concatenate([raw[:, :1], std], -1))
        self.assertAllClose(cnp.predict(inputs, verbose=0),
                            np.stack(expected), atol=1e-5, rtol=1e-5)

    def test_support_order_does_not_matter(self):
        cnp = _cnp()
        inputs, _ = _episodes()
        order = np.random.default_rng(0).permutation(5)
        shuffled = dict(inputs)
        shuffled["support_inputs"] = inputs["support_inputs"][:, order]
        shuffled["support_labels"] = inputs["support_labels"][:, order]
        self.assertAllClose(cnp.predict(shuffled, verbose=0),
                            cnp.predict(inputs, verbose=0),
                            atol=1e-6, rtol=1e-6)

    def test_variance_floor(self):
        cnp = _cnp(min_std=0.25)
        # Large negative raw standard deviations: the floor holds.
        kernel, bias = cnp.model.layers[-1].get_weights()
        bias[1] = -50.0
        cnp.model.layers[-1].set_weights([kernel, bias])
        inputs, _ = _episodes()
        _, std = CNP.split(cnp.predict(inputs, verbose=0))
        self.assertTrue(np.all(std >= 0.25))
        self.assertAllClose(std, 0.25 * np.ones_like(std), atol=1e-6)

    def test_loss_and_metrics_match_numpy(self):
        rng = np.random.default_rng(0)
        y = rng.normal(size=(4, 2)).astype("float32")
        mean = rng.normal(size=(4, 2)).astype("float32")
        std = rng.uniform(0.5, 2.0, size=(4, 2)).astype("float32")
        predictions = np.concatenate([mean, std], -1)
        nll = (0.5 * np.log(2 * math.pi * std ** 2)
               + (y - mean) ** 2 / (2 * std ** 2)).sum(-1).mean()
        self.assertAllClose(LOSS(y, predictions), nll, atol=1e-5, rtol=1e-5)
        mse = keras_meta.metrics.PredictiveMeanSquaredError()
        mse.update_state(y, predictions)
        self.assertAllClose(mse.result(), ((y - mean) ** 2).mean(),
                            atol=1e-6)
        coverage = keras_meta.metrics.IntervalCoverage()
        coverage.update_state(y, predictions)
        self.assertAllClose(coverage.result(),
                            (np.abs(y - mean) <= 1.96 * std).mean(),
                            atol=1e-6)

    def test_adapted_model_loads_without_keras_meta_objects(self):
        cnp = _cnp()
        cnp.compile(loss=LOSS)
        inputs, _ = _episodes()
        # Stock layers only: loads in safe mode with no custom objects.
        self.assertAdaptedModelReloads(cnp, inputs)

    def test_basics(self):
        self.run_meta_model_test(
            cls=CNP, init_kwargs={"model": _cnp().model,
                                  "encoder": _cnp().encoder},
            episodes=_episodes(num_tasks=4), loss=LOSS,
            metrics=[keras_meta.metrics.PredictiveMeanSquaredError()],
            learning_rate=1e-3)

    # On torch, 1,500 steps in Python take minutes: run there with
    # --run_slow (the CI's torch stage leaves it out).
    @pytest.mark.slow_on_torch
    def test_learns_sinusoid(self):
        encoder, decoder = keras_meta.models.neural_process_networks(
            x_dim=1, y_dim=1, representation_dim=32, hidden_units=(32, 32),
            seed=3)
        cnp = CNP(decoder, encoder=encoder)
        cnp.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS,
                    metrics=[keras_meta.metrics.PredictiveMeanSquaredError()],
                    # Keras's torch trainer runs one step per execution.
                    steps_per_execution=(
                        1 if keras.backend.backend() == "torch" else 50))
        test = _episodes(num_tasks=50, num_shots=10, seed=1)
        # The seeded initial weights differ by backend; torch's start
        # further away (NLL 9.6 against 3.1) and need more steps.
        steps = 1500 if keras.backend.backend() == "torch" else 600
        before = cnp.evaluate(*test, verbose=0, return_dict=True)
        cnp.fit(keras_meta.data.sinusoid(num_shots=10, batch_size=16,
                                         seed=0),
                epochs=1, steps_per_epoch=steps, verbose=0)
        after = cnp.evaluate(*test, verbose=0, return_dict=True)
        # Measured: MSE 4.0 -> 1.9 and NLL 3.1 -> 1.3 per target.
        self.assertLess(after["mse"], 0.6 * before["mse"])
        self.assertLess(after["loss"], before["loss"] - 1.0)

    def test_errors(self):
        encoder, decoder = keras_meta.models.neural_process_networks(
            x_dim=2, y_dim=1, representation_dim=4, hidden_units=(4,))
        with self.assertRaisesRegex(ValueError, "min_std"):
            CNP(decoder, encoder=encoder, min_std=1.5)
        with self.assertRaisesRegex(ValueError, "encoder"):
            CNP(decoder, encoder="not a model")
        other, _ = keras_meta.models.neural_process_networks(
            x_dim=1, y_dim=1, representation_dim=4, hidden_units=(4,))
        with self.assertRaisesRegex(ValueError, "x_dim \\+ d"):
            CNP(decoder, encoder=other)
        cnp = _cnp()
        cnp.compile(loss=LOSS)
        inputs, labels = testing.toy_episodes(num_tasks=2)
        with self.assertRaisesRegex(ValueError, "regresses"):
            cnp.predict(inputs, verbose=0)
