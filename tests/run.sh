#!/usr/bin/env bash
# The whole test suite: on TensorFlow, on JAX, and the JAX algorithm tests
# once more with tasks vectorized by jax.vmap (the accelerator default).
# Usage: bash tests/run.sh [PYTHON]
set -euo pipefail
python="${1:-python3}"
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
"$python" -m pytest -q -n 2 tests
KERAS_BACKEND=jax "$python" -m pytest -q -n 2 tests
KERAS_BACKEND=jax KERAS_META_TASK_MAPPING=vmap "$python" -m pytest -q -n 2 tests/algorithms
