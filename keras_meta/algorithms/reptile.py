"""Reptile: first-order meta-learning by moving towards adapted weights."""

import keras
from keras import ops

from keras_meta import episode
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
    adaptation (the meta-gradient itself does not use the query set, unless
    `adapt_on_queries`).

    The paper's Omniglot setup is this class with `inner_optimizer="adam"`
    (`beta_1=0`, rate 0.001), `adapt_on_queries=True` and
    `SGD(keras.optimizers.schedules.PolynomialDecay(1.0, total_steps,
    0.0))` as the outer optimizer (the interpolation step annealed linearly
    from 1 to 0); `keras-meta train --algorithm reptile` on images builds
    exactly that.

    Args:
        model: A built `keras.Model`.
        inner_learning_rate: Float, the inner step size. Defaults to
            `0.01`.
        num_inner_steps: Int, inner steps per task in training. Defaults to
            `5`.
        eval_inner_steps: Int, inner steps when evaluating and in
            `adapt()`. Defaults to `num_inner_steps`.
        inner_optimizer: `"sgd"` (plain gradient steps) or `"adam"`
            (`keras_meta.inner.adam` with `beta_1=0`, as the reference code;
            its moments start afresh for every task, where the reference's
            optimizer carries its second-moment estimates from task to
            task). Defaults to `"sgd"`.
        adapt_on_queries: Bool. If `True`, training adapts each task on its
            support and query examples together (the paper trains the
            inner loop on all of a task's training examples; `fit()` passes
            the query labels in), and the logged training loss is then
            measured on examples the inner loop has seen. Evaluation and
            `adapt()` use the support set only. Defaults to `False`.
        batch_norm, inner_loss: See `keras_meta.MetaModel`.

    Reference:
        - [Nichol et al., 2018](https://arxiv.org/abs/1803.02999)
    """

    def __init__(self, model, *, inner_learning_rate=0.01, num_inner_steps=5,
                 inner_optimizer="sgd", adapt_on_queries=False, **kwargs):
        super().__init__(model, inner_learning_rate=inner_learning_rate,
                         num_inner_steps=num_inner_steps, **kwargs)
        if inner_optimizer not in _INNER_OPTIMIZERS:
            raise ValueError(
                f"`inner_optimizer` must be one of {list(_INNER_OPTIMIZERS)}."
                f" Received: inner_optimizer={inner_optimizer!r}.")
        self.inner_optimizer = inner_optimizer
        self.adapt_on_queries = bool(adapt_on_queries)

    def uses_query_labels(self):
        """With `adapt_on_queries`, training adapts on the support and
        query sets joined."""
        return self.adapt_on_queries

    def call(self, inputs, training=False):
        if not (training and isinstance(inputs, dict)
                and episode.QUERY_LABELS in inputs):
            return super().call(inputs, training=training)
        inputs = dict(inputs)
        query_labels = inputs.pop(episode.QUERY_LABELS)
        support_labels = inputs[episode.SUPPORT_LABELS]
        joined = dict(inputs)
        joined[episode.SUPPORT_INPUTS] = ops.concatenate(
            [inputs[episode.SUPPORT_INPUTS],
             ops.cast(inputs[episode.QUERY_INPUTS],
                      inputs[episode.SUPPORT_INPUTS].dtype)], axis=1)
        joined[episode.SUPPORT_LABELS] = ops.concatenate(
            [support_labels, ops.cast(query_labels, support_labels.dtype)],
            axis=1)
        weights = inputs.get(episode.SUPPORT_WEIGHTS)
        if weights is not None:
            joined[episode.SUPPORT_WEIGHTS] = ops.concatenate(
                [weights, ops.ones(ops.shape(query_labels)[:2],
                                   dtype=weights.dtype)], axis=1)
        return super().call(joined, training=True)

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()

        def support_objective(weights, state):
            predictions, state = self.run_model(
                weights, state, support_inputs, training)
            return self.support_loss(
                support_labels, predictions, loss_fn, support_weights), state

        weights = [ops.stop_gradient(w) for w in params["weights"]]
        if self.inner_optimizer == "adam":
            return inner.adam(
                support_objective, weights, params["state"],
                learning_rate=self.inner_learning_rate,
                num_steps=self.inner_steps(training))
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

    def get_config(self):
        return {
            **super().get_config(),
            "inner_optimizer": self.inner_optimizer,
            "adapt_on_queries": self.adapt_on_queries,
        }


_INNER_OPTIMIZERS = ("sgd", "adam")
