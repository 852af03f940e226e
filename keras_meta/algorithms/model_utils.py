"""Helpers for inspecting and copying wrapped Keras models."""

import keras
import numpy as np
from keras import ops


def check_count(name, value, minimum=1):
    """Raises a `ValueError` unless `value` is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: "
            f"{name}={value!r}."
        )


def with_linear_head(encoder, input_shape, kernel, bias, *, normalize=False,
                     subtract_squared_norm=False, name="adapted"):
    """`encoder`, flattened (optionally unit-normalized), then a dense layer
    holding `kernel` and `bias`: the adapted model of metric learners.

    With `subtract_squared_norm`, each output also has the embedding's
    squared norm subtracted (ProtoNet's negative squared distances).
    """
    inputs = keras.Input(shape=tuple(input_shape))
    embeddings = keras.layers.Flatten()(encoder(inputs))
    if normalize:
        embeddings = keras.layers.UnitNormalization()(embeddings)
    head = keras.layers.Dense(kernel.shape[-1], name="head")
    outputs = head(embeddings)
    if subtract_squared_norm:
        squared_norm = keras.layers.Dot(axes=1, name="squared_norm")(
            [embeddings, embeddings])
        outputs = keras.layers.Subtract(name="distances")(
            [outputs, squared_norm])
    head.set_weights([ops.convert_to_numpy(kernel),
                      ops.convert_to_numpy(bias)])
    return keras.Model(inputs, outputs, name=name)


# The logit of a class absent from an episode's support set: metric
# learners size their outputs for `num_ways` classes at most, and an
# episode with fewer classes must never predict the missing ones.
ABSENT_CLASS_LOGIT = -1e9


def support_classes(labels, num_ways, dtype, weights=None):
    """One-hot support labels and which classes the support set holds.

    Args:
        labels: Int tensor `[num_support]` of labels in `[0, num_ways)`.
        num_ways: Int, the largest number of classes.
        dtype: The float dtype of the results.
        weights: Optional `[num_support]`, 0 for padding.

    Returns:
        `(one_hot, present)`: `[num_support, num_ways]` (padding rows zero)
        and `[num_ways]`, 1 for each class with a support example.
    """
    one_hot = ops.one_hot(ops.cast(labels, "int32"), num_ways, dtype=dtype)
    if weights is not None:
        one_hot = one_hot * ops.cast(weights, dtype)[:, None]
    present = ops.cast(ops.sum(one_hot, axis=0) > 0, dtype)
    return one_hot, present


def mask_absent_classes(logits, present):
    """`logits` with every absent class's logit at `ABSENT_CLASS_LOGIT`."""
    present = ops.cast(present, logits.dtype)
    return logits * present + (1.0 - present) * ops.cast(
        ABSENT_CLASS_LOGIT, logits.dtype)


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


def positive_number(name, value):
    """`value` as a float, or a `ValueError` unless it is a number > 0."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not value > 0):
        raise ValueError(
            f"`{name}` must be a positive number. Received: {name}={value!r}."
        )
    return float(value)


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


class SavesSeedGenerator:
    """Saves a model's `seed_generator` state with its weights.

    Keras's weight files leave `SeedGenerator` states out, so a model that
    draws noise in its training step would resume (`BackupAndRestore`,
    `load_weights`) with a restarted noise stream. Mix this in before the
    `keras.Model` base of a model with a `seed_generator` attribute.
    """

    _SEED_KEY = "seed_generator_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = keras.ops.convert_to_numpy(
            self.seed_generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(
                np.asarray(store[self._SEED_KEY]))
        super().load_own_variables(
            {k: store[k] for k in keys if k != self._SEED_KEY})
