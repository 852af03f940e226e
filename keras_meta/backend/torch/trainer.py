"""keras_meta's additions to Keras's torch trainer: none are needed.

Keras's torch trainer differentiates the compiled loss of a batch with
`loss.backward()`; the inner loops inside the step keep their graphs
(`keras_meta.backend.torch.value_and_grad`), so that backward pass is the
exact meta-gradient.
"""


class MetaTrainer:
    """Mixed in under `MetaModel` on the torch backend."""
