#!/usr/bin/env bash
# The test suite in stages.
#
#   bash tests/run.sh [PYTHON]          the README's test command: every test
#                                       on TensorFlow, and on JAX the tests of
#                                       backend-sensitive code (15 minutes)
#   bash tests/run.sh --slow [PYTHON]   what does not fit there, run by
#                                       .ci/run after it: tests marked `slow`
#                                       (end-to-end command runs, several
#                                       processes, killed workers,
#                                       simulators) on TensorFlow, the rest
#                                       of the suite on JAX, and the JAX
#                                       tests again with tasks vectorized by
#                                       jax.vmap (the accelerator default)
#
# Budgets on 2 idle cores (the times measured are in CONTRIBUTING.md):
# fast stages 15 minutes together, the slow stage 25 minutes.
set -euo pipefail
slow=0
if [[ "${1:-}" == "--slow" ]]; then
  slow=1
  shift
fi
python="${1:-python3}"
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3

# TensorFlow and XLA print start-up notices that no setting silences; drop
# them so that pytest's summary stays the last line.
quiet() {
  "$@" 2>&1 | grep -v -E '^(I0000|W0000|E0000|WARNING: All log messages)'
}

stage() {
  local name="$1"
  shift
  local start=$SECONDS status=0
  quiet "$python" -m pytest -q -n 2 "$@" || status=$?
  # 5: no test selected (a stage whose files hold no `slow` test).
  if (( status != 0 && status != 5 )); then
    exit "$status"
  fi
  echo "stage $name: $((SECONDS - start)) s"
}

# The code whose behaviour differs by backend: learners, the backend's task
# mapping and trainers, inner loops, models, saving, metrics, callbacks and
# the in-graph rollouts of robot control. The rest (data pipelines, which
# are tf.data on every backend, the command line, export, multi-process
# training) runs on JAX in the slow stage.
JAX_FAST=(tests/algorithms tests/backend tests/inner tests/models
          tests/compatibility tests/rl tests/api_test.py tests/episode_test.py
          tests/losses_test.py tests/metrics_test.py tests/saving_test.py
          tests/callbacks_test.py)
JAX_REST=(tests/data tests/recommendation tests/cli_test.py
          tests/export_test.py tests/precision_test.py tests/resume_test.py
          tests/multi_worker_test.py tests/callbacks_nan_test.py
          tests/layout_test.py)

if (( slow == 0 )); then
  stage tensorflow tests
  KERAS_BACKEND=jax stage jax "${JAX_FAST[@]}"
else
  stage tensorflow-slow --run_slow -m slow tests
  KERAS_BACKEND=jax stage jax-slow --run_slow -m slow "${JAX_FAST[@]}"
  KERAS_BACKEND=jax stage jax-rest --run_slow "${JAX_REST[@]}"
  # Under vmap: the shared MetaModel machinery, second-order MAML, iMAML's
  # custom VJP and LEO's per-task noise.
  KERAS_BACKEND=jax KERAS_META_TASK_MAPPING=vmap stage jax-vmap --run_slow \
    tests/algorithms/meta_model_test.py tests/algorithms/maml_test.py \
    tests/algorithms/imaml_test.py tests/algorithms/leo_test.py
fi
