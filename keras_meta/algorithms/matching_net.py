"""Matching Networks."""

import keras
from keras import ops

from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.proto_net import ProtoNet


@keras.saving.register_keras_serializable(package="keras_meta")
class MatchingNet(ProtoNet):
    """Matching Networks: attention over the support set.

    A query's class distribution is the attention-weighted sum of the
    support labels, the attention being a softmax over cosine similarities
    of the embeddings (scaled by a learned temperature, initialised at 10).
    `call()` returns log-probabilities, so the usual
    `SparseCategoricalCrossentropy(from_logits=True)` applies unchanged.
    Full-context embeddings (the paper's LSTM read-outs) are not
    implemented. `adapt()` returns the encoder followed by a
    `keras_meta.algorithms.matching_net.MatchingHead`.

    Args:
        model: A built `keras.Model` mapping inputs to embeddings.
        num_ways: Int, classes per episode.
        batch_norm: See `keras_meta.MetaModel`.

    Example:

    ```python
    matching = keras_meta.MatchingNet(encoder, num_ways=5)
    matching.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    ```

    Reference:
        - [Vinyals et al., 2016](https://arxiv.org/abs/1606.04080)
    """

    def __init__(self, model, *, num_ways, **kwargs):
        kwargs.pop("distance", None)
        super().__init__(model, num_ways=num_ways, distance="cosine",
                         **kwargs)

    def fit_head(self, params, support_inputs, support_labels, training,
                 support_weights=None):
        """Unit support embeddings, one-hot labels and the padding mask."""
        embeddings = self.embed(params, support_inputs, training)
        embeddings = embeddings / ops.maximum(
            ops.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        one_hot, _ = support_classes(support_labels, self.num_ways,
                                     embeddings.dtype)
        mask = (
            ops.ones_like(one_hot[:, 0]) if support_weights is None
            else ops.cast(support_weights, one_hot.dtype)
        )
        return embeddings, one_hot, mask

    def head_predictions(self, params, head, query_inputs, training,
                         support_inputs):
        support, one_hot, mask = head
        queries = self.embed_queries(params, query_inputs, training,
                                     support_inputs)
        return attention_log_probabilities(
            queries, support, one_hot, mask, params["scale"])

    def build_head_model(self, head, weights, support_inputs):
        """The encoder, then a `MatchingHead` holding the support set's unit
        embeddings, one-hot labels and the learned scale as constants.

        The head is a keras_meta layer: load the model with `keras_meta`
        imported.
        """
        support, one_hot, mask = (ops.convert_to_numpy(t)
                                  for t in head)
        encoder = self.adapted_encoder(weights, support_inputs)
        inputs = keras.Input(shape=tuple(support_inputs.shape[1:]))
        embeddings = keras.layers.Flatten()(encoder(inputs))
        head = MatchingHead(support.shape[0], self.num_ways, name="head")
        outputs = head(embeddings)
        head.set_weights([support, one_hot, mask,
                          ops.convert_to_numpy(self.scale.value)])
        return keras.Model(inputs, outputs, name=f"{self.model.name}_adapted")

    def get_config(self):
        config = super().get_config()
        config.pop("distance")
        return config


def attention_log_probabilities(queries, support, one_hot, mask, scale):
    """Log-probabilities of Matching Networks' attention classifier.

    Args:
        queries: `[num_query, dims]` query embeddings (not yet normalized).
        support: `[num_support, dims]` unit support embeddings.
        one_hot: `[num_support, num_ways]` support labels.
        mask: `[num_support]`, 0 for padded support examples.
        scale: Scalar temperature.
    """
    queries = queries / ops.maximum(
        ops.norm(queries, axis=-1, keepdims=True), 1e-12)
    scores = ops.cast(scale, queries.dtype) * ops.matmul(
        queries, ops.transpose(ops.cast(support, queries.dtype)))
    # Padded support examples get no attention.
    scores = scores + (ops.cast(mask, queries.dtype)[None] - 1.0) * 1e9
    attention = ops.softmax(scores, axis=-1)
    one_hot = ops.cast(one_hot, queries.dtype)
    probabilities = ops.matmul(attention, one_hot)
    present = ops.sum(one_hot * ops.cast(mask, queries.dtype)[:, None],
                      axis=0) > 0
    return mask_absent_classes(
        ops.log(ops.maximum(probabilities, 1e-12)), present)


@keras.saving.register_keras_serializable(package="keras_meta")
class MatchingHead(keras.layers.Layer):
    """Matching Networks' classifier over a fixed support set.

    Maps query embeddings `[batch, dims]` to log-probabilities
    `[batch, num_ways]` by attention over stored unit support embeddings;
    the adapted model of `keras_meta.MatchingNet`.

    Args:
        num_support: Int, the number of stored support examples.
        num_ways: Int, the number of classes.
    """

    def __init__(self, num_support, num_ways, **kwargs):
        super().__init__(**kwargs)
        self.num_support = num_support
        self.num_ways = num_ways

    def build(self, input_shape):
        dims = input_shape[-1]
        self.support = self.add_weight(
            shape=(self.num_support, dims), initializer="zeros",
            trainable=False, name="support")
        self.one_hot = self.add_weight(
            shape=(self.num_support, self.num_ways), initializer="zeros",
            trainable=False, name="one_hot")
        self.mask = self.add_weight(
            shape=(self.num_support,), initializer="ones", trainable=False,
            name="mask")
        self.scale = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="scale")

    def call(self, inputs):
        return attention_log_probabilities(
            inputs, self.support, self.one_hot, self.mask, self.scale)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_ways,)

    def get_config(self):
        return {**super().get_config(), "num_support": self.num_support,
                "num_ways": self.num_ways}
