"""`Trainer`: what a `MetaModel` adds to Keras's `compile()`, `fit()`,
`evaluate()` and `predict()`, on every backend.

As Keras's own trainer stands under `keras.Model`, this one stands under
`MetaModel` (above the backend's `keras_meta.backend.trainer.MetaTrainer`):
episodes are checked before any step runs, `fit()` puts its hooks ahead of
the user's callbacks and skips what a resumed run trained on, errors of the
in-graph label check are said plainly, and evaluation logs carry the 95%
confidence interval of every metric over episodes.
"""

import contextlib
import inspect
import re

import keras
import numpy as np

from keras_meta import episode_checks
from keras_meta import per_episode
from keras_meta.algorithms.step_context import in_train_step
from keras_meta.callbacks import skip_trained_batches


def bind_arguments(method, model, args, kwargs):
    """The arguments of a call `method(model, *args, **kwargs)` by name."""
    arguments = inspect.signature(method).bind(
        model, *args, **kwargs).arguments
    arguments.pop("self")
    arguments.update(arguments.pop("kwargs", {}))
    return arguments


def fit_arguments(model, args, kwargs):
    """`(arguments, hooks)`: the arguments `keras.Model.fit` gets from
    `model.fit(*args, **kwargs)`, checked, with the episodes a resumed run
    trained on skipped, and `hooks` (a `FitHooks`) ahead of the user's
    callbacks."""
    arguments = bind_arguments(keras.Model.fit, model, args, kwargs)
    if arguments.get("class_weight") is not None:
        raise ValueError(
            f"`{type(model).__name__}.fit()` does not take `class_weight`: "
            "class labels are relabelled 0..num_ways-1 in every episode, "
            "so a weight per label would weigh a different class in each "
            "episode. Weigh query examples with a `sample_weight` of "
            "shape [tasks, num_query] as the third element of each "
            "episode batch."
        )
    x, y = arguments.get("x"), arguments.get("y")
    if episode_checks.is_dataset(x):
        # Episodes are shuffled by their pipeline; say so to Keras, which
        # otherwise warns that it cannot shuffle a dataset.
        arguments.setdefault("shuffle", False)
    episode_checks.check_first_episode(model, x, y)
    callbacks = list(arguments.get("callbacks") or [])
    arguments["x"] = skip_trained_batches(
        x, callbacks, arguments.get("steps_per_epoch"),
        getattr(model, "distribute_strategy", None))
    hooks = FitHooks(stop_on_nan=any(
        isinstance(c, keras.callbacks.TerminateOnNaN) for c in callbacks))
    arguments["callbacks"] = [hooks] + callbacks
    validation_data = arguments.get("validation_data")
    if isinstance(validation_data, (tuple, list)):
        episode_checks.check_first_episode(model, *validation_data[:2])
    elif validation_data is not None:
        episode_checks.check_first_episode(model, validation_data)
    return arguments, hooks


class FitHooks(keras.callbacks.Callback):
    """What `fit()` adds before the user's callbacks.

    Calls `MetaModel.on_epoch_begin`. With `stop_on_nan` (the user passed
    `TerminateOnNaN`), a non-finite training loss raises at once, before any
    other callback sees the batch: an epoch-end `ModelCheckpoint` never
    writes the broken weights, and `BackupAndRestore` keeps its last backup.
    """

    def __init__(self, stop_on_nan=False):
        super().__init__()
        self.stop_on_nan = stop_on_nan
        # Keras reads every execution's logs back to Python (which waits
        # for the step) unless each callback's batch end is async-safe;
        # this one only reads them to stop on NaN.
        self.async_safe = not stop_on_nan
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._batch = 0
        self.model.on_epoch_begin(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._batch = batch

    def position(self):
        """`(epoch, batch)` of the step running now, counted from 1."""
        return self._epoch + 1, getattr(self, "_batch", 0) + 1

    def on_train_batch_end(self, batch, logs=None):
        if not self.stop_on_nan or not logs or "loss" not in logs:
            return
        loss = float(np.asarray(logs["loss"]))
        if np.isfinite(loss):
            return
        raise FloatingPointError(
            f"`{type(self.model).__name__}` stopped at epoch "
            f"{self._epoch + 1}, batch {batch + 1}: the training loss is "
            f"{loss}. An episode in the last steps holds NaN or infinite "
            "values, or the inner loop diverged (try a smaller inner "
            "learning rate or fewer inner steps). The weights in memory are "
            "those of the failed step; the last checkpoint written before "
            "it is intact: reload it (`keras.models.load_model`) or restart "
            "with `BackupAndRestore` after fixing the data."
        )


@contextlib.contextmanager
def label_errors(hooks=None):
    """Turns the in-graph label check's failure (`check_label_range`) into
    a `ValueError` with its own message, naming the epoch and batch, and
    JAX's refusal to shard a meta-batch unevenly into one naming the fix."""
    try:
        yield
    except Exception as error:
        text = getattr(error, "message", None) or str(error)
        if type(error).__name__ == "AlreadyExistsError" and (
                "tmp_var" in text):
            raise RuntimeError(
                "TensorFlow failed to accumulate gradients inside the "
                "per-task map (AlreadyExistsError on a temporary variable "
                "of an AddN, a known TensorFlow problem with large "
                "gradient sums in nested while loops). It appears with "
                "`steps_per_execution` > 1 and large episodes; compile with "
                "`steps_per_execution=1`, which trains the same model."
            ) from error
        uneven = re.search(
            r"partitioned (\d+) times, but the dimension size is (\d+)", text)
        if uneven is not None and "evenly divide" in text:
            # JAX refuses to shard a meta-batch that the distribution's
            # batch axis does not divide (keras.distribution.DataParallel).
            parts, size = uneven.groups()
            raise ValueError(
                f"A batch of {size} tasks cannot be split evenly between "
                f"the {parts} devices of the distribution's batch axis. "
                f"Use a meta-batch (the dataset's batch size) that is a "
                f"multiple of {parts}, and a number of tasks in a finite "
                "dataset that is a multiple of the batch size (or batch it "
                "with drop_remainder=True).") from error
        match = re.search(
            r"assertion failed: \[(`[^\]]*?a batch of .*?)\] \[Received labels "
            r"in \[min, max\]:\] \[(-?\d+)\] \[(-?\d+)\]", text, re.S)
        if match is None:
            raise
        where = ""
        if hooks is not None:
            epoch, batch = hooks.position()
            # With `steps_per_execution` > 1, the first batch of the group
            # of steps that failed.
            where = f" (epoch {epoch}, batch {batch})"
        message = match.group(1).replace("\\'", "'")
        raise ValueError(
            f"{message} Received labels in [{match.group(2)}, "
            f"{match.group(3)}]{where}."
        ) from None


def _portable_compile_config(config):
    """`config` with optimizers named by their public path.

    Keras records an optimizer by the module of its backend's class (on
    torch `keras.src.backend.torch.optimizers.torch_adam`), so a file saved
    on one backend would import another backend's module when loaded (on
    TensorFlow, importing torch beside it). Every such optimizer is also
    `keras.optimizers.<class_name>`, which resolves to the loading
    backend's own. A file saved with `jit_compile=True` loads on torch
    with the default instead (see `compile`).
    """
    optimizer = config.get("optimizer") if isinstance(config, dict) else None
    if isinstance(optimizer, dict) and str(
            optimizer.get("module", "")).startswith("keras.src.backend."):
        config = {**config, "optimizer": {**optimizer,
                                          "module": "keras.optimizers"}}
    if (keras.backend.backend() == "torch" and isinstance(config, dict)
            and config.get("jit_compile") is True):
        # Saved compiled on TensorFlow or JAX: eager on torch (see
        # `compile`).
        config = {**config, "jit_compile": "auto"}
    return config


class Trainer:
    """Mixed in under `MetaModel`, above the backend's trainer."""

    def compile(self, *args, **kwargs):
        """Configures the model for meta-training; see `keras.Model.compile`.

        In an episode batch, `sample_weight` says which query examples count
        (padding of variable-way episodes, the ratings of one cold-start
        state), so compiled `metrics` are weighted by it as the loss is
        (Keras would pass weights to `weighted_metrics` only), and so are
        their per-episode confidence intervals. Pass `weighted_metrics`
        yourself to choose which metrics see the weights.
        """
        arguments = bind_arguments(keras.Model.compile, self, args, kwargs)
        if (keras.backend.backend() == "torch"
                and arguments.get("jit_compile") is True):
            raise ValueError(
                "`jit_compile=True` is not available for keras_meta learners "
                "on the torch backend: `torch.compile` does not reproduce the "
                "inner loop's `torch.autograd.grad` calls (its predictions "
                "differ from eager ones). Leave `jit_compile` at its default "
                "(eager on torch), or use the JAX or TensorFlow backend for "
                "compiled steps.")
        if arguments.get("weighted_metrics") is None and arguments.get(
                "metrics") is not None:
            arguments["weighted_metrics"] = arguments.pop("metrics")
        return super().compile(**arguments)

    def compile_from_config(self, config):
        # Keras skips a custom `compile()` when loading; this one only
        # moves `metrics` to `weighted_metrics`, so loading may call it.
        self.compile(**keras.saving.deserialize_keras_object(
            _portable_compile_config(config)))
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        """Meta-trains on batches of episodes; see `keras.Model.fit`.

        `x` is an episode dataset (`keras_meta.data.episodes`,
        `keras_meta.data.sinusoid`) yielding `(inputs, query_labels)`
        batches, with `inputs` a dict of `support_inputs`,
        `support_labels` and `query_inputs` (see `keras_meta.episode`), or
        such a dict of arrays with `y` the query labels. Each batch element
        is one task: the learner adapts to its support set and the compiled
        loss scores its query predictions. Every other argument is
        `keras.Model.fit`'s; `class_weight` is refused (labels are
        relabelled per episode).
        """
        arguments, hooks = fit_arguments(self, args, kwargs)
        with label_errors(hooks):
            return super().fit(**arguments)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Scores query predictions after adaptation; see
        `keras.Model.evaluate`.

        Takes episodes as `fit()` does. Beside the loss and each compiled
        metric it returns its mean over episodes and the half-width of that
        mean's 95% confidence interval (`accuracy_episode_mean`,
        `accuracy_ci95`): the compiled metric pools every query, and the
        two agree when every episode counts the same number of queries.
        """
        episode_checks.check_first_episode(self, x, y)
        with label_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Query predictions after adapting to each episode's support set,
        `[tasks, num_query, ...]`; see `keras.Model.predict`."""
        episode_checks.check_first_episode(self, x)
        with label_errors():
            return super().predict(x, *args, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if getattr(self, "_distribute_strategy", None) is None:
            # Without a strategy Keras builds the optimizer inside the first
            # traced step; TensorFlow then traces the step a second time
            # (variables were created), and a second-order meta-step takes
            # seconds to trace. Built here, it is traced once.
            optimizer = getattr(self, "optimizer", None)
            if optimizer is not None and not optimizer.built and all(
                    layer.built for layer in self._flatten_layers()):
                optimizer.build(self.trainable_variables)
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # The compiled metrics are built by the first call: compute them
        # first, then the per-episode statistics over all of them.
        if isinstance(y_pred, dict):
            y_pred = y_pred["predictions"]
        y = self._checked_query_labels(x, y)
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        if not in_train_step(self) and y is not None:
            logs.update(per_episode.update_statistics(
                self.episode_statistics, self, y, y_pred, sample_weight))
        return logs

    @property
    def metrics_names(self):
        """The names of the values `evaluate(return_dict=False)` returns,
        in order: the loss and each compiled metric, then their means over
        episodes and 95% confidence-interval half-widths (`*_ci95`,
        `*_episode_mean`), sorted."""
        return per_episode.metric_names(self, self.episode_statistics)

    def get_metrics_result(self):
        result = super().get_metrics_result()
        if in_train_step(self):
            for key in self.episode_statistics.result_names():
                result.pop(key, None)
        return result
