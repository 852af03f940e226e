"""Episodes: samplers, sources and task families, as `tf.data` pipelines.

TensorFlow is imported when a pipeline is built, not at import, so that
`import keras_meta` works on the JAX backend without TensorFlow.
"""

from keras_meta.data.sinusoid import sinusoid
from keras_meta.data.sinusoid import sinusoid_parameters

__all__ = ["sinusoid", "sinusoid_parameters"]
