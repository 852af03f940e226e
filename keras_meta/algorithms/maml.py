"""Model-Agnostic Meta-Learning."""

import keras

from keras_meta import inner
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.algorithms.model_utils import check_count


@keras.saving.register_keras_serializable(package="keras_meta")
class MAML(MetaModel):
    """Model-Agnostic Meta-Learning.

    Meta-learns an initialization of the wrapped model's weights from which
    a few gradient steps on a task's support set give good predictions on
    its query set. The meta-gradient differentiates through the inner
    steps (second order) unless `first_order=True`.

    Args:
        model: A built `keras.Model` mapping inputs to predictions (logits
            for classification).
        inner_learning_rate: Float, size of each adaptation step. Defaults to
            `0.01`.
        num_inner_steps: Int, adaptation steps per task during training.
            Defaults to `1`.
        eval_inner_steps: Int, adaptation steps when evaluating, predicting
            and in `adapt()`; may exceed `num_inner_steps` (0 gives the
            unadapted model). Defaults to `num_inner_steps`.
        first_order: Bool. If `True`, the meta-gradient ignores second
            derivatives (first-order MAML): cheaper, and memory does not
            grow with the number of inner steps. Defaults to `False`.
        batch_norm: See `keras_meta.MetaModel`. Defaults to
            `"transductive"`.
        inner_loss: See `keras_meta.MetaModel`. Defaults to the compiled
            loss.

    Example:

    ```python
    maml = keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=5), inner_learning_rate=0.4)
    maml.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    maml.fit(train_episodes, validation_data=val_episodes, epochs=5)
    learner = maml.adapt(support_inputs, support_labels)  # a keras.Model
    ```

    Reference:
        - [Finn et al., 2017](https://arxiv.org/abs/1703.03400)
    """

    def __init__(
        self,
        model,
        *,
        inner_learning_rate=0.01,
        num_inner_steps=1,
        eval_inner_steps=None,
        first_order=False,
        **kwargs,
    ):
        super().__init__(model, **kwargs)
        if (
            isinstance(inner_learning_rate, bool)
            or not isinstance(inner_learning_rate, (int, float))
            or not inner_learning_rate > 0
        ):
            raise ValueError(
                "`inner_learning_rate` must be a positive number. Received: "
                f"inner_learning_rate={inner_learning_rate!r}."
            )
        check_count("num_inner_steps", num_inner_steps, 1)
        if eval_inner_steps is None:
            eval_inner_steps = num_inner_steps
        self.inner_learning_rate = float(inner_learning_rate)
        self.num_inner_steps = num_inner_steps
        self.eval_inner_steps = eval_inner_steps
        self.first_order = bool(first_order)

    @property
    def eval_inner_steps(self):
        return self._eval_inner_steps

    @eval_inner_steps.setter
    def eval_inner_steps(self, value):
        check_count("eval_inner_steps", value, 0)
        object.__setattr__(self, "_eval_inner_steps", value)
        # The step count is baked into traced functions: retrace them.
        self.test_function = None
        self.predict_function = None

    def inner_steps(self, training):
        return self.num_inner_steps if training else self.eval_inner_steps

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()

        def support_objective(weights, state):
            predictions, state = self.run_model(
                weights, state, support_inputs, training
            )
            loss = self.support_loss(
                support_labels, predictions, loss_fn, support_weights
            )
            return loss, state

        return inner.gradient_descent(
            support_objective,
            params["weights"],
            params["state"],
            learning_rate=self.inner_learning_rate,
            num_steps=self.inner_steps(training),
            first_order=self.first_order,
        )

    def predict_task(self, params, task_state, query_inputs, training):
        weights, state = task_state
        predictions, _ = self.run_model(weights, state, query_inputs, training)
        return predictions

    def build_adapted_model(self, task_state, support_inputs):
        weights, _ = task_state
        return self.copy_model(weights, support_inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inner_learning_rate": self.inner_learning_rate,
                "num_inner_steps": self.num_inner_steps,
                "eval_inner_steps": self.eval_inner_steps,
                "first_order": self.first_order,
            }
        )
        return config
