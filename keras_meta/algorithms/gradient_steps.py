"""What Reptile and iMAML share: plain gradient steps on all weights."""

from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count
from keras_meta.checks import positive_number


def _get_eval_inner_steps(self):
    return self._eval_inner_steps


def _set_eval_inner_steps(self, value):
    check_count("eval_inner_steps", value, 0)
    object.__setattr__(self, "_eval_inner_steps", value)
    # The step count is baked into traced functions: retrace them.
    self.test_function = None
    self.predict_function = None


eval_inner_steps_property = property(
    _get_eval_inner_steps, _set_eval_inner_steps,
    doc="Inner steps when evaluating, predicting and in `adapt()`; "
        "setting it retraces the test and predict functions.")


class GradientStepsMetaModel(MetaModel):
    """A learner adapting every weight by `num_inner_steps` gradient steps.

    Holds `inner_learning_rate`, `num_inner_steps` and `eval_inner_steps`
    (see `keras_meta.MAML`), predicts with the adapted weights and builds
    the adapted model as a copy holding them.
    """

    eval_inner_steps = eval_inner_steps_property

    def __init__(self, model, *, inner_learning_rate, num_inner_steps,
                 eval_inner_steps=None, **kwargs):
        super().__init__(model, **kwargs)
        self.inner_learning_rate = positive_number(
            "inner_learning_rate", inner_learning_rate)
        check_count("num_inner_steps", num_inner_steps)
        if eval_inner_steps is None:
            eval_inner_steps = num_inner_steps
        self.num_inner_steps = num_inner_steps
        self.eval_inner_steps = eval_inner_steps

    def inner_steps(self, training):
        return self.num_inner_steps if training else self.eval_inner_steps

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        weights, state = task_state
        predictions, _ = self.run_query(weights, state, query_inputs,
                                        training, support_inputs)
        return predictions

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
