"""Inner-loop pieces shared by the gradient-based algorithms."""

from keras_meta.inner.gradient_descent import gradient_descent
from keras_meta.inner.gradient_descent import gradient_step

__all__ = ["gradient_descent", "gradient_step"]
