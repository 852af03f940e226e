"""keras_meta: meta-learning for Keras 3.

Wrap a Keras model in a `MetaModel` (such as `keras_meta.MAML`), then use
`compile()`, `fit()`, `evaluate()` and `predict()` on batches of episodes.
"""

from keras_meta import backend
from keras_meta import callbacks
from keras_meta import data
from keras_meta import episode
from keras_meta import inner
from keras_meta import losses
from keras_meta import metrics
from keras_meta import models
from keras_meta import rl
from keras_meta.algorithms import ANIL
from keras_meta.algorithms import BOIL
from keras_meta.algorithms import CAVIA
from keras_meta.algorithms import ANP
from keras_meta.algorithms import CNP
from keras_meta.algorithms import IMAML
from keras_meta.algorithms import LEO
from keras_meta.algorithms import MAML
from keras_meta.algorithms import MANN
from keras_meta.algorithms import MatchingNet
from keras_meta.algorithms import MetaModel
from keras_meta.algorithms import MetaSGD
from keras_meta.algorithms import ProtoMAML
from keras_meta.algorithms import ProtoNet
from keras_meta.algorithms import R2D2
from keras_meta.algorithms import RelationNet
from keras_meta.algorithms import Reptile
from keras_meta.algorithms import SNAIL
from keras_meta.export import export
from keras_meta.version import __version__

__all__ = [
    "ANIL",
    "BOIL",
    "CAVIA",
    "ANP",
    "CNP",
    "IMAML",
    "LEO",
    "MAML",
    "MANN",
    "MatchingNet",
    "MetaModel",
    "MetaSGD",
    "ProtoMAML",
    "ProtoNet",
    "R2D2",
    "RelationNet",
    "Reptile",
    "SNAIL",
    "__version__",
    "backend",
    "callbacks",
    "data",
    "episode",
    "export",
    "inner",
    "losses",
    "metrics",
    "models",
    "rl",
]
