"""`BatchStatisticsModel`: BatchNormalization with batch statistics at
inference, the adapted model of the transductive modes."""

import keras
from keras import ops

from keras_meta.models.surgery import walk_layers

# Layers that behave randomly in training and are the identity at inference.
STOCHASTIC_LAYERS = (
    keras.layers.Dropout,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
)


def ignore_training_flag(layer):
    """Makes `layer` (of a private copy) always run in inference mode."""
    call = layer.call

    def call_in_inference_mode(*args, **kwargs):
        kwargs["training"] = False
        return call(*args, **kwargs)

    layer.call = call_in_inference_mode


@keras.saving.register_keras_serializable(package="keras_meta")
class BatchStatisticsModel(keras.Model):
    """A model whose BatchNormalization layers use batch statistics at
    inference: the adapted model of the transductive modes.

    Calling it runs the wrapped model with every BatchNormalization layer
    normalizing the batch it receives with that batch's own statistics, as
    the MAML paper's evaluation does, and with Dropout-like layers inactive.
    Its predictions therefore depend on the whole batch: predict a task's
    query set in one batch (`predict(x, batch_size=len(x))`). Moving
    statistics are neither read nor updated. Inputs with more leading axes
    than the wrapped model takes (`[batch, items, ...]`) are normalized
    together, as one batch of `batch * items` examples.

    Args:
        model: The `keras.Model` to run.
    """

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        # The wrapped model is this object's own copy.
        for layer in walk_layers(model):
            if isinstance(layer, STOCHASTIC_LAYERS):
                ignore_training_flag(layer)
        self.built = model.built

    def _extra_axes(self, shape):
        return len(shape) - len(self.model.input_shape)

    def call(self, inputs):
        extra = self._extra_axes(inputs.shape)
        leading = ops.shape(inputs)[:extra + 1]
        if extra:
            inputs = ops.reshape(inputs, (-1,) + tuple(inputs.shape[extra + 1:]))
        outputs, _ = self.model.stateless_call(
            [v.value for v in self.model.trainable_variables],
            [v.value for v in self.model.non_trainable_variables],
            inputs, training=True)
        if extra:
            outputs = ops.reshape(
                outputs, tuple(leading) + tuple(outputs.shape[1:]))
        return outputs

    def compute_output_shape(self, input_shape):
        extra = self._extra_axes(input_shape)
        shape = self.model.compute_output_shape(
            (None,) + tuple(input_shape[extra + 1:]))
        return tuple(input_shape[:extra + 1]) + tuple(shape[1:])

    def get_config(self):
        config = super().get_config()
        config["model"] = keras.saving.serialize_keras_object(self.model)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"))
        return cls(model, **config)
