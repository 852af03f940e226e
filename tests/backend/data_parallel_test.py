"""`keras.distribution.DataParallel` on JAX over 4 CPU devices trains as one
device: the tasks of each meta-batch are the sharded axis."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl.testing import parameterized

from keras_meta import testing

# Trains MAML (second order, two inner steps) and ProtoNet twice from the
# same seed, on one device and under DataParallel over 4 host devices, on
# meta-batches of 8 tasks; prints the layouts, losses and weights.
_SCRIPT = r"""
import json, os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax
import keras
import numpy as np
import keras_meta
from keras_meta import testing

inputs, labels = testing.toy_episodes(num_tasks=16, seed=3)


def train(name):
    keras.utils.set_random_seed(0)
    if name == "maml":
        learner = keras_meta.MAML(testing.tiny_classifier(),
                                  inner_learning_rate=0.3, num_inner_steps=2)
    else:
        encoder = keras.Sequential([
            keras.Input(inputs["support_inputs"].shape[2:]),
            keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
            keras.layers.Dense(8)])
        learner = keras_meta.ProtoNet(encoder, num_ways=3)
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
                    .SparseCategoricalCrossentropy(from_logits=True))
    history = learner.fit(inputs, labels, batch_size=8, epochs=2, verbose=0,
                          shuffle=False)
    scores = learner.evaluate(inputs, labels, batch_size=8, verbose=0,
                              return_dict=True)
    return {"loss": history.history["loss"],
            "evaluate": {k: float(v) for k, v in scores.items()},
            "weights": [np.asarray(v.numpy()).tolist()
                        for v in learner.model.weights]}


report = {"devices": len(jax.devices())}
for name in ("maml", "protonet"):
    keras.distribution.set_distribution(None)
    one = train(name)
    distribution = keras.distribution.DataParallel()
    keras.distribution.set_distribution(distribution)
    layout = distribution.get_data_layout((8, 6, 8, 8, 1))
    report[name] = {"one": one, "parallel": train(name),
                    "layout": list(layout.axes),
                    "mesh": dict(zip(layout.device_mesh.axis_names,
                                     layout.device_mesh.shape))}
print(json.dumps(report))
"""


@pytest.mark.jax_only
class DataParallelTest(testing.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("auto", "auto"), ("vmap", "vmap"))
    @pytest.mark.slow  # a JAX process with 4 host devices
    def test_data_parallel_matches_one_device(self, mapping):
        env = {**os.environ, "KERAS_BACKEND": "jax",
               "KERAS_META_TASK_MAPPING": mapping,
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run([sys.executable, "-c", _SCRIPT],
                                capture_output=True, text=True, env=env,
                                timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        report = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(report["devices"], 4)
        for name in ("maml", "protonet"):
            run = report[name]
            # The task axis of every batch is split over the 4 devices.
            self.assertEqual(run["mesh"], {"batch": 4})
            self.assertEqual(run["layout"][0], "batch")
            self.assertTrue(all(a is None for a in run["layout"][1:]))
            one, parallel = run["one"], run["parallel"]
            np.testing.assert_allclose(parallel["loss"], one["loss"],
                                       rtol=1e-5, err_msg=name)
            for key, value in one["evaluate"].items():
                np.testing.assert_allclose(parallel["evaluate"][key], value,
                                           rtol=1e-5, atol=1e-7,
                                           err_msg=f"{name} {key}")
            # Float32 sums over the devices' shards in another order.
            for a, b in zip(parallel["weights"], one["weights"]):
                np.testing.assert_allclose(a, b, atol=2e-6, rtol=1e-5,
                                           err_msg=name)


# Meta-batches of 6 tasks on 4 devices: fit and evaluate must refuse them
# with the fix named (JAX itself says only that a sharding does not divide).
_UNEVEN_SCRIPT = r"""
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import keras
import keras_meta
from keras_meta import testing

inputs, labels = testing.toy_episodes(num_tasks=6, seed=3)
keras.distribution.set_distribution(keras.distribution.DataParallel())
maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3)
maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
             .SparseCategoricalCrossentropy(from_logits=True))
for name, call in (
        ("fit", lambda: maml.fit(inputs, labels, batch_size=6, verbose=0)),
        ("evaluate", lambda: maml.evaluate(inputs, labels, batch_size=6,
                                           verbose=0))):
    try:
        call()
        print(name, "RAN")
    except ValueError as error:
        print(name, "REFUSED", str(error).replace(chr(10), " "))
"""


@pytest.mark.jax_only
class UnevenSplitTest(testing.TestCase):
    @pytest.mark.slow  # a JAX process with 4 host devices
    def test_uneven_meta_batch_is_refused(self):
        env = {**os.environ, "KERAS_BACKEND": "jax",
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        result = subprocess.run([sys.executable, "-c", _UNEVEN_SCRIPT],
                                capture_output=True, text=True, env=env,
                                timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        lines = result.stdout.strip().splitlines()
        for name in ("fit", "evaluate"):
            line = next(x for x in lines if x.startswith(name + " "))
            self.assertIn("REFUSED A batch of 6 tasks cannot be split evenly "
                          "between the 4 devices", line)
            self.assertIn("multiple of 4", line)


# Trains MAML on meta-batches of 8 tasks from a `tf.data.Dataset` (Keras
# shards it between processes), under DataParallel over every process's
# device when started as a worker of `keras_meta.cluster`, on one device
# otherwise; writes the weights and losses.
_PROCESS_SCRIPT = r"""
import json, os, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
import keras
import numpy as np
import tensorflow as tf
import keras_meta
from keras_meta import testing

output = sys.argv[1]
if "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ:
    keras.distribution.initialize()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    output += str(jax.process_index())
inputs, labels = testing.toy_episodes(num_tasks=16, seed=3)
keras.utils.set_random_seed(0)
maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3,
                       num_inner_steps=2)
maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
             .SparseCategoricalCrossentropy(from_logits=True))
history = maml.fit(tf.data.Dataset.from_tensor_slices((inputs, labels))
                   .batch(8), epochs=2, verbose=0)
np.savez(output + ".npz", *[np.asarray(v.numpy())
                            for v in maml.model.weights])
with open(output + ".json", "w") as f:
    json.dump({"loss": history.history["loss"],
               "processes": jax.process_count(),
               "devices": len(jax.devices())}, f)
"""


@pytest.mark.jax_only
class MultiProcessTest(testing.TestCase):
    @pytest.mark.slow  # several JAX processes
    def test_two_processes_match_one(self):
        from keras_meta import cluster

        directory = self.get_temp_dir()
        script = os.path.join(directory, "train.py")
        with open(script, "w") as f:
            f.write(_PROCESS_SCRIPT)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("KERAS_DISTRIBUTION_")}
        env.update(KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("XLA_FLAGS", None)
        cluster.launch_local_workers(
            [sys.executable, script, os.path.join(directory, "worker")], 2,
            env=env, timeout=400, stream=False)
        single = subprocess.run(
            [sys.executable, script, os.path.join(directory, "single")],
            capture_output=True, text=True, env=env, timeout=400)
        self.assertEqual(single.returncode, 0, single.stderr[-3000:])
        runs = {}
        for name in ("worker0", "worker1", "single"):
            path = os.path.join(directory, name)
            with open(path + ".json") as f:
                runs[name] = (np.load(path + ".npz"), json.load(f))
        for name in ("worker0", "worker1"):
            self.assertEqual(runs[name][1]["processes"], 2)
            self.assertEqual(runs[name][1]["devices"], 2)
            np.testing.assert_allclose(runs[name][1]["loss"],
                                       runs["single"][1]["loss"], rtol=1e-5)
        weights = [runs[name][0] for name in ("worker0", "worker1", "single")]
        for key in weights[0].files:
            np.testing.assert_array_equal(weights[0][key], weights[1][key])
            np.testing.assert_allclose(weights[0][key], weights[2][key],
                                       atol=2e-6, rtol=1e-5)
