"""CAVIA: fast context adaptation."""

import keras
from keras import ops

from keras_meta import inner
from keras_meta.algorithms.maml import MAML
from keras_meta.algorithms.model_utils import check_count


@keras.saving.register_keras_serializable(package="keras_meta")
class CAVIA(MAML):
    """CAVIA: adapt a small context vector, meta-learn the network.

    Each task starts from a context of `num_context_params` zeros, which is
    appended to every input along its last axis (and broadcast over the
    others, so an image gets constant extra channels). The inner loop
    adapts the context alone; the network's weights are learned only in the
    outer loop, through the inner steps (second order unless
    `first_order=True`). The wrapped model therefore takes inputs whose last
    axis is the data's plus `num_context_params`.

    Args:
        model: A built `keras.Model` whose inputs have
            `data_features + num_context_params` features on the last axis.
        num_context_params: Int, the size of the context vector.
        inner_learning_rate: Float, the context's step size. Defaults to
            `1.0` (the paper's value for regression).
        **kwargs: `num_inner_steps`, `eval_inner_steps`, `first_order`,
            `batch_norm`, `inner_loss`, as for `keras_meta.MAML`.

    Example:

    ```python
    model = keras_meta.models.mlp(input_shape=(1 + 4,))
    cavia = keras_meta.CAVIA(model, num_context_params=4)
    ```

    Reference:
        - [Zintgraf et al., 2019](https://arxiv.org/abs/1810.03642)
    """

    batch_norm_modes = ("inductive", "transductive")

    def __init__(self, model, *, num_context_params, inner_learning_rate=1.0,
                 **kwargs):
        for option in ("learn_inner_learning_rates", "multi_step_loss_epochs"):
            if kwargs.pop(option, None):
                raise ValueError(f"`CAVIA` does not take `{option}`.")
        super().__init__(
            model, inner_learning_rate=inner_learning_rate, **kwargs)
        check_count("num_context_params", num_context_params)
        self.num_context_params = num_context_params

    def _extended_shape(self, example_shape):
        """The model's input shape for examples of `example_shape`."""
        example_shape = tuple(example_shape)
        features = example_shape[-1] + self.num_context_params
        expected = _input_features(self.model)
        if expected is not None and features != expected:
            raise ValueError(
                f"`CAVIA` appends {self.num_context_params} context values "
                f"to each input's last axis, so the model '{self.model.name}'"
                f" should take {features} features there; it takes "
                f"{expected}. Build the model with `data_features + "
                "num_context_params` input features."
            )
        return example_shape[:-1] + (features,)

    def _output_dtype(self, query_inputs):
        spec = self.model.compute_output_spec(keras.KerasTensor(
            self._extended_shape(query_inputs.shape[1:]),
            dtype=query_inputs.dtype))
        return spec.dtype

    def _num_outputs(self, example_shape, dtype):
        return super()._num_outputs(self._extended_shape(example_shape),
                                    dtype)

    def _with_context(self, inputs, context):
        self._extended_shape(inputs.shape)
        context = ops.cast(context, inputs.dtype)
        shape = tuple(ops.shape(inputs)[:-1]) + (self.num_context_params,)
        return ops.concatenate(
            [inputs, ops.broadcast_to(context, shape)], axis=-1)

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()
        weights = params["weights"]

        def support_objective(context, state):
            predictions, state = self.run_model(
                weights, state,
                self._with_context(support_inputs, context[0]), training,
            )
            loss = self.support_loss(
                support_labels, predictions, loss_fn, support_weights)
            return loss, state

        context = ops.zeros((self.num_context_params,),
                            dtype=self.model.variable_dtype)
        (context,), state = inner.gradient_descent(
            support_objective, [context], params["state"],
            learning_rate=self.inner_learning_rate,
            num_steps=self.inner_steps(training),
            first_order=self._use_first_order,
        )
        return context, state

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        context, state = task_state
        predictions, _ = self.run_query(
            params["weights"], state,
            self._with_context(query_inputs, context), training,
            self._with_context(support_inputs, context),
        )
        return predictions

    def build_adapted_model(self, task_state, support_inputs):
        """The network after a layer appending the adapted context.

        The context is the bias of a `Dense` layer with a zero kernel, so the
        model needs no custom layer to load.
        """
        context, _ = task_state
        weights = [ops.convert_to_tensor(v)
                   for v in self.model.trainable_variables]
        network = self.copy_model(
            weights, self._with_context(support_inputs, context))
        inputs = keras.Input(shape=tuple(support_inputs.shape[1:]))
        constant = keras.layers.Dense(
            self.num_context_params, kernel_initializer="zeros",
            trainable=False, name="context")
        extended = keras.layers.Concatenate(axis=-1)(
            [inputs, constant(inputs)])
        constant.bias.assign(ops.cast(context, constant.bias.dtype))
        return keras.Model(inputs, network(extended),
                           name=f"{self.model.name}_adapted")

    def get_config(self):
        config = super().get_config()
        for key in ("learn_inner_learning_rates", "multi_step_loss_epochs"):
            config.pop(key)
        config["num_context_params"] = self.num_context_params
        return config


def _input_features(model):
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    if not isinstance(shape, tuple) or not shape:
        return None
    return shape[-1]
