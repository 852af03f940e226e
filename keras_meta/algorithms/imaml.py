"""iMAML: implicit meta-gradients of a proximally regularized inner loop."""

import keras
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta import inner
from keras_meta.algorithms.gradient_steps import GradientStepsMetaModel
from keras_meta.algorithms.step_context import in_train_step
from keras_meta.checks import check_count
from keras_meta.checks import positive_number


@keras.saving.register_keras_serializable(package="keras_meta")
class IMAML(GradientStepsMetaModel):
    """Implicit MAML: exact meta-gradients without backpropagating the loop.

    Each task's inner problem keeps the adapted weights near the
    meta-parameters `theta`:
    `phi* = argmin_phi L_support(phi) + l2_regularizer / 2 |phi - theta|^2`,
    approached by `num_inner_steps` steps of gradient descent from `theta`
    with a monotone step rule (see `solve_task`: a step that does not
    lower the objective is undone and the step halved, an accepted one
    grows it by a quarter), so the solve cannot diverge. By the implicit
    function theorem `d phi* / d theta = (I + H / lambda)^-1`, `H` being
    the Hessian of the support loss at `phi*`, so the meta-gradient is that
    matrix times the query-loss gradient at `phi*`. It is computed by
    `cg_steps` conjugate-gradient iterations on Hessian-vector products of
    `(1 + cg_damping) I + H / lambda`, never storing the inner loop: memory
    does not grow with `num_inner_steps`.

    The theory needs the inner problem solved: training logs
    `inner_residual`, the norm of the proximal objective's gradient at the
    returned weights relative to its norm at `theta` (mean over tasks; 0
    when solved). At a solved, locally convex inner problem the system is
    positive definite; where it is not, conjugate gradient stops at the
    first direction whose curvature is below `cg_damping / 2` (at or below
    0 without damping) instead of stepping along it.

    Args:
        model: A built `keras.Model`.
        inner_learning_rate: Float, the initial inner step size. Defaults
            to `0.01`.
        num_inner_steps: Int, inner steps in training. Defaults to `10`.
        eval_inner_steps: Int, inner steps when evaluating and in `adapt()`.
            Defaults to `num_inner_steps`.
        l2_regularizer: Float, the proximal strength `lambda`, to be matched
            to the loss's scale: the adapted weights move about
            `gradient / lambda`. Defaults to `2.0` (classification with
            cross-entropy). Sinusoid regression, whose squared errors have
            gradients ten times larger, takes `10.0`: the solve then
            reaches a residual of about 0.05 in ten steps and learns (query
            MSE 0.15 after 3,000 meta-steps), where at `2.0` it learns
            slowly (1.09) and at `1.0` it did not learn.
        cg_steps: Int, conjugate-gradient iterations. Defaults to `5`.
        cg_damping: Float >= 0, added to the system's diagonal (the
            reference code uses `1.0` with a much larger `lambda` in the
            Hessian term). Defaults to `0.0`, the exact implicit gradient.
        batch_norm, inner_loss: See `keras_meta.MetaModel`.

    The meta-gradient is exact when the inner problem is solved exactly and
    `cg_steps` reaches the number of weights (a quadratic support loss makes
    this a closed form, and a solved non-convex network matches finite
    differences of its solved inner problem; the tests check both); in
    practice a few steps of each are the paper's approximation.

    Reference:
        - [Rajeswaran et al., 2019](https://arxiv.org/abs/1909.04630)
    """

    def __init__(self, model, *, inner_learning_rate=0.01, num_inner_steps=10,
                 l2_regularizer=2.0, cg_steps=5, cg_damping=0.0, **kwargs):
        super().__init__(model, inner_learning_rate=inner_learning_rate,
                         num_inner_steps=num_inner_steps, **kwargs)
        self.l2_regularizer = positive_number("l2_regularizer", l2_regularizer)
        check_count("cg_steps", cg_steps)
        self.cg_steps = cg_steps
        if isinstance(cg_damping, bool) or not isinstance(
                cg_damping, (int, float)) or cg_damping < 0:
            raise ValueError(
                "`cg_damping` must be a number >= 0. Received: "
                f"cg_damping={cg_damping!r}.")
        self.cg_damping = float(cg_damping)
        self.inner_residual_tracker = keras.metrics.Mean(
            name="inner_residual")

    def _support_loss(self, weights, state, support_inputs, support_labels,
                      support_weights, training):
        predictions, state = self.run_model(
            weights, state, support_inputs, training)
        return self.support_loss(support_labels, predictions,
                                 self.inner_loss_fn(), support_weights), state

    def _proximal_objective(self, theta, support_inputs, support_labels,
                            support_weights, training):
        strength = self.l2_regularizer

        def objective(weights, state):
            loss, state = self._support_loss(
                weights, state, support_inputs, support_labels,
                support_weights, training)
            penalty = sum(ops.sum(ops.square(w - t))
                          for w, t in zip(weights, theta))
            return loss + ops.cast(strength / 2, loss.dtype) * penalty, state

        return objective

    def solve_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        """The proximal inner loop, with no gradient recorded through it.

        Gradient descent with a monotone step rule: a step that does not
        lower the proximal objective is undone and the step size halved;
        an accepted one grows it by a quarter. Each step costs one
        gradient evaluation, as plain gradient descent does, and the solve
        cannot diverge whatever the support loss's curvature (the implicit
        meta-gradient does not depend on how the minimum was reached).

        Returns `(weights, state, residual)`: `residual` is the norm of the
        proximal objective's gradient at the returned weights relative to
        its norm at `theta` (0 at the exact minimum; the implicit
        meta-gradient assumes it is small).
        """
        theta = [ops.stop_gradient(w) for w in params["weights"]]
        objective = self._proximal_objective(
            theta, support_inputs, support_labels, support_weights, training)
        num_steps = self.inner_steps(training)
        if num_steps == 0:
            return theta, params["state"], ops.zeros(
                (), self.model.variable_dtype)

        def evaluate(weights, state):
            (value, state), gradients = backend.value_and_grad(
                objective, weights, state)
            return (ops.stop_gradient(value), state,
                    [ops.stop_gradient(g) for g in gradients])

        value, state, gradients = evaluate(theta, params["state"])
        initial_norm = _norm(gradients)
        weights = theta
        rate = ops.cast(self.inner_learning_rate, value.dtype)
        for _ in range(num_steps):
            candidate = [w - ops.cast(rate, w.dtype) * g
                         for w, g in zip(weights, gradients)]
            new_value, new_state, new_gradients = evaluate(candidate, state)
            # NaN compares False: a step into overflow is undone too.
            accept = new_value <= value
            weights = [ops.where(accept, c, w)
                       for c, w in zip(candidate, weights)]
            gradients = [ops.where(accept, n, g)
                         for n, g in zip(new_gradients, gradients)]
            state = [ops.where(accept, n, o)
                     for n, o in zip(new_state, state)]
            value = ops.where(accept, new_value, value)
            rate = ops.where(accept, 1.25 * rate, 0.5 * rate)
        residual = _norm(gradients) / ops.maximum(initial_norm, 1e-12)
        return (weights, state,
                ops.cast(residual, self.model.variable_dtype))

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        """The proximal inner loop: `(weights, state)` (see
        `solve_task`). In training, `call()` then attaches the implicit
        meta-gradient to the whole meta-batch's solutions."""
        weights, state, _ = self.solve_task(
            params, support_inputs, support_labels, training,
            support_weights)
        return weights, state

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
            return self.solve_task(params, *task[:2], True,
                                   support_weights=task[2])

        solutions, states, residuals = backend.map_tasks(
            adapt, (support_inputs, support_labels, support_weights),
            ([w.dtype for w in params["weights"]],
             [s.dtype for s in params["state"]], self.model.variable_dtype),
        )

        def support_loss(weights, state, inputs, labels, weights_or_ones):
            return self._support_loss(weights, state, inputs, labels,
                                      weights_or_ones, True)

        strength = self.l2_regularizer
        damping = self.cg_damping

        def solve(hvp, upstream):
            # ((1 + damping) I + H / lambda) u = upstream by conjugate
            # gradient, stopping at directions of negative curvature.
            def matvec(vectors):
                return [(1.0 + damping) * v + p / ops.cast(strength, p.dtype)
                        for v, p in zip(vectors, hvp(vectors))]

            # At a solved inner problem `H + lambda I` is positive
            # semi-definite, so every direction has curvature at least
            # `damping`; less says the solution is not a minimum yet.
            return inner.conjugate_gradient(
                matvec, upstream, self.cg_steps,
                min_curvature=0.5 * damping)

        solutions = backend.implicit_solution(
            solutions, params["weights"], support_loss,
            (states, support_inputs, support_labels, support_weights), solve,
        )

        def predict(task):
            weights, state, queries, support = task
            return self.predict_task(params, (weights, state), queries, True,
                                     support)

        predictions = backend.map_tasks(
            predict, (solutions, states, query_inputs, support_inputs),
            lambda: self.output_dtype(query_inputs),
        )
        return {"predictions": predictions, "inner_residual": residuals}

    def task_output_dtypes(self, query_inputs, training):
        predictions = super().task_output_dtypes(query_inputs, training)
        if not training:
            return predictions
        return {"predictions": predictions,
                "inner_residual": self.model.variable_dtype}

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict) and "inner_residual" in y_pred:
            self.inner_residual_tracker.update_state(
                y_pred["inner_residual"])
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        if isinstance(y_pred, dict) and "inner_residual" in y_pred:
            logs["inner_residual"] = self.inner_residual_tracker.result()
        return logs

    def get_metrics_result(self):
        # The residual is measured in training only.
        result = super().get_metrics_result()
        if not in_train_step(self):
            result.pop("inner_residual", None)
        return result

    @property
    def metrics_names(self):
        return [name for name in super().metrics_names
                if name != "inner_residual"]

    def get_config(self):
        return {
            **super().get_config(),
            "l2_regularizer": self.l2_regularizer,
            "cg_steps": self.cg_steps,
            "cg_damping": self.cg_damping,
        }


def _norm(tensors):
    return ops.sqrt(sum(ops.sum(ops.square(t)) for t in tensors))
