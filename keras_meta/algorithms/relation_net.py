"""Relation Networks."""

import copy

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count
from keras_meta.models.batch_statistics import BatchStatisticsModel


def default_relation_module(embedding_dim, units=8, seed=None):
    """The relation module of the paper's Omniglot setup, for vectors:
    `Dense(units, relu) -> Dense(1)` on a concatenated pair."""
    return keras.Sequential(
        [
            keras.Input((2 * embedding_dim,)),
            keras.layers.Dense(
                units, activation="relu",
                kernel_initializer=keras.initializers.HeNormal(seed)),
            keras.layers.Dense(
                1, kernel_initializer=keras.initializers.GlorotUniform(
                    None if seed is None else seed + 1)),
        ],
        name="relation_module",
    )


@keras.saving.register_keras_serializable(package="keras_meta")
class RelationNet(MetaModel):
    """Relation Networks: a learned module scores (query, class) pairs.

    The wrapped model embeds every example; each class is represented by
    the mean of its support embeddings (the paper sums them; the mean keeps
    the scale fixed when episodes vary their shots). The relation module
    reads a query's embedding concatenated with a class representation
    along the last axis and returns one score; `call()` returns these
    scores as logits `[tasks, num_query, num_ways]`. The embedding model and
    the relation module are trained together.

    Train with `SparseCategoricalCrossentropy(from_logits=True)`, or with
    the paper's objective, the mean squared error between `sigmoid(score)`
    and the one-hot labels (`keras_meta.losses.RelationMeanSquaredError`);
    either trains the same modules and ranks classes the same way.

    Args:
        model: A built `keras.Model` mapping inputs to embeddings: vectors
            `[batch, dims]` or feature maps `[batch, height, width,
            channels]`.
        num_ways: Int, the largest number of classes per episode (see
            `keras_meta.ProtoNet`).
        relation_module: Optional built `keras.Model` mapping a pair (the
            embedding shape with the last axis doubled) to one score
            `[batch, 1]`. Defaults to `Dense(8, relu) -> Dense(1)` on
            flattened vector embeddings; give convolutional blocks for
            feature maps, as in the paper.
        batch_norm: See `keras_meta.MetaModel`. It applies to the relation
            module too: in the transductive mode it normalizes all of a
            task's (query, class) pairs with their batch statistics; in the
            inductive mode with the statistics of the (support, class)
            pairs.

    Reference:
        - [Sung et al., 2018](https://arxiv.org/abs/1711.06025)
    """

    def __init__(self, model, *, num_ways, relation_module=None, **kwargs):
        super().__init__(model, **kwargs)
        check_count("num_ways", num_ways)
        self.num_ways = num_ways
        embedding_shape = tuple(model.output_shape[1:])
        if relation_module is None:
            if len(embedding_shape) != 1:
                raise ValueError(
                    "The default relation module reads vector embeddings; "
                    f"the model '{model.name}' outputs shape "
                    f"{embedding_shape}. Pass `relation_module=` a model "
                    "taking that shape with the last axis doubled."
                )
            relation_module = default_relation_module(embedding_shape[0])
        if not isinstance(relation_module, keras.Model) or not (
                relation_module.built):
            raise ValueError(
                "`relation_module` must be a built `keras.Model`. Received: "
                f"{relation_module!r}."
            )
        pair_shape = embedding_shape[:-1] + (2 * embedding_shape[-1],)
        spec = relation_module.compute_output_spec(
            keras.KerasTensor((None,) + pair_shape))
        if tuple(spec.shape[1:]) not in ((), (1,)):
            raise ValueError(
                "`relation_module` must map a pair of shape "
                f"{pair_shape} to one score per pair; it outputs shape "
                f"{tuple(spec.shape[1:])}."
            )
        self.relation_module = relation_module
        self.prepare_normalization(relation_module)

    def meta_parameters(self):
        params = super().meta_parameters()
        params["relation_weights"] = [
            backend.read_value(v)
            for v in self.relation_module.trainable_variables]
        params["relation_state"] = [
            backend.read_value(v)
            for v in self.relation_module.non_trainable_variables]
        return params

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        embeddings, _ = self.run_model(
            params["weights"], params["state"], support_inputs, training)
        one_hot, present = support_classes(
            support_labels, self.num_ways, embeddings.dtype, support_weights)
        counts = ops.maximum(ops.sum(one_hot, axis=0), 1.0)
        flat = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        classes = ops.matmul(ops.transpose(one_hot), flat) / counts[:, None]
        return ops.reshape(
            classes, (self.num_ways,) + tuple(embeddings.shape[1:])), present

    def pairs(self, classes, embeddings):
        """Every (embedding, class) pair, `[num * num_ways, ...]`,
        embedding-major."""
        num = ops.shape(embeddings)[0]
        tail = tuple(embeddings.shape[1:])
        pairs = ops.concatenate(
            [
                ops.broadcast_to(embeddings[:, None],
                                 (num, self.num_ways) + tail),
                ops.broadcast_to(ops.cast(classes, embeddings.dtype)[None],
                                 (num, self.num_ways) + tail),
            ],
            axis=-1,
        )
        return ops.reshape(pairs, (-1,) + tail[:-1] + (2 * tail[-1],))

    def relation_scores(self, params, classes, queries, training=False,
                        supports=None):
        """Scores `[num_query, num_ways]` of every (query, class) pair.

        `supports` (the support embeddings) gives the statistics of the
        inductive mode.
        """
        num_query = ops.shape(queries)[0]
        scores, _ = self.run_query(
            params["relation_weights"], params["relation_state"],
            self.pairs(classes, queries), training,
            None if supports is None else self.pairs(classes, supports),
            model=self.relation_module)
        return ops.reshape(scores, (num_query, self.num_ways))

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        supports, statistics = None, None
        if self.batch_norm == "inductive":
            supports, statistics = self.support_statistics(
                params["weights"], params["state"], support_inputs,
                training)
        classes, present = task_state
        queries, _ = self.run_query(
            params["weights"], params["state"], query_inputs, training,
            support_inputs, statistics=statistics)
        return mask_absent_classes(
            self.relation_scores(params, classes, queries, training,
                                 supports), present)

    def num_outputs(self, example_shape, dtype):
        return self.num_ways

    def build_adapted_model(self, task_state, support_inputs):
        """Encoder, then the relation module against each stored class.

        Each class representation is the output of a `Dense` layer with a
        zero kernel and that representation as its bias; the relation
        module scores every (query, class) pair of a batch, as in
        `call()`.
        """
        classes, present = (ops.convert_to_numpy(t) for t in task_state)
        weights = [ops.convert_to_tensor(v)
                   for v in self.model.trainable_variables]
        encoder = self.copy_model(weights, support_inputs)
        supports, _ = self.support_statistics(
            weights, [ops.convert_to_tensor(v)
                      for v in self.model.non_trainable_variables],
            ops.convert_to_tensor(support_inputs), False)
        relation = self.copy_model(
            [ops.convert_to_tensor(v)
             for v in self.relation_module.trainable_variables],
            self.pairs(classes, supports), model=self.relation_module)
        inputs = keras.Input(shape=tuple(support_inputs.shape[1:]))
        embeddings = encoder(inputs)
        embedding_shape = tuple(embeddings.shape[1:])
        flat = keras.layers.Flatten()(embeddings)
        pairs = []
        for k in range(self.num_ways):
            constant = keras.layers.Dense(
                int(classes[k].size), kernel_initializer="zeros",
                trainable=False, name=f"class_{k}")
            representation = keras.layers.Reshape(embedding_shape)(
                constant(flat))
            constant.bias.assign(classes[k].reshape(-1))
            pair = keras.layers.Concatenate(axis=-1)(
                [embeddings, representation])
            pairs.append(keras.layers.Reshape((1,) + tuple(pair.shape[1:]))(
                pair))
        stacked = keras.layers.Concatenate(axis=1)(pairs)
        if isinstance(relation, BatchStatisticsModel):
            # All of a batch's pairs share their statistics.
            scores = relation(stacked)
        else:
            scores = keras.layers.TimeDistributed(relation)(stacked)
        outputs = keras.layers.Reshape((self.num_ways,))(scores)
        if not present.all():
            # Absent classes: scores times 0, plus ABSENT_CLASS_LOGIT.
            mask = keras.layers.Dense(self.num_ways, trainable=False,
                                      name="absent_classes")
            outputs = mask(outputs)
            mask.set_weights([np.diag(present).astype("float32"),
                              np.where(present > 0, 0.0, ABSENT_CLASS_LOGIT)
                              .astype("float32")])
        return keras.Model(inputs, outputs, name=f"{self.model.name}_adapted")

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_ways": self.num_ways,
            "relation_module": keras.saving.serialize_keras_object(
                self.relation_module),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        config["relation_module"] = keras.saving.deserialize_keras_object(
            config["relation_module"])
        return super().from_config(config)
