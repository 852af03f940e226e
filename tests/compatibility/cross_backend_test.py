"""`.keras` files saved on each Keras backend load, predict and adapt
identically (within float32 rounding) on the others."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import pytest

from keras_meta import testing

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "cross_backend.py")
# The installed backends (TensorFlow always: keras_meta requires it).
BACKENDS = [name for name, module in (("tensorflow", "tensorflow"),
                                      ("jax", "jax"), ("torch", "torch"))
            if importlib.util.find_spec(module) is not None]
# Different kernels (oneDNN, XLA, ATen) in float32: predictions of size 1
# to 10 agree to a few units of 1e-6; adapt() adds an inner step.
TOLERANCE = 1e-4


def _run(backend, command, folder):
    environment = {**os.environ, "KERAS_BACKEND": backend,
                   "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, SCRIPT, command, folder], env=environment,
        capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(
            f"{command} on {backend} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.mark.slow  # several processes, each importing its backend
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="crosses every backend from one process")
@pytest.mark.skipif(len(BACKENDS) < 2, reason="one backend installed")
class CrossBackendTest(testing.TestCase):
    def test_saved_on_each_backend_loads_on_every_other(self):
        for source in BACKENDS:
            folder = os.path.join(self.get_temp_dir(), source)
            os.makedirs(folder)
            _run(source, "save", folder)
            for target in BACKENDS:
                output = _run(target, "check", folder)
                report = json.loads(output.strip().splitlines()[-1])
                self.assertEqual(report["backend"], target)
                for name, error in report["errors"].items():
                    self.assertLess(
                        error, TOLERANCE,
                        msg=f"{name} saved on {source}, loaded on {target}")
