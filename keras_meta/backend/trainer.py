"""The trainer of the active Keras backend, chosen once at import as Keras
chooses its own: `MetaTrainer`, a mixin that `MetaModel` puts between
itself and `keras.Model`."""

import keras

if keras.backend.backend() == "jax":
    from keras_meta.backend.jax.trainer import MetaTrainer
elif keras.backend.backend() == "torch":
    from keras_meta.backend.torch.trainer import MetaTrainer
else:
    # TensorFlow; importing `keras_meta.backend` refuses any other backend.
    from keras_meta.backend.tensorflow.trainer import MetaTrainer

__all__ = ["MetaTrainer"]
