"""Reptile: first-order meta-learning by moving towards adapted weights."""

import keras
from keras import ops

from keras_meta import inner
from keras_meta.algorithms.gradient_steps import GradientStepsMetaModel


@keras.saving.register_keras_serializable(package="keras_meta")
class Reptile(GradientStepsMetaModel):
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

    def __init__(self, model, *, inner_learning_rate=0.01, num_inner_steps=5,
                 **kwargs):
        super().__init__(model, inner_learning_rate=inner_learning_rate,
                         num_inner_steps=num_inner_steps, **kwargs)

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
            num_steps=self.inner_steps(training),
            first_order=True,
        )

    def task_output_keys(self, training):
        return ("predictions", "auxiliary_loss") if training else None

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        predictions = super().predict_task(
            params, task_state, query_inputs, training, support_inputs)
        if not training:
            return predictions
        weights, _ = task_state
        # Zero in value; its gradient with respect to each initial weight is
        # `theta - phi`, the Reptile direction, which the outer loop averages
        # over tasks.
        surrogate = sum(
            ops.sum((theta - ops.stop_gradient(theta))
                    * ops.stop_gradient(theta - phi))
            for theta, phi in zip(params["weights"], weights)
        )
        return {"predictions": predictions, "auxiliary_loss": surrogate}
