"""`TestCase` and the oracle helpers shared by the algorithm tests."""

import json
import os
import tempfile

import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import episode


class TestCase(parameterized.TestCase):
    """Base class of keras_meta's tests.

    `setUp` resets Keras's global state (collecting garbage every 25th
    test) and seeds every generator;
    `assertAllClose` accepts tensors, arrays and nested lists of them.
    """

    # Python's garbage collection over a test process's growing heap took
    # a tenth of the suite's time when run before every test.
    _COLLECT_EVERY = 25
    _set_ups = 0

    def setUp(self):
        super().setUp()
        TestCase._set_ups += 1
        keras.backend.clear_session(
            free_memory=TestCase._set_ups % self._COLLECT_EVERY == 0)
        keras.config.set_floatx("float32")
        keras.utils.set_random_seed(1337)

    def tearDown(self):
        keras.config.set_floatx("float32")
        super().tearDown()

    def get_temp_dir(self):
        path = tempfile.mkdtemp()
        self.addCleanup(_rmtree, path)
        return path

    def assertAllClose(self, actual, desired, atol=1e-6, rtol=1e-6, msg=None):
        """Nests of tensors or arrays, close element by element. A nest
        and a plain list of numbers (`[0.5, 2.1]` for one tensor) are
        compared as arrays; nests of different lengths fail."""
        actual = keras.tree.map_structure(keras.ops.convert_to_numpy, actual)
        desired = keras.tree.map_structure(keras.ops.convert_to_numpy, desired)
        flat_actual = keras.tree.flatten(actual)
        flat_desired = keras.tree.flatten(desired)
        if len(flat_actual) != len(flat_desired):
            flat_actual, flat_desired = [np.asarray(actual)], [
                np.asarray(desired)]
        for a, d in zip(flat_actual, flat_desired):
            np.testing.assert_allclose(a, d, atol=atol, rtol=rtol, err_msg=msg)

    def assertSameTrainingStep(self, logs, expected_logs, before, after,
                               expected_after):
        """Two ways of taking one training step from the same weights
        (`before`) gave the same logs and updated weights, and the step
        moved most weights (else the comparison would mean nothing)."""
        self.assertEqual(set(logs), set(expected_logs))
        for key in logs:
            self.assertAllClose(logs[key], expected_logs[key], rtol=1e-5,
                                atol=1e-6, msg=key)
        moved = 0
        for b, a, e in zip(before, after, expected_after):
            self.assertAllClose(a, e, rtol=1e-4, atol=1e-6)
            moved += int(np.max(np.abs(e - b)) > 1e-6)
        self.assertGreater(moved, len(before) // 2)

    def assertAdaptedModelMatches(self, meta_model, inputs, task=0,
                                  atol=1e-5, rtol=1e-4):
        """`adapt()` on one task's support set gives a model predicting its
        queries as `meta_model.predict()` does."""
        learner = meta_model.adapt(inputs[episode.SUPPORT_INPUTS][task],
                                   inputs[episode.SUPPORT_LABELS][task])
        self.assertAllClose(
            learner.predict(inputs[episode.QUERY_INPUTS][task], verbose=0),
            meta_model.predict(inputs, verbose=0)[task],
            atol=atol, rtol=rtol)
        return learner

    def assertPaddingIgnored(self, meta_model, inputs, positions=(1, -1),
                             atol=1e-5, rtol=1e-5):
        """Padded support examples (`support_weights` 0) inserted at
        `positions` of every task's support set, holding junk, leave
        `meta_model.predict()` unchanged; the same junk counted as real
        examples changes it (so the check can fail)."""
        support = np.asarray(inputs[episode.SUPPORT_INPUTS])
        labels = np.asarray(inputs[episode.SUPPORT_LABELS])
        num_support = support.shape[1]
        weights = np.asarray(inputs.get(
            episode.SUPPORT_WEIGHTS, np.ones(labels.shape[:2], "float32")))
        for position in positions:
            index = position % (num_support + 1)
            junk = np.random.default_rng(index).normal(
                3.0, 2.0, support[:, :1].shape).astype(support.dtype)
            support = np.concatenate(
                [support[:, :index], junk, support[:, index:]], axis=1)
            labels = np.concatenate(
                [labels[:, :index], labels[:, :1], labels[:, index:]], axis=1)
            weights = np.concatenate(
                [weights[:, :index], np.zeros_like(weights[:, :1]),
                 weights[:, index:]], axis=1)
            num_support += 1
        padded = {**inputs, episode.SUPPORT_INPUTS: support,
                  episode.SUPPORT_LABELS: labels,
                  episode.SUPPORT_WEIGHTS: weights}
        expected = meta_model.predict(inputs, verbose=0)
        self.assertAllClose(meta_model.predict(padded, verbose=0), expected,
                            atol=atol, rtol=rtol)
        counted = {**padded,
                   episode.SUPPORT_WEIGHTS: np.ones_like(weights)}
        self.assertGreater(np.max(np.abs(
            meta_model.predict(counted, verbose=0) - expected)), 1e-3)

    def assertAdaptedModelReloads(self, meta_model, inputs, atol=1e-5,
                                  rtol=1e-5):
        """`assertAdaptedModelMatches`, then the adapted model saved to a
        `.keras` file and reloaded in safe mode predicts the same (with the
        custom objects registered, which stock-layer models do not need)."""
        learner = self.assertAdaptedModelMatches(meta_model, inputs,
                                                 atol=atol, rtol=rtol)
        path = os.path.join(self.get_temp_dir(), "adapted.keras")
        learner.save(path)
        reloaded = keras.models.load_model(path, safe_mode=True)
        self.assertAllClose(
            reloaded.predict(inputs[episode.QUERY_INPUTS][0], verbose=0),
            learner.predict(inputs[episode.QUERY_INPUTS][0], verbose=0))
        return reloaded

    def run_adapted_model_test(self, meta_model, episodes, rtol=1e-4):
        """What is evaluated is what is deployed.

        For every task of `episodes`, `meta_model.adapt(support).predict(
        queries)` equals `meta_model.predict(episodes)` for that task (to
        `rtol` of the largest prediction), predictions are deterministic
        (Dropout inactive), `evaluate()` scores exactly those predictions,
        and in the inductive mode one query predicted alone equals the same
        query predicted with the others.
        """
        inputs, labels = episodes
        predictions = meta_model.predict(inputs, verbose=0)
        self.assertAllClose(meta_model.predict(inputs, verbose=0),
                            predictions, atol=0, rtol=0,
                            msg="predict() is not deterministic")
        scale = float(np.max(np.abs(predictions)))
        for task in range(len(labels)):
            learner = meta_model.adapt(inputs[episode.SUPPORT_INPUTS][task],
                                       inputs[episode.SUPPORT_LABELS][task])
            queries = inputs[episode.QUERY_INPUTS][task]
            deployed = learner.predict(queries, batch_size=len(queries),
                                       verbose=0)
            self.assertAllClose(
                deployed, predictions[task], atol=rtol * scale, rtol=0,
                msg=f"adapt().predict() differs from predict(), task {task}")
        if getattr(meta_model, "batch_norm", None) == "inductive":
            alone = learner.predict(queries[:1], verbose=0)
            self.assertAllClose(alone, deployed[:1], atol=rtol * scale,
                                rtol=0, msg="a query alone differs")
        # `evaluate()` scores those predictions.
        logs = meta_model.evaluate(inputs, labels, verbose=0,
                                   return_dict=True)
        losses = keras.ops.convert_to_numpy(
            meta_model.loss(labels, predictions))
        self.assertAllClose(logs["loss"], np.mean(losses), atol=1e-5,
                            rtol=1e-4)
        if "accuracy" in logs:
            accuracy = np.mean(np.argmax(predictions, -1) == labels)
            self.assertAllClose(logs["accuracy"], accuracy, atol=1e-6)
        return predictions

    def run_meta_model_test(
        self, cls, init_kwargs, episodes, loss, metrics=None, fit_steps=2,
        learning_rate=0.05,
    ):
        """Standard checks every `MetaModel` passes.

        Checks a `get_config()` round trip, a `.keras` save and reload with
        equal predictions, eager and traced `fit()` reaching the same
        weights, and `steps_per_execution=2` matching `1` (not on torch,
        whose trainer runs one step per execution).
        """
        inputs, labels = episodes
        model = init_kwargs["model"]
        initial_weights = [v.numpy() for v in model.weights]
        # Other networks the learner trains (a relation module, an
        # encoder) start every run from their initial weights too.
        networks = {key: (value, value.get_weights())
                    for key, value in init_kwargs.items()
                    if key != "model" and isinstance(value, keras.Model)}

        def make(perturbation=None):
            # Each run starts from a fresh copy of the same initial model.
            keras.utils.set_random_seed(7)
            copy = keras.saving.deserialize_keras_object(
                keras.saving.serialize_keras_object(model)
            )
            if not copy.built:
                copy.build(model.input_shape if hasattr(model, "inputs")
                           and model.inputs else (None,) + inputs[
                               episode.SUPPORT_INPUTS].shape[2:])
            weights = initial_weights
            if perturbation is not None:
                weights = [perturbation(w) for w in weights]
            copy.set_weights(weights)
            others = {}
            for key, (network, values) in networks.items():
                others[key] = keras.models.clone_model(network)
                others[key].set_weights(values)
            meta_model = cls(**{**init_kwargs, **others, "model": copy})
            meta_model.compile(
                optimizer=keras.optimizers.SGD(learning_rate),
                loss=loss,
                metrics=metrics,
                **compile_kwargs,
            )
            return meta_model

        # Config round trip.
        compile_kwargs = {}
        meta_model = make()
        config = meta_model.get_config()
        clone = cls.from_config(config)
        self.assertEqual(_normalized(clone.get_config()), _normalized(config))

        # Eager and traced fit agree; steps_per_execution=2 matches 1.
        weights = {}
        rng = np.random.default_rng(0)

        def one_ulp(value):
            # Every float weight moved by one unit in the last place.
            if not np.issubdtype(value.dtype, np.floating):
                return value
            signs = rng.choice([-1.0, 1.0], size=value.shape)
            return value + signs * np.spacing(value).astype(value.dtype)

        modes = [
            ("traced", {}, None),
            ("eager", {"run_eagerly": True}, None),
            ("steps_per_execution", {"steps_per_execution": 2}, None),
            ("one_ulp", {}, one_ulp),
        ]
        if keras.backend.backend() == "torch":
            # Keras's torch trainer runs one step per execution.
            modes = [mode for mode in modes
                     if mode[0] != "steps_per_execution"]
        for mode, kwargs, perturbation in modes:
            compile_kwargs = kwargs
            meta_model = make(perturbation)
            meta_model.fit(
                inputs, labels, batch_size=len(labels) // 2 or 1,
                epochs=fit_steps, verbose=0, shuffle=False,
            )
            weights[mode] = [v.numpy() for v in meta_model.model.weights]
        # Eager and traced runs compute the same function in different
        # orders of operations, so they differ by rounding, amplified by the
        # computation's conditioning. Starting the traced run one unit in
        # the last place away measures that amplification on this very
        # computation; the tolerance is ten times it (and at least 10
        # units of float32 rounding on weights of size 1).
        noise = max(float(np.max(np.abs(a - b))) for a, b in zip(
            weights["one_ulp"], weights["traced"]))
        tolerance = max(10 * noise, 10 * float(np.finfo("float32").eps))
        for mode in ("eager", "steps_per_execution"):
            if mode not in weights:
                continue
            self.assertAllClose(weights[mode], weights["traced"],
                                atol=tolerance, rtol=0,
                                msg=f"{mode} differs from traced")
        # Training moved the weights: by far more than that rounding.
        compile_kwargs = {}
        initial = [v.numpy() for v in make().model.weights]
        moved = max(float(np.max(np.abs(a - b)))
                    for a, b in zip(initial, weights["traced"]))
        self.assertGreater(moved, 100 * tolerance)

        # Save and reload.
        path = os.path.join(self.get_temp_dir(), "meta_model.keras")
        meta_model.save(path)
        reloaded = keras.models.load_model(path)
        self.assertIsInstance(reloaded, cls)
        self.assertEqual(
            _normalized(reloaded.get_config()), _normalized(meta_model.get_config())
        )
        self.assertAllClose(
            reloaded.predict(inputs, verbose=0),
            meta_model.predict(inputs, verbose=0),
            atol=1e-6,
            rtol=1e-6,
        )
        return meta_model


def _normalized(config):
    # Tuples and lists are the same to a config: compare as JSON does.
    return json.loads(json.dumps(config))


def _rmtree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def meta_gradient(meta_model, inputs, labels):
    """The meta-gradient `fit()` applies, read off one SGD step of size 1.

    Runs the real `train_step` (through `train_on_batch`) with
    `SGD(learning_rate=1.0)` and returns `initial - updated` for each
    trainable variable, then restores the initial weights.
    """
    variables = meta_model.trainable_variables
    initial = [v.numpy() for v in variables]
    meta_model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss=meta_model.loss,
    )
    meta_model.train_on_batch(inputs, labels)
    gradient = [a - v.numpy() for a, v in zip(initial, variables)]
    for variable, value in zip(variables, initial):
        variable.assign(value)
    return gradient


def meta_loss_function(meta_model, loss, inputs, labels):
    """The meta-training loss as a compiled function of the weight values.

    Returns a callable taking a list of values for
    `meta_model.trainable_variables` (NumPy arrays) and returning the
    compiled `loss` of the query predictions in training mode, as a float.
    It runs through `stateless_call`, so the variables are never touched.
    Learners whose training outputs carry an `"auxiliary_loss"` have it
    added, as `fit()` does.
    """
    state = [v.value for v in meta_model.non_trainable_variables]

    def compute(values):
        # In the learner's float64 scope, as its training step computes.
        with meta_model.float64_scope():
            return forward(values)

    def forward(values):
        predictions, _ = meta_model.stateless_call(
            values, state, inputs, training=True
        )
        if not isinstance(predictions, dict):
            return loss(labels, predictions)
        value = loss(labels, predictions["predictions"])
        if "auxiliary_loss" in predictions:
            value = value + keras.ops.cast(
                keras.ops.mean(predictions["auxiliary_loss"]), value.dtype)
        return value

    if keras.backend.backend() == "jax":
        import jax

        compiled = jax.jit(compute)
    elif keras.backend.backend() == "torch":
        import torch

        def compiled(values):
            with torch.no_grad():
                return compute(values)
    else:
        import tensorflow as tf

        compiled = tf.function(compute)
    return lambda values: float(
        compiled([keras.ops.convert_to_tensor(v) for v in values])
    )


def finite_difference_gradient(loss_fn, values, epsilon=1e-5):
    """Central finite differences of `loss_fn(values)` over every scalar.

    Args:
        loss_fn: Callable taking a list of NumPy arrays, returning a float.
        values: List of NumPy arrays, the point to differentiate at.
        epsilon: Float, step size.

    Returns:
        A list of NumPy arrays matching `values`.
    """
    # C order: `reshape(-1)` below must be a view of each array.
    values = [np.array(v, copy=True, order="C") for v in values]
    gradients = []
    for k, base in enumerate(values):
        gradient = np.zeros_like(base)
        flat_gradient = gradient.reshape(-1)
        flat_base = base.reshape(-1)
        for i in range(base.size):
            original = flat_base[i]
            flat_base[i] = original + epsilon
            upper = loss_fn(values)
            flat_base[i] = original - epsilon
            lower = loss_fn(values)
            flat_base[i] = original
            flat_gradient[i] = (upper - lower) / (2 * epsilon)
        gradients.append(gradient)
    return gradients


def meta_gradient_error(meta_model, loss, inputs, labels):
    """Relative error of `fit()`'s meta-gradient against finite differences.

    Compares `meta_gradient` with central finite differences of the
    compiled `loss`, over every trainable scalar: the float64 oracle of the
    gradient-based algorithm tests.
    """
    gradient = meta_gradient(meta_model, inputs, labels)
    numeric = finite_difference_gradient(
        meta_loss_function(meta_model, loss, inputs, labels),
        [v.numpy() for v in meta_model.trainable_variables],
    )
    flat = np.concatenate([g.ravel() for g in gradient])
    flat_numeric = np.concatenate([g.ravel() for g in numeric])
    return np.linalg.norm(flat - flat_numeric) / np.linalg.norm(flat_numeric)
