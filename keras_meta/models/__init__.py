"""Standard backbones of the few-shot literature, as built Keras models."""

from keras_meta.deprecation import moved_names
from keras_meta.models.backbones import attentive_neural_process_networks
from keras_meta.models.backbones import conv4
from keras_meta.models.backbones import mlp
from keras_meta.models.backbones import neural_process_networks
from keras_meta.models.backbones import resnet12
from keras_meta.models.backbones import snail_sequence_model
from keras_meta.models.batch_statistics import BatchStatisticsModel
from keras_meta.models.memory import MANNCell
from keras_meta.models.memory import mann_sequence_model
from keras_meta.models.views import AffineViews
from keras_meta.models.views import ViewMean

__all__ = ["AffineViews", "BatchStatisticsModel", "MANNCell", "ViewMean",
           "attentive_neural_process_networks", "conv4",
           "mann_sequence_model", "mlp", "neural_process_networks", "resnet12",
           "snail_sequence_model"]

# Cold-start recommendation moved to its own wing, `keras_meta.recommendation`.
__getattr__ = moved_names("keras_meta.models", {
    "field_recommender": "keras_meta.recommendation",
    "field_recommender_head": "keras_meta.recommendation"})
