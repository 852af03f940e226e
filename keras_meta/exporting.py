"""Export of meta-learners as TensorFlow SavedModels."""

import keras

from keras_meta import episode
from keras_meta.models.surgery import has_input_shape


def export(meta_model, filepath, *, example_shape=None, verbose=False):
    """Writes `meta_model` as a SavedModel that adapts and predicts.

    The SavedModel's `serve` signature takes one batch of episodes,
    `support_inputs` `[tasks, num_support, ...]`, `support_labels`
    `[tasks, num_support, ...]` and `query_inputs` `[tasks, num_query,
    ...]`, and returns the query predictions after adaptation, exactly as
    `meta_model.predict()` does (with its `eval_inner_steps`). The task and
    example counts may vary from call to call. It runs with plain
    TensorFlow (`tf.saved_model.load(filepath).serve(...)`, TF Serving,
    TFLite converters) and needs neither Keras nor keras_meta.

    To deploy one adapted learner instead, export the ordinary
    `keras.Model` that `meta_model.adapt()` returns (`learner.export(path)`).

    Args:
        meta_model: A `keras_meta.MetaModel`, with the TensorFlow backend.
        filepath: String, the directory to write.
        example_shape: Optional tuple, the shape of one example without
            the batch axis (`(28, 28, 1)`). Defaults to the wrapped model's
            input shape; give it for a subclassed model, which has none.
        verbose: Bool, whether to print the signature Keras writes.

    Example:

    ```python
    keras_meta.export(maml, "maml_savedmodel")
    served = tf.saved_model.load("maml_savedmodel")
    predictions = served.serve(support_inputs, support_labels, query_inputs)
    ```
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "`keras_meta.export` writes a TensorFlow SavedModel and needs the "
            "TensorFlow backend; the active backend is "
            f"'{keras.backend.backend()}'. Export from a TensorFlow process "
            "(the `.keras` file loads on either backend)."
        )
    import tensorflow as tf

    model = meta_model.model
    given = example_shape is not None
    if given:
        example_shape = tuple(example_shape)
        if not example_shape or not all(
                isinstance(d, int) and d > 0 for d in example_shape):
            raise ValueError(
                "`example_shape` must be a tuple of positive ints, the shape "
                "of one example without the batch axis, such as (28, 28, 1)."
                f" Received: example_shape={example_shape!r}."
            )
    elif has_input_shape(model):
        example_shape = tuple(model.input_shape[1:])
    if example_shape is None or any(d is None for d in example_shape):
        raise ValueError(
            "`export` needs the shape of one example to write the serving "
            f"signature; the model '{model.name}' gives {example_shape} "
            "(a subclassed model has no input shape). Pass it: "
            "`keras_meta.export(meta_model, path, example_shape=(28, 28, "
            "1))`."
        )
    if not given and getattr(meta_model, "num_context_params", None):
        example_shape = example_shape[:-1] + (
            example_shape[-1] - meta_model.num_context_params,)
    label_shape, label_dtype = _label_spec(meta_model, example_shape)
    signature = [
        tf.TensorSpec((None, None) + example_shape, "float32",
                      name=episode.SUPPORT_INPUTS),
        tf.TensorSpec((None, None) + label_shape, label_dtype,
                      name=episode.SUPPORT_LABELS),
        tf.TensorSpec((None, None) + example_shape, "float32",
                      name=episode.QUERY_INPUTS),
    ]

    def serve(support_inputs, support_labels, query_inputs):
        return meta_model(
            {
                episode.SUPPORT_INPUTS: support_inputs,
                episode.SUPPORT_LABELS: support_labels,
                episode.QUERY_INPUTS: query_inputs,
            },
            training=False,
        )

    archive = keras.export.ExportArchive()
    archive.track(meta_model)
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(filepath, verbose=verbose)


def _label_spec(meta_model, example_shape):
    """Shape after the example axis, and dtype, of the support labels."""
    num_ways = getattr(meta_model, "num_ways", None)
    if num_ways is not None:
        return (), "int32"
    spec = meta_model.model.compute_output_spec(
        keras.KerasTensor((None,) + _model_input_shape(
            meta_model, example_shape)))
    loss = meta_model.inner_loss if meta_model.inner_loss is not None else (
        meta_model.loss)
    name = getattr(loss, "name", None) or getattr(loss, "__name__", "") or (
        str(loss))
    if "sparse" in str(name).lower():
        return (), "int32"
    return tuple(spec.shape[1:]), "float32"


def _model_input_shape(meta_model, example_shape):
    context = getattr(meta_model, "num_context_params", None)
    if context:
        return example_shape[:-1] + (example_shape[-1] + context,)
    return example_shape
