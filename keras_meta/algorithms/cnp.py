"""Conditional Neural Processes."""

import copy

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import positive_number
from keras_meta.models.surgery import clone_with_weights


@keras.saving.register_keras_serializable(package="keras_meta")
class CNP(MetaModel):
    """Conditional Neural Process: a learned encoder of the support set.

    The encoder maps each support pair `(x, y)`, concatenated, to a
    representation; their mean `r` summarizes the task (the same for any
    order of the support set). The decoder (the wrapped model) maps each
    query `x` with `r` to a Gaussian predictive distribution. Adaptation is
    one forward pass: no inner loop, no second-order gradients.

    `call()` returns `[tasks, num_query, 2 * d]` for `d`-dimensional
    targets: the predictive means, then the standard deviations, which are
    kept above `min_std` (`std = min_std + (1 - min_std) * softplus(raw)`,
    as in the paper) so that the predicted variance cannot collapse.
    Compile with `keras_meta.losses.GaussianNegativeLogLikelihood()` and,
    as metrics, `keras_meta.metrics.PredictiveMeanSquaredError()` and
    `keras_meta.metrics.IntervalCoverage()`; `CNP.split(predictions)` gives
    `(mean, std)`.

    Args:
        model: The decoder, a built `keras.Model` taking `x_dim + r_dim`
            features (a query concatenated with the representation) and
            returning `2 * d` values.
        encoder: A built `keras.Model` taking `x_dim + d` features (a
            support pair) and returning an `r_dim` representation.
        min_std: Float in (0, 1), the floor of the predicted standard
            deviation. Defaults to `0.1` (Garnelo et al., 2018).
        **kwargs: Passed to `keras_meta.MetaModel`.

    Example:

    ```python
    encoder, decoder = keras_meta.models.neural_process_networks(
        x_dim=1, y_dim=1)
    cnp = keras_meta.CNP(decoder, encoder=encoder)
    cnp.compile(optimizer="adam",
                loss=keras_meta.losses.GaussianNegativeLogLikelihood(),
                metrics=[keras_meta.metrics.PredictiveMeanSquaredError()])
    cnp.fit(keras_meta.data.sinusoid(num_shots=10, batch_size=25),
            epochs=10, steps_per_epoch=2000)
    mean, std = keras_meta.CNP.split(cnp.predict(test_episodes))
    ```

    Reference:
        - [Garnelo et al., 2018](https://arxiv.org/abs/1807.01613)
    """

    def __init__(self, model, *, encoder, min_std=0.1, **kwargs):
        super().__init__(model, **kwargs)
        if not isinstance(encoder, keras.Model) or not encoder.built:
            raise ValueError(
                "`encoder` must be a built `keras.Model` mapping a support "
                "pair (x and y concatenated) to a representation. Received: "
                f"{encoder!r}."
            )
        min_std = positive_number("min_std", min_std)
        if not min_std < 1:
            raise ValueError(
                f"`min_std` must lie in (0, 1). Received: min_std={min_std}."
            )
        self.encoder = encoder
        self.min_std = min_std
        self.prepare_normalization(encoder)
        outputs = model.output_shape[-1]
        if outputs is None or outputs % 2:
            raise ValueError(
                f"The decoder '{model.name}' must output 2 * d values (means "
                f"and raw standard deviations of d targets); it outputs "
                f"{outputs}."
            )
        self.target_dim = outputs // 2
        self._check_dimensions(encoder, model)

    def _check_dimensions(self, encoder, model):
        # The decoder takes a query and the representation.
        self.representation_dim = encoder.output_shape[-1]
        self.input_dim = model.input_shape[-1] - self.representation_dim
        if self.input_dim < 1 or encoder.input_shape[-1] != (
                self.input_dim + self.target_dim):
            raise ValueError(
                f"The encoder takes {encoder.input_shape[-1]} features and "
                f"returns {self.representation_dim}; the decoder takes "
                f"{model.input_shape[-1]} and returns {2 * self.target_dim}. "
                "For x_dim-dimensional inputs and d-dimensional targets the "
                "encoder takes x_dim + d features and the decoder x_dim + "
                "r_dim (see `keras_meta.models.neural_process_networks`)."
            )

    @staticmethod
    def split(predictions):
        """`(mean, std)` from the predictions of a `CNP` (or its adapted
        model): the two halves of the last axis."""
        half = predictions.shape[-1] // 2
        return predictions[..., :half], predictions[..., half:]

    def meta_parameters(self):
        params = super().meta_parameters()
        params["encoder_weights"] = [
            backend.read_value(v) for v in self.encoder.trainable_variables]
        params["encoder_state"] = [
            backend.read_value(v)
            for v in self.encoder.non_trainable_variables]
        return params

    def num_outputs(self, example_shape, dtype):
        return None

    def output_dtype(self, query_inputs):
        return self.model.compute_dtype

    def _pairs(self, inputs, labels):
        """`(x, y)` pairs of one task, checking that `labels` are float
        regression targets."""
        if "int" in str(labels.dtype) or len(labels.shape) != 2:
            raise ValueError(
                f"`{type(self).__name__}` regresses: support labels must be "
                "float targets of shape [tasks, num_support, d]. Received "
                f"dtype {labels.dtype} and shape "
                f"{(None,) + tuple(labels.shape)}."
            )
        return ops.concatenate([inputs, ops.cast(labels, inputs.dtype)],
                               axis=-1)

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        pairs = self._pairs(support_inputs, support_labels)
        codes, _ = self.run_model(params["encoder_weights"],
                                  params["encoder_state"], pairs, training,
                                  model=self.encoder)
        if support_weights is None:
            return ops.mean(codes, axis=0)
        weights = ops.cast(support_weights, codes.dtype)[:, None]
        return ops.sum(codes * weights, axis=0) / ops.maximum(
            ops.sum(weights), 1.0)

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        representation = ops.broadcast_to(
            ops.cast(task_state, query_inputs.dtype)[None],
            (ops.shape(query_inputs)[0], self.representation_dim))
        raw, _ = self.run_model(
            params["weights"], params["state"],
            ops.concatenate([query_inputs, representation], axis=-1),
            training)
        return self.gaussian(raw)

    def gaussian(self, raw):
        """`[mean, std]` from the decoder's raw outputs, with the floor."""
        mean = raw[:, :self.target_dim]
        std = self.min_std + (1.0 - self.min_std) * ops.softplus(
            raw[:, self.target_dim:])
        return ops.concatenate([mean, std], axis=-1)

    def build_adapted_model(self, task_state, support_inputs):
        """A stock Keras model mapping queries to `[mean, std]`.

        The representation is the bias of a `Dense` layer with a zero
        kernel; fixed selection layers split the decoder's output, and
        `Rescaling` applies the variance floor.
        """
        representation = ops.convert_to_numpy(task_state)
        decoder = clone_with_weights(
            self.model, [ops.convert_to_tensor(v)
                         for v in self.model.trainable_variables])
        inputs = keras.Input(shape=(self.input_dim,))
        constant = keras.layers.Dense(
            self.representation_dim, kernel_initializer="zeros",
            trainable=False, name="representation")
        raw = decoder(keras.layers.Concatenate(axis=-1)(
            [inputs, constant(inputs)]))
        outputs = gaussian_outputs(raw, self.target_dim, self.min_std)
        constant.bias.assign(representation.astype(constant.bias.dtype))
        return keras.Model(inputs, outputs, name=f"{self.model.name}_adapted")

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "min_std": self.min_std,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)
        config["encoder"] = keras.saving.deserialize_keras_object(
            config["encoder"])
        return super().from_config(config)


def gaussian_outputs(raw, target_dim, min_std):
    """`[mean, std]` from a decoder's raw outputs in a Keras graph, with stock
    layers: fixed selection `Dense` layers split the means from the raw
    standard deviations, and `Rescaling` applies the floor."""
    d = target_dim
    select = np.eye(2 * d, dtype="float32")
    means = keras.layers.Dense(d, use_bias=False, trainable=False,
                               name="mean")
    raw_std = keras.layers.Dense(d, use_bias=False, trainable=False,
                                 name="raw_std")
    mean = means(raw)
    std = keras.layers.Rescaling(1.0 - min_std, offset=min_std, name="std")(
        keras.layers.Activation("softplus")(raw_std(raw)))
    means.set_weights([select[:, :d]])
    raw_std.set_weights([select[:, d:]])
    return keras.layers.Concatenate(axis=-1)([mean, std])
