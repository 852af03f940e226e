"""keras_meta: meta-learning for Keras 3.

Wrap a Keras model in a `MetaModel` (such as `keras_meta.MAML`), then use
`compile()`, `fit()`, `evaluate()` and `predict()` on batches of episodes.
"""

from keras_meta import backend
from keras_meta import data
from keras_meta import episode
from keras_meta import inner
from keras_meta import metrics
from keras_meta import models
from keras_meta.algorithms import MAML
from keras_meta.algorithms import MatchingNet
from keras_meta.algorithms import MetaModel
from keras_meta.algorithms import ProtoMAML
from keras_meta.algorithms import ProtoNet
from keras_meta.algorithms import R2D2
from keras_meta.version import __version__

__all__ = [
    "MAML",
    "MatchingNet",
    "MetaModel",
    "ProtoMAML",
    "ProtoNet",
    "R2D2",
    "__version__",
    "backend",
    "data",
    "episode",
    "inner",
    "metrics",
    "models",
]
