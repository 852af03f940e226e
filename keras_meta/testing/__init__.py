"""Test utilities: a `TestCase`, toy episodes and models, oracle helpers."""

from keras_meta.testing.image_folders import make_image_folder
from keras_meta.testing.learners import every_learner
from keras_meta.testing.test_case import TestCase
from keras_meta.testing.test_case import finite_difference_gradient
from keras_meta.testing.test_case import meta_gradient
from keras_meta.testing.test_case import meta_gradient_error
from keras_meta.testing.test_case import meta_loss_function
from keras_meta.testing.test_utils import classifier_meta_gradient_error
from keras_meta.testing.test_utils import linear_regression_episodes
from keras_meta.testing.test_utils import linear_regressor
from keras_meta.testing.test_utils import tiny_classifier
from keras_meta.testing.test_utils import toy_episodes

__all__ = [
    "classifier_meta_gradient_error",
    "every_learner",
    "TestCase",
    "finite_difference_gradient",
    "linear_regression_episodes",
    "linear_regressor",
    "make_image_folder",
    "meta_gradient",
    "meta_gradient_error",
    "meta_loss_function",
    "tiny_classifier",
    "toy_episodes",
]
