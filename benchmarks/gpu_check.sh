#!/usr/bin/env bash
# The JAX backend's accelerator check, as one script for a machine with JAX
# and a GPU but no TensorFlow and no network. Carry the missing wheels in
# .whl/ (keras, namex, optree; see README "GPU check"). Writes to $OUT.
set -uo pipefail
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" | tee -a "$out/device.txt"
# Exactness on the GPU: the float64 oracle tests, tasks by vmap.
[ "${SKIP_TESTS:-0}" = 1 ] || timeout 200 python3 -m pytest -q -p no:cacheprovider tests/algorithms/maml_test.py 2>&1 | tail -5 | tee "$out/oracle_tests.txt"
# One JSON row per configuration, each within its own time limit.
for config in omniglot mini_imagenet; do
  timeout 150 python3 benchmarks/meta_step.py --worker --steps 100 \
    --configs "$config" 2>"$out/$config.err" | tee -a "$out/meta_step.jsonl"
  grep -v Warning "$out/$config.err" | grep -iE "error|Traceback" | tail -3
done
