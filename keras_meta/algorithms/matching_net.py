"""Matching Networks."""

import keras
from keras import ops

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
    implemented.

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

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        embeddings = self.embed(params, support_inputs, training)
        embeddings = embeddings / ops.maximum(
            ops.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        one_hot = ops.one_hot(ops.cast(support_labels, "int32"),
                              self.num_ways, dtype=embeddings.dtype)
        mask = (
            ops.ones_like(one_hot[:, 0]) if support_weights is None
            else ops.cast(support_weights, one_hot.dtype)
        )
        return embeddings, one_hot, mask

    def predict_task(self, params, task_state, query_inputs, training):
        support, one_hot, mask = task_state
        queries = self.embed(params, query_inputs, training)
        queries = queries / ops.maximum(
            ops.norm(queries, axis=-1, keepdims=True), 1e-12)
        scores = params["scale"] * ops.matmul(queries, ops.transpose(support))
        # Padded support examples get no attention.
        scores = scores + (mask[None] - 1.0) * 1e9
        attention = ops.softmax(scores, axis=-1)
        probabilities = ops.matmul(attention, one_hot)
        return ops.log(ops.maximum(probabilities, 1e-12))

    def build_adapted_model(self, task_state, support_inputs):
        raise NotImplementedError(
            "`MatchingNet.adapt()` is not available yet: its prediction "
            "attends over the support set, which a plain Keras model cannot "
            "hold without a custom layer."
        )

    def get_config(self):
        config = super().get_config()
        config.pop("distance")
        return config
