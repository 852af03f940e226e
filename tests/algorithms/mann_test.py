import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import MANN
from keras_meta import testing
from keras_meta.models import MANNCell

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
SMALL = {"units": 8, "memory_size": 6, "memory_width": 4, "num_reads": 2}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyMANN:
    """Santoro et al.'s step, written out for one sequence."""

    def __init__(self, cell):
        (self.kernel, self.recurrent, self.bias, self.key_kernel,
         self.key_bias, self.head_kernel, self.head_bias) = [
            np.asarray(w, dtype="float64") for w in (
                cell.controller.kernel, cell.controller.recurrent_kernel,
                cell.controller.bias, cell.key_kernel, cell.key_bias,
                cell.head_kernel, cell.head_bias)]
        self.units, self.reads = cell.units, cell.num_reads
        self.slots, self.width = cell.memory_size, cell.memory_width
        self.decay = cell.usage_decay

    def run(self, xs):
        u, r, n, w = self.units, self.reads, self.slots, self.width
        h, c = np.zeros(u), np.zeros(u)
        memory, usage = np.zeros((n, w)), np.zeros(n)
        previous_read_weights, reads = np.zeros((r, n)), np.zeros(r * w)
        outputs = []
        for x in xs:
            z = (np.concatenate([x, reads]) @ self.kernel + h @ self.recurrent
                 + self.bias)
            i, f, g, o = np.split(z, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            keys = np.tanh(h @ self.key_kernel + self.key_bias).reshape(r, w)
            heads = h @ self.head_kernel + self.head_bias
            strength = 1.0 + np.log1p(np.exp(heads[:r]))
            gate = _sigmoid(heads[r:])
            read_weights = np.zeros((r, n))
            for head in range(r):
                similarity = np.array([
                    keys[head] @ memory[slot] / (
                        np.sqrt(keys[head] @ keys[head] + 1e-8)
                        * np.sqrt(memory[slot] @ memory[slot] + 1e-8))
                    for slot in range(n)])
                e = np.exp(strength[head] * similarity)
                read_weights[head] = e / e.sum()
            reads = (read_weights @ memory).reshape(-1)
            # The `r` least used slots by the previous usage, lowest index
            # first on ties; head h writes to the h-th of them.
            order = sorted(range(n), key=lambda s: (usage[s], s))[:r]
            write_weights = gate[:, None] * previous_read_weights
            for head, slot in enumerate(order):
                write_weights[head, slot] += 1.0 - gate[head]
            memory = memory.copy()
            memory[order] = 0.0
            for head in range(r):
                memory += np.outer(write_weights[head], keys[head])
            usage = (self.decay * usage + read_weights.sum(0)
                     + write_weights.sum(0))
            previous_read_weights = read_weights
            outputs.append(np.concatenate([h, reads]))
        return np.array(outputs), memory, usage


def _rnn(seed=0, input_dim=5, **options):
    options = {**SMALL, **options}
    cell = MANNCell(options.pop("units"), seed=seed, **options)
    inputs = keras.Input((None, input_dim))
    outputs = keras.layers.RNN(cell, return_sequences=True,
                               return_state=True)(inputs)
    return cell, keras.Model(inputs, outputs)


def _encoder(dims=8):
    return keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3),
        keras.layers.ReLU(), keras.layers.Flatten(),
        keras.layers.Dense(dims, kernel_initializer=keras.initializers.
                           GlorotUniform(5))])


def _mann(encoder=None):
    return MANN(encoder or _encoder(), num_ways=3, seed=0, **SMALL)


class MANNCellTest(testing.TestCase):
    def test_matches_numpy_step_by_step(self):
        # Nine steps through six slots: the least used slots get cleared
        # and reused.
        cell, model = _rnn()
        # Biases away from zero so that every term is exercised.
        rng = np.random.default_rng(3)
        for weight in (cell.key_bias, cell.head_bias):
            weight.assign(rng.normal(size=weight.shape).astype("float32"))
        xs = rng.normal(size=(2, 9, 5)).astype("float32")
        outputs, _, _, memory, usage, _, _ = model.predict(xs, verbose=0)
        reference = NumpyMANN(cell)
        for b in range(2):
            expected, expected_memory, expected_usage = reference.run(
                xs[b].astype("float64"))
            self.assertAllClose(outputs[b], expected, atol=1e-5, rtol=1e-4)
            self.assertAllClose(memory[b].reshape(6, 4), expected_memory,
                                atol=1e-5, rtol=1e-4)
            self.assertAllClose(usage[b], expected_usage, atol=1e-5,
                                rtol=1e-4)

    def test_the_memory_carries_information_forward(self):
        # With the memory disconnected (reads replaced by zeros) the later
        # steps' outputs differ: the check below can fail.
        cell, model = _rnn()
        xs = np.random.default_rng(4).normal(size=(1, 5, 5)).astype(
            "float32")
        outputs = model.predict(xs, verbose=0)[0]
        reads = outputs[0, :, cell.units:]
        self.assertGreater(np.abs(reads[1:]).max(), 1e-3)
        # The first step reads the empty memory.
        self.assertAllClose(reads[0], np.zeros_like(reads[0]), atol=1e-7)

    def test_sequence_model_is_causal(self):
        model = keras_meta.models.mann_sequence_model(
            num_ways=3, feature_dim=5, seed=0, **SMALL)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1, 7, 8)).astype("float32")
        base = model.predict(x, verbose=0)
        for t in range(6):
            changed = x.copy()
            changed[:, t + 1:] = rng.normal(size=changed[:, t + 1:].shape)
            out = model.predict(changed, verbose=0)
            self.assertAllClose(out[:, :t + 1], base[:, :t + 1], atol=1e-6,
                                rtol=1e-6)
            self.assertGreater(np.abs(out[:, t + 1:]
                                      - base[:, t + 1:]).max(), 1e-4)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "memory_size"):
            MANNCell(4, memory_size=2, num_reads=3)
        with self.assertRaisesRegex(ValueError, "units"):
            MANNCell(0)
        with self.assertRaisesRegex(ValueError, "usage_decay"):
            MANNCell(4, usage_decay=1.0)
        with self.assertRaisesRegex(ValueError, "initial_key_strength"):
            MANNCell(4, initial_key_strength=1.0)
        with self.assertRaisesRegex(ValueError, "initial_write_gate"):
            MANNCell(4, initial_write_gate=1.0)

    def test_heads_start_at_the_given_strength_and_gate(self):
        cell, _ = _rnn(initial_key_strength=4.0, initial_write_gate=0.25)
        bias = np.asarray(cell.head_bias, dtype="float64")
        self.assertAllClose(1.0 + np.log1p(np.exp(bias[:2])), [4.0, 4.0])
        self.assertAllClose(1.0 / (1.0 + np.exp(-bias[2:])), [0.25, 0.25])


class MANNTest(testing.TestCase):
    def test_matches_the_sequence_model(self):
        mann = _mann()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=1)
        predictions = mann.predict(inputs, verbose=0)
        for t in range(2):
            support = mann.model.predict(inputs["support_inputs"][t],
                                         verbose=0)
            prefix = np.concatenate(
                [support, np.eye(3)[inputs["support_labels"][t]]], -1)
            for q, query in enumerate(mann.model.predict(
                    inputs["query_inputs"][t], verbose=0)):
                sequence = np.concatenate(
                    [prefix, np.concatenate([query, np.zeros(3)])[None]])
                logits = mann.sequence_model.predict(
                    sequence[None].astype("float32"), verbose=0)[0, -1]
                self.assertAllClose(predictions[t, q], logits, atol=1e-5,
                                    rtol=1e-5)

    def test_queries_read_the_support_set_and_not_each_other(self):
        mann = _mann()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        before = mann.predict(inputs, verbose=0)
        changed = dict(inputs)
        changed["query_inputs"] = inputs["query_inputs"].copy()
        changed["query_inputs"][:, 1:] += 1.0
        after = mann.predict(changed, verbose=0)
        self.assertAllClose(after[:, 0], before[:, 0], atol=1e-6, rtol=1e-6)
        relabelled = dict(inputs)
        relabelled["support_labels"] = (inputs["support_labels"] + 1) % 3
        moved = mann.predict(relabelled, verbose=0)
        self.assertGreater(np.abs(moved - before).max(), 1e-4)

    def test_padding_does_not_change_predictions(self):
        mann = _mann()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        self.assertPaddingIgnored(mann, inputs, positions=(0, 3, -1))

    def test_absent_classes_are_never_predicted(self):
        mann = _mann()
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=2,
                                         num_shots=2, num_queries=2)
        logits = mann.predict(inputs, verbose=0)
        self.assertTrue(np.all(logits[..., 2] < -1e8))

    def test_adapted_model_saves_and_reloads(self):
        mann = _mann()
        mann.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=3,
                                         num_shots=2, num_queries=2)
        self.assertAdaptedModelReloads(mann, inputs)

    @pytest.mark.slow_on_jax
    def test_basics(self):
        self.run_meta_model_test(
            cls=MANN, init_kwargs={"model": testing.tiny_classifier(
                num_ways=8), "num_ways": 3, "seed": 0, **SMALL},
            episodes=testing.toy_episodes(num_tasks=2, num_ways=3,
                                          num_shots=2, num_queries=2),
            loss=LOSS, metrics=["accuracy"], learning_rate=1e-3)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "sequence_model"):
            MANN(_encoder(), num_ways=3, sequence_model="nope")
        other = keras_meta.models.mann_sequence_model(
            num_ways=3, feature_dim=5, **SMALL)
        with self.assertRaisesRegex(ValueError, "8-d embeddings"):
            MANN(_encoder(), num_ways=3, sequence_model=other)
        mann = _mann()
        mann.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=2, num_ways=4,
                                         num_shots=1, num_queries=1)
        with self.assertRaisesRegex(ValueError, "num_ways=3"):
            mann.predict(inputs, verbose=0)


class PredictSequenceTest(testing.TestCase):
    @pytest.mark.slow_on_jax
    def test_each_example_is_predicted_from_the_ones_before(self):
        # Without normalization in the embedding, position t's logits are
        # the query logits of an episode whose support set is the first t
        # examples: the online protocol and the episode contract agree.
        for learner in (_mann(), keras_meta.SNAIL(
                _encoder(), num_ways=3, num_shots=3, seed=0)):
            inputs, _ = testing.toy_episodes(num_tasks=1, num_ways=3,
                                             num_shots=3, num_queries=1)
            images = np.asarray(inputs["support_inputs"][0])
            labels = np.asarray(inputs["support_labels"][0])
            order = np.random.default_rng(0).permutation(len(labels))
            images, labels = images[order], labels[order]
            logits = learner.predict_sequence(images, labels)
            self.assertEqual(logits.shape, (len(labels), 3))
            for t in range(1, len(labels)):
                sequence = np.concatenate([
                    learner.model.predict(images[:t + 1], verbose=0),
                    np.eye(3)[labels[:t + 1]]], -1)
                sequence[t, -3:] = 0.0
                expected = learner.sequence_model.predict(
                    sequence[None].astype("float32"), verbose=0)[0, -1]
                self.assertAllClose(logits[t], expected, atol=1e-5,
                                    rtol=1e-5)
            # A later label changes nothing before it; its own, nothing.
            changed = labels.copy()
            changed[-1] = (changed[-1] + 1) % 3
            self.assertAllClose(learner.predict_sequence(images, changed),
                                logits, atol=1e-6, rtol=1e-6)
            changed = labels.copy()
            changed[2] = (changed[2] + 1) % 3
            moved = learner.predict_sequence(images, changed)
            self.assertAllClose(moved[:3], logits[:3], atol=1e-6, rtol=1e-6)
            self.assertGreater(np.abs(moved[3:] - logits[3:]).max(), 1e-5)

    def test_errors(self):
        mann = _mann()
        images = np.zeros((4, 6, 6, 1), "float32")
        with self.assertRaisesRegex(ValueError, "one class per example"):
            mann.predict_sequence(images, [0, 1])
        with self.assertRaisesRegex(ValueError, "num_ways=3"):
            mann.predict_sequence(images, [0, 1, 2, 3])
