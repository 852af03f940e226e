import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs, so that MirroredStrategy tests have two replicas. This
# must happen before TensorFlow initializes its devices.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)


def pytest_addoption(parser):
    parser.addoption(
        "--run_large", action="store_true", help="run tests that need TFDS downloads"
    )
    parser.addoption("--run_slow", action="store_true", help="run slow tests")


def pytest_collection_modifyitems(config, items):
    for marker, option in (("large", "--run_large"), ("slow", "--run_slow")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"needs {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
