"""What float64 means on each Keras backend, measured.

Keras's type promotion maps float64 to float32 on every backend but
TensorFlow (`keras.src.backend.common.dtypes.BIT64_TO_BIT32_DTYPE`), and
Keras's BatchNormalization computes in `result_type(inputs.dtype,
"float32")`. So a float64 model on JAX or torch normalizes in float32,
whatever `jax_enable_x64` says. This script measures, in a fresh process
per backend, the largest error against NumPy in float64 of:

- `keras.ops.moments` of float64 inputs;
- a float64 `BatchNormalization` layer in training (inputs of mean 1000,
  standard deviation 1: float32 loses the variance to cancellation);
- a float64 mean squared error (of differences near 1e-9);

with Keras's table as shipped and with the float64 entry lifted (what
keras_meta's float64 oracle tests do, `tests/conftest.py`). Prints a table
and writes JSON.

    python benchmarks/float64_semantics.py
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("tensorflow", "jax", "torch")

_WORKER = r"""
import json, sys
import numpy as np
import keras
from keras import ops

if keras.backend.backend() == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
if sys.argv[1] == "lifted":
    from keras.src.backend.common import dtypes
    dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"
x = 1000.0 + np.random.default_rng(0).normal(size=(64, 16))
inputs = ops.convert_to_tensor(x, "float64")
mean, variance = ops.moments(inputs, axes=[0])
layer = keras.layers.BatchNormalization(dtype="float64")
outputs = ops.convert_to_numpy(layer(inputs, training=True))
reference = (x - x.mean(0)) / np.sqrt(x.var(0) + layer.epsilon)
a = np.random.default_rng(1).normal(size=(64, 16))
b = a + 1e-9 * np.random.default_rng(2).normal(size=(64, 16))
mse = ops.convert_to_numpy(keras.losses.MeanSquaredError(dtype="float64")(
    ops.convert_to_tensor(a, "float64"), ops.convert_to_tensor(b, "float64")))
mse_reference = np.mean((a - b) ** 2)
print(json.dumps({
    "moments_mean_error": float(np.abs(ops.convert_to_numpy(mean)
                                       - x.mean(0)).max()),
    "moments_variance_error": float(np.abs(ops.convert_to_numpy(variance)
                                           - x.var(0)).max()),
    "batch_norm_output_dtype": str(outputs.dtype),
    "batch_norm_error": float(np.abs(outputs - reference).max()),
    "mse_relative_error": float(abs(mse - mse_reference) / mse_reference),
}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=os.path.join(
        HERE, "results", "float64_semantics.json"))
    args = parser.parse_args()
    rows = []
    for backend in BACKENDS:
        for table in ("keras", "lifted"):
            result = subprocess.run(
                [sys.executable, "-c", _WORKER, table], capture_output=True,
                text=True, env={**os.environ, "KERAS_BACKEND": backend,
                                "TF_CPP_MIN_LOG_LEVEL": "3"})
            if result.returncode:
                print(f"{backend}: not measured ({result.stderr[-300:]})")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append({"backend": backend, "float64_table": table, **row})
    print(f"{'backend':11} {'table':7} {'moments':>9} {'BatchNorm':>10} "
          f"{'MSE (rel.)':>10}")
    for row in rows:
        print(f"{row['backend']:11} {row['float64_table']:7} "
              f"{row['moments_variance_error']:9.1e} "
              f"{row['batch_norm_error']:10.1e} "
              f"{row['mse_relative_error']:10.1e}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"command": "python benchmarks/float64_semantics.py",
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
