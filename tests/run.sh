#!/usr/bin/env bash
# The whole test suite: on TensorFlow, on JAX, and the JAX tests that
# exercise the task mapping once more with tasks vectorized by jax.vmap (the
# accelerator default).
# Usage: bash tests/run.sh [PYTHON]
set -euo pipefail
python="${1:-python3}"
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3

# TensorFlow and XLA print start-up notices that no setting silences; drop
# them so that pytest's summary stays the last line.
quiet() {
  "$@" 2>&1 | grep -v -E '^(I0000|W0000|E0000|WARNING: All log messages)'
}

quiet "$python" -m pytest -q -n 2 tests
KERAS_BACKEND=jax quiet "$python" -m pytest -q -n 2 tests
# Under vmap: the shared MetaModel machinery, second-order MAML, iMAML's
# custom VJP and LEO's per-task noise.
KERAS_BACKEND=jax KERAS_META_TASK_MAPPING=vmap quiet "$python" -m pytest -q -n 2 \
  tests/algorithms/meta_model_test.py tests/algorithms/maml_test.py \
  tests/algorithms/imaml_test.py tests/algorithms/leo_test.py
