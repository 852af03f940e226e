"""How a wrapped model normalizes: batch statistics, support statistics,
and inference-mode stochastic layers.

`MetaModel` calls the wrapped model in one of three ways:

- with *batch statistics*: every BatchNormalization layer normalizes the
  batch it is given with that batch's own mean and variance (support sets
  always; query sets in the transductive modes);
- with *fixed statistics*: BatchNormalization layers normalize with the
  moving statistics held in the state passed to `stateless_call` (query
  sets in the inductive mode, where the state holds the support set's
  statistics), so each example is predicted independently;
- and, outside training, with every stochastic regularization layer
  (Dropout and kin) inactive.

Keras ties all three to one `training` flag. Where a model mixes
BatchNormalization with Dropout the flag cannot say "batch statistics,
Dropout off" or "fixed statistics, Dropout on", so this module makes
private copies of the wrapped model (never touching the user's object) in
which one family of layers ignores the flag.
"""

import keras
from keras import ops

from keras_meta import backend
from keras_meta.models.batch_statistics import STOCHASTIC_LAYERS
from keras_meta.models.batch_statistics import ignore_training_flag
from keras_meta.models.surgery import has_input_shape
from keras_meta.models.surgery import walk_layers


def batch_statistic_layers(model):
    """The BatchNormalization layers of `model` that use batch statistics
    in training (trainable ones; a frozen layer always uses its moving
    statistics)."""
    return [
        layer for layer in walk_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.trainable
    ]


def has_stochastic_layers(model):
    return any(isinstance(layer, STOCHASTIC_LAYERS)
               for layer in walk_layers(model))


def check_inductive_support(model, owner):
    """Raises if a BatchNormalization layer of `model` cannot report its
    support statistics (batch renormalization, momentum 1)."""
    for layer in batch_statistic_layers(model):
        if layer.renorm or not layer.momentum < 1.0:
            raise ValueError(
                f"`{owner}` with batch_norm='inductive' normalizes queries "
                "with the support set's statistics, read from each "
                "BatchNormalization layer's moving-statistics update. The "
                f"layer '{layer.name}' has renorm={layer.renorm} and "
                f"momentum={layer.momentum}; it needs renorm=False and "
                "momentum < 1. Use batch_norm='transductive' or change the "
                "layer."
            )


def statistic_slots(model):
    """Where each batch-statistics layer's moving mean and variance sit in
    `model.non_trainable_variables`.

    Returns:
        A list of `(mean_index, variance_index, momentum)`.
    """
    index = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    return [
        (index[id(layer.moving_mean)], index[id(layer.moving_variance)],
         layer.momentum)
        for layer in batch_statistic_layers(model)
    ]


def zeroed_statistics(state, slots):
    """`state` with every slot's moving mean and variance set to zero."""
    state = list(state)
    for mean_index, variance_index, _ in slots:
        state[mean_index] = ops.zeros_like(state[mean_index])
        state[variance_index] = ops.zeros_like(state[variance_index])
    return state


def batch_statistics_from_update(state, slots):
    """The batch statistics a training-mode pass saw, from its new state.

    A BatchNormalization layer updates `moving = momentum * moving + (1 -
    momentum) * batch`. Run from zeroed statistics (`zeroed_statistics`),
    the update is `(1 - momentum) * batch`, and dividing by the same factor
    recovers the batch's mean and variance to a rounding error, with exact
    gradients.
    """
    state = list(state)
    for mean_index, variance_index, momentum in slots:
        for i in (mean_index, variance_index):
            state[i] = state[i] / ops.cast(1.0 - momentum, state[i].dtype)
    return state


def fused_copy(model, freeze_stochastic=False):
    """A private copy of `model` whose batch-statistics BatchNormalization
    layers run the backend's fused kernel in training
    (`backend.fused_batch_statistics_call`), or `None` where the backend
    has none or the model cannot be copied from its config (the caller
    then runs `model` itself: slower, same values).

    The fused kernel reports no gradient through the moving-statistics
    update (on TensorFlow it leaves the moving statistics as they are), so
    the copy serves only passes whose updated statistics are discarded
    (every pass of the transductive modes, the inner steps' support passes
    of the inductive mode).

    Args:
        model: A `keras.Model`.
        freeze_stochastic: Bool, whether Dropout and kin of the copy also
            ignore the `training` flag (batch statistics without noise).
    """
    if backend.fused_batch_statistics_call is None:
        return None
    try:
        copy = private_copy(model, "stochastic" if freeze_stochastic
                            else None)
    except ValueError:
        return None
    for layer in batch_statistic_layers(copy):
        layer.call = backend.fused_batch_statistics_call(layer)
    return copy


def private_copy(model, freeze):
    """A copy of `model`, with the same variables in the same order, in
    which the layers of one family always run in inference mode.

    Args:
        model: A `keras.Model`.
        freeze: `"stochastic"` (Dropout and kin inactive: batch statistics
            without noise), `"normalization"` (BatchNormalization uses the
            moving statistics it is given: fixed statistics with Dropout)
            or `None` (every layer follows the flag).

    Returns:
        The copy. It is called through `stateless_call` with the original
        model's variable values.
    """
    try:
        copy = keras.saving.deserialize_keras_object(_without_shared_ids(
            keras.saving.serialize_keras_object(model)))
        if not copy.weights and has_input_shape(model):
            copy(ops.zeros((1,) + tuple(model.input_shape[1:])))
    except Exception as error:
        raise ValueError(
            f"The model '{model.name}' mixes BatchNormalization with "
            "Dropout-like layers, so keras_meta runs a private copy of it in "
            "which one of the two ignores the `training` flag; copying it "
            f"failed ({type(error).__name__}: {error}). Give the model a "
            "`get_config()` that rebuilds it, or remove its Dropout layers."
        ) from error
    if (len(copy.trainable_variables) != len(model.trainable_variables)
            or len(copy.non_trainable_variables)
            != len(model.non_trainable_variables)):
        raise ValueError(
            f"A copy of the model '{model.name}' rebuilt from its config has "
            "different variables; make sure its `get_config()` rebuilds the "
            "same layers."
        )
    families = {
        "stochastic": STOCHASTIC_LAYERS,
        "normalization": (keras.layers.BatchNormalization,),
        None: (),
    }[freeze]
    for layer in walk_layers(copy):
        if isinstance(layer, families):
            ignore_training_flag(layer)
    return copy


def _without_shared_ids(config):
    """`config` without the `shared_object_id`s Keras writes while it loads
    a file (its object-sharing scope): a learner being loaded builds its
    private copies then, and with those ids every copy after the first two
    would be the second one again instead of a copy of its own."""
    if isinstance(config, dict):
        return {key: _without_shared_ids(value)
                for key, value in config.items()
                if key != "shared_object_id"}
    if isinstance(config, list):
        return [_without_shared_ids(value) for value in config]
    return config
