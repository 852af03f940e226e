"""Meta-learning algorithms, each a `keras_meta.MetaModel`."""

from keras_meta.algorithms.anil import ANIL
from keras_meta.algorithms.anil import BOIL
from keras_meta.algorithms.anp import ANP
from keras_meta.algorithms.cavia import CAVIA
from keras_meta.algorithms.cnp import CNP
from keras_meta.algorithms.imaml import IMAML
from keras_meta.algorithms.leo import LEO
from keras_meta.algorithms.maml import MAML
from keras_meta.algorithms.mann import MANN
from keras_meta.algorithms.matching_net import MatchingNet
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.algorithms.meta_sgd import MetaSGD
from keras_meta.algorithms.proto_maml import ProtoMAML
from keras_meta.algorithms.proto_net import ProtoNet
from keras_meta.algorithms.r2d2 import R2D2
from keras_meta.algorithms.relation_net import RelationNet
from keras_meta.algorithms.reptile import Reptile
from keras_meta.algorithms.snail import SNAIL

__all__ = [
    "ANIL",
    "ANP",
    "BOIL",
    "CAVIA",
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
]
