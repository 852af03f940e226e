"""Backend-specific pieces of keras_meta, chosen once at import.

Everything that takes a gradient, maps a function over the tasks of a
meta-batch or talks to a distribution strategy lives here, one module per
Keras backend, the way Keras picks its trainer. The rest of keras_meta is
written in `keras.ops` and calls only the names exported below.
"""

import keras

_BACKEND = keras.backend.backend()

if _BACKEND == "tensorflow":
    from keras_meta.backend.tensorflow import check_even_split
    from keras_meta.backend.tensorflow import check_label_range
    from keras_meta.backend.tensorflow import compiled
    from keras_meta.backend.tensorflow import exact_moments
    from keras_meta.backend.tensorflow import fused_batch_statistics_call
    from keras_meta.backend.tensorflow import implicit_solution
    from keras_meta.backend.tensorflow import loss_and_gradients
    from keras_meta.backend.tensorflow import map_tasks
    from keras_meta.backend.tensorflow import num_replicas
    from keras_meta.backend.tensorflow import per_replica_logs
    from keras_meta.backend.tensorflow import read_value
    from keras_meta.backend.tensorflow import remat
    from keras_meta.backend.tensorflow import replica_index
    from keras_meta.backend.tensorflow import step_function
    from keras_meta.backend.tensorflow import sum_task_gradients
    from keras_meta.backend.tensorflow import task_mapping
    from keras_meta.backend.tensorflow import value_and_grad

    # Keras's TensorFlow trainer runs its executions in one graph already.
    scan_steps = None
    # Label ranges are asserted inside every traced step.
    CHECKS_LABELS_IN_GRAPH = True
elif _BACKEND == "jax":
    from keras_meta.backend.jax import check_even_split
    from keras_meta.backend.jax import check_label_range
    from keras_meta.backend.jax import compiled
    from keras_meta.backend.jax import exact_moments
    from keras_meta.backend.jax import implicit_solution
    from keras_meta.backend.jax import loss_and_gradients
    from keras_meta.backend.jax import map_tasks
    from keras_meta.backend.jax import num_replicas
    from keras_meta.backend.jax import per_replica_logs
    from keras_meta.backend.jax import read_value
    from keras_meta.backend.jax import remat
    from keras_meta.backend.jax import replica_index
    from keras_meta.backend.jax import step_function
    from keras_meta.backend.jax import scan_steps
    from keras_meta.backend.jax import task_mapping
    from keras_meta.backend.jax import value_and_grad

    # The JAX trainer differentiates whole batches.
    sum_task_gradients = None
    # XLA fuses Keras's BatchNormalization ops itself.
    fused_batch_statistics_call = None
    # No assertion stops a jitted step: the first episode's labels are
    # checked before training instead.
    CHECKS_LABELS_IN_GRAPH = False
elif _BACKEND == "torch":
    from keras_meta.backend.torch import check_even_split
    from keras_meta.backend.torch import check_label_range
    from keras_meta.backend.torch import compiled
    from keras_meta.backend.torch import exact_moments
    from keras_meta.backend.torch import fused_batch_statistics_call
    from keras_meta.backend.torch import implicit_solution
    from keras_meta.backend.torch import loss_and_gradients
    from keras_meta.backend.torch import map_tasks
    from keras_meta.backend.torch import num_replicas
    from keras_meta.backend.torch import per_replica_logs
    from keras_meta.backend.torch import read_value
    from keras_meta.backend.torch import remat
    from keras_meta.backend.torch import replica_index
    from keras_meta.backend.torch import step_function
    from keras_meta.backend.torch import task_mapping
    from keras_meta.backend.torch import value_and_grad

    # Keras's torch trainer calls the step once per batch.
    scan_steps = None
    # The trainer takes task-by-task gradients itself, in its task loop.
    sum_task_gradients = None
    # Steps run eagerly: every batch's labels are checked.
    CHECKS_LABELS_IN_GRAPH = True
else:
    raise ImportError(
        f"keras_meta supports the 'tensorflow', 'jax' and 'torch' Keras "
        f"backends; the active backend is '{_BACKEND}'. Set the environment "
        "variable `KERAS_BACKEND` to `tensorflow` (the default), `jax` or "
        "`torch` before importing keras."
    )

__all__ = [
    "CHECKS_LABELS_IN_GRAPH", "check_even_split", "check_label_range",
    "compiled", "exact_moments", "fused_batch_statistics_call",
    "implicit_solution", "loss_and_gradients", "map_tasks", "num_replicas",
    "per_replica_logs", "read_value", "remat", "replica_index", "scan_steps",
    "step_function", "sum_task_gradients", "task_mapping", "value_and_grad"]
