"""Float64 that stays float64 inside keras_meta's steps, on every backend.

Keras's type promotion maps float64 to float32 on every backend but
TensorFlow (`keras.src.backend.common.dtypes.BIT64_TO_BIT32_DTYPE`, after
JAX's default), whatever `jax_enable_x64` says. So on JAX and torch a
float64 model normalizes in float32 (Keras's BatchNormalization computes in
`result_type(inputs.dtype, "float32")`) and mean-reduced losses reduce in
float32: the meta-gradient of a float64 learner agreed with central
differences of its own loss only to about 1e-3 on JAX, against 1e-11 on
TensorFlow.

`float64_promotion` lifts that one entry of Keras's table while a float64
learner's step runs (`MetaModel` enters it around its training, test and
prediction steps, `call` and `adapt`), and restores it when the last step
leaves, so the float64 learner computes in float64 as on TensorFlow. Keras
code running in other threads at the same time sees float64 promote to
float64 too; nothing else is changed, and float32 learners never enter it.
"""

import contextlib
import threading

import keras

_lock = threading.Lock()
_depth = 0
_saved = None


def _table():
    """Keras's 64-to-32-bit promotion table, or `None` where Keras no
    longer has it (then there is nothing to lift)."""
    try:
        from keras.src.backend.common import dtypes
    except ImportError:  # pragma: no cover - a Keras without the module
        return None
    table = getattr(dtypes, "BIT64_TO_BIT32_DTYPE", None)
    return table if isinstance(table, dict) and "float64" in table else None


def computes_in_float64(model):
    """Whether `model` computes in float64 on a backend that can: some of
    its weights are float64 (its compute dtype, before it is built), and
    the backend is JAX with `jax_enable_x64` or torch (TensorFlow keeps
    float64 already)."""
    name = keras.backend.backend()
    if name == "tensorflow":
        return False
    dtypes = {keras.backend.standardize_dtype(w.dtype)
              for w in model.weights}
    if "float64" not in (dtypes or {keras.backend.standardize_dtype(
            model.compute_dtype)}):
        return False
    if name == "jax":
        import jax

        return bool(jax.config.jax_enable_x64)
    return True


@contextlib.contextmanager
def float64_promotion(enabled=True):
    """Context in which Keras promotes float64 to float64 (see the module's
    docstring). Nesting and concurrent use from several threads are safe;
    `enabled=False` does nothing."""
    global _depth, _saved
    table = _table() if enabled else None
    if table is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _saved = table["float64"]
            table["float64"] = "float64"
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                table["float64"] = _saved
