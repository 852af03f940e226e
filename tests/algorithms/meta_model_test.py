import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from keras_meta import MAML
from keras_meta import MetaModel
from keras_meta import ProtoNet
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@keras.saving.register_keras_serializable(package="keras_meta_tests")
class SubclassedClassifier(keras.Model):
    def __init__(self, num_ways=3, **kwargs):
        super().__init__(**kwargs)
        self.num_ways = num_ways
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.logits = keras.layers.Dense(num_ways)

    def call(self, inputs):
        return self.logits(self.hidden(self.flatten(inputs)))

    def get_config(self):
        return {**super().get_config(), "num_ways": self.num_ways}


def _functional_classifier(num_ways=3):
    inputs = keras.Input(shape=(6, 6, 1))
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, activation="tanh")(x)
    return keras.Model(inputs, keras.layers.Dense(num_ways)(x))


def _subclassed_classifier(num_ways=3):
    model = SubclassedClassifier(num_ways)
    model(np.zeros((1, 6, 6, 1), "float32"))
    return model


class MetaModelBasicsTest(testing.TestCase):
    @parameterized.named_parameters(
        ("sequential_batch_norm", lambda: testing.tiny_classifier(), 1, False),
        ("sequential_two_steps", lambda: testing.tiny_classifier(), 2, False),
        ("first_order", lambda: testing.tiny_classifier(), 2, True),
        ("functional", _functional_classifier, 1, False),
        ("subclassed", _subclassed_classifier, 1, False),
    )
    def test_basics(self, make_model, num_inner_steps, first_order):
        self.run_meta_model_test(
            cls=MAML,
            init_kwargs={
                "model": make_model(),
                "inner_learning_rate": 0.1,
                "num_inner_steps": num_inner_steps,
                "first_order": first_order,
            },
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_wrapped_model_is_not_modified(self):
        model = testing.tiny_classifier()
        before = [v.numpy().copy() for v in model.weights]
        maml = MAML(model, inner_learning_rate=0.1)
        maml.compile(optimizer="sgd", loss=LOSS)
        inputs, labels = testing.toy_episodes()
        maml.evaluate(inputs, labels, verbose=0)
        maml.predict(inputs, verbose=0)
        maml.adapt(inputs["support_inputs"][0], inputs["support_labels"][0])
        for a, b in zip(before, model.weights):
            np.testing.assert_array_equal(a, b.numpy())
        # The meta-parameters are the wrapped model's weights: fit moves them.
        maml.fit(inputs, labels, epochs=1, verbose=0)
        self.assertFalse(np.allclose(before[0], model.weights[0].numpy()))

    def test_meta_training_learns(self):
        # Fresh tasks each step: the post-adaptation query loss must fall.
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.2)
        maml.compile(optimizer=keras.optimizers.Adam(3e-3), loss=LOSS)
        test = testing.toy_episodes(num_tasks=16, seed=99)
        before = maml.evaluate(*test, verbose=0, return_dict=True)["loss"]
        for seed in range(60):
            maml.train_on_batch(*testing.toy_episodes(num_tasks=4, seed=seed))
        after = maml.evaluate(*test, verbose=0, return_dict=True)["loss"]
        self.assertLess(after, 0.7 * before)


def _count_calls(obj, name):
    """Wraps method `name` of `obj`; returns the list it appends to on each
    call (here: each time TensorFlow traces it)."""
    calls = []
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    setattr(obj, name, counted)
    return calls


class TracingTest(testing.TestCase):
    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="TensorFlow retraces after variable creation")
    def test_first_training_step_is_traced_once(self):
        # Keras builds the optimizer inside the first traced step when no
        # strategy is set; TensorFlow would then trace the (expensive)
        # meta-step twice. MetaModel builds it first.
        learner = MAML(testing.tiny_classifier(num_ways=3),
                       inner_learning_rate=0.3)
        learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                        loss=keras.losses.SparseCategoricalCrossentropy(
                            from_logits=True))
        traces = _count_calls(learner, "train_step")
        inputs, labels = testing.toy_episodes(num_tasks=2, num_ways=3,
                                              num_shots=1, num_queries=2)
        learner.train_on_batch(inputs, labels)
        learner.train_on_batch(inputs, labels)
        self.assertTrue(learner.optimizer.built)
        self.assertLen(traces, 1)

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                        reason="Keras unrolls predict steps on TensorFlow")
    def test_predict_execution_traces_its_step_once(self):
        # Keras unrolls `steps_per_execution` predict steps into one traced
        # function; MetaModel calls one traced step from each of them.
        def make(steps_per_execution):
            learner = MAML(testing.tiny_classifier(num_ways=3),
                           inner_learning_rate=0.3, num_inner_steps=2)
            learner.compile(loss=LOSS,
                            steps_per_execution=steps_per_execution)
            return learner

        learner, reference = make(4), make(1)
        reference.set_weights(learner.get_weights())
        traces = _count_calls(learner, "adapt_task")
        inputs, _ = testing.toy_episodes(num_tasks=8, num_ways=3,
                                         num_shots=1, num_queries=2)
        predictions = learner.predict(inputs, batch_size=2, verbose=0)
        self.assertLen(traces, 1)
        self.assertAllClose(
            predictions, reference.predict(inputs, batch_size=2, verbose=0))
        learner.eval_inner_steps = 3
        learner.predict(inputs, batch_size=2, verbose=0)
        self.assertLen(traces, 2)


class AdaptTest(testing.TestCase):
    @parameterized.named_parameters(
        ("no_batch_norm", _functional_classifier, 3),
        ("subclassed", _subclassed_classifier, 1),
    )
    def test_adapt_matches_meta_model(self, make_model, steps):
        maml = MAML(make_model(), inner_learning_rate=0.3, num_inner_steps=steps)
        maml.compile(loss=LOSS)
        inputs, labels = testing.toy_episodes(num_tasks=2)
        expected = maml.predict(inputs, verbose=0)
        for task in range(2):
            learner = maml.adapt(
                inputs["support_inputs"][task], inputs["support_labels"][task]
            )
            self.assertIsInstance(learner, keras.Model)
            self.assertNotIsInstance(learner, MetaModel)
            self.assertAllClose(
                learner.predict(inputs["query_inputs"][task], verbose=0),
                expected[task],
                atol=1e-5,
                rtol=1e-5,
            )

    def test_adapted_batch_norm_uses_support_statistics(self):
        # A transductive learner adapted on a support set normalizes with
        # that set's statistics: on the support set itself it predicts
        # exactly what the meta-model predicts for it as a query set.
        maml = MAML(
            testing.tiny_classifier(), inner_learning_rate=0.3, num_inner_steps=2
        )
        maml.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        as_queries = dict(inputs, query_inputs=inputs["support_inputs"])
        expected = maml.predict(as_queries, verbose=0)
        for task in range(2):
            learner = maml.adapt(
                inputs["support_inputs"][task], inputs["support_labels"][task]
            )
            self.assertAllClose(
                learner.predict(inputs["support_inputs"][task], verbose=0),
                expected[task],
                atol=1e-5,
                rtol=1e-5,
            )
            # Each example is predicted on its own: batch composition is
            # irrelevant at inference.
            single = learner.predict(inputs["query_inputs"][task][:1], verbose=0)
            batch = learner.predict(inputs["query_inputs"][task], verbose=0)
            self.assertAllClose(single[0], batch[0], atol=1e-6, rtol=1e-6)

    def test_adapted_model_loads_without_keras_meta(self):
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
        maml.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=1)
        learner = maml.adapt(
            inputs["support_inputs"][0], inputs["support_labels"][0]
        )
        directory = self.get_temp_dir()
        path = os.path.join(directory, "learner.keras")
        learner.save(path)
        np.save(os.path.join(directory, "query.npy"), inputs["query_inputs"][0])
        expected = learner.predict(inputs["query_inputs"][0], verbose=0)
        script = (
            "import sys, numpy as np, keras\n"
            f"m = keras.models.load_model({path!r})\n"
            f"q = np.load({os.path.join(directory, 'query.npy')!r})\n"
            f"np.save({os.path.join(directory, 'out.npy')!r}, "
            "m.predict(q, verbose=0))\n"
            "assert 'keras_meta' not in sys.modules\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            timeout=120,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        actual = np.load(os.path.join(directory, "out.npy"))
        self.assertAllClose(actual, expected, atol=1e-6, rtol=1e-6)

    def test_adapted_model_owns_its_weights(self):
        # After zero steps the adapted weights equal the meta-model's; using
        # the learner (which on JAX donates its buffers) must not disturb
        # the meta-model.
        maml = MAML(_functional_classifier(), eval_inner_steps=0)
        maml.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        before = maml.predict(inputs, verbose=0)
        learner = maml.adapt(
            inputs["support_inputs"][0], inputs["support_labels"][0]
        )
        learner.predict(inputs["query_inputs"][0], verbose=0)
        learner.compile(optimizer="sgd", loss=LOSS)
        learner.fit(inputs["query_inputs"][0], np.zeros(6, "int32"), verbose=0)
        self.assertAllClose(maml.predict(inputs, verbose=0), before)

    def test_zero_eval_steps_is_the_unadapted_model(self):
        model = _functional_classifier()
        maml = MAML(model, inner_learning_rate=0.3, eval_inner_steps=0)
        maml.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2)
        predictions = maml.predict(inputs, verbose=0)
        for task in range(2):
            self.assertAllClose(
                predictions[task], model(inputs["query_inputs"][task])
            )

    def test_eval_inner_steps_change_retraces(self):
        maml = MAML(_functional_classifier(), inner_learning_rate=0.3)
        maml.compile(loss=LOSS)
        inputs, labels = testing.toy_episodes(num_tasks=2)
        losses = []
        for steps in (0, 1, 5):
            maml.eval_inner_steps = steps
            losses.append(maml.evaluate(inputs, labels, verbose=0))
        # Adapting to the support set lowers the query loss on these tasks.
        self.assertGreater(losses[0], losses[1])
        self.assertGreater(losses[1], losses[2])


def _proto_net():
    import keras_meta

    encoder = keras.Sequential([keras.Input((6, 6, 1)),
                                keras.layers.Conv2D(4, 3),
                                keras.layers.BatchNormalization(),
                                keras.layers.Flatten()])
    return keras_meta.ProtoNet(encoder, num_ways=3)


class DistributionTest(testing.TestCase):
    @parameterized.named_parameters(
        ("maml", lambda: MAML(testing.tiny_classifier(),
                              inner_learning_rate=0.3)),
        ("first_order_maml", lambda: MAML(
            testing.tiny_classifier(), inner_learning_rate=0.3,
            num_inner_steps=2, first_order=True)),
        ("proto_net", _proto_net),
    )
    @pytest.mark.tensorflow_only
    def test_mirrored_strategy_matches_one_device(self, make):
        inputs, labels = testing.toy_episodes(num_tasks=4)

        def train(strategy):
            with strategy.scope():
                keras.utils.set_random_seed(3)
                maml = make()
                maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
            dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
            maml.fit(dataset.batch(4).repeat(3), epochs=1, verbose=0)
            return [v.numpy() for v in maml.model.trainable_variables]

        one = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
        # Several MirroredStrategy objects in one process reuse the keys of
        # CPU collective ops; reducing to one device avoids collectives.
        mirrored_strategy = tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
        self.assertEqual(mirrored_strategy.num_replicas_in_sync, 2)
        mirrored = train(mirrored_strategy)
        self.assertAllClose(mirrored, one, atol=2e-6, rtol=2e-5)

    @pytest.mark.tensorflow_only
    def test_uneven_split_is_refused(self):
        # 3 tasks on 2 replicas would be split 2 and 1, and Keras's mean of
        # the replicas' means would weight them unequally.
        inputs, labels = testing.toy_episodes(num_tasks=6)
        strategy = tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"],
            cross_device_ops=tf.distribute.ReductionToOneDevice())
        with strategy.scope():
            maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
            maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=LOSS)
        dataset = tf.data.Dataset.from_tensor_slices((inputs, labels))
        before = [v.numpy() for v in maml.model.trainable_variables]
        for run in (lambda: maml.fit(dataset.batch(3), verbose=0),
                    lambda: maml.evaluate(dataset.batch(3), verbose=0)):
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                        "multiple of the number of "
                                        "replicas"):
                run()
        # An even split (2 tasks a replica) trains.
        maml.fit(dataset.batch(4), verbose=0)
        after = [v.numpy() for v in maml.model.trainable_variables]
        self.assertTrue(any(not np.allclose(b, a)
                            for b, a in zip(before, after)))


class JAXWithoutTensorFlowTest(testing.TestCase):
    @pytest.mark.jax_only
    def test_import_and_train_without_tensorflow(self):
        script = (
            "import sys\n"
            "sys.modules['tensorflow'] = None  # any import of it fails\n"
            "import keras, numpy as np, keras_meta\n"
            "from keras_meta import testing\n"
            "inputs, labels = testing.toy_episodes(num_tasks=4)\n"
            "maml = keras_meta.MAML(testing.tiny_classifier(), "
            "inner_learning_rate=0.1)\n"
            "maml.compile(optimizer='sgd', loss=keras.losses."
            "SparseCategoricalCrossentropy(from_logits=True))\n"
            "maml.fit(inputs, labels, batch_size=2, epochs=1, verbose=0)\n"
            "print(maml.evaluate(inputs, labels, verbose=0, "
            "return_dict=True)['loss_ci95'] > 0)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env={**os.environ, "KERAS_BACKEND": "jax"},
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertEqual(result.stdout.strip().splitlines()[-1], "True")


class ErrorsTest(testing.TestCase):
    def _compiled(self, **kwargs):
        maml = MAML(testing.tiny_classifier(), **kwargs)
        maml.compile(optimizer="sgd", loss=LOSS)
        return maml

    def test_not_a_model(self):
        with self.assertRaisesRegex(ValueError, "expected an instance of"):
            MAML(keras.layers.Dense(3))

    def test_unbuilt_model(self):
        model = keras.Sequential([keras.layers.Dense(3)])
        with self.assertRaisesRegex(ValueError, "needs a built model"):
            MAML(model)

    @parameterized.named_parameters(
        ("zero", 0), ("negative", -1), ("float", 1.5), ("bool", True)
    )
    def test_num_inner_steps(self, value):
        with self.assertRaisesRegex(ValueError, "num_inner_steps"):
            MAML(testing.tiny_classifier(), num_inner_steps=value)

    @parameterized.named_parameters(("negative", -0.1), ("zero", 0.0))
    def test_inner_learning_rate(self, value):
        with self.assertRaisesRegex(ValueError, "positive number"):
            MAML(testing.tiny_classifier(), inner_learning_rate=value)

    def test_eval_inner_steps(self):
        with self.assertRaisesRegex(ValueError, "eval_inner_steps"):
            MAML(testing.tiny_classifier(), eval_inner_steps=-1)

    def test_batch_norm_mode(self):
        with self.assertRaisesRegex(ValueError, "must be one of"):
            MAML(testing.tiny_classifier(), batch_norm="running")
        with self.assertRaisesRegex(ValueError, "not available for `ProtoNet`"):
            ProtoNet(testing.tiny_classifier(), num_ways=3,
                     batch_norm="per_step")

    def test_inductive_refuses_batch_renormalization(self):
        model = keras.Sequential([
            keras.Input((4,)), keras.layers.Dense(3),
            keras.layers.BatchNormalization(renorm=True)])
        with self.assertRaisesRegex(ValueError, "renorm=True"):
            MAML(model)
        MAML(model, batch_norm="transductive")

    def test_missing_keys(self):
        maml = self._compiled()
        inputs, labels = testing.toy_episodes()
        del inputs["support_labels"]
        before = [v.numpy() for v in maml.weights]
        with self.assertRaisesRegex(ValueError, "Received: \\['query_inputs'"):
            maml.fit(inputs, labels, verbose=0)
        for a, b in zip(before, maml.weights):
            np.testing.assert_array_equal(a, b.numpy())

    def test_missing_keys_in_dataset(self):
        maml = self._compiled()
        inputs, labels = testing.toy_episodes()
        dataset = tf.data.Dataset.from_tensors(
            ({"support": inputs["support_inputs"]}, labels)
        )
        with self.assertRaisesRegex(ValueError, "rename the keys"):
            maml.fit(dataset, verbose=0)

    def test_different_numbers_of_tasks(self):
        maml = self._compiled()
        inputs, labels = testing.toy_episodes(num_tasks=4)
        inputs["query_inputs"] = inputs["query_inputs"][:3]
        dataset = tf.data.Dataset.from_tensors((inputs, labels[:3]))
        with self.assertRaisesRegex(ValueError, "same number of tasks"):
            maml.fit(dataset, verbose=0)

    def test_support_labels_out_of_range(self):
        maml = self._compiled()
        inputs, labels = testing.toy_episodes(num_ways=3)
        inputs["support_labels"] = inputs["support_labels"] + 5
        dataset = tf.data.Dataset.from_tensors((inputs, labels))
        with self.assertRaisesRegex(ValueError, "must lie in 0..2"):
            maml.fit(dataset, verbose=0)
        with self.assertRaisesRegex(ValueError, "must lie in 0..2"):
            maml.evaluate(dataset, verbose=0)

    def test_query_labels_out_of_range(self):
        maml = self._compiled()
        inputs, labels = testing.toy_episodes(num_ways=3)
        with self.assertRaisesRegex(ValueError, "query_labels in \\[-1"):
            maml.fit(inputs, labels - 1, verbose=0)

    def test_adapt_labels_out_of_range(self):
        maml = self._compiled()
        inputs, _ = testing.toy_episodes(num_ways=3)
        with self.assertRaisesRegex(ValueError, "must lie in 0..2"):
            maml.adapt(inputs["support_inputs"][0], inputs["support_labels"][0] + 3)

    def test_no_loss(self):
        maml = MAML(testing.tiny_classifier())
        maml.compile(optimizer="sgd")
        inputs, labels = testing.toy_episodes()
        with self.assertRaisesRegex(ValueError, "compile\\(loss=...\\)"):
            maml.fit(inputs, labels, verbose=0)

    def test_example_shapes_differ(self):
        maml = self._compiled()
        inputs, labels = testing.toy_episodes()
        inputs["query_inputs"] = inputs["query_inputs"][..., :5, :]
        with self.assertRaisesRegex(ValueError, "same shape"):
            maml.fit(inputs, labels, verbose=0)


class LabelChecksTest(testing.TestCase):
    def _maml(self):
        maml = MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
        maml.compile(optimizer="sgd", loss=keras.losses
                     .SparseCategoricalCrossentropy(from_logits=True))
        return maml

    def test_float_labels_for_a_classifier(self):
        inputs, labels = testing.toy_episodes(num_tasks=2)
        with self.assertRaisesRegex(ValueError, "integer class labels"):
            self._maml().fit(inputs, labels.astype("float32"), verbose=0)

    @pytest.mark.tensorflow_only
    def test_bad_label_in_a_later_batch(self):
        # The first episode is fine, so only the in-graph check sees it.
        inputs, labels = testing.toy_episodes(num_tasks=4)
        labels[3, 0] = 7
        dataset = tf.data.Dataset.from_tensor_slices(
            (inputs, labels)).batch(2)
        with self.assertRaisesRegex(
                ValueError, r"query_labels holds labels outside 0\.\.2 .*"
                r"Received labels in \[0, 7\] \(epoch 1, batch 2\)"):
            self._maml().fit(dataset, epochs=1, verbose=0)
        with self.assertRaisesRegex(ValueError, r"in \[0, 7\]"):
            self._maml().evaluate(dataset, verbose=0)


class NewcomerErrorsTest(testing.TestCase):
    def _maml(self, num_ways=3):
        maml = MAML(testing.tiny_classifier(num_ways=num_ways),
                    inner_learning_rate=0.3)
        maml.compile(optimizer="sgd", loss=keras.losses
                     .SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
        return maml

    def test_empty_dataset(self):
        inputs, labels = testing.toy_episodes(num_tasks=2)
        empty = tf.data.Dataset.from_tensor_slices((inputs, labels)).take(0)
        with self.assertRaisesRegex(ValueError, "yields no episodes"):
            self._maml().fit(empty, verbose=0)

    def test_string_labels(self):
        inputs, labels = testing.toy_episodes(num_tasks=2)
        inputs["support_labels"] = inputs["support_labels"].astype(str)
        with self.assertRaisesRegex(ValueError, "numeric inputs"):
            self._maml().fit(inputs, labels, verbose=0)

    def test_regression_episodes_into_a_metric_learner(self):
        from keras_meta import data

        encoder = keras.Sequential([keras.Input((1,)),
                                    keras.layers.Dense(4)])
        protonet = ProtoNet(encoder, num_ways=5)
        protonet.compile(loss="mse")
        episodes = data.sinusoid(num_shots=5, batch_size=2, num_tasks=2,
                                 seed=0)
        with self.assertRaisesRegex(ValueError, "classifies"):
            protonet.predict(episodes, verbose=0)

    def test_adapt_with_a_task_axis(self):
        inputs, _ = testing.toy_episodes(num_tasks=2)
        with self.assertRaisesRegex(ValueError, r"support_inputs\[i\]"):
            self._maml().adapt(inputs["support_inputs"],
                               inputs["support_labels"])

    def test_class_weight(self):
        inputs, labels = testing.toy_episodes(num_tasks=2)
        with self.assertRaisesRegex(ValueError, "sample_weight"):
            self._maml().fit(inputs, labels, class_weight={0: 2.0},
                             verbose=0)

    def test_surplus_outputs_warn(self):
        inputs, labels = testing.toy_episodes(num_tasks=2, num_ways=3)
        with self.assertWarnsRegex(UserWarning, "num_outputs=3"):
            self._maml(num_ways=5).fit(inputs, labels, verbose=0)

    def test_metrics_names_match_evaluate(self):
        inputs, labels = testing.toy_episodes(num_tasks=2)
        maml = self._maml()
        values = maml.evaluate(inputs, labels, verbose=0)
        logs = maml.evaluate(inputs, labels, verbose=0, return_dict=True)
        self.assertEqual(len(values), len(maml.metrics_names))
        self.assertEqual(dict(zip(maml.metrics_names, values)), logs)


def _ci(values):
    # Student's t quantiles (scipy.stats.t.ppf(0.975, df)).
    t = {5: 2.5705818366, 3: 3.1824463053, 2: 4.3026527297}[len(values) - 1]
    return t * values.std(ddof=1) / np.sqrt(len(values))


class QueryWeightsTest(testing.TestCase):
    def _evaluate(self, seed, **compile_kwargs):
        """A linear MAML scored on 6 regression tasks whose queries are
        weighted 0 or 1; returns its logs, absolute query errors and
        weights."""
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        maml = MAML(model, inner_learning_rate=0.1)
        maml.compile(optimizer="sgd", loss="mse", **compile_kwargs)
        rng = np.random.default_rng(seed)
        x = {"support_inputs": rng.normal(size=(6, 4, 2)).astype("float32"),
             "support_labels": rng.normal(size=(6, 4, 1)).astype("float32"),
             "query_inputs": rng.normal(size=(6, 5, 2)).astype("float32")}
        y = rng.normal(size=(6, 5, 1)).astype("float32")
        w = (rng.random((6, 5)) < 0.5).astype("float32")
        w[:, 0] = 1.0
        logs = maml.evaluate(x, y, sample_weight=w, batch_size=6, verbose=0,
                             return_dict=True)
        errors = np.abs(maml.predict(x, batch_size=6, verbose=0) - y)[..., 0]
        return logs, errors, w

    def test_compiled_metrics_are_weighted_by_query_weights(self):
        logs, errors, w = self._evaluate(
            1, metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
        weighted = (errors * w).sum(1) / w.sum(1)
        self.assertAllClose(logs["mae"], (errors * w).sum() / w.sum(),
                            atol=1e-5)
        self.assertAllClose(logs["mae_ci95"], _ci(weighted), atol=1e-5)
        # The interval belongs to the mean over tasks, which differs from
        # the pooled mean when tasks count different numbers of queries.
        self.assertAllClose(logs["mae_episode_mean"], weighted.mean(),
                            atol=1e-5)
        self.assertGreater(abs(logs["mae_episode_mean"] - logs["mae"]), 1e-3)

    def test_weighted_and_unweighted_metrics_as_keras_defines_them(self):
        # Given both, Keras passes sample weights to `weighted_metrics`
        # only; the per-episode confidence intervals follow the same rule.
        logs, errors, w = self._evaluate(
            0, metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
            weighted_metrics=[
                keras.metrics.MeanAbsoluteError(name="weighted_mae")])
        per_task = errors.mean(1)
        weighted = (errors * w).sum(1) / w.sum(1)
        self.assertAllClose(logs["mae"], errors.mean(), atol=1e-5)
        self.assertAllClose(logs["mae_ci95"], _ci(per_task), atol=1e-5)
        self.assertAllClose(logs["weighted_mae"],
                            (errors * w).sum() / w.sum(), atol=1e-5)
        self.assertAllClose(logs["weighted_mae_ci95"], _ci(weighted),
                            atol=1e-5)
