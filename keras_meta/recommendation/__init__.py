"""Cold-start recommendation: a recommender that adapts to a new user from
a few ratings.

A user is a task: the support set holds some of the user's rated items
with their side features, the query set held-out ratings to predict.
`movielens_cold_start` builds such tasks from MovieLens with MeLU's and
MAMO's protocols, `field_recommender` is MeLU's network (meta-learned by
`keras_meta.ANIL` on its decision layers, `keras_meta.MAML` or
`keras_meta.MetaSGD`), and `NormalizedDCG` and `PrecisionAtK` rank each
user's held-out items.
"""

from keras_meta.recommendation.metrics import NormalizedDCG
from keras_meta.recommendation.metrics import PrecisionAtK
from keras_meta.recommendation.models import field_recommender
from keras_meta.recommendation.models import field_recommender_head
from keras_meta.recommendation.movielens import ColdStartTasks
from keras_meta.recommendation.movielens import MovieLensFeatures
from keras_meta.recommendation.movielens import load_movielens
from keras_meta.recommendation.movielens import movielens_cold_start

__all__ = [
    "ColdStartTasks",
    "MovieLensFeatures",
    "NormalizedDCG",
    "PrecisionAtK",
    "field_recommender",
    "field_recommender_head",
    "load_movielens",
    "movielens_cold_start",
]
