"""Saving a model's random-number state with its weights."""

import keras
import numpy as np


class SavesSeedGenerator:
    """Saves a model's `seed_generator` state with its weights.

    Keras's weight files leave `SeedGenerator` states out, so a model that
    draws noise in its training step would resume (`BackupAndRestore`,
    `load_weights`) with a restarted noise stream. Mix this in before the
    `keras.Model` base of a model with a `seed_generator` attribute.
    """

    _SEED_KEY = "seed_generator_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = keras.ops.convert_to_numpy(
            self.seed_generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(
                np.asarray(store[self._SEED_KEY]))
        super().load_own_variables(
            {k: store[k] for k in keys if k != self._SEED_KEY})
