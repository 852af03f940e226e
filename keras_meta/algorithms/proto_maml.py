"""Proto-MAML: MAML with a linear head initialised from prototypes."""

import keras
from keras import ops

from keras_meta import inner
from keras_meta.algorithms.heads import mask_absent_classes
from keras_meta.algorithms.heads import support_classes
from keras_meta.algorithms.heads import with_linear_head
from keras_meta.algorithms.maml import MAML
from keras_meta.checks import check_count


@keras.saving.register_keras_serializable(package="keras_meta")
class ProtoMAML(MAML):
    """Proto-MAML: a prototype-initialised head, then MAML steps.

    The wrapped model is an encoder. For each episode a linear head is set
    to the ProtoNet equivalent, `W_k = 2 c_k` and `b_k = -|c_k|^2` for
    class prototypes `c_k` (so before any step it ranks classes exactly as a
    ProtoNet does); then encoder and head take `num_inner_steps` gradient
    steps on the support set, as in MAML. The meta-gradient flows through
    the prototypes into the head's initialisation.

    Args:
        model: A built `keras.Model` mapping inputs to embeddings.
        num_ways: Int, the largest number of classes per episode (see
            `keras_meta.ProtoNet`).
        **kwargs: `inner_learning_rate`, `num_inner_steps`,
            `eval_inner_steps`, `first_order`, `adapt_normalization`,
            `batch_norm`, `inner_loss`: as for `keras_meta.MAML`.

    Reference:
        - [Triantafillou et al., 2020](https://arxiv.org/abs/1903.03096)
    """

    batch_norm_modes = ("inductive", "transductive")

    def __init__(self, model, *, num_ways, **kwargs):
        for option, default in (("learn_inner_learning_rates", False),
                                ("multi_step_loss_epochs", None),
                                ("first_order_epochs", 0)):
            if kwargs.get(option, default) != default:
                raise ValueError(
                    f"`ProtoMAML` does not take `{option}`: its inner loop "
                    "adapts a prototype-initialised head that MAML++'s "
                    "per-step options do not cover. Use `first_order=True` "
                    f"for a first-order meta-gradient. Received: {option}="
                    f"{kwargs[option]!r}."
                )
        super().__init__(model, **kwargs)
        check_count("num_ways", num_ways)
        self.num_ways = num_ways

    def _embed(self, weights, state, inputs, training):
        embeddings, state = self.run_model(weights, state, inputs, training)
        return ops.reshape(embeddings, (ops.shape(embeddings)[0], -1)), state

    def prototype_head(self, embeddings, labels, weights=None):
        """`(W, b)` of the linear head equivalent to a ProtoNet; a class
        without support examples gets the bias `ABSENT_CLASS_LOGIT`, whose
        softmax probability (and so its gradient) is zero."""
        one_hot, present = support_classes(labels, self.num_ways,
                                           embeddings.dtype, weights)
        counts = ops.maximum(ops.sum(one_hot, axis=0), 1.0)
        prototypes = ops.matmul(ops.transpose(one_hot), embeddings) / (
            counts[:, None])
        return (2.0 * ops.transpose(prototypes),
                mask_absent_classes(
                    -ops.sum(ops.square(prototypes), axis=-1), present))

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()
        mask = self._adapted_mask()
        embeddings, _ = self._embed(params["weights"], params["state"],
                                    support_inputs, training)
        kernel, bias = self.prototype_head(embeddings, support_labels,
                                           support_weights)

        def support_objective(weights, state):
            embeddings, state = self._embed(weights[:-2], state,
                                            support_inputs, training)
            logits = ops.matmul(embeddings, weights[-2]) + weights[-1]
            loss = self.support_loss(support_labels, logits, loss_fn,
                                     support_weights)
            return loss, state

        return inner.gradient_descent(
            support_objective,
            list(params["weights"]) + [kernel, bias],
            params["state"],
            learning_rate=self.inner_learning_rate,
            num_steps=self.inner_steps(training),
            first_order=self.first_order,
            mask=None if mask is None else list(mask) + [True, True],
            remat=self.remat_inner_steps and training,
        )

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        weights, state = task_state
        embeddings, _ = self.run_query(weights[:-2], state, query_inputs,
                                       training, support_inputs)
        embeddings = ops.reshape(embeddings, (ops.shape(embeddings)[0], -1))
        return ops.matmul(embeddings, weights[-2]) + weights[-1]

    def num_outputs(self, example_shape, dtype):
        return self.num_ways

    def build_adapted_model(self, task_state, support_inputs):
        weights, _ = task_state
        return with_linear_head(
            self.copy_model(weights[:-2], support_inputs),
            support_inputs.shape[1:], weights[-2], weights[-1],
            name=f"{self.model.name}_adapted",
        )

    def get_config(self):
        return {**super().get_config(), "num_ways": self.num_ways}
