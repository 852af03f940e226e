"""Two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_meta import testing

# Trains MAML for two epochs of two steps (global meta-batch 4) and writes
# the weights. With a worker index it joins the cluster in TF_CONFIG.
_WORKER = r"""
import sys
import numpy as np
import tensorflow as tf
import keras
import keras_meta
from keras_meta import testing

output, distributed = sys.argv[1], sys.argv[2] == "1"
strategy = (tf.distribute.MultiWorkerMirroredStrategy() if distributed
            else tf.distribute.get_strategy())
inputs, labels = testing.toy_episodes(num_tasks=8, seed=3)
dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(4)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA)
dataset = dataset.with_options(options)
with strategy.scope():
    keras.utils.set_random_seed(0)
    maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3,
                           num_inner_steps=2)
    # SGD: Adam would turn the float rounding noise of gradients that are
    # zero in exact arithmetic (a convolution bias before BatchNorm) into
    # full-size steps of either sign.
    maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
                 .SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
history = maml.fit(dataset, epochs=2, verbose=0)
assert np.isfinite(history.history["loss"][-1])
np.savez(output, *[v.numpy() for v in maml.model.weights])
"""


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.tensorflow_only
class MultiWorkerTest(testing.TestCase):
    @pytest.mark.slow  # several processes
    def test_two_workers_match_one_process(self):
        directory = self.get_temp_dir()
        ports = _free_ports(2)
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        base_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                    "KERAS_BACKEND": "tensorflow"}
        workers = []
        try:
            for index in range(2):
                env = {**base_env, "TF_CONFIG": json.dumps(
                    {"cluster": cluster,
                     "task": {"type": "worker", "index": index}})}
                workers.append(subprocess.Popen(
                    [sys.executable, "-c", _WORKER,
                     os.path.join(directory, f"worker{index}.npz"), "1"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, env=env))
            for worker in workers:
                _, stderr = worker.communicate(timeout=240)
                self.assertEqual(worker.returncode, 0, stderr[-3000:])
        finally:
            for worker in workers:  # Only the processes this test started.
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        single = subprocess.run(
            [sys.executable, "-c", _WORKER,
             os.path.join(directory, "single.npz"), "0"],
            capture_output=True, text=True, env=base_env, timeout=240)
        self.assertEqual(single.returncode, 0, single.stderr[-3000:])

        results = [np.load(os.path.join(directory, name)) for name in
                   ("worker0.npz", "worker1.npz", "single.npz")]
        for name in results[0].files:
            np.testing.assert_array_equal(results[0][name], results[1][name])
            np.testing.assert_allclose(results[0][name], results[2][name],
                                       atol=2e-6, rtol=1e-5)
