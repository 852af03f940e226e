"""Whether a learner's train step is being traced, as code shared by its
train and test steps asks it."""

import contextlib
import threading

# Models whose train step is being traced, per thread: MirroredStrategy
# traces each replica's step in a thread of its own.
_TRAIN_STEP = threading.local()


@contextlib.contextmanager
def tracing_train_step(model):
    """Marks `model`'s train step as being traced (in this thread)."""
    models = getattr(_TRAIN_STEP, "models", None)
    if models is None:
        models = _TRAIN_STEP.models = set()
    models.add(id(model))
    try:
        yield
    finally:
        models.discard(id(model))


def in_train_step(model):
    """Whether `model`'s train step is being traced in this thread:
    training logs report the compiled metrics only, evaluation logs add
    their confidence intervals."""
    return id(model) in getattr(_TRAIN_STEP, "models", ())
