#!/usr/bin/env bash
# The test suite in stages.
#
#   bash tests/run.sh [PYTHON]          the README's test command: every test
#                                       on TensorFlow, and on JAX the tests of
#                                       the machinery every learner stands on
#                                       (15 minutes)
#   bash tests/run.sh --slow [PYTHON]   what does not fit there, run by
#                                       .ci/run after it: tests marked `slow`
#                                       (end-to-end command runs, several
#                                       processes, killed workers,
#                                       simulators) on TensorFlow, the rest
#                                       of the suite on JAX, the JAX
#                                       tests again with tasks vectorized by
#                                       jax.vmap (the accelerator default),
#                                       and, where torch is installed, the
#                                       machinery tests on torch
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

# On JAX the fast stage runs what every learner stands on: the MetaModel
# machinery, the backend's task mapping and trainer, MAML's and the metric
# learners' oracles, inner loops, models, losses, episode checks, saving and
# the public API. Every other test runs on JAX in the slow stage.
JAX_FAST=(tests/backend tests/algorithms/meta_model_test.py
          tests/algorithms/maml_test.py tests/algorithms/metric_oracles_test.py
          tests/algorithms/cnp_test.py tests/algorithms/r2d2_test.py
          tests/algorithms/relation_net_test.py
          tests/algorithms/num_ways_test.py tests/inner tests/models
          tests/compatibility tests/api_test.py tests/episode_test.py
          tests/losses_test.py tests/saving_test.py)
JAX_REST=()
for path in "${JAX_FAST[@]}"; do
  JAX_REST+=("--ignore=$path")
done

if (( slow == 0 )); then
  stage tensorflow tests
  KERAS_BACKEND=jax stage jax "${JAX_FAST[@]}"
else
  stage tensorflow-slow --run_slow -m slow tests
  KERAS_BACKEND=jax stage jax-slow --run_slow -m slow "${JAX_FAST[@]}"
  KERAS_BACKEND=jax stage jax-rest --run_slow "${JAX_REST[@]}" tests
  # Under vmap: the shared MetaModel machinery, second-order MAML, iMAML's
  # custom VJP and LEO's per-task noise.
  KERAS_BACKEND=jax KERAS_META_TASK_MAPPING=vmap stage jax-vmap --run_slow \
    tests/algorithms/meta_model_test.py tests/algorithms/maml_test.py \
    tests/algorithms/imaml_test.py tests/algorithms/leo_test.py
  # PyTorch (the `torch` extra), where installed: the tests of the
  # machinery every learner stands on, as on JAX, with iMAML's implicit
  # gradient, the task-by-task step, MANN's memory, per-step BatchNorm's
  # meta-gradient and the torch backend's own.
  if "$python" -c "import torch" 2>/dev/null; then
    KERAS_BACKEND=torch stage torch "${JAX_FAST[@]}" \
      tests/algorithms/imaml_test.py tests/algorithms/task_gradients_test.py \
      tests/algorithms/mann_test.py \
      tests/algorithms/maml_plus_plus_test.py::PerStepBatchNormTest
  else
    echo "stage torch: skipped (torch is not installed: the torch extra)"
  fi
fi
