"""SNAIL: a simple neural attentive meta-learner."""

import copy

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count
from keras_meta.models.seed_state import SavesSeedGenerator
from keras_meta.models.surgery import clone_with_weights


class SequenceClassifier(SavesSeedGenerator, MetaModel):
    """The episode as a sequence: the base of `SNAIL` and `MANN`.

    Every support example is embedded by the wrapped model and paired with
    its one-hot label; each query, embedded, is appended with a zero label,
    and a causal sequence network predicts the query's class at the last
    step. Each query gets its own sequence, so queries never see one
    another. In training the support examples' order is shuffled for every
    task. Padded support examples are masked: the real ones come first, the
    query right after them and the padding after the query, which a causal
    network never sees, so predictions do not depend on padding. Classes
    without support examples are never predicted. Subclasses choose the default sequence
    network (`_default_sequence_model`).
    """

    # Their recurrent and attention networks run per task; they are not
    # vectorized across tasks.
    vectorizable = False

    def __init__(self, model, *, num_ways, sequence_model=None, seed=None,
                 **kwargs):
        super().__init__(model, **kwargs)
        check_count("num_ways", num_ways)
        self.num_ways = num_ways
        self.seed = seed
        name = type(self).__name__
        embedding = model.output_shape
        if any(d is None for d in embedding[1:]):
            raise ValueError(
                f"`{name}` needs the embedding size of '{model.name}'; its "
                f"output shape is {embedding}.")
        self.feature_dim = int(np.prod(embedding[1:]))
        if sequence_model is None:
            sequence_model = self._default_sequence_model()
        elif not isinstance(sequence_model, keras.Model) or (
                not sequence_model.built):
            raise ValueError(
                "`sequence_model` must be a built `keras.Model` mapping "
                "[batch, time, dims + num_ways] to [batch, time, num_ways]. "
                f"Received: {sequence_model!r}.")
        expected = self.feature_dim + num_ways
        if (sequence_model.input_shape[-1] != expected
                or sequence_model.output_shape[-1] != num_ways):
            raise ValueError(
                f"The sequence model takes {sequence_model.input_shape} and "
                f"returns {sequence_model.output_shape}; with {num_ways} "
                f"ways and {self.feature_dim}-d embeddings it must take "
                f"[batch, time, {expected}] and return [batch, time, "
                f"{num_ways}].")
        self.sequence_model = sequence_model
        self.prepare_normalization(sequence_model)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def meta_parameters(self):
        params = super().meta_parameters()
        params["sequence_weights"] = [
            backend.read_value(v)
            for v in self.sequence_model.trainable_variables]
        params["sequence_state"] = [
            backend.read_value(v)
            for v in self.sequence_model.non_trainable_variables]
        return params

    def per_task_parameters(self, inputs, training):
        if not training:
            return None
        support = inputs[episode.SUPPORT_INPUTS]
        shape = tuple(ops.shape(support)[:2])
        # A random order of each task's support examples.
        return {"support_order": ops.argsort(keras.random.uniform(
            shape, seed=self.seed_generator), axis=-1)}

    def _flat(self, embeddings):
        return ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        embeddings, _ = self.run_model(params["weights"], params["state"],
                                       support_inputs, training)
        embeddings = self._flat(embeddings)
        one_hot, present = support_classes(
            support_labels, self.num_ways, embeddings.dtype, support_weights)
        sequence = ops.concatenate([embeddings, one_hot], axis=-1)
        num_support = ops.shape(sequence)[0]
        order = params.get("support_order")
        if order is None:
            order = ops.arange(num_support, dtype="int32")
        if support_weights is None:
            count = ops.convert_to_tensor(num_support, "int32")
        else:
            sequence = sequence * ops.cast(support_weights,
                                           sequence.dtype)[:, None]
            # The real examples first (in `order`), the padding after them:
            # the query is placed right after the real examples, and a
            # causal network never sees what follows it.
            padded = ops.cast(ops.take(support_weights, order) <= 0, "int32")
            rank = ops.arange(num_support, dtype="int32")
            order = ops.take(order, ops.argsort(padded * num_support + rank))
            count = ops.cast(ops.sum(1 - padded), "int32")
        sequence = ops.take(sequence, order, axis=0)
        return sequence, present, count

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        prefix, present, count = task_state
        embeddings, _ = self.run_query(params["weights"], params["state"],
                                       query_inputs, training, support_inputs)
        embeddings = self._flat(embeddings)
        num_query = ops.shape(embeddings)[0]
        num_support = ops.shape(prefix)[0]
        queries = ops.concatenate(
            [embeddings, ops.zeros((num_query, self.num_ways),
                                   embeddings.dtype)], axis=-1)
        sequences = ops.concatenate(
            [ops.broadcast_to(prefix[None], (num_query,)
                              + tuple(ops.shape(prefix))),
             queries[:, None]], axis=1)
        # Step `count` is the query (the last step without padding); the
        # padded steps follow it.
        steps = ops.arange(num_support + 1, dtype="int32")
        steps = ops.where(steps < count, steps,
                          ops.where(steps == count, num_support, steps - 1))
        sequences = ops.take(sequences, steps, axis=1)
        logits, _ = self.run_model(params["sequence_weights"],
                                   params["sequence_state"], sequences,
                                   training, model=self.sequence_model)
        at_query = ops.one_hot(count, num_support + 1, dtype=logits.dtype)
        logits = ops.sum(logits * at_query[None, :, None], axis=1)
        return mask_absent_classes(logits, present)

    def predict_sequence(self, inputs, labels):
        """Each example's logits given the labelled examples before it.

        The online protocol of Santoro et al. (2016): example `t` of the
        sequence is predicted from examples `0..t-1` with their labels,
        before its own label is seen. The sequence network is causal, so
        one pass per position gives them all. The examples are embedded
        together, so a normalizing embedding uses the whole sequence's
        batch statistics (as a support set of its length would). No class
        is masked: a class not yet seen can be predicted.

        Args:
            inputs: Array `[time, ...]`, one sequence's examples.
            labels: Int array `[time]`, their classes in
                `[0, num_ways)`.

        Returns:
            NumPy array `[time, num_ways]` of logits.
        """
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(inputs):
            raise ValueError(
                f"`labels` must be one class per example: {len(inputs)} "
                f"examples, labels of shape {labels.shape}.")
        if labels.min() < 0 or labels.max() >= self.num_ways:
            raise ValueError(
                f"Labels must lie in [0, num_ways={self.num_ways}). "
                f"Received labels from {labels.min()} to {labels.max()}.")
        params = self.meta_parameters()
        embeddings, _ = self.run_model(params["weights"], params["state"],
                                       ops.convert_to_tensor(inputs), False)
        embeddings = ops.convert_to_numpy(embeddings).reshape(
            len(labels), -1)
        one_hot = np.eye(self.num_ways, dtype=embeddings.dtype)[labels]
        sequences = np.repeat(
            np.concatenate([embeddings, one_hot], -1)[None], len(labels), 0)
        positions = np.arange(len(labels))
        # Sequence t hides example t's label; step t sees steps 0..t only.
        sequences[positions, positions, embeddings.shape[1]:] = 0.0
        logits = self.sequence_model.predict(sequences, verbose=0)
        return logits[positions, positions]

    def num_outputs(self, example_shape, dtype):
        return self.num_ways

    def build_adapted_model(self, task_state, support_inputs):
        """A stock Keras model: the embedding network, the support sequence
        as the bias of a `Dense` layer with a zero kernel (reshaped and
        placed before each query), the sequence network, and the last
        step's logits (absent classes' logits at -1e9)."""
        prefix, present, count = (ops.convert_to_numpy(t)
                                  for t in task_state)
        # The padded steps (after the real ones) never reach the query.
        prefix = prefix[:int(count)]
        weights = [ops.convert_to_tensor(v)
                   for v in self.model.trainable_variables]
        embedding = self.copy_model(weights, support_inputs)
        sequence_model = clone_with_weights(
            self.sequence_model,
            [ops.convert_to_tensor(v)
             for v in self.sequence_model.trainable_variables])
        inputs = keras.Input(shape=tuple(support_inputs.shape[1:]))
        features = keras.layers.Flatten()(embedding(inputs))
        constant = keras.layers.Dense(
            prefix.size, kernel_initializer="zeros", trainable=False,
            name="support_sequence")
        support = keras.layers.Reshape(prefix.shape)(constant(features))
        label = keras.layers.Dense(
            self.num_ways, kernel_initializer="zeros", use_bias=False,
            trainable=False, name="no_label")(features)
        query = keras.layers.Reshape((1, prefix.shape[-1]))(
            keras.layers.Concatenate()([features, label]))
        logits = sequence_model(
            keras.layers.Concatenate(axis=1)([support, query]))
        last = keras.layers.Flatten()(
            keras.layers.Cropping1D((prefix.shape[0], 0))(logits))
        mask = keras.layers.Dense(
            self.num_ways, trainable=False, name="absent_classes")
        outputs = mask(last)
        constant.bias.assign(prefix.reshape(-1).astype(
            constant.bias.dtype))
        mask.set_weights([
            np.diag(present).astype("float32"),
            np.where(present > 0, 0.0, ABSENT_CLASS_LOGIT).astype(
                "float32")])
        return keras.Model(inputs, outputs, name=f"{self.model.name}_adapted")

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_ways": self.num_ways,
            "sequence_model": keras.saving.serialize_keras_object(
                self.sequence_model),
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        config["sequence_model"] = keras.saving.deserialize_keras_object(
            config["sequence_model"])
        return super().from_config(config)


@keras.saving.register_keras_serializable(package="keras_meta")
class SNAIL(SequenceClassifier):
    """SNAIL: the support set as a sequence, read by causal convolutions and
    attention.

    Every support example is embedded by the wrapped model and paired with
    its one-hot label; each query, embedded, is appended with a zero label,
    and the sequence network (causal temporal convolutions interleaved with
    causal attention, `keras_meta.models.snail_sequence_model`) predicts the
    query's class at the last step. Nothing adapts by gradient: the
    sequence network learns to learn from what precedes the query. Each
    query gets its own sequence, so queries never see one another.

    In training the support examples' order is shuffled for every task, so
    that the network reads the labels and not the positions (episodes list
    their support examples class by class); in evaluation and `adapt()`
    the order given is used. Padded support examples (`support_weights` 0)
    are masked: they are moved after the query, which the causal network
    never lets it see, so predictions do not depend on padding. Classes
    without support examples are never predicted.

    Args:
        model: A built `keras.Model` mapping examples to embeddings
            `[batch, dims]` (or any shape, flattened).
        num_ways: Int, the largest number of classes per episode.
        num_shots: Int, the largest number of support examples per class;
            with `num_ways` it sets the longest sequence (and so the
            dilations) of the default sequence network.
        sequence_model: Optional built `keras.Model` mapping sequences
            `[batch, time, dims + num_ways]` to logits `[batch, time,
            num_ways]`, causal in time. Defaults to the paper's Omniglot
            network.
        seed: Optional int, for the default sequence network's initial
            weights and the support order's shuffling.
        batch_norm: See `keras_meta.MetaModel`.

    Training details the paper leaves out, as chosen here: the loss is the
    compiled loss on the queries' last-step logits only; support order is
    shuffled per task in training.

    Reference:
        - [Mishra et al., 2018](https://arxiv.org/abs/1707.03141)
    """

    def __init__(self, model, *, num_ways, num_shots=1, sequence_model=None,
                 seed=None, **kwargs):
        check_count("num_shots", num_shots)
        self.num_shots = num_shots
        super().__init__(model, num_ways=num_ways,
                         sequence_model=sequence_model, seed=seed, **kwargs)

    def _default_sequence_model(self):
        from keras_meta import models

        return models.snail_sequence_model(
            num_ways=self.num_ways, feature_dim=self.feature_dim,
            max_sequence_length=self.num_ways * self.num_shots + 1,
            seed=self.seed)

    def get_config(self):
        config = super().get_config()
        config["num_shots"] = self.num_shots
        return config
