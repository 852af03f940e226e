"""CAVIA: fast context adaptation."""

import keras
from keras import ops

from keras_meta import backend
from keras_meta import inner
from keras_meta.algorithms.maml import MAML
from keras_meta.checks import check_count

_NORMALIZATION = (keras.layers.BatchNormalization,
                  keras.layers.LayerNormalization,
                  keras.layers.GroupNormalization)


@keras.saving.register_keras_serializable(package="keras_meta")
class CAVIA(MAML):
    """CAVIA: adapt a small context vector, meta-learn the network.

    Each task starts from a context of `num_context_params` zeros; the inner
    loop adapts the context alone, and the network's weights (with the map
    from the context into the network) are learned only in the outer loop,
    through the inner steps (second order unless `first_order=True`). The
    context enters the network in one of two ways, as in the paper:

    - **FiLM** (models with normalization layers, by default): a
      meta-learned dense map turns the context into a per-channel scale and
      shift, `h -> h * (1 + gamma) + beta`, applied to the output of one
      layer (by default the last BatchNormalization, LayerNormalization or
      GroupNormalization layer; name another with `film_layer`). The model
      takes the data's own inputs. At a zero context the network is exactly
      the wrapped model (the paper's map has no such offset of 1 and starts
      its scale near 0; the two are the same family of functions).
    - **Input concatenation** (models without normalization, such as the
      regression MLP, or `film_layer=None`): the context is appended to
      every input along its last axis (broadcast over the others), so the
      model takes `data_features + num_context_params` features there. A
      normalization layer after the input would cancel such a constant,
      which is why images use FiLM.

    Args:
        model: A built `keras.Model`. For FiLM it must be `Sequential` or
            functional (its layer graph is rebuilt with the FiLM step in
            it; the model object itself is never changed).
        num_context_params: Int, the size of the context vector (the paper:
            4 for regression, 100 for images).
        film_layer: `"auto"` (FiLM after the last normalization layer if
            the model has one, input concatenation otherwise), the name of
            a top-level layer to condition with FiLM, or `None` for input
            concatenation. Defaults to `"auto"`.
        inner_learning_rate: Float, the context's step size. Defaults to
            `1.0` (the paper's value for regression and images).
        **kwargs: `num_inner_steps`, `eval_inner_steps`, `first_order`,
            `batch_norm`, `inner_loss`, as for `keras_meta.MAML`. The paper
            takes 2 inner steps for images.

    Example:

    ```python
    cavia = keras_meta.CAVIA(
        keras_meta.models.conv4(num_outputs=5), num_context_params=100,
        inner_learning_rate=1.0, num_inner_steps=2)
    ```

    The paper conditions the third of four convolutional blocks of its
    mini-ImageNet network; with `keras_meta.models.conv4` that is
    `film_layer="batch_norm_2"`.

    Reference:
        - [Zintgraf et al., 2019](https://arxiv.org/abs/1810.03642)
    """

    batch_norm_modes = ("inductive", "transductive")

    def __init__(self, model, *, num_context_params, film_layer="auto",
                 inner_learning_rate=1.0, **kwargs):
        for option in ("learn_inner_learning_rates", "multi_step_loss_epochs"):
            if kwargs.pop(option, None):
                raise ValueError(f"`CAVIA` does not take `{option}`.")
        super().__init__(
            model, inner_learning_rate=inner_learning_rate, **kwargs)
        check_count("num_context_params", num_context_params)
        self.num_context_params = num_context_params
        self.film_layer = film_layer
        target = _film_target(model, film_layer)
        if target is None:
            object.__setattr__(self, "_film", None)
            return
        film = _FiLMNetwork(model, target)
        # Not tracked: the rebuilt network holds no weights the learner
        # trains or saves; it runs on the wrapped model's values.
        object.__setattr__(self, "_film", film)
        self.prepare_normalization(film.network)
        self.film_kernel = self.add_weight(
            shape=(num_context_params, 2 * film.channels),
            initializer="glorot_uniform", name="film_kernel")
        self.film_bias = self.add_weight(
            shape=(2 * film.channels,), initializer="zeros",
            name="film_bias")

    @property
    def conditioning(self):
        """`"film"` or `"input"`: how the context enters the network."""
        return "input" if self._film is None else "film"

    # ------------------------------------------------------------------
    # Input concatenation.
    # ------------------------------------------------------------------

    def _extended_shape(self, example_shape):
        """The model's input shape for examples of `example_shape`."""
        example_shape = tuple(example_shape)
        if self._film is not None:
            return example_shape
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

    def output_dtype(self, query_inputs):
        spec = self.model.compute_output_spec(keras.KerasTensor(
            self._extended_shape(query_inputs.shape[1:]),
            dtype=query_inputs.dtype))
        return spec.dtype

    def num_outputs(self, example_shape, dtype):
        return super().num_outputs(self._extended_shape(example_shape),
                                   dtype)

    def _with_context(self, inputs, context):
        self._extended_shape(inputs.shape)
        context = ops.cast(context, inputs.dtype)
        shape = tuple(ops.shape(inputs)[:-1]) + (self.num_context_params,)
        return ops.concatenate(
            [inputs, ops.broadcast_to(context, shape)], axis=-1)

    # ------------------------------------------------------------------
    # Either conditioning.
    # ------------------------------------------------------------------

    def meta_parameters(self):
        params = super().meta_parameters()
        if self._film is not None:
            params["film"] = [backend.read_value(self.film_kernel),
                              backend.read_value(self.film_bias)]
        return params

    def film_values(self, params, context):
        """The per-channel `(scale, shift)` of a context."""
        kernel, bias = params["film"]
        context = ops.cast(context, kernel.dtype)
        values = ops.matmul(context[None, :], kernel)[0] + bias
        channels = self._film.channels
        return 1.0 + values[:channels], values[channels:]

    def _run(self, params, weights, state, context, inputs, training,
             query=False, support_inputs=None):
        """The network on `inputs` under `context`: `(outputs, state)`."""
        if self._film is None:
            if not query:
                return self.run_model(
                    weights, state, self._with_context(inputs, context),
                    training)
            return self.run_query(
                weights, state, self._with_context(inputs, context),
                training, self._with_context(support_inputs, context))
        film = self._film
        net_weights = film.weights(weights, *self.film_values(params,
                                                              context))
        net_state = film.state(state)
        if not query:
            outputs, net_state = self.run_model(
                net_weights, net_state, inputs, training, film.network)
        else:
            outputs, net_state = self.run_query(
                net_weights, net_state, inputs, training, support_inputs,
                film.network)
        return outputs, film.model_state(net_state, state)

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()
        weights = params["weights"]

        def support_objective(context, state):
            predictions, state = self._run(
                params, weights, state, context[0], support_inputs, training)
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
            remat=self.remat_inner_steps and training,
        )
        return context, state

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        context, state = task_state
        predictions, _ = self._run(
            params, params["weights"], state, context, query_inputs,
            training, query=True, support_inputs=support_inputs)
        return predictions

    def build_adapted_model(self, task_state, support_inputs):
        """The network with the adapted context built in.

        FiLM: the rebuilt network, its FiLM step an `EinsumDense` layer
        holding the context's scale and shift. Input concatenation: the
        network after a `Dense` layer with a zero kernel whose bias is the
        context. Either needs no custom layer to load.
        """
        context, _ = task_state
        weights = [ops.convert_to_tensor(v)
                   for v in self.model.trainable_variables]
        if self._film is not None:
            film = self._film
            film.sync_state()
            scale, shift = self.film_values(self.meta_parameters(), context)
            return self.copy_model(film.weights(weights, scale, shift),
                                   support_inputs, film.network)
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
        config["film_layer"] = self.film_layer
        return config


class _FiLMNetwork:
    """The wrapped model rebuilt with a per-channel affine step (a stock
    `EinsumDense`) after one layer, and the maps between its variable
    order and the wrapped model's."""

    def __init__(self, model, target):
        self.model = model
        copies = []

        def clone(layer):
            copy = layer.__class__.from_config(layer.get_config())
            copies.append((layer, copy))
            return copy

        affine = None

        def condition(outputs):
            nonlocal affine
            channels = outputs.shape[-1]
            affine = keras.layers.EinsumDense(
                "...c,c->...c", output_shape=(channels,), bias_axes="c",
                dtype=model.dtype_policy, name=f"{target.name}_film")
            return affine(outputs)

        if isinstance(model, keras.Sequential):
            inputs = keras.Input(shape=model.input_shape[1:],
                                 dtype=model.inputs[0].dtype)
            outputs = inputs
            for layer in model.layers:
                outputs = clone(layer)(outputs)
                if layer is target:
                    outputs = condition(outputs)
            network = keras.Model(inputs, outputs,
                                  name=f"{model.name}_film")
        else:
            def call(layer, *args, **kwargs):
                outputs = layer(*args, **kwargs)
                if layer.name == target.name:
                    outputs = condition(outputs)
                return outputs

            network = keras.models.clone_model(
                model, clone_function=clone, call_function=call)
        if affine is None:
            raise ValueError(
                f"`CAVIA` could not place its FiLM step after the layer "
                f"'{target.name}' of the model '{model.name}'. Name a "
                "top-level layer with `film_layer=`.")
        self.network = network
        self.channels = affine.kernel.shape[0]
        owners = {}
        for layer, copy in copies:
            if len(layer.variables) != len(copy.variables):
                raise ValueError(
                    f"`CAVIA` could not rebuild the layer '{layer.name}' of "
                    f"the model '{model.name}' from its config. Make sure "
                    "its `get_config()` rebuilds the same weights, or pass "
                    "`film_layer=None`.")
            owners.update((id(c), o) for o, c in zip(layer.variables,
                                                     copy.variables))
        self._trainable = _positions(network.trainable_variables, owners,
                                     model.trainable_variables, affine)
        self._state = _positions(network.non_trainable_variables, owners,
                                 model.non_trainable_variables, None)

    def weights(self, model_weights, scale, shift):
        """The network's trainable values, in its order."""
        extra = {"kernel": scale, "bias": shift}
        return [extra[i] if isinstance(i, str) else model_weights[i]
                for i in self._trainable]

    def state(self, model_state):
        return [model_state[i] for i in self._state]

    def model_state(self, network_state, model_state):
        values = list(model_state)
        for value, i in zip(network_state, self._state):
            values[i] = value
        return values

    def sync_state(self):
        """Copies the wrapped model's non-trainable values (moving
        statistics) into the network."""
        for variable, i in zip(self.network.non_trainable_variables,
                               self._state):
            variable.assign(self.model.non_trainable_variables[i])


def _positions(variables, owners, model_variables, affine):
    """For each of `variables`: its index in `model_variables`, or
    `"kernel"`/`"bias"` for the FiLM step's."""
    index = {id(v): i for i, v in enumerate(model_variables)}
    positions = []
    for variable in variables:
        if affine is not None and variable is affine.kernel:
            positions.append("kernel")
        elif affine is not None and variable is affine.bias:
            positions.append("bias")
        else:
            positions.append(index[id(owners[id(variable)])])
    return positions


def _film_target(model, film_layer):
    """The layer after which FiLM conditions, or `None` for input
    concatenation."""
    if film_layer is None:
        return None
    layers = list(getattr(model, "layers", []) or [])
    if film_layer == "auto":
        normalization = [layer for layer in layers
                         if isinstance(layer, _NORMALIZATION)]
        if not normalization:
            return None
        target = normalization[-1]
    elif isinstance(film_layer, str):
        named = [layer for layer in layers if layer.name == film_layer]
        if not named:
            raise ValueError(
                f"`film_layer={film_layer!r}` names no top-level layer of "
                f"the model '{model.name}'. Its layers are: "
                f"{[layer.name for layer in layers]}.")
        target = named[0]
    else:
        raise ValueError(
            "`film_layer` must be 'auto', the name of a layer, or None. "
            f"Received: film_layer={film_layer!r}.")
    if not isinstance(model, keras.Sequential) and not hasattr(
            model, "_nodes_by_depth"):
        raise ValueError(
            f"`CAVIA` conditions the model '{model.name}' with FiLM by "
            "rebuilding its layer graph, which a subclassed model does not "
            "expose. Build it as a `keras.Sequential` or functional model, "
            "or pass `film_layer=None` to append the context to the inputs "
            "(the model then takes data_features + num_context_params "
            "features).")
    return target


def _input_features(model):
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    if not isinstance(shape, tuple) or not shape:
        return None
    return shape[-1]
