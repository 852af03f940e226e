"""Meta-learning algorithms, each a `keras_meta.MetaModel`."""

from keras_meta.algorithms.maml import MAML
from keras_meta.algorithms.meta_model import MetaModel

__all__ = ["MAML", "MetaModel"]
