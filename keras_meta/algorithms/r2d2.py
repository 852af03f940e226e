"""R2-D2: a ridge-regression head solved in closed form per episode."""

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta.algorithms.heads import ABSENT_CLASS_LOGIT
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.heads import with_linear_head
from keras_meta.algorithms.proto_net import ProtoNet


@keras.saving.register_keras_serializable(package="keras_meta")
class R2D2(ProtoNet):
    """Ridge regression to one-hot labels on support embeddings.

    For each episode the head `W` (with a per-class bias `b`) minimises
    `|X W + 1 b - Y|^2 + lambda (|W|^2 + |b|^2)` over the support
    embeddings `X` and one-hot labels `Y`: as in the paper, the bias is a
    column of ones appended to the embeddings and is penalized with the
    weights. The solve is in closed form: `W = X^T (X X^T + lambda I)^-1 Y`
    when the support set is smaller than the embedding (the Woodbury form,
    a solve of support size), else `(X^T X + lambda I)^-1 X^T Y`. Query
    logits are `scale * (Q W + b)`. The solve is differentiable, so the
    encoder, `lambda` and `scale` are meta-learned, as in the paper (a
    scalar offset of all logits, the paper's other calibration parameter,
    changes no softmax probability and is left out).

    `lambda` weighs the penalty against the *sum* of squared errors over
    the support examples, in the embedding's own units: with `n` support
    examples of embeddings of typical squared norm `s`, the ridge term
    matters when `lambda` is comparable to `n * s / dims`.

    Args:
        model: A built `keras.Model` mapping inputs to embeddings.
        num_ways: Int, the largest number of classes per episode (see
            `keras_meta.ProtoNet`).
        l2_regularizer: Float, initial `lambda`. Defaults to `1.0`.
        batch_norm: See `keras_meta.MetaModel`.

    Reference:
        - [Bertinetto et al., 2019](https://arxiv.org/abs/1805.08136)
    """

    def __init__(self, model, *, num_ways, l2_regularizer=1.0, **kwargs):
        kwargs.pop("distance", None)
        super().__init__(model, num_ways=num_ways, **kwargs)
        if not isinstance(l2_regularizer, (int, float)) or isinstance(
            l2_regularizer, bool
        ) or not l2_regularizer > 0:
            raise ValueError(
                "`l2_regularizer` must be a positive number. Received: "
                f"l2_regularizer={l2_regularizer!r}."
            )
        self.l2_regularizer = float(l2_regularizer)
        import math

        # Meta-learned, as in the paper: lambda (kept positive through its
        # logarithm) and the output scale.
        self.log_lambda = self.add_weight(
            shape=(), name="log_lambda",
            initializer=keras.initializers.Constant(math.log(l2_regularizer)),
        )
        self.scale = self.add_weight(
            shape=(), name="scale",
            initializer=keras.initializers.Constant(1.0),
        )

    def meta_parameters(self):
        params = super().meta_parameters()
        for name in ("log_lambda", "scale"):
            params[name] = backend.read_value(getattr(self, name))
        return params

    def fit_head(self, params, support_inputs, support_labels, training,
                 support_weights=None):
        """The ridge solution on a support set and which classes it
        holds."""
        x = self.embed(params, support_inputs, training)
        y, present = support_classes(support_labels, self.num_ways, x.dtype,
                                     support_weights)
        x = _with_ones(x)
        if support_weights is not None:
            # Zero rows add nothing to X^T X or X^T Y: padding drops out.
            x = x * ops.cast(support_weights, x.dtype)[:, None]
        penalty = ops.exp(ops.cast(params["log_lambda"], x.dtype))
        num_support, dims = x.shape[0], x.shape[1]
        if num_support is not None and dims is not None and num_support > dims:
            gram = ops.matmul(ops.transpose(x), x) + penalty * ops.eye(
                dims, dtype=x.dtype)
            return ops.solve(gram, ops.matmul(ops.transpose(x), y)), present
        gram = ops.matmul(x, ops.transpose(x)) + penalty * ops.eye(
            ops.shape(x)[0], dtype=x.dtype)
        return ops.matmul(ops.transpose(x), ops.solve(gram, y)), present

    def head_predictions(self, params, head, query_inputs, training,
                         support_inputs):
        solution, present = head
        queries = _with_ones(self.embed_queries(
            params, query_inputs, training, support_inputs))
        return mask_absent_classes(
            ops.cast(params["scale"], queries.dtype)
            * ops.matmul(queries, solution), present)

    def build_head_model(self, head, weights, support_inputs):
        """The encoder followed by a dense layer holding `scale * W` and
        `scale * b`."""
        solution, present = (ops.convert_to_numpy(t) for t in head)
        solution = solution * float(self.scale.numpy())
        kernel = solution[:-1] * present
        bias = np.where(present > 0, solution[-1], ABSENT_CLASS_LOGIT)
        return with_linear_head(
            self.adapted_encoder(weights, support_inputs),
            support_inputs.shape[1:], kernel, bias,
            name=f"{self.model.name}_adapted",
        )

    def get_config(self):
        config = super().get_config()
        config.pop("distance")
        config["l2_regularizer"] = self.l2_regularizer
        return config


def _with_ones(embeddings):
    """`embeddings` with a column of ones appended: the bias feature."""
    return ops.concatenate(
        [embeddings, ops.ones((ops.shape(embeddings)[0], 1),
                              dtype=embeddings.dtype)], axis=-1)
