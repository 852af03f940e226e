"""Finite-difference oracles of the metric learners on a BatchNorm encoder.

Each learner's own test checks it on a plain dense encoder; here the
encoder is Conv -> BatchNormalization -> ReLU -> MaxPool -> Dense, whose
batch statistics give the meta-gradient extra paths (the support set's
statistics normalize the queries in the inductive mode).
"""

from absl.testing import parameterized

import keras_meta
from keras_meta import testing


class MetricLearnerOracleTest(testing.TestCase):
    @parameterized.named_parameters(
        ("protonet", keras_meta.ProtoNet, {}),
        ("protonet_cosine", keras_meta.ProtoNet, {"distance": "cosine"}),
        ("matchingnet", keras_meta.MatchingNet, {}),
        ("relationnet", keras_meta.RelationNet, {}),
        ("r2d2", keras_meta.R2D2, {}),
        ("protomaml", keras_meta.ProtoMAML, {"inner_learning_rate": 0.1}),
        ("protonet_transductive", keras_meta.ProtoNet,
         {"batch_norm": "transductive"}),
    )
    def test_finite_differences_through_batch_norm(self, cls, kwargs):
        error = testing.classifier_meta_gradient_error(
            lambda model, **options: cls(model, num_ways=3, **options),
            num_ways=3, **kwargs)
        self.assertLess(error, 1e-6)
