"""Copies of and walks through Keras models: the layers a model holds, a
copy with other weights, which weights belong to which layers."""

import keras
from keras import ops


def walk_layers(layer):
    """Yields `layer` and all its nested layers, depth first."""
    yield layer
    for child in getattr(layer, "layers", []) or []:
        if child is not layer:
            yield from walk_layers(child)


def has_batch_statistics(model):
    """Whether `model` holds a layer that normalizes with batch statistics."""
    return any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in walk_layers(model)
    )


def clone_with_weights(model, weights, *, state=None):
    """A fresh copy of `model` whose trainable weights are `weights`.

    Args:
        model: The wrapped `keras.Model`.
        weights: Values for `model.trainable_variables`, in order.
        state: Optional values for `model.non_trainable_variables` (the
            moving statistics the copy normalizes with at inference).
            Defaults to the model's own.

    Returns:
        A `keras.Model` that needs nothing from keras_meta.
    """
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(model)
    )
    ensure_weights(clone, model.input_shape if has_input_shape(model) else None)
    if len(clone.trainable_variables) != len(weights):
        raise ValueError(
            f"Could not copy the model '{model.name}': its copy has "
            f"{len(clone.trainable_variables)} trainable weights, expected "
            f"{len(weights)}. Make sure its `get_config()` rebuilds the same "
            "layers."
        )
    if state is None:
        state = [v.value for v in model.non_trainable_variables]
    # Copies, never the source arrays themselves: on JAX, `predict()` of the
    # copy donates its variables' buffers, which would delete the wrapped
    # model's weights if the two shared them (as after zero inner steps).
    for variable, value in zip(clone.trainable_variables, weights):
        variable.assign(ops.copy(ops.cast(value, variable.dtype)))
    for variable, value in zip(clone.non_trainable_variables, state):
        variable.assign(ops.copy(ops.cast(value, variable.dtype)))
    return clone


def has_input_shape(model):
    """Whether `model` knows the shape of its inputs."""
    try:
        return model.input_shape is not None
    except (AttributeError, ValueError):
        return False


def ensure_weights(model, input_shape):
    """Creates the weights of a deserialized subclassed model.

    `build()` of a subclassed `keras.Model` creates no weights; calling the
    model on a batch of zeros does.
    """
    if model.weights or input_shape is None:
        return
    model(ops.zeros((1,) + tuple(input_shape[1:])))


def deserialize_model(config):
    """A model rebuilt from its serialized `config`, with its weights
    created (a subclassed model gets them when first called)."""
    model = keras.saving.deserialize_keras_object(config)
    if not model.weights:
        input_shape = (config.get("build_config") or {}).get("input_shape")
        ensure_weights(model, input_shape)
    return model


def layer_weight_mask(model, layers, owner, argument="head"):
    """Marks which of `model.trainable_variables` belong to `layers`.

    Args:
        model: A `keras.Model`.
        layers: A layer name, an index into `model.layers` (negative counts
            from the end), or a list of them.
        owner: The class name used in error messages.
        argument: The argument name used in error messages.

    Returns:
        A list of bools, one per trainable variable of `model`.
    """
    chosen = layers if isinstance(layers, (list, tuple)) else [layers]
    if not chosen:
        raise ValueError(f"`{argument}` names no layer.")
    names = [layer.name for layer in model.layers]
    selected = set()
    for spec in chosen:
        if isinstance(spec, bool) or not isinstance(spec, (int, str)):
            raise ValueError(
                f"`{owner}` takes `{argument}` as layer names or indices "
                f"into `model.layers`. Received: {argument}={layers!r}."
            )
        if isinstance(spec, str):
            if spec not in names:
                raise ValueError(
                    f"`{argument}={spec!r}` is not a layer of the model "
                    f"'{model.name}'. Its layers are {names}."
                )
            layer = model.layers[names.index(spec)]
        else:
            if not -len(names) <= spec < len(names):
                raise ValueError(
                    f"`{argument}={spec}` is out of range: the model "
                    f"'{model.name}' has {len(names)} layers {names}."
                )
            layer = model.layers[spec]
        if not layer.trainable_variables:
            raise ValueError(
                f"`{argument}` selects the layer '{layer.name}', which has no "
                "trainable weights. Choose the layer(s) holding the weights "
                f"to adapt; the model's layers are {names}."
            )
        selected.update(id(v) for v in layer.trainable_variables)
    mask = [id(v) in selected for v in model.trainable_variables]
    if all(mask):
        raise ValueError(
            f"`{argument}` selects every trainable layer of the model "
            f"'{model.name}', leaving no body: `{owner}` needs a head and a "
            "body. Choose the last layer(s) only."
        )
    return mask
