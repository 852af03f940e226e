import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    # Two logical CPUs, so that MirroredStrategy tests have two replicas.
    # This must happen before TensorFlow initializes its devices.
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
else:
    if BACKEND == "jax":
        import jax

        # float64 for the finite-difference oracles, as on TensorFlow.
        jax.config.update("jax_enable_x64", True)
    # Keras's type promotion (float64 to float32 on JAX and torch) is left
    # as Keras ships it: the oracles measure what users get, float64
    # learners computing in float64 through keras_meta's own scope
    # (`keras_meta.backend.promotion`, `tests/backend/float64_test.py`).


# Checks repeated for every learner (`keras_meta.testing.every_learner`),
# and the backends on which the README's test command runs them for one
# learner per family only (gradient-based, metric-based, black-box); the
# other learners' cases join the slow stage there (`tests/run.sh --slow`,
# run by CI). The deployed-equals-evaluated and task-by-task checks run for
# every learner on TensorFlow; on torch, whose CI stage runs no slow tests,
# every case stays.
_LEARNER_SWEEPS = {
    "test_adapted_model_predicts_as_evaluated_": ("jax",),
    "test_same_step_as_whole_batch_": ("jax",),
    "test_loads_in_safe_mode_": ("tensorflow", "jax"),
    "test_vectorized_step_equals_loop_": ("tensorflow", "jax"),
    "test_fewer_ways_than_the_maximum_": ("tensorflow", "jax"),
    "test_same_step_": ("tensorflow", "jax"),
}
_SWEEP_REPRESENTATIVES = ("maml", "protonet", "snail")


def _thinned_sweep_case(name):
    # Longest prefix first: "test_same_step_" is a prefix of another.
    for prefix in sorted(_LEARNER_SWEEPS, key=len, reverse=True):
        if name.startswith(prefix):
            learner = name[len(prefix):].split("_")[0]
            return (BACKEND in _LEARNER_SWEEPS[prefix]
                    and learner not in _SWEEP_REPRESENTATIVES)
    return False


def pytest_addoption(parser):
    parser.addoption(
        "--run_large", action="store_true", help="run tests that need TFDS downloads"
    )
    parser.addoption("--run_slow", action="store_true", help="run slow tests")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Slow on one backend's CPU only (on JAX, convolutions mapped by
    # `lax.map` or long inner loops run 10 to 30 times TensorFlow's time;
    # on torch, a Python loop over tasks): such tests join the slow stage
    # on that backend and stay in TensorFlow's.
    for item in items:
        if f"slow_on_{BACKEND}" in item.keywords:
            item.add_marker(pytest.mark.slow)
        elif _thinned_sweep_case(item.name):
            item.add_marker(pytest.mark.slow)
    for marker, option in (("large", "--run_large"), ("slow", "--run_slow")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"needs {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
    for item in items:
        for backend in ("tensorflow", "jax"):
            if f"{backend}_only" in item.keywords and BACKEND != backend:
                item.add_marker(pytest.mark.skip(reason=f"{backend} only"))
