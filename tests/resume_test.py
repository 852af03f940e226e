"""Exact resume after SIGKILL with `keras_meta.callbacks.BackupAndRestore`."""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_meta
from keras_meta import testing

# Trains MAML++ (learned inner rates) on an endless seeded episode stream,
# 4 epochs of 3 steps, with Adam; prints each finished step, writes the
# final weights. Run with a backup folder it resumes from it.
_TRAIN = r"""
import sys
import numpy as np
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
import keras
import keras_meta
from keras_meta import testing

backup_dir, output = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
inputs, labels = testing.toy_episodes(num_tasks=64, seed=3)
stream = (tf.data.Dataset.from_tensor_slices((inputs, labels))
          .repeat().batch(2))
maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3,
                       num_inner_steps=2, learn_inner_learning_rates=True)
maml.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses
             .SparseCategoricalCrossentropy(from_logits=True))


class Report(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print("step", int(self.model.optimizer.iterations.numpy()),
              flush=True)


callbacks = [Report()]
if backup_dir != "-":
    callbacks.insert(0, keras_meta.callbacks.BackupAndRestore(backup_dir))
maml.fit(stream, epochs=4, steps_per_epoch=3, verbose=0,
         callbacks=callbacks)
np.savez(output, *[v.numpy() for v in maml.weights],
         *[v.numpy() for v in maml.optimizer.variables])
"""


def _run(backup_dir, output, kill_at_step=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "tensorflow"}
    process = subprocess.Popen(
        [sys.executable, "-c", _TRAIN, backup_dir, output],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if kill_at_step is None:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        return
    deadline = time.time() + 300
    for line in process.stdout:
        if line.strip() == f"step {kill_at_step}":
            os.kill(process.pid, signal.SIGKILL)
            break
        assert time.time() < deadline, "no progress"
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.tensorflow_only
class ResumeTest(testing.TestCase):
    @pytest.mark.slow  # a killed process
    def test_sigkill_and_resume_is_exact(self):
        directory = self.get_temp_dir()
        reference = os.path.join(directory, "reference.npz")
        _run("-", reference)
        backup_dir = os.path.join(directory, "backup")
        resumed = os.path.join(directory, "resumed.npz")
        # Killed in the middle of the third epoch (steps 7-9), after the
        # backups of epochs 1 and 2 (the two newest are kept), at a step
        # chosen at random.
        step = int(np.random.default_rng().integers(7, 9))
        _run(backup_dir, resumed, kill_at_step=step)
        self.assertFalse(os.path.exists(resumed))
        self.assertEqual(
            sorted(os.listdir(backup_dir)),
            ["epoch-000001", "epoch-000002", "latest"])
        _run(backup_dir, resumed)
        expected, actual = np.load(reference), np.load(resumed)
        self.assertEqual(len(expected.files), len(actual.files))
        for name in expected.files:
            np.testing.assert_array_equal(actual[name], expected[name], name)
        # The backups are removed once training completes.
        self.assertFalse(os.path.exists(backup_dir))


class AtomicBackupTest(testing.TestCase):
    def _trained(self, backup_dir, epochs, crash_on_replace=False):
        inputs, labels = testing.toy_episodes(num_tasks=4)
        maml = keras_meta.MAML(testing.tiny_classifier(),
                               inner_learning_rate=0.3)
        maml.compile(optimizer="adam", loss=keras.losses
                     .SparseCategoricalCrossentropy(from_logits=True))
        backup = keras_meta.callbacks.BackupAndRestore(
            backup_dir, delete_checkpoint=False)
        maml.fit(inputs, labels, batch_size=2, epochs=epochs, verbose=0,
                 callbacks=[backup])
        return maml, backup

    def test_interrupted_backup_leaves_the_previous_one(self):
        backup_dir = os.path.join(self.get_temp_dir(), "backup")
        maml, backup = self._trained(backup_dir, epochs=1)
        self.assertEqual(backup.restored_epoch(), 1)
        saved = [v.numpy() for v in maml.weights]
        # A process dying after writing the new backup but before switching
        # the pointer: the pointer still names the complete old backup.
        original = os.replace

        def dying_replace(source, target):
            if target.endswith("latest"):
                raise KeyboardInterrupt("killed")
            return original(source, target)

        os.replace = dying_replace
        try:
            with self.assertRaises(KeyboardInterrupt):
                backup._current_epoch = 2
                backup._save_model()
        finally:
            os.replace = original
        self.assertEqual(backup.restored_epoch(), 1)
        restored = keras_meta.MAML(testing.tiny_classifier(),
                                   inner_learning_rate=0.3)
        restored.compile(optimizer="adam", loss=keras.losses
                         .SparseCategoricalCrossentropy(from_logits=True))
        fresh = keras_meta.callbacks.BackupAndRestore(backup_dir)
        fresh.set_model(restored)
        fresh.on_train_begin()
        for value, expected in zip(restored.weights, saved):
            np.testing.assert_array_equal(value.numpy(), expected)
        self.assertEqual(restored._initial_epoch, 1)
