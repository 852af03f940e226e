"""Checks of what a learner is given: the model it wraps, and episodes
(their structure, label types and ranges), each failing with a message
that says what was received and how to fix it. The episode contract
itself is `keras_meta.episode`."""

import warnings

import keras
import numpy as np

from keras_meta import backend
from keras_meta import episode


def check_wrapped_model(model, owner, requires_trainable):
    """Raises unless `model` is a built `keras.Model` (with trainable
    weights when `requires_trainable`) that the learner `owner` can wrap."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"`{owner}` wraps a Keras model: expected an instance of "
            f"`keras.Model`, received {type(model).__name__}. Wrap a "
            "`keras.Sequential`, a functional model or a subclass of "
            "`keras.Model`."
        )
    if not model.built:
        raise ValueError(
            f"`{owner}` needs a built model, so that its weights exist "
            f"before meta-training. The model '{model.name}' is not built. "
            "Give it an input shape (`keras.Input(shape)` as its first "
            "layer), or call it once on a batch of examples "
            "(`model(x[:1])`): that creates a subclassed model's weights, "
            "which `model.build(input_shape)` does not."
        )
    if requires_trainable and not model.trainable_variables:
        raise ValueError(
            f"`{owner}` received the model '{model.name}', which has no "
            "trainable weights to meta-learn. Check that it is "
            "`trainable`; a subclassed model creates its weights when "
            "first called, so call it on a batch (`model(x[:1])`) first."
        )


def is_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (or quacks like one)."""
    return hasattr(data, "element_spec") and hasattr(data, "take")


def check_labels(learner, labels, name, example_inputs):
    """Checks a batch's labels where the step is traced: float labels
    for a sparse categorical loss raise at once; integer labels are
    checked against the number of classes in the graph, every batch
    (TensorFlow; on JAX the first episode's check is all)."""
    owner = type(learner).__name__
    integer = "int" in str(labels.dtype)
    if getattr(learner, "num_ways", None) is not None and not (
            integer and len(labels.shape) == 2):
        raise ValueError(
            f"`{owner}` classifies: {name} must be integer class ids of "
            "shape [tasks, examples], labels 0..num_ways-1 within each "
            f"episode. Received dtype {labels.dtype} and shape "
            f"{tuple(labels.shape)}. Regression episodes (such as "
            "`keras_meta.data.sinusoid`) need a gradient-based learner "
            "such as `keras_meta.MAML`."
        )
    losses = [learner.inner_loss, learner.loss]
    sparse = any(
        isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
        or loss in ("sparse_categorical_crossentropy",
                    keras.losses.sparse_categorical_crossentropy)
        for loss in losses if loss is not None)
    if sparse and not integer:
        raise ValueError(
            f"`{owner}` is compiled with a sparse categorical "
            f"cross-entropy, which takes integer class labels, but "
            f"{name} has dtype {labels.dtype}. Classification episodes "
            "carry labels 0..num_ways-1 as integers (`keras_meta.data` "
            "makes them so); for regression targets compile a "
            "regression loss such as 'mse'."
        )
    if not integer or not backend.CHECKS_LABELS_IN_GRAPH:
        # JAX has no in-graph assertion: see `check_label_range`.
        return labels
    num_outputs = learner.num_outputs(
        tuple(example_inputs.shape[2:]), example_inputs.dtype)
    if num_outputs is None:
        return labels
    what, fix = learner.classes_limit() or (
        f"the wrapped model has {num_outputs} outputs",
        "give the model one output per way")
    return backend.check_label_range(
        labels, num_outputs,
        f"`{owner}`: a batch of {name} holds labels outside "
        f"0..{num_outputs - 1} ({what}). Relabel each episode's classes "
        f"as 0..num_ways-1 (`keras_meta.data` does this) or {fix}.")


def check_single_task(learner, support_inputs, support_labels):
    """Checks what `adapt()` is given: one task's support examples (no
    task axis) and labels the learner can take."""
    example_rank = None
    try:
        example_rank = len(learner.model.input_shape) - 1
    except (AttributeError, ValueError):
        pass
    if example_rank is not None and len(support_inputs.shape) != (
            example_rank + 1):
        raise ValueError(
            f"`{type(learner).__name__}.adapt()` adapts to one task: it "
            "takes `support_inputs` of shape [num_support, ...] (examples "
            f"of rank {example_rank}, as the wrapped model takes them, "
            "after one example axis), without a task axis. Received shape "
            f"{tuple(support_inputs.shape)}. For task `i` of an episode "
            "batch, pass `support_inputs[i]` and `support_labels[i]`."
        )
    episode.check_episode_values(
        {
            episode.SUPPORT_INPUTS: support_inputs[None],
            episode.SUPPORT_LABELS: support_labels[None],
            episode.QUERY_INPUTS: support_inputs[None],
        },
        None,
        learner.num_outputs(support_inputs.shape[1:], support_inputs.dtype),
        f"{type(learner).__name__}.adapt",
        learner.classes_limit(),
    )


def check_first_episode(learner, data, labels=None):
    """Checks the values of the first episode before any step runs."""
    if is_dataset(data):
        try:
            batch = next(iter(data.take(1)))
        except StopIteration:
            raise ValueError(
                f"`{type(learner).__name__}` received a dataset that yields "
                "no episodes. Check its source and filters (a "
                "`num_episodes` of 0, a split with no classes, a "
                "`take(0)`)."
            ) from None
        if isinstance(batch, (tuple, list)):
            inputs = batch[0]
            labels = batch[1] if len(batch) > 1 else None
        else:
            inputs = batch
    elif isinstance(data, dict):
        inputs = data
    else:
        return
    episode.check_episode_inputs(inputs, type(learner).__name__)
    support = inputs[episode.SUPPORT_INPUTS]
    # Labels are all that is checked by value: convert those alone, and
    # with NumPy, so that no backend moves the whole data set to a
    # device and back.
    inputs = {
        k: np.asarray(inputs[k]) if k == episode.SUPPORT_LABELS
        else inputs[k]
        for k in episode.EPISODE_KEYS
    }
    if labels is not None:
        labels = np.asarray(labels)
    num_outputs = learner.num_outputs(support.shape[2:], support.dtype)
    episode.check_episode_values(
        inputs,
        labels,
        num_outputs,
        type(learner).__name__,
        learner.classes_limit(),
    )
    support_labels = inputs[episode.SUPPORT_LABELS]
    if (learner.classes_limit() is None and num_outputs
            and np.issubdtype(support_labels.dtype, np.integer)
            and support_labels.ndim == 2 and support_labels.size
            and episode.SUPPORT_WEIGHTS not in inputs):
        ways = int(support_labels.max()) + 1
        if ways < num_outputs:
            warnings.warn(
                f"`{type(learner).__name__}` wraps a model with "
                f"{num_outputs} outputs, but the first episode has "
                f"{ways} classes (labels 0..{ways - 1}). The other "
                f"{num_outputs - ways} outputs enter every softmax as "
                "classes that never occur. Give the model one output "
                f"per way (`num_outputs={ways}`).",
                stacklevel=3,
            )
