"""Inner-loop pieces shared by the gradient-based algorithms."""

from keras_meta.inner.adam import adam
from keras_meta.inner.conjugate_gradient import conjugate_gradient
from keras_meta.inner.gradient_descent import gradient_descent
from keras_meta.inner.gradient_descent import gradient_step

__all__ = ["adam", "conjugate_gradient", "gradient_descent", "gradient_step"]
