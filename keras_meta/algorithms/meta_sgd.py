"""Meta-SGD: MAML with learned per-parameter inner learning rates."""

import keras

from keras_meta import backend
from keras_meta.algorithms.maml import MAML


@keras.saving.register_keras_serializable(package="keras_meta")
class MetaSGD(MAML):
    """Meta-SGD: learns the initialization and a step size per parameter.

    Every scalar weight of the wrapped model gets its own inner learning
    rate (a tensor shaped like the weight, so the update direction is
    learned as well as its size), meta-trained with the initialization and
    saved with the model.

    Args:
        model: A built `keras.Model`.
        inner_learning_rate: Float, the initial value of every rate. Defaults
            to `0.01`, MAML's step on sinusoid: Meta-SGD starts where MAML
            starts.
        learning_rate_initializer: Optional Keras initializer of the rates
            (overrides `inner_learning_rate` as their initial value). The
            paper initializes them randomly; for example
            `keras.initializers.RandomUniform(0.005, 0.1)`.
        **kwargs: Everything `keras_meta.MAML` takes, except
            `learn_inner_learning_rates` (the rates here are per parameter
            and shared by all steps).

    Reference:
        - [Li et al., 2017](https://arxiv.org/abs/1707.09835)
    """

    def __init__(self, model, *, inner_learning_rate=0.01,
                 learning_rate_initializer=None, **kwargs):
        if kwargs.pop("learn_inner_learning_rates", False):
            raise ValueError(
                "`MetaSGD` learns a rate for every parameter already; "
                "`learn_inner_learning_rates=True` (MAML++'s per-layer, "
                "per-step rates) is an option of `keras_meta.MAML`."
            )
        super().__init__(
            model, inner_learning_rate=inner_learning_rate, **kwargs)
        self.learning_rate_initializer = (
            None if learning_rate_initializer is None
            else keras.initializers.get(learning_rate_initializer))
        initializer = (
            self.learning_rate_initializer
            or keras.initializers.Constant(inner_learning_rate))
        self.parameter_learning_rates = [
            self.add_weight(
                shape=variable.shape,
                initializer=initializer,
                name=f"learning_rate_{i}",
            )
            for i, variable in enumerate(model.trainable_variables)
        ]

    def meta_parameters(self):
        params = super().meta_parameters()
        params["parameter_learning_rates"] = [
            backend.read_value(r) for r in self.parameter_learning_rates]
        return params

    def inner_learning_rates(self, params):
        return params["parameter_learning_rates"]

    def get_config(self):
        config = super().get_config()
        config.pop("learn_inner_learning_rates")
        config["learning_rate_initializer"] = (
            None if self.learning_rate_initializer is None
            else keras.initializers.serialize(self.learning_rate_initializer))
        return config
