"""Gaussian policies as ordinary Keras models."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_meta")
class GaussianPolicyHead(keras.layers.Layer):
    """The output layer of a Gaussian policy: a mean and a learned log-std.

    Maps features `[..., d]` to `[..., 2 * action_dim]`: the action mean
    (a dense layer) followed by the log standard deviation, a weight of its
    own that does not depend on the observation (as in the MAML paper's
    policies). `keras_meta.rl` splits the two halves with
    `keras_meta.gaussian.split_gaussian`.

    Args:
        action_dim: Int, the number of action dimensions.
        initial_log_std: Float, the log-std's initial value. Defaults to
            `0.0` (standard deviation 1).
        **kwargs: Passed to `keras.layers.Layer`.
    """

    def __init__(self, action_dim, *, initial_log_std=0.0, **kwargs):
        super().__init__(**kwargs)
        self.action_dim = int(action_dim)
        self.initial_log_std = float(initial_log_std)
        self.mean = keras.layers.Dense(
            self.action_dim, kernel_initializer="glorot_uniform",
            dtype=self.dtype_policy, name="mean")

    def build(self, input_shape):
        self.mean.build(input_shape)
        self.log_std = self.add_weight(
            shape=(self.action_dim,),
            initializer=keras.initializers.Constant(self.initial_log_std),
            name="log_std")

    def call(self, inputs):
        mean = self.mean(inputs)
        log_std = ops.broadcast_to(
            ops.cast(self.log_std, mean.dtype), ops.shape(mean))
        return ops.concatenate([mean, log_std], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2 * self.action_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(action_dim=self.action_dim,
                      initial_log_std=self.initial_log_std)
        return config


def gaussian_mlp_policy(observation_dim, action_dim, *,
                        hidden_units=(100, 100), activation="relu",
                        initial_log_std=0.0, seed=None, name="policy"):
    """A multilayer-perceptron Gaussian policy, as in the MAML paper.

    Args:
        observation_dim: Int, the size of an observation.
        action_dim: Int, the size of an action.
        hidden_units: Sizes of the hidden layers. Defaults to `(100, 100)`
            (the MAML paper's policies).
        activation: The hidden layers' activation. Defaults to `"relu"`.
        initial_log_std: Float, the initial log standard deviation.
        seed: Optional int seeding the weight initializers.
        name: The model's name.

    Returns:
        A built `keras.Sequential` mapping observations `[..., obs_dim]` to
        `[..., 2 * action_dim]`: the action mean, then the log-std.
    """
    layers = [keras.Input((int(observation_dim),))]
    for i, units in enumerate(hidden_units):
        layers.append(keras.layers.Dense(
            units, activation=activation, name=f"hidden_{i}",
            kernel_initializer=keras.initializers.GlorotUniform(
                None if seed is None else seed + i)))
    layers.append(GaussianPolicyHead(
        action_dim, initial_log_std=initial_log_std, name="gaussian"))
    model = keras.Sequential(layers, name=name)
    if seed is not None:
        head = model.layers[-1].mean
        head.kernel.assign(keras.initializers.GlorotUniform(
            seed + len(hidden_units))(head.kernel.shape))
    return model
