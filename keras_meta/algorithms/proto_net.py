"""Prototypical Networks."""

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.heads import with_linear_head
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count

DISTANCES = ("squared_euclidean", "cosine")


@keras.saving.register_keras_serializable(package="keras_meta")
class ProtoNet(MetaModel):
    """Prototypical Networks: classify by distance to class prototypes.

    The wrapped model is an encoder mapping inputs to embeddings. Each
    class's prototype is the mean embedding of its support examples; query
    logits are negative squared Euclidean distances to the prototypes (or,
    with `distance="cosine"`, cosine similarities times a learned scale).
    Adaptation takes no gradient steps, so a meta-step costs one forward
    and backward pass.

    Args:
        model: A built `keras.Model` mapping inputs to embeddings
            `[batch, dims]` (or any shape, flattened).
        num_ways: Int, the largest number of classes per episode (logits
            per query). Each episode's classes are those its support labels
            name: one learner trains 60-way and evaluates 20-way, and the
            classes an episode lacks get logits of -1e9, so they are never
            predicted.
        distance: `"squared_euclidean"` (the default, as in the paper) or
            `"cosine"`.
        batch_norm: See `keras_meta.MetaModel`.

    Example:

    ```python
    encoder = keras_meta.models.conv4(num_outputs=64)  # any embedding model
    protonet = keras_meta.ProtoNet(encoder, num_ways=5)
    protonet.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    protonet.fit(train_episodes, epochs=10)
    ```

    Reference:
        - [Snell et al., 2017](https://arxiv.org/abs/1703.05175)
    """

    def __init__(self, model, *, num_ways, distance="squared_euclidean",
                 **kwargs):
        super().__init__(model, **kwargs)
        check_count("num_ways", num_ways)
        if distance not in DISTANCES:
            raise ValueError(
                f"`distance` must be one of {list(DISTANCES)}. Received: "
                f"distance={distance!r}."
            )
        self.num_ways = num_ways
        self.distance = distance
        if distance == "cosine":
            self.scale = self.add_weight(
                shape=(), initializer=keras.initializers.Constant(10.0),
                name="scale",
            )

    def meta_parameters(self):
        params = super().meta_parameters()
        if self.distance == "cosine":
            params["scale"] = backend.read_value(self.scale)
        return params

    def embed(self, params, inputs, training):
        """Flattened embeddings of a support set (batch statistics)."""
        embeddings, _ = self.run_model(
            params["weights"], params["state"], inputs, training
        )
        return ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))

    def embed_queries(self, params, query_inputs, training, support_inputs):
        """Flattened embeddings of a query set, normalized as `batch_norm`
        says."""
        embeddings, _ = self.run_query(
            params["weights"], params["state"], query_inputs, training,
            support_inputs)
        return ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        embeddings = self.embed(params, support_inputs, training)
        one_hot, present = support_classes(
            support_labels, self.num_ways, embeddings.dtype, support_weights)
        counts = ops.maximum(ops.sum(one_hot, axis=0), 1.0)
        prototypes = ops.matmul(ops.transpose(one_hot), embeddings) / counts[
            :, None]
        return prototypes, present

    def logits(self, params, prototypes, embeddings):
        if self.distance == "cosine":
            prototypes = prototypes / ops.maximum(
                ops.norm(prototypes, axis=-1, keepdims=True), 1e-12)
            embeddings = embeddings / ops.maximum(
                ops.norm(embeddings, axis=-1, keepdims=True), 1e-12)
            return params["scale"] * ops.matmul(
                embeddings, ops.transpose(prototypes))
        return -(
            ops.sum(ops.square(embeddings), axis=-1, keepdims=True)
            - 2.0 * ops.matmul(embeddings, ops.transpose(prototypes))
            + ops.sum(ops.square(prototypes), axis=-1)[None]
        )

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        prototypes, present = task_state
        embeddings = self.embed_queries(params, query_inputs, training,
                                        support_inputs)
        return mask_absent_classes(
            self.logits(params, prototypes, embeddings), present)

    def num_outputs(self, example_shape, dtype):
        return self.num_ways

    def build_adapted_model(self, task_state, support_inputs):
        """The encoder followed by a dense layer holding the prototypes.

        For squared Euclidean distance the dense layer computes
        `2 c . x - |c|^2`, from which `|x|^2` is subtracted: the
        meta-model's logits `-|x - c|^2`. For cosine distance it holds the
        scaled unit prototypes and the embedding is normalized first.
        """
        weights = [ops.convert_to_tensor(v)
                   for v in self.model.trainable_variables]
        prototypes, present = (ops.convert_to_numpy(t) for t in task_state)
        if self.distance == "cosine":
            norms = (prototypes ** 2).sum(-1, keepdims=True) ** 0.5
            kernel = (float(self.scale.numpy()) * prototypes
                      / (norms + 1e-12)).T
            bias = 0.0 * kernel[0]
        else:
            kernel = 2.0 * prototypes.T
            bias = -(prototypes ** 2).sum(-1)
        kernel = kernel * present
        bias = np.where(present > 0, bias, ABSENT_CLASS_LOGIT)
        return with_linear_head(
            self.copy_model(weights, support_inputs),
            support_inputs.shape[1:], kernel, bias,
            normalize=self.distance == "cosine",
            subtract_squared_norm=self.distance != "cosine",
            name=f"{self.model.name}_adapted",
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_ways": self.num_ways,
            "distance": self.distance,
        }
