"""iMAML: implicit meta-gradients of a proximally regularized inner loop."""

import keras
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta import inner
from keras_meta.algorithms.gradient_steps import GradientStepsMetaModel
from keras_meta.algorithms.model_utils import check_count
from keras_meta.algorithms.model_utils import positive_number


@keras.saving.register_keras_serializable(package="keras_meta")
class IMAML(GradientStepsMetaModel):
    """Implicit MAML: exact meta-gradients without backpropagating the loop.

    Each task's inner problem keeps the adapted weights near the
    meta-parameters `theta`:
    `phi* = argmin_phi L_support(phi) + l2_regularizer / 2 |phi - theta|^2`,
    approached by `num_inner_steps` gradient steps from `theta`. By the
    implicit function theorem `d phi* / d theta = (I + H / lambda)^-1`, `H`
    being the Hessian of the support loss at `phi*`, so the meta-gradient
    is that matrix times the query-loss gradient at `phi*`. It is
    computed by `cg_steps` conjugate-gradient iterations on
    Hessian-vector products, never storing the inner loop: memory does not
    grow with `num_inner_steps`.

    Args:
        model: A built `keras.Model`.
        inner_learning_rate: Float, the inner step size. Defaults to `0.01`.
        num_inner_steps: Int, inner steps in training. Defaults to `10`.
        eval_inner_steps: Int, inner steps when evaluating and in `adapt()`.
            Defaults to `num_inner_steps`.
        l2_regularizer: Float, the proximal strength `lambda`. Defaults to
            `1.0`.
        cg_steps: Int, conjugate-gradient iterations. Defaults to `5`.
        batch_norm, inner_loss: See `keras_meta.MetaModel`.

    The meta-gradient is exact when the inner problem is solved exactly and
    `cg_steps` reaches the number of weights (a quadratic support loss makes
    this a closed form, which the tests check); in practice a few steps of
    each are the paper's approximation.

    Reference:
        - [Rajeswaran et al., 2019](https://arxiv.org/abs/1909.04630)
    """

    def __init__(self, model, *, inner_learning_rate=0.01, num_inner_steps=10,
                 l2_regularizer=1.0, cg_steps=5, **kwargs):
        super().__init__(model, inner_learning_rate=inner_learning_rate,
                         num_inner_steps=num_inner_steps, **kwargs)
        self.l2_regularizer = positive_number("l2_regularizer", l2_regularizer)
        check_count("cg_steps", cg_steps)
        self.cg_steps = cg_steps

    def _support_loss(self, weights, state, support_inputs, support_labels,
                      support_weights, training):
        predictions, state = self.run_model(
            weights, state, support_inputs, training)
        return self.support_loss(support_labels, predictions,
                                 self.inner_loss_fn(), support_weights), state

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        """The proximal inner loop, with no gradient recorded through it.

        Returns `(weights, state)`. In training, `call()` then attaches the
        implicit meta-gradient to the whole meta-batch's solutions.
        """
        theta = [ops.stop_gradient(w) for w in params["weights"]]
        strength = self.l2_regularizer

        def proximal_objective(weights, state):
            loss, state = self._support_loss(
                weights, state, support_inputs, support_labels,
                support_weights, training)
            penalty = sum(ops.sum(ops.square(w - t))
                          for w, t in zip(weights, theta))
            return loss + ops.cast(strength / 2, loss.dtype) * penalty, state

        solution, state = inner.gradient_descent(
            proximal_objective, theta, params["state"],
            learning_rate=self.inner_learning_rate,
            num_steps=self.inner_steps(training),
            first_order=True,
        )
        return [ops.stop_gradient(w) for w in solution], state

    def call(self, inputs, training=False):
        if not training:
            return super().call(inputs, training=False)
        episode.check_episode_inputs(inputs, type(self).__name__)
        params = self.meta_parameters()
        support_inputs = inputs[episode.SUPPORT_INPUTS]
        support_labels = inputs[episode.SUPPORT_LABELS]
        query_inputs = inputs[episode.QUERY_INPUTS]
        support_weights = inputs.get(episode.SUPPORT_WEIGHTS)
        if support_weights is None:
            support_weights = ops.ones(ops.shape(support_labels)[:2])

        def adapt(task):
            return self.adapt_task(params, *task[:2], True,
                                   support_weights=task[2])

        solutions, states = backend.map_tasks(
            adapt, (support_inputs, support_labels, support_weights),
            ([w.dtype for w in params["weights"]],
             [s.dtype for s in params["state"]]),
        )

        def support_loss(weights, state, inputs, labels, weights_or_ones):
            return self._support_loss(weights, state, inputs, labels,
                                      weights_or_ones, True)

        strength = self.l2_regularizer

        def solve(hvp, upstream):
            # (I + H / lambda) u = upstream by conjugate gradient.
            def matvec(vectors):
                return [v + p / ops.cast(strength, p.dtype)
                        for v, p in zip(vectors, hvp(vectors))]

            return inner.conjugate_gradient(matvec, upstream, self.cg_steps)

        solutions = backend.implicit_solution(
            solutions, params["weights"], support_loss,
            (states, support_inputs, support_labels, support_weights), solve,
        )

        def predict(task):
            weights, state, queries, support = task
            return self.predict_task(params, (weights, state), queries, True,
                                     support)

        return backend.map_tasks(
            predict, (solutions, states, query_inputs, support_inputs),
            lambda: self._output_dtype(query_inputs),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "l2_regularizer": self.l2_regularizer,
            "cg_steps": self.cg_steps,
        }
