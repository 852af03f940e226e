import itertools

import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import SNAIL
from keras_meta import testing
from keras_meta.models import backbones

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _initializer():
    counter = itertools.count()
    return lambda: keras.initializers.GlorotUniform(next(counter))


def _numpy_attention(x, layers):
    (wq, bq), (wk, bk), (wv, bv) = layers
    query = (x @ wq + bq) / np.sqrt(wq.shape[1])
    key, value = x @ wk + bk, x @ wv + bv
    scores = query @ key.T
    scores = np.where(np.tril(np.ones_like(scores)) > 0, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.concatenate([x, weights @ value], -1)


def _numpy_dense_block(x, dilation, f_weights, g_weights):
    def causal_conv(kernel, bias):
        shifted = np.zeros_like(x)
        shifted[dilation:] = x[:-dilation]
        return shifted @ kernel[0] + x @ kernel[1] + bias

    gated = np.tanh(causal_conv(*f_weights)) / (
        1.0 + np.exp(-causal_conv(*g_weights)))
    return np.concatenate([x, gated], -1)


def _encoder(dims=8):
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3),
        keras.layers.ReLU(), keras.layers.Flatten(),
        keras.layers.Dense(dims, kernel_initializer=keras.initializers.
                           GlorotUniform(5))])


def _snail(num_shots=2, encoder=None):
    return SNAIL(encoder or _encoder(), num_ways=3, num_shots=num_shots,
                 seed=0)


class SNAILBlocksTest(testing.TestCase):
    def test_attention_block_matches_numpy(self):
        inputs = keras.Input((None, 5))
        model = keras.Model(inputs, backbones._snail_attention_block(
            inputs, 4, 3, _initializer()))
        (rescaling,) = [layer for layer in model.layers
                        if isinstance(layer, keras.layers.Rescaling)]
        query = rescaling._inbound_nodes[0].input_tensors[0]._keras_history[0]
        (value,) = [layer for layer in model.layers
                    if isinstance(layer, keras.layers.Dense)
                    and layer.units == 3]
        (key,) = [layer for layer in model.layers
                  if isinstance(layer, keras.layers.Dense)
                  and layer not in (query, value)]
        weights = [[np.asarray(w) for w in layer.weights]
                   for layer in (query, key, value)]
        x = np.random.default_rng(0).normal(size=(2, 6, 5)).astype("float32")
        expected = np.stack([_numpy_attention(t, weights) for t in x])
        self.assertAllClose(model.predict(x, verbose=0), expected,
                            atol=1e-5, rtol=1e-5)

    def test_dense_block_matches_numpy(self):
        for dilation in (1, 2, 4):
            inputs = keras.Input((None, 3))
            model = keras.Model(inputs, backbones._snail_dense_block(
                inputs, dilation, 4, _initializer()))
            f, g = [[np.asarray(w) for w in layer.weights]
                    for layer in model.layers
                    if isinstance(layer, keras.layers.Conv1D)]
            x = np.random.default_rng(1).normal(size=(2, 7, 3)).astype(
                "float32")
            expected = np.stack(
                [_numpy_dense_block(t, dilation, f, g) for t in x])
            self.assertAllClose(model.predict(x, verbose=0), expected,
                                atol=1e-5, rtol=1e-5)

    def test_sequence_model_is_causal(self):
        model = keras_meta.models.snail_sequence_model(
            num_ways=3, feature_dim=5, max_sequence_length=7, seed=0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1, 7, 8)).astype("float32")
        base = model.predict(x, verbose=0)
        for t in range(6):
            changed = x.copy()
            changed[:, t + 1:] = rng.normal(size=changed[:, t + 1:].shape)
            out = model.predict(changed, verbose=0)
            # Steps up to t do not see the later ones...
            self.assertAllClose(out[:, :t + 1], base[:, :t + 1], atol=1e-6,
                                rtol=1e-6)
            # ...and the later ones do change: the check can fail.
            self.assertGreater(np.abs(out[:, t + 1:]
                                      - base[:, t + 1:]).max(), 1e-3)


class SNAILArchitectureTest(testing.TestCase):
    """The Omniglot network of Mishra et al. (2018), Appendix B."""

    def _layers(self, model, kind):
        return [layer for layer in model.layers if isinstance(layer, kind)]

    def test_paper_dimensions(self):
        model = keras_meta.models.snail_sequence_model(
            num_ways=5, feature_dim=64, max_sequence_length=6, seed=0)
        # Three attention blocks: (keys, values) = (64, 32), (256, 128),
        # (512, 256); each block's query, key and value projections.
        dense = [layer.units for layer in self._layers(
            model, keras.layers.Dense)]
        self.assertEqual(sorted(dense),
                         sorted([64, 64, 32, 256, 256, 128, 512, 512, 256]))
        convs = self._layers(model, keras.layers.Conv1D)
        # Two TC blocks of ceil(log2(6)) = 3 dense blocks, each a filter
        # and a gate of 128 causal kernel-2 convolutions; then 1x1 to 5.
        self.assertEqual([c.filters for c in convs], [128] * 12 + [5])
        self.assertEqual([c.kernel_size for c in convs], [(2,)] * 12 + [(1,)])
        self.assertTrue(all(c.padding == "causal" for c in convs[:-1]))
        # Every read and every gated output is concatenated to the input:
        # 64 + 5, +32, +3 * 128, +128, +3 * 128, +256 channels.
        self.assertEqual(model.layers[-2].output.shape[-1],
                         69 + 32 + 384 + 128 + 384 + 256)

    def test_dilation_schedule(self):
        for length, dilations in ((2, [1]), (6, [1, 2, 4]), (26, [1, 2, 4, 8,
                                                                  16]),
                                  (101, [1, 2, 4, 8, 16, 32, 64])):
            model = keras_meta.models.snail_sequence_model(
                num_ways=5, feature_dim=4, max_sequence_length=length)
            rates = [c.dilation_rate[0] for c in self._layers(
                model, keras.layers.Conv1D)[:-1]]
            # Filter and gate share a rate; two TC blocks.
            self.assertEqual(rates, [d for d in dilations for _ in (0, 1)] * 2)
            # The receptive field of one TC block reaches every step.
            self.assertGreaterEqual(1 + sum(dilations), length)

    def test_default_network_follows_ways_and_shots(self):
        snail = SNAIL(_encoder(dims=8), num_ways=5, num_shots=5, seed=0)
        rates = sorted({c.dilation_rate[0] for c in self._layers(
            snail.sequence_model, keras.layers.Conv1D)})
        # 5 x 5 support examples and one query: 26 steps, dilations to 16.
        self.assertEqual(rates, [1, 2, 4, 8, 16])


class SNAILTest(testing.TestCase):
    def test_matches_the_sequence_model(self):
        snail = _snail()
        snail.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        predictions = snail.predict(inputs, verbose=0)
        for t in range(2):
            support = snail.model.predict(inputs["support_inputs"][t],
                                          verbose=0)
            one_hot = np.eye(3)[inputs["support_labels"][t]]
            prefix = np.concatenate([support, one_hot], -1)
            for q, query in enumerate(snail.model.predict(
                    inputs["query_inputs"][t], verbose=0)):
                sequence = np.concatenate(
                    [prefix, np.concatenate([query, np.zeros(3)])[None]])
                logits = snail.sequence_model.predict(
                    sequence[None].astype("float32"), verbose=0)[0, -1]
                self.assertAllClose(predictions[t, q], logits, atol=1e-5,
                                    rtol=1e-5)

    def test_queries_do_not_see_each_other(self):
        snail = _snail()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        changed = dict(inputs)
        changed["query_inputs"] = inputs["query_inputs"].copy()
        changed["query_inputs"][:, 1:] += 1.0
        before = snail.predict(inputs, verbose=0)
        after = snail.predict(changed, verbose=0)
        self.assertAllClose(after[:, 0], before[:, 0], atol=1e-6, rtol=1e-6)
        self.assertGreater(np.abs(after[:, 1:] - before[:, 1:]).max(), 1e-4)

    def test_training_shuffles_the_support_order(self):
        snail = _snail()
        inputs, _ = testing.toy_episodes(num_tasks=4, num_ways=3,
                                         num_shots=2, num_queries=2)
        orders = keras.ops.convert_to_numpy(snail.per_task_parameters(
            inputs, training=True)["support_order"])
        self.assertEqual(orders.shape, (4, 6))
        for order in orders:
            self.assertEqual(sorted(order.tolist()), list(range(6)))
        self.assertFalse(all((order == np.arange(6)).all()
                             for order in orders))
        self.assertIsNone(snail.per_task_parameters(inputs, training=False))

    def test_padding_does_not_change_predictions(self):
        snail = _snail()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        self.assertPaddingIgnored(snail, inputs, positions=(0, 3, -1))

    def test_adapted_model_drops_padding(self):
        snail = _snail()
        inputs, _ = testing.toy_episodes(num_tasks=1, num_ways=3,
                                         num_shots=2, num_queries=2)
        support = inputs["support_inputs"][0]
        labels = inputs["support_labels"][0]
        padded = np.concatenate([support[:2], support[:1] + 5.0, support[2:]])
        weights = np.array([1, 1, 0, 1, 1, 1, 1], "float32")
        task_state = snail.adapt_task(
            snail.meta_parameters(), keras.ops.convert_to_tensor(padded),
            keras.ops.convert_to_tensor(
                np.concatenate([labels[:2], labels[:1], labels[2:]])),
            False, keras.ops.convert_to_tensor(weights))
        learner = snail.build_adapted_model(task_state, padded)
        self.assertAllClose(
            learner.predict(inputs["query_inputs"][0], verbose=0),
            snail.adapt(support, labels).predict(inputs["query_inputs"][0],
                                                 verbose=0),
            atol=1e-5, rtol=1e-5)

    def test_absent_classes_are_never_predicted(self):
        snail = _snail()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=2,
                                         num_shots=2, num_queries=2)
        logits = snail.predict(inputs, verbose=0)
        self.assertTrue(np.all(logits[..., 2] < -1e8))

    def test_adapted_model_loads_without_keras_meta_objects(self):
        snail = _snail()
        snail.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        self.assertAdaptedModelReloads(snail, inputs)

    @pytest.mark.slow_on_jax
    def test_basics(self):
        self.run_meta_model_test(
            cls=SNAIL, init_kwargs={"model": testing.tiny_classifier(
                num_ways=8), "num_ways": 3, "num_shots": 2, "seed": 0},
            episodes=testing.toy_episodes(num_tasks=2, num_ways=3,
                                          num_shots=2, num_queries=2),
            loss=LOSS, metrics=["accuracy"], learning_rate=1e-3)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "sequence_model"):
            SNAIL(_encoder(), num_ways=3, sequence_model="nope")
        other = keras_meta.models.snail_sequence_model(
            num_ways=3, feature_dim=5, max_sequence_length=4)
        with self.assertRaisesRegex(ValueError, "8-d embeddings"):
            SNAIL(_encoder(), num_ways=3, sequence_model=other)
        snail = _snail()
        snail.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=4,
                                         num_shots=1, num_queries=1)
        with self.assertRaisesRegex(ValueError, "num_ways=3"):
            snail.predict(inputs, verbose=0)
