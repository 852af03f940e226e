"""What a Keras model is built of, as the task mapping and the TensorFlow
trainer ask it: dense layers only (tasks vectorize), convolutions or max
pooling (gradients run faster task by task), and the size of its layer
outputs."""

import keras
import numpy as np

from keras_meta.models.surgery import walk_layers


def activation_elements(model):
    """Elements of all layer outputs per example (`None`: unknown)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            nested = activation_elements(layer)
            if nested is None:
                return None
            total += nested
            continue
        try:
            outputs = layer.output
        except (AttributeError, ValueError):
            return None
        for output in keras.tree.flatten(outputs):
            shape = tuple(output.shape)[1:]
            if any(d is None for d in shape):
                return None
            total += int(np.prod(shape, dtype=np.int64))
    return total


# Layers whose per-task copies vectorize into batched matrix products and
# elementwise ops (`backend.map_tasks(..., vectorize=True)`).
VECTORIZABLE_LAYERS = (
    keras.layers.InputLayer, keras.layers.Dense, keras.layers.Activation,
    keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.Softmax, keras.layers.Flatten, keras.layers.Reshape,
    keras.layers.Concatenate, keras.layers.Add, keras.layers.Subtract,
    keras.layers.Multiply, keras.layers.Identity,
)


CONVOLUTIONAL_LAYERS = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
)


def is_convolutional(model):
    """Whether `model` has a convolution or max-pooling layer. On
    TensorFlow their gradients run faster task by task, each task's
    backward pass beside its forward pass, than in the gradient of a loop
    over tasks, where oneDNN's max-pooling gradient cannot be used
    (`benchmarks/conv_step.py`)."""
    return any(isinstance(layer, CONVOLUTIONAL_LAYERS)
               for layer in walk_layers(model))


def dense_only(model):
    """Whether `model` is a Sequential or functional model built only of
    dense and elementwise layers (nested such models included)."""
    # A subclassed model's `call` may hold any op: it is never vectorized.
    if not (isinstance(model, keras.Sequential)
            or type(model).__name__ == "Functional"):
        return False
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if not dense_only(layer):
                return False
        elif type(layer) not in VECTORIZABLE_LAYERS:
            return False
    return True
