"""keras_meta: meta-learning for Keras 3.

Wrap a Keras model in a `MetaModel` (such as `keras_meta.MAML`), then use
`compile()`, `fit()`, `evaluate()` and `predict()` on batches of episodes.
"""

import importlib as _importlib
import os as _os
import sys as _sys

from keras_meta.version import __version__

__all__ = [
    "ANIL",
    "BOIL",
    "CAVIA",
    "ANP",
    "CNP",
    "IMAML",
    "LEO",
    "MAML",
    "MANN",
    "MatchingNet",
    "MetaModel",
    "MetaSGD",
    "ProtoMAML",
    "ProtoNet",
    "R2D2",
    "RelationNet",
    "Reptile",
    "SNAIL",
    "__version__",
    "backend",
    "callbacks",
    "cluster",
    "data",
    "episode",
    "export",
    "inner",
    "losses",
    "metrics",
    "models",
    "recommendation",
    "rl",
]


# True while `_load_public_api` runs: its imports of submodules ask this
# module for their names first, which must not load the API again.
_loading = False


def _load_public_api():
    """Imports every public name (and so Keras and its backend), which
    also registers the learners for `keras.models.load_model`."""
    global _loading
    _loading = True
    try:
        _import_public_names()
    finally:
        _loading = False


def _import_public_names():
    global backend, callbacks, cluster, data, episode, inner, losses, metrics
    global models, recommendation, rl, export
    global ANIL, BOIL, CAVIA, ANP, CNP, IMAML, LEO, MAML, MANN, MatchingNet
    global MetaModel, MetaSGD, ProtoMAML, ProtoNet, R2D2, RelationNet
    global Reptile, SNAIL
    from keras_meta import backend
    from keras_meta import callbacks
    from keras_meta import cluster
    from keras_meta import data
    from keras_meta import episode
    from keras_meta import inner
    from keras_meta import losses
    from keras_meta import metrics
    from keras_meta import models
    from keras_meta import recommendation
    from keras_meta import rl
    from keras_meta.algorithms import ANIL
    from keras_meta.algorithms import ANP
    from keras_meta.algorithms import BOIL
    from keras_meta.algorithms import CAVIA
    from keras_meta.algorithms import CNP
    from keras_meta.algorithms import IMAML
    from keras_meta.algorithms import LEO
    from keras_meta.algorithms import MAML
    from keras_meta.algorithms import MANN
    from keras_meta.algorithms import R2D2
    from keras_meta.algorithms import SNAIL
    from keras_meta.algorithms import MatchingNet
    from keras_meta.algorithms import MetaModel
    from keras_meta.algorithms import MetaSGD
    from keras_meta.algorithms import ProtoMAML
    from keras_meta.algorithms import ProtoNet
    from keras_meta.algorithms import RelationNet
    from keras_meta.algorithms import Reptile
    from keras_meta.exporting import export


def _started_as_command():
    """Whether this process is the `keras-meta` command (the console
    script, `python -m keras_meta` or `python -m keras_meta.cli`) or the
    local launcher (`python -m keras_meta.cluster`). The command parses
    and checks its arguments before loading TensorFlow, the launcher never
    loads it;
    the public names then load on first use (`__getattr__`)."""
    script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    if _os.path.splitext(script)[0] == "keras-meta":
        return True
    argv = list(getattr(_sys, "orig_argv", ()))
    return any(
        flag == "-m" and target in ("keras_meta", "keras_meta.cli",
                                    "keras_meta.cluster")
        for flag, target in zip(argv, argv[1:]))


# Public names that are modules: asked for alone, they load alone.
_SUBMODULES = ("backend", "callbacks", "cluster", "data", "episode", "inner", "losses",
               "metrics", "models", "recommendation", "rl")


def __getattr__(name):
    if name in _SUBMODULES:
        return _importlib.import_module(f"keras_meta.{name}")
    if name in __all__ and not _loading:
        _load_public_api()
        return globals()[name]
    raise AttributeError(f"module 'keras_meta' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if not _started_as_command():
    _load_public_api()
