"""Standard backbones of the few-shot literature, as built Keras models."""

from keras_meta.algorithms.normalization import BatchStatisticsModel
from keras_meta.models.backbones import conv4
from keras_meta.models.backbones import field_recommender
from keras_meta.models.backbones import field_recommender_head
from keras_meta.models.backbones import mlp
from keras_meta.models.backbones import attentive_neural_process_networks
from keras_meta.models.backbones import neural_process_networks
from keras_meta.models.backbones import snail_sequence_model
from keras_meta.models.memory import MANNCell
from keras_meta.models.memory import mann_sequence_model

__all__ = ["BatchStatisticsModel", "MANNCell",
           "attentive_neural_process_networks", "conv4",
           "field_recommender", "field_recommender_head",
           "mann_sequence_model", "mlp", "neural_process_networks",
           "snail_sequence_model"]
