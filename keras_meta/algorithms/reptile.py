"""Reptile: first-order meta-learning by moving towards adapted weights."""

import keras
from keras import ops

from keras_meta import inner
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.algorithms.model_utils import check_count
from keras_meta.algorithms.model_utils import eval_inner_steps_property
from keras_meta.algorithms.model_utils import positive_number


@keras.saving.register_keras_serializable(package="keras_meta")
class Reptile(MetaModel):
    """Reptile: the outer update is the mean of `initial - adapted` weights.

    Each task takes `num_inner_steps` gradient steps on its support set from
    the current weights `theta`, reaching `phi`. The meta-gradient handed to
    the compiled optimizer is `theta - mean(phi)` over the meta-batch, so
    with `SGD(learning_rate=epsilon)` the update is the paper's batched
    `theta += epsilon * (mean(phi) - theta)`, and any other optimizer,
    schedule, callback or checkpoint works as with any Keras model. Under a
    distribution strategy each replica's share is divided by the replica
    count, so the summed update is the mean over the global meta-batch. No
    second derivatives are taken; memory does not grow with the number of
    inner steps.

    The logged `loss` and metrics are those of the query set after
    adaptation (the meta-gradient itself does not use the query set).

    Args:
        model: A built `keras.Model`.
        inner_learning_rate: Float, the inner SGD step size. Defaults to
            `0.01`.
        num_inner_steps: Int, inner steps per task in training. Defaults to
            `5`.
        eval_inner_steps: Int, inner steps when evaluating and in
            `adapt()`. Defaults to `num_inner_steps`.
        batch_norm, inner_loss: See `keras_meta.MetaModel`.

    Reference:
        - [Nichol et al., 2018](https://arxiv.org/abs/1803.02999)
    """

    eval_inner_steps = eval_inner_steps_property

    def __init__(self, model, *, inner_learning_rate=0.01, num_inner_steps=5,
                 eval_inner_steps=None, **kwargs):
        super().__init__(model, **kwargs)
        self.inner_learning_rate = positive_number(
            "inner_learning_rate", inner_learning_rate)
        check_count("num_inner_steps", num_inner_steps)
        if eval_inner_steps is None:
            eval_inner_steps = num_inner_steps
        self.num_inner_steps = num_inner_steps
        self.eval_inner_steps = eval_inner_steps

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()

        def support_objective(weights, state):
            predictions, state = self.run_model(
                weights, state, support_inputs, training)
            return self.support_loss(
                support_labels, predictions, loss_fn, support_weights), state

        weights = [ops.stop_gradient(w) for w in params["weights"]]
        return inner.gradient_descent(
            support_objective, weights, params["state"],
            learning_rate=self.inner_learning_rate,
            num_steps=(self.num_inner_steps if training
                       else self.eval_inner_steps),
            first_order=True,
        )

    def task_output_keys(self, training):
        return ("predictions", "auxiliary_loss") if training else None

    def predict_task(self, params, task_state, query_inputs, training):
        weights, state = task_state
        predictions, _ = self.run_model(weights, state, query_inputs, training)
        if not training:
            return predictions
        # Zero in value; its gradient with respect to each initial weight is
        # `theta - phi`, the Reptile direction, which the outer loop averages
        # over tasks.
        surrogate = sum(
            ops.sum((theta - ops.stop_gradient(theta))
                    * ops.stop_gradient(theta - phi))
            for theta, phi in zip(params["weights"], weights)
        )
        return {"predictions": predictions, "auxiliary_loss": surrogate}

    def build_adapted_model(self, task_state, support_inputs):
        weights, _ = task_state
        return self.copy_model(weights, support_inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "inner_learning_rate": self.inner_learning_rate,
            "num_inner_steps": self.num_inner_steps,
            "eval_inner_steps": self.eval_inner_steps,
        }
