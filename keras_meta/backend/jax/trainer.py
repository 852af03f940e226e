"""keras_meta's additions to Keras's JAX trainer.

`MetaTrainer` stands between `MetaModel` and `keras.Model` when the backend
is JAX, as Keras puts its JAX trainer under `keras.Model`: an execution of
several compiled steps runs as one `jax.lax.scan`.
"""

import keras

from keras_meta.backend import jax as jax_backend


class MetaTrainer:
    """Mixed in under `MetaModel` on the JAX backend."""

    def make_train_function(self, force=False):
        """Keras's, except that an execution of several compiled steps
        runs as one `lax.scan` (`keras_meta.backend.jax.scan_steps`)."""
        if self.train_function is not None and not force:
            return super().make_train_function(force)
        result = super().make_train_function(force)
        if self._scans_steps():
            self.train_function = jax_backend.scan_steps(
                self.train_step, self.steps_per_execution)
        return result

    def _scans_steps(self):
        nnx = getattr(keras.config, "is_nnx_enabled", lambda: False)
        return (self.steps_per_execution > 1 and bool(self.jit_compile)
                and not self.run_eagerly
                and keras.distribution.distribution() is None and not nnx())
