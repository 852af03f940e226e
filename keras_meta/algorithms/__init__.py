"""Meta-learning algorithms, each a `keras_meta.MetaModel`."""

from keras_meta.algorithms.maml import MAML
from keras_meta.algorithms.matching_net import MatchingNet
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.algorithms.proto_maml import ProtoMAML
from keras_meta.algorithms.proto_net import ProtoNet
from keras_meta.algorithms.r2d2 import R2D2

__all__ = [
    "MAML",
    "MatchingNet",
    "MetaModel",
    "ProtoMAML",
    "ProtoNet",
    "R2D2",
]
