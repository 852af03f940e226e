"""Episodes: samplers, sources and task families, as `tf.data` pipelines."""

from keras_meta.data.sinusoid import sinusoid
from keras_meta.data.sinusoid import sinusoid_parameters

__all__ = ["sinusoid", "sinusoid_parameters"]
