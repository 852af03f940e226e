"""Inner-loop pieces shared by the gradient-based algorithms."""

from keras_meta.inner.adam_loop import adam
from keras_meta.inner.descent import gradient_descent
from keras_meta.inner.descent import gradient_step
from keras_meta.inner.solvers import conjugate_gradient

__all__ = ["adam", "conjugate_gradient", "gradient_descent", "gradient_step"]
