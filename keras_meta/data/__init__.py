"""Episodes: samplers, sources and task families, as `tf.data` pipelines.

TensorFlow is imported when a pipeline is built, not at import, so that
`import keras_meta` works on the JAX backend without TensorFlow.
"""

from keras_meta.data import benchmarks
from keras_meta.data import splits
from keras_meta.data.augmentation import affine_distortions
from keras_meta.data.class_splits import load_splits
from keras_meta.data.class_splits import split_classes
from keras_meta.data.context_sets import random_context
from keras_meta.data.deduplication import class_fingerprints
from keras_meta.data.deduplication import remove_shared_classes
from keras_meta.data.episode_sources import ClassIndex
from keras_meta.data.episode_sources import episodes
from keras_meta.data.episode_sources import episodes_from_index
from keras_meta.data.episode_sources import load_class_index
from keras_meta.data.image_files import load_images
from keras_meta.data.image_files import load_support
from keras_meta.data.plotting import plot_episode
from keras_meta.data.sinusoid_tasks import sinusoid
from keras_meta.data.sinusoid_tasks import sinusoid_parameters
from keras_meta.deprecation import moved_names

__all__ = [
    "ClassIndex",
    "affine_distortions",
    "benchmarks",
    "class_fingerprints",
    "episodes",
    "episodes_from_index",
    "load_class_index",
    "load_images",
    "load_support",
    "load_splits",
    "plot_episode",
    "random_context",
    "remove_shared_classes",
    "sinusoid",
    "sinusoid_parameters",
    "split_classes",
    "splits",
]

# Cold-start recommendation moved to its own wing, `keras_meta.recommendation`.
__getattr__ = moved_names("keras_meta.data", {
    name: "keras_meta.recommendation" for name in (
        "ColdStartTasks", "MovieLensFeatures", "load_movielens",
        "movielens_cold_start", "movielens")})
