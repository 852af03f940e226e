"""Every built-in Keras callback works with `fit` on a MetaModel."""

import csv
import glob
import os

import keras
import numpy as np
import tensorflow as tf

from keras_meta import MAML
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _episodes(num_batches=3, seed=0):
    inputs, labels = testing.toy_episodes(num_tasks=2 * num_batches, seed=seed)
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(2)


def _maml(learning_rate=0.05):
    maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.2)
    maml.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=LOSS,
        metrics=["accuracy"],
    )
    return maml


class CallbacksTest(testing.TestCase):
    def test_model_checkpoint_best_only(self):
        path = os.path.join(self.get_temp_dir(), "best.keras")
        maml = _maml()
        history = maml.fit(
            _episodes(),
            validation_data=_episodes(seed=1),
            epochs=3,
            verbose=0,
            callbacks=[
                keras.callbacks.ModelCheckpoint(
                    path,
                    monitor="val_accuracy",
                    mode="max",
                    save_best_only=True,
                )
            ],
        )
        self.assertIn("val_accuracy", history.history)
        self.assertIn("val_accuracy_ci95", history.history)
        reloaded = keras.models.load_model(path)
        self.assertIsInstance(reloaded, MAML)
        best = max(history.history["val_accuracy"])
        result = reloaded.evaluate(_episodes(seed=1), verbose=0, return_dict=True)
        self.assertAlmostEqual(result["accuracy"], best, places=5)

    def test_backup_and_restore(self):
        directory = self.get_temp_dir()

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    raise RuntimeError("interrupted")

        keras.utils.set_random_seed(0)
        reference = _maml()
        reference_weights = [v.numpy() for v in reference.model.weights]
        reference.fit(_episodes(), epochs=4, verbose=0)

        keras.utils.set_random_seed(0)
        maml = _maml()
        for v, value in zip(maml.model.weights, reference_weights):
            v.assign(value)
        backup = keras.callbacks.BackupAndRestore(directory)
        with self.assertRaisesRegex(RuntimeError, "interrupted"):
            maml.fit(_episodes(), epochs=4, verbose=0,
                     callbacks=[backup, Interrupt()])
        resumed = _maml()
        history = resumed.fit(_episodes(), epochs=4, verbose=0,
                              callbacks=[backup])
        self.assertEqual(len(history.epoch), 2)  # epochs 3 and 4 only
        self.assertAllClose(
            [v.numpy() for v in resumed.model.weights],
            [v.numpy() for v in reference.model.weights],
            atol=1e-6,
            rtol=1e-6,
        )

    def test_early_stopping(self):
        maml = _maml()
        history = maml.fit(
            _episodes(), validation_data=_episodes(seed=1), epochs=20,
            verbose=0,
            callbacks=[keras.callbacks.EarlyStopping(
                monitor="val_loss", min_delta=1e3, patience=1)],
        )
        self.assertEqual(len(history.epoch), 2)

    def test_csv_logger(self):
        path = os.path.join(self.get_temp_dir(), "log.csv")
        _maml().fit(_episodes(), validation_data=_episodes(seed=1), epochs=2,
                    verbose=0, callbacks=[keras.callbacks.CSVLogger(path)])
        with open(path) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 2)
        self.assertGreater(float(rows[0]["loss"]), 0.0)
        self.assertIn("val_accuracy_ci95", rows[0])

    def test_tensorboard(self):
        directory = self.get_temp_dir()
        _maml().fit(_episodes(), epochs=2, verbose=0,
                    callbacks=[keras.callbacks.TensorBoard(directory)])
        events = glob.glob(os.path.join(directory, "train", "events.out.*"))
        self.assertTrue(events)
        self.assertGreater(os.path.getsize(events[0]), 0)

    def test_reduce_lr_on_plateau(self):
        maml = _maml(learning_rate=0.01)
        maml.fit(
            _episodes(), epochs=3, verbose=0,
            callbacks=[keras.callbacks.ReduceLROnPlateau(
                monitor="loss", factor=0.5, patience=0, min_delta=1e3)],
        )
        self.assertLess(float(maml.optimizer.learning_rate), 0.01 * 0.3)

    def test_terminate_on_nan(self):
        inputs, labels = testing.toy_episodes(num_tasks=6)
        inputs["support_inputs"][2:4] = np.nan
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(2)
        maml = _maml()
        batches = []

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                batches.append(batch)

        # Stopped at the NaN batch, the second of nine, before any other
        # callback saw it (see callbacks_nan_test.py).
        with self.assertRaisesRegex(FloatingPointError, "batch 2"):
            maml.fit(dataset, epochs=3, verbose=0,
                     callbacks=[Record(), keras.callbacks.TerminateOnNaN()])
        self.assertEqual(batches, [0])

    def test_learning_rate_scheduler(self):
        maml = _maml()
        seen = []

        class Record(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                seen.append(float(self.model.optimizer.learning_rate))

        maml.fit(
            _episodes(), epochs=3, verbose=0,
            callbacks=[
                keras.callbacks.LearningRateScheduler(
                    lambda epoch: 0.1 / (epoch + 1)),
                Record(),
            ],
        )
        self.assertAllClose(seen, [0.1, 0.05, 0.1 / 3], atol=1e-7, rtol=1e-6)


class AdaptationMetricsTest(testing.TestCase):
    def test_matches_a_numpy_reference(self):
        # Linear MAML, one inner step of rate a on the support MSE: the
        # logged losses follow in closed form from the weights.
        from keras_meta import callbacks

        inputs, labels = testing.linear_regression_episodes(
            num_tasks=3, dtype="float32")
        model = testing.linear_regressor()
        maml = MAML(model, inner_learning_rate=0.05, num_inner_steps=1)
        maml.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")

        class Record(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                self.logs = dict(logs)

        record = Record()
        maml.fit(inputs, labels, epochs=1, batch_size=3, verbose=0,
                 callbacks=[callbacks.AdaptationMetrics((inputs, labels)),
                            record])
        kernel, bias = (np.asarray(w, "float64") for w in model.get_weights())
        before, after, support = [], [], []
        for t in range(3):
            xs, ys = inputs["support_inputs"][t], inputs["support_labels"][t]
            xq, yq = inputs["query_inputs"][t], labels[t]
            residual = xs @ kernel + bias - ys
            grad_w = 2 * xs.T @ residual / residual.size
            grad_b = 2 * residual.mean(0)
            w, b = kernel - 0.05 * grad_w, bias - 0.05 * grad_b
            before.append(np.mean((xq @ kernel + bias - yq) ** 2))
            after.append(np.mean((xq @ w + b - yq) ** 2))
            support.append(np.mean((xs @ w + b - ys) ** 2))
        logs = record.logs
        self.assertAllClose(logs["adaptation_query_loss_before"],
                            np.mean(before), rtol=1e-5)
        self.assertAllClose(logs["adaptation_query_loss"], np.mean(after),
                            rtol=1e-5)
        self.assertAllClose(logs["adaptation_support_loss"],
                            np.mean(support), rtol=1e-5)
        self.assertAllClose(logs["adaptation_gain"],
                            np.mean(before) - np.mean(after), rtol=1e-4)
        self.assertEqual(maml.eval_inner_steps, 1)  # Restored.

    def test_metric_learner_has_no_before(self):
        from keras_meta import ProtoNet
        from keras_meta import callbacks

        inputs, labels = testing.toy_episodes(num_tasks=2)
        learner = ProtoNet(testing.tiny_classifier(num_ways=4), num_ways=3)
        learner.compile(optimizer="sgd", loss=keras.losses.
                        SparseCategoricalCrossentropy(from_logits=True))
        scores = callbacks.AdaptationMetrics((inputs, labels))
        scores.set_model(learner)
        values = scores.scores()
        self.assertEqual(set(values), {"adaptation_query_loss",
                                       "adaptation_support_loss"})
        self.assertTrue(all(np.isfinite(v) for v in values.values()))
