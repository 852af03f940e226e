"""Meta-learning algorithms, each a `keras_meta.MetaModel`."""

from keras_meta.algorithms.maml import MAML
from keras_meta.algorithms.matching_net import MatchingNet
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.algorithms.proto_net import ProtoNet

__all__ = ["MAML", "MatchingNet", "MetaModel", "ProtoNet"]
