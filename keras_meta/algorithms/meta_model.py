"""`MetaModel`: the Keras integration that every algorithm inherits."""

import contextlib
import copy
import inspect
import re
import threading
import warnings

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta.algorithms.model_utils import clone_with_weights
from keras_meta.algorithms.model_utils import ensure_weights
from keras_meta.algorithms.model_utils import walk_layers
from keras_meta.algorithms import normalization
from keras_meta.metrics import EpisodeStatistics

BATCH_NORM_MODES = ("inductive", "transductive", "per_step")


# Models whose train step is being traced, per thread: MirroredStrategy
# traces each replica's step in a thread of its own.
_TRAIN_STEP = threading.local()


@contextlib.contextmanager
def _tracing_train_step(model):
    models = getattr(_TRAIN_STEP, "models", None)
    if models is None:
        models = _TRAIN_STEP.models = set()
    models.add(id(model))
    try:
        yield
    finally:
        models.discard(id(model))


def _in_train_step(model):
    return id(model) in getattr(_TRAIN_STEP, "models", ())


# `task_gradients="auto"` differentiates task by task from this many bytes
# of layer outputs per batch.
TASK_GRADIENT_BYTES = 256 * 2**20


def _activation_elements(model):
    """Elements of all layer outputs per example (`None`: unknown)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            nested = _activation_elements(layer)
            if nested is None:
                return None
            total += nested
            continue
        try:
            outputs = layer.output
        except (AttributeError, ValueError):
            return None
        for output in keras.tree.flatten(outputs):
            shape = tuple(output.shape)[1:]
            if any(d is None for d in shape):
                return None
            total += int(np.prod(shape, dtype=np.int64))
    return total


# Layers whose per-task copies vectorize into batched matrix products and
# elementwise ops (`backend.map_tasks(..., vectorize=True)`).
_VECTORIZABLE_LAYERS = (
    keras.layers.InputLayer, keras.layers.Dense, keras.layers.Activation,
    keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU,
    keras.layers.Softmax, keras.layers.Flatten, keras.layers.Reshape,
    keras.layers.Concatenate, keras.layers.Add, keras.layers.Subtract,
    keras.layers.Multiply, keras.layers.Identity,
)


_CONVOLUTIONAL_LAYERS = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
)


def _is_convolutional(model):
    """Whether `model` has a convolution or max-pooling layer. On
    TensorFlow their gradients run faster task by task, each task's
    backward pass beside its forward pass, than in the gradient of a loop
    over tasks, where oneDNN's max-pooling gradient cannot be used
    (`benchmarks/conv_step.py`)."""
    return any(isinstance(layer, _CONVOLUTIONAL_LAYERS)
               for layer in walk_layers(model))


def _dense_only(model):
    """Whether `model` is a Sequential or functional model built only of
    dense and elementwise layers (nested such models included)."""
    # A subclassed model's `call` may hold any op: it is never vectorized.
    if not (isinstance(model, keras.Sequential)
            or type(model).__name__ == "Functional"):
        return False
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if not _dense_only(layer):
                return False
        elif type(layer) not in _VECTORIZABLE_LAYERS:
            return False
    return True


def _unreduced(loss):
    """A loss (name, function or `keras.losses.Loss`) as a per-example fn."""
    loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    return loss


def _is_dataset(data):
    return hasattr(data, "element_spec") and hasattr(data, "take")


class _MetaModelHooks(keras.callbacks.Callback):
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
def _label_errors(hooks=None):
    """Turns the in-graph label check's failure (`check_label_range`) into
    a `ValueError` with its own message, naming the epoch and batch."""
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


class _StepFunction:
    """Holds a traced step out of sight of TensorFlow's object tracking
    (which would export a `tf.function` attribute with the model)."""

    def __init__(self, function):
        self.function = function


@keras.saving.register_keras_serializable(package="keras_meta")
class MetaModel(keras.Model):
    """Base class of meta-learners: Keras training whose batches are tasks.

    A `MetaModel` wraps an ordinary built Keras model (Sequential, functional
    or subclassed) without modifying it. Each batch element is an episode: a
    support set to adapt on and a query set to predict (see
    `keras_meta.episode`). `call()` adapts to each task's support set and
    returns query predictions of shape `[tasks, num_query, ...]`, so the
    compiled loss and metrics score the query set, and `compile()`, `fit()`,
    `evaluate()`, `predict()`, callbacks, `.keras` saving and distribution
    strategies work as for any Keras model.

    Subclasses implement three hooks:

    - `adapt_task(params, support_inputs, support_labels, training,
      support_weights=None)`: one task's adaptation, returning a task state
      (fast weights, prototypes). `support_weights` (0 for padding) comes
      with padded variable-way or variable-shot episodes.
    - `predict_task(params, task_state, query_inputs, training,
      support_inputs)`: query predictions from that state; query passes
      through the wrapped model go through `run_query`, which normalizes
      them as `batch_norm` says (with the support set's statistics in the
      inductive mode). While training it may instead return a
      dict (see `task_output_keys()`) holding `"predictions"` and either of
      `"step_predictions"` (query predictions after each inner step,
      `[steps, num_query, ...]`, for a multi-step loss weighted by
      `step_loss_weights()`) and `"auxiliary_loss"` (a scalar per task,
      averaged over tasks and added to the compiled loss: regularizers and
      hand-built meta-gradients such as Reptile's).
    - `build_adapted_model(task_state, support_inputs)`: an ordinary
      `keras.Model` that predicts like the adapted learner.

    and may extend `meta_parameters()` with their own meta-learned values.

    `evaluate()` reports, beside each compiled metric, the half-width of its
    95% confidence interval over episodes (`loss_ci95`, `accuracy_ci95`).

    Args:
        model: A built `keras.Model` mapping inputs to predictions (logits
            for classification).
        batch_norm: String, how BatchNormalization layers in `model`
            normalize. Support sets are always normalized with their own
            batch statistics; the modes differ for query sets:

            - `"inductive"` (the default): queries are normalized with the
              statistics of the task's support set under the adapted
              weights (MetaBN, Bronskill et al., 2020), in training and at
              test time alike. Each query is predicted independently of the
              others, and `adapt()` returns a stock Keras model whose
              BatchNormalization layers hold those statistics as moving
              statistics.
            - `"transductive"`: each query set is normalized with its own
              batch statistics, as in the MAML paper's code and published
              numbers. A query's prediction then depends on the other
              queries in its batch; `adapt()` returns a
              `keras_meta.models.BatchStatisticsModel`, which normalizes
              whatever batch it is given the same way (predict a query set
              in one batch).
            - `"per_step"` (MAML++, accepted by `keras_meta.MAML` and its
              subclasses): transductive statistics, and every inner step
              gets its own meta-learned BatchNormalization scale and offset.

            Either way the model's moving statistics are neither used nor
            updated by meta-training, frozen (non-trainable)
            BatchNormalization layers keep their moving statistics, and
            Dropout-like layers are active in training and inactive in
            `predict()`, `evaluate()` and `adapt()` (in inductive training,
            query passes keep Dropout active too). Padded support examples
            (variable-way episodes) count in the statistics.
        inner_loss: Optional loss (name, function or `keras.losses.Loss`)
            for adaptation on the support set. Defaults to the compiled
            loss. Either way it is computed unreduced and averaged here, so
            a distribution strategy never rescales inner steps.
        task_gradients: `"auto"` (the default), `True` or `False`. How the
            TensorFlow backend takes the meta-gradient of a training step.
            With `True`, each task is adapted, predicted and differentiated
            in turn and the tasks' gradients are summed, so that one task's
            activations are in memory at a time rather than the whole
            meta-batch's (as learn2learn's one backward pass per task). This
            is exact when the loss of a batch is the mean of its tasks'
            losses, as for every compiled loss reduced by
            `"sum_over_batch_size"` (Keras's default). `"auto"` chooses it
            for such losses, unless a subclass overrides `compute_loss()`,
            when the wrapped model has a convolution or max-pooling layer
            (a Conv-4 step is 25-30% faster with max pooling, whose
            gradient then runs on oneDNN's kernel rather than in a loop's
            gradient, where TensorFlow cannot use it; 8% with strided
            convolutions) or when the layer outputs of a batch would take
            256 MiB or more (`TASK_GRADIENT_BYTES`; known for Sequential
            and functional models); small dense models run faster whole. `False`
            differentiates the whole meta-batch at once. The JAX backend
            always does.
        **kwargs: Passed to `keras.Model` (`name`, `dtype`).

    Reference:
        - [Finn et al., 2017](https://arxiv.org/abs/1703.03400), section 3,
          for the episodic formulation.
    """

    # Learners with meta-learned weights of their own (LEO) also accept a
    # frozen feature extractor.
    requires_trainable_model = True
    # The `batch_norm` values a learner accepts.
    batch_norm_modes = ("inductive", "transductive")
    # Whether `call`'s per-task work may be vectorized across tasks when the
    # wrapped model is dense (`backend.task_mapping`).
    vectorizable = True

    def __init__(
        self, model, *, batch_norm="inductive", inner_loss=None,
        task_gradients="auto", **kwargs
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if task_gradients not in ("auto", True, False):
            raise ValueError(
                "`task_gradients` must be 'auto', True or False. Received: "
                f"task_gradients={task_gradients!r}."
            )
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"`{owner}` wraps a Keras model: expected an instance of "
                f"`keras.Model`, received {type(model).__name__}. Wrap a "
                "`keras.Sequential`, a functional model or a subclass of "
                "`keras.Model`."
            )
        if not model.built:
            raise ValueError(
                f"`{owner}` needs a built model, so that its weights exist "
                f"before meta-training. The model '{model.name}' is not built. "
                "Give it an input shape (`keras.Input(shape)` as its first "
                "layer), or call it once on a batch of examples "
                "(`model(x[:1])`): that creates a subclassed model's weights, "
                "which `model.build(input_shape)` does not."
            )
        if (not model.trainable_variables and owner != "MetaModel"
                and self.requires_trainable_model):
            raise ValueError(
                f"`{owner}` received the model '{model.name}', which has no "
                "trainable weights to meta-learn. Check that it is "
                "`trainable`; a subclassed model creates its weights when "
                "first called, so call it on a batch (`model(x[:1])`) first."
            )
        if batch_norm not in BATCH_NORM_MODES:
            raise ValueError(
                f"`batch_norm` must be one of {list(BATCH_NORM_MODES)}. "
                f"Received: batch_norm={batch_norm!r}."
            )
        if batch_norm not in self.batch_norm_modes:
            raise ValueError(
                f"batch_norm={batch_norm!r} is not available for `{owner}`; "
                f"it supports {list(self.batch_norm_modes)}. 'inductive' "
                "normalizes queries with the support set's statistics; "
                "'transductive' normalizes each support and query set with "
                "its own batch statistics, as in the MAML paper."
            )
        self.model = model
        self.batch_norm = batch_norm
        self.inner_loss = inner_loss
        self.task_gradients = task_gradients
        # Private copies and statistic slots, prepared here because a
        # traced step must not create variables.
        object.__setattr__(self, "_normalization", {})
        self.prepare_normalization(model)
        # A MetaModel creates no weights of its own in `build()`; without this
        # `BackupAndRestore` and `load_model` refuse to restore it.
        self.built = True
        # Per-episode statistics for `evaluate()`; `get_metrics_result` keeps
        # them out of training logs.
        self.episode_statistics = EpisodeStatistics()

    # ------------------------------------------------------------------
    # Hooks for subclasses.
    # ------------------------------------------------------------------

    def meta_parameters(self):
        """The meta-learned values, read once per step as tensors.

        Returns a dict with the wrapped model's `"weights"` (trainable) and
        `"state"` (non-trainable) values. Reading the variables here, outside
        the per-task map, lets the enclosing tape differentiate through
        every task with respect to them.
        """
        return {
            "weights": [
                backend.read_value(v) for v in self.model.trainable_variables
            ],
            "state": [
                backend.read_value(v)
                for v in self.model.non_trainable_variables
            ],
        }

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        raise NotImplementedError(
            f"`{type(self).__name__}` must implement `adapt_task()`."
        )

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        raise NotImplementedError(
            f"`{type(self).__name__}` must implement `predict_task()`."
        )

    def build_adapted_model(self, task_state, support_inputs):
        raise NotImplementedError(
            f"`{type(self).__name__}` must implement `build_adapted_model()`."
        )

    def task_output_keys(self, training):
        """Keys of the dict `predict_task` returns, or `None` for a tensor.

        Subclasses that return a dict while training override this.
        """
        return None

    def step_loss_weights(self):
        """Weights of the per-step query losses (`"step_predictions"`)."""
        raise NotImplementedError(
            f"`{type(self).__name__}` returns step predictions and must "
            "implement `step_loss_weights()`."
        )

    def per_task_parameters(self, inputs, training):
        """Values that differ per task, such as sampling noise, or `None`.

        A dict of tensors whose leading axis is the task; each task's slice
        is merged into the `params` its hooks receive. Drawing random
        values here, once per step for the whole meta-batch, keeps the
        per-task map free of random state.
        """
        return None

    def on_epoch_begin(self, epoch):
        """Called by `fit()` before each epoch, for schedules kept by the
        meta-learner itself (MAML++'s annealed step losses and its switch
        from first to second order). Epochs count from 0, and resumed runs
        (`initial_epoch`, `BackupAndRestore`) see the true epoch."""

    # ------------------------------------------------------------------
    # Pieces subclasses use.
    # ------------------------------------------------------------------

    def prepare_normalization(self, model):
        """Prepares `model` (the wrapped model, or another network the
        learner runs with the same semantics, such as a relation module)
        for `run_model` and `run_query`."""
        owner = type(self).__name__
        batch_layers = normalization.batch_statistic_layers(model)
        stochastic = normalization.has_stochastic_layers(model)
        inductive = self.batch_norm == "inductive" and bool(batch_layers)
        if inductive:
            normalization.check_inductive_support(model, owner)
        parameters = inspect.signature(model.call).parameters
        info = {
            "batch_statistics": bool(batch_layers),
            "inductive": inductive,
            "slots": normalization.statistic_slots(model) if inductive
            else [],
            "takes_training": "training" in parameters or any(
                p.kind is p.VAR_KEYWORD for p in parameters.values()),
            "no_noise": None,
            "fixed_statistics": None,
        }
        if batch_layers and stochastic:
            info["no_noise"] = normalization.private_copy(
                model, "stochastic")
            if inductive:
                info["fixed_statistics"] = normalization.private_copy(
                    model, "normalization")
        self._normalization[id(model)] = info

    @staticmethod
    def _call_model(info, model, weights, state, inputs, training):
        kwargs = {}
        if info["takes_training"]:
            kwargs["training"] = training
        return model.stateless_call(weights, state, inputs, **kwargs)

    def run_model(self, weights, state, inputs, training, model=None):
        """Runs a network on the given weight values, normalizing `inputs`
        with their own batch statistics (support sets; query sets in the
        transductive modes).

        Dropout-like layers are active only if `training`.

        Returns:
            `(outputs, new_state)`.
        """
        model = self.model if model is None else model
        info = self._normalization[id(model)]
        if not info["batch_statistics"]:
            return self._call_model(info, model, weights, state, inputs,
                                    bool(training))
        if training or info["no_noise"] is None:
            return self._call_model(info, model, weights, state, inputs, True)
        return self._call_model(info, info["no_noise"], weights, state, inputs,
                                True)

    def support_statistics(self, weights, state, support_inputs, training,
                           model=None):
        """The support set's batch statistics under `weights`.

        Returns:
            `(support_outputs, state)`, the state holding the statistics as
            the moving statistics of every batch-statistics
            BatchNormalization layer (inductive mode; otherwise `state` is
            returned unchanged with the batch-statistics outputs).
        """
        model = self.model if model is None else model
        info = self._normalization[id(model)]
        if not info["inductive"]:
            outputs, _ = self.run_model(weights, state, support_inputs,
                                        training, model)
            return outputs, state
        outputs, new_state = self.run_model(
            weights, normalization.zeroed_statistics(state, info["slots"]),
            support_inputs, training, model)
        return outputs, normalization.batch_statistics_from_update(
            new_state, info["slots"])

    def run_query(self, weights, state, query_inputs, training,
                  support_inputs, model=None, statistics=None):
        """Runs a network on query examples as `batch_norm` says.

        Inductive mode: BatchNormalization uses the support set's
        statistics under `weights` (`statistics`, if already computed by
        `support_statistics`), so each query is predicted on its own.
        Transductive modes: the query set's own batch statistics.

        Returns:
            `(outputs, new_state)`.
        """
        model = self.model if model is None else model
        info = self._normalization[id(model)]
        if not info["inductive"]:
            return self.run_model(weights, state, query_inputs, training,
                                  model)
        if statistics is None:
            _, statistics = self.support_statistics(
                weights, state, support_inputs, training, model)
        if training and info["fixed_statistics"] is not None:
            # Dropout active, BatchNormalization on the given statistics.
            return self._call_model(info, info["fixed_statistics"], weights,
                                    statistics, query_inputs, True)
        return self._call_model(info, model, weights, statistics, query_inputs,
                                False)

    def copy_model(self, weights, support_inputs, model=None):
        """A copy of a network holding `weights`, predicting as
        `run_query` does after adapting on `support_inputs`.

        Inductive mode: a stock Keras model whose BatchNormalization layers
        hold the support set's statistics. Transductive modes: a
        `keras_meta.models.BatchStatisticsModel`. Without BatchNormalization,
        a plain copy.
        """
        model = self.model if model is None else model
        info = self._normalization[id(model)]
        state = [ops.convert_to_tensor(v.value)
                 for v in model.non_trainable_variables]
        if info["inductive"]:
            _, state = self.support_statistics(
                [ops.convert_to_tensor(w) for w in weights], state,
                ops.convert_to_tensor(support_inputs), False, model)
        copy = clone_with_weights(model, weights, state=state)
        if info["batch_statistics"] and not info["inductive"]:
            return normalization.BatchStatisticsModel(
                copy, name=f"{model.name}_batch_statistics")
        return copy

    def inner_loss_fn(self):
        """The unreduced loss used for adaptation on support sets."""
        loss = self.inner_loss if self.inner_loss is not None else self.loss
        if loss is None:
            raise ValueError(
                f"`{type(self).__name__}` adapts with the compiled loss, but "
                "none is set. Call `compile(loss=...)` or pass `inner_loss=` "
                "to the constructor."
            )
        if isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                f"`{type(self).__name__}` cannot adapt with a loss per output "
                f"(received {type(loss).__name__}). Pass a single "
                "`inner_loss=` for the support set."
            )
        return _unreduced(loss)

    def support_loss(self, labels, predictions, loss_fn=None, weights=None):
        """Mean of the unreduced inner loss over one task's examples.

        With `weights` (0 for padding), the weighted mean over real ones.
        """
        loss_fn = loss_fn or self.inner_loss_fn()
        if "float" in str(labels.dtype):
            labels = ops.cast(labels, predictions.dtype)
        losses = loss_fn(labels, predictions)
        if weights is None:
            return ops.mean(losses)
        weights = ops.cast(weights, losses.dtype)
        weights = ops.reshape(
            weights, ops.shape(weights) + (1,) * (len(losses.shape) - 1)
        )
        weights = ops.broadcast_to(weights, ops.shape(losses))
        return ops.sum(losses * weights) / ops.maximum(
            ops.sum(weights), ops.cast(1e-12, losses.dtype)
        )

    # ------------------------------------------------------------------
    # Keras integration.
    # ------------------------------------------------------------------

    def _output_dtype(self, query_inputs):
        spec = self.model.compute_output_spec(
            keras.KerasTensor(
                tuple(query_inputs.shape[1:]), dtype=query_inputs.dtype
            )
        )
        return spec.dtype

    def _check_labels(self, labels, name, example_inputs):
        """Checks a batch's labels where the step is traced: float labels
        for a sparse categorical loss raise at once; integer labels are
        checked against the number of classes in the graph, every batch
        (TensorFlow; on JAX the first episode's check is all)."""
        owner = type(self).__name__
        integer = "int" in str(labels.dtype)
        if getattr(self, "num_ways", None) is not None and not (
                integer and len(labels.shape) == 2):
            raise ValueError(
                f"`{owner}` classifies: {name} must be integer class ids of "
                "shape [tasks, examples], labels 0..num_ways-1 within each "
                f"episode. Received dtype {labels.dtype} and shape "
                f"{tuple(labels.shape)}. Regression episodes (such as "
                "`keras_meta.data.sinusoid`) need a gradient-based learner "
                "such as `keras_meta.MAML`."
            )
        losses = [self.inner_loss, self.loss]
        sparse = any(
            isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
            or loss in ("sparse_categorical_crossentropy",
                        keras.losses.sparse_categorical_crossentropy)
            for loss in losses if loss is not None)
        if sparse and not integer:
            raise ValueError(
                f"`{owner}` is compiled with a sparse categorical "
                f"cross-entropy, which takes integer class labels, but "
                f"{name} has dtype {labels.dtype}. Classification episodes "
                "carry labels 0..num_ways-1 as integers (`keras_meta.data` "
                "makes them so); for regression targets compile a "
                "regression loss such as 'mse'."
            )
        if not integer or keras.backend.backend() != "tensorflow":
            # JAX has no in-graph assertion: see `check_label_range`.
            return labels
        num_outputs = self._num_outputs(
            tuple(example_inputs.shape[2:]), example_inputs.dtype)
        if num_outputs is None:
            return labels
        what, fix = self.classes_limit() or (
            f"the wrapped model has {num_outputs} outputs",
            "give the model one output per way")
        return backend.check_label_range(
            labels, num_outputs,
            f"`{owner}`: a batch of {name} holds labels outside "
            f"0..{num_outputs - 1} ({what}). Relabel each episode's classes "
            f"as 0..num_ways-1 (`keras_meta.data` does this) or {fix}.")

    def call(self, inputs, training=False):
        episode.check_episode_inputs(inputs, type(self).__name__)
        inputs = dict(inputs)
        inputs[episode.SUPPORT_LABELS] = self._check_labels(
            inputs[episode.SUPPORT_LABELS], "support_labels",
            inputs[episode.SUPPORT_INPUTS])
        params = self.meta_parameters()
        training = bool(training)

        weighted = inputs.get(episode.SUPPORT_WEIGHTS) is not None

        per_task = self.per_task_parameters(inputs, training)

        def adapt_and_predict(task):
            support_inputs, support_labels, query_inputs = task[:3]
            task_params = params if per_task is None else {
                **params, **task[-1]}
            task_state = self.adapt_task(
                task_params, support_inputs, support_labels, training,
                support_weights=task[3] if weighted else None,
            )
            return self.predict_task(
                task_params, task_state, query_inputs, training,
                support_inputs,
            )

        query_inputs = inputs[episode.QUERY_INPUTS]

        def output_dtypes():
            return self._task_output_dtypes(query_inputs, training)

        elements = (
            inputs[episode.SUPPORT_INPUTS],
            inputs[episode.SUPPORT_LABELS],
            query_inputs,
        )
        if weighted:
            elements += (inputs[episode.SUPPORT_WEIGHTS],)
        if per_task is not None:
            elements += (per_task,)
        return backend.map_tasks(adapt_and_predict, elements, output_dtypes,
                                 vectorize=self._vectorizes_tasks())

    def _vectorizes_tasks(self):
        """Whether `call` maps tasks vectorized (`backend.task_mapping`):
        for wrapped models of dense and elementwise layers, whose per-task
        weights become batched matrix products, unless the learner says
        its per-task work does not vectorize (`vectorizable = False`)."""
        return self.vectorizable and _dense_only(self.model)

    def _task_output_dtypes(self, query_inputs, training):
        """The dtypes of what `call` returns per task (a nest)."""
        prediction = self._output_dtype(query_inputs)
        keys = self.task_output_keys(training)
        if keys is None:
            return prediction
        return {
            key: (self.model.variable_dtype
                  if key == "auxiliary_loss" else prediction)
            for key in keys
        }

    def adapt(self, support_inputs, support_labels):
        """Adapts to one task and returns an ordinary `keras.Model`.

        Args:
            support_inputs: Array of shape `[num_support, ...]`, one task's
                support examples (no task dimension).
            support_labels: Array of shape `[num_support, ...]`.

        Returns:
            A `keras.Model` holding the adapted learner, independent of this
            `MetaModel`: it predicts, saves and exports as any Keras model,
            and loads without keras_meta.
        """
        support_inputs = ops.convert_to_tensor(support_inputs)
        support_labels = ops.convert_to_tensor(support_labels)
        self._check_single_task(support_inputs, support_labels)
        episode.check_episode_values(
            {
                episode.SUPPORT_INPUTS: support_inputs[None],
                episode.SUPPORT_LABELS: support_labels[None],
                episode.QUERY_INPUTS: support_inputs[None],
            },
            None,
            self._num_outputs(support_inputs.shape[1:], support_inputs.dtype),
            f"{type(self).__name__}.adapt",
            self.classes_limit(),
        )
        task_state = self.adapt_task(
            self.meta_parameters(), support_inputs, support_labels, False
        )
        return self.build_adapted_model(task_state, support_inputs)

    def _check_single_task(self, support_inputs, support_labels):
        example_rank = None
        try:
            example_rank = len(self.model.input_shape) - 1
        except (AttributeError, ValueError):
            pass
        if example_rank is None or len(support_inputs.shape) == (
                example_rank + 1):
            return
        raise ValueError(
            f"`{type(self).__name__}.adapt()` adapts to one task: it takes "
            f"`support_inputs` of shape [num_support, ...] (examples of rank "
            f"{example_rank}, as the wrapped model takes them, after one "
            "example axis), without a task axis. Received shape "
            f"{tuple(support_inputs.shape)}. For task `i` of an episode "
            "batch, pass `support_inputs[i]` and `support_labels[i]`."
        )

    def classes_limit(self):
        """`(what, fix)` for the error raised when labels exceed the
        number of outputs (see `episode.check_episode_values`), or `None`
        when the wrapped model's outputs set it."""
        num_ways = getattr(self, "num_ways", None)
        if num_ways is None:
            return None
        return (f"it was built with num_ways={num_ways}, the most classes "
                "an episode may have",
                "build it with a larger `num_ways`")

    def _num_outputs(self, example_shape, dtype):
        spec = self.model.compute_output_spec(
            keras.KerasTensor((None,) + tuple(example_shape), dtype=dtype)
        )
        if not hasattr(spec, "shape") or not spec.shape:
            return None
        return spec.shape[-1]

    def _check_first_episode(self, data, labels=None):
        """Checks the values of the first episode before any step runs."""
        if _is_dataset(data):
            try:
                batch = next(iter(data.take(1)))
            except StopIteration:
                raise ValueError(
                    f"`{type(self).__name__}` received a dataset that yields "
                    "no episodes. Check its source and filters (a "
                    "`num_episodes` of 0, a split with no classes, a "
                    "`take(0)`)."
                ) from None
            if isinstance(batch, (tuple, list)):
                inputs = batch[0]
                labels = batch[1] if len(batch) > 1 else None
            else:
                inputs = batch
        elif isinstance(data, dict):
            inputs = data
        else:
            return
        episode.check_episode_inputs(inputs, type(self).__name__)
        support = inputs[episode.SUPPORT_INPUTS]
        # Labels are all that is checked by value: convert those alone, and
        # with NumPy, so that no backend moves the whole data set to a
        # device and back.
        inputs = {
            k: np.asarray(inputs[k]) if k == episode.SUPPORT_LABELS
            else inputs[k]
            for k in episode.EPISODE_KEYS
        }
        if labels is not None:
            labels = np.asarray(labels)
        num_outputs = self._num_outputs(support.shape[2:], support.dtype)
        episode.check_episode_values(
            inputs,
            labels,
            num_outputs,
            type(self).__name__,
            self.classes_limit(),
        )
        support_labels = inputs[episode.SUPPORT_LABELS]
        if (self.classes_limit() is None and num_outputs
                and np.issubdtype(support_labels.dtype, np.integer)
                and support_labels.ndim == 2 and support_labels.size
                and episode.SUPPORT_WEIGHTS not in inputs):
            ways = int(support_labels.max()) + 1
            if ways < num_outputs:
                warnings.warn(
                    f"`{type(self).__name__}` wraps a model with "
                    f"{num_outputs} outputs, but the first episode has "
                    f"{ways} classes (labels 0..{ways - 1}). The other "
                    f"{num_outputs - ways} outputs enter every softmax as "
                    "classes that never occur. Give the model one output "
                    f"per way (`num_outputs={ways}`).",
                    stacklevel=3,
                )

    def compile(self, *args, **kwargs):
        """Configures the model for meta-training; see `keras.Model.compile`.

        In an episode batch, `sample_weight` says which query examples count
        (padding of variable-way episodes, the ratings of one cold-start
        state), so compiled `metrics` are weighted by it as the loss is
        (Keras would pass weights to `weighted_metrics` only), and so are
        their per-episode confidence intervals. Pass `weighted_metrics`
        yourself to choose which metrics see the weights.
        """
        arguments = inspect.signature(keras.Model.compile).bind(
            self, *args, **kwargs
        ).arguments
        arguments.pop("self")
        arguments.update(arguments.pop("kwargs", {}))
        if arguments.get("weighted_metrics") is None and arguments.get(
                "metrics") is not None:
            arguments["weighted_metrics"] = arguments.pop("metrics")
        return super().compile(**arguments)

    def compile_from_config(self, config):
        # Keras skips a custom `compile()` when loading; this one only
        # moves `metrics` to `weighted_metrics`, so loading may call it.
        self.compile(**keras.saving.deserialize_keras_object(config))
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
        arguments = inspect.signature(keras.Model.fit).bind(
            self, *args, **kwargs
        ).arguments
        arguments.pop("self")
        arguments.update(arguments.pop("kwargs", {}))
        if arguments.get("class_weight") is not None:
            raise ValueError(
                f"`{type(self).__name__}.fit()` does not take `class_weight`: "
                "class labels are relabelled 0..num_ways-1 in every episode, "
                "so a weight per label would weigh a different class in each "
                "episode. Weigh query examples with a `sample_weight` of "
                "shape [tasks, num_query] as the third element of each "
                "episode batch."
            )
        x, y = arguments.get("x"), arguments.get("y")
        if _is_dataset(x):
            # Episodes are shuffled by their pipeline; say so to Keras, which
            # otherwise warns that it cannot shuffle a dataset.
            arguments.setdefault("shuffle", False)
        self._check_first_episode(x, y)
        callbacks = list(arguments.get("callbacks") or [])
        x = self._resume_position(x, callbacks, arguments)
        arguments["x"] = x
        stop_on_nan = any(isinstance(c, keras.callbacks.TerminateOnNaN)
                          for c in callbacks)
        hooks = _MetaModelHooks(stop_on_nan)
        arguments["callbacks"] = [hooks] + callbacks
        validation_data = arguments.get("validation_data")
        if isinstance(validation_data, (tuple, list)):
            self._check_first_episode(*validation_data[:2])
        elif validation_data is not None:
            self._check_first_episode(validation_data)
        with _label_errors(hooks):
            return super().fit(**arguments)

    def _resume_position(self, x, callbacks, arguments):
        """Skips the episodes a resumed run has already trained on.

        With `keras_meta.callbacks.BackupAndRestore`, an endless episode
        dataset and `steps_per_epoch`, a run resumed at epoch `e` starts
        from episode batch `e * steps_per_epoch`, as the uninterrupted run
        does.
        """
        from keras_meta.callbacks import BackupAndRestore

        backups = [c for c in callbacks if isinstance(c, BackupAndRestore)]
        steps = arguments.get("steps_per_epoch")
        if not backups or not steps or not _is_dataset(x):
            return x
        epoch = backups[0].restored_epoch()
        if epoch <= 0:
            return x
        import tensorflow as tf

        if x.cardinality() != tf.data.INFINITE_CARDINALITY:
            # A finite dataset restarts every epoch: nothing to skip.
            return x
        return x.skip(epoch * steps)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Scores query predictions after adaptation; see
        `keras.Model.evaluate`.

        Takes episodes as `fit()` does. Beside the loss and each compiled
        metric it returns the half-width of its 95% confidence interval
        over episodes (`loss_ci95`, `accuracy_ci95`).
        """
        self._check_first_episode(x, y)
        with _label_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Query predictions after adapting to each episode's support set,
        `[tasks, num_query, ...]`; see `keras.Model.predict`."""
        self._check_first_episode(x)
        with _label_errors():
            return super().predict(x, *args, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        if y is not None and isinstance(x, dict) and (
                episode.QUERY_INPUTS in x):
            y = self._check_labels(y, "query_labels", x[episode.QUERY_INPUTS])
        if not isinstance(y_pred, dict):
            return super().compute_loss(x, y, y_pred, sample_weight, training)
        if "step_predictions" in y_pred:
            step_predictions = y_pred["step_predictions"]
            weights = self.step_loss_weights()
            loss = None
            for step in range(step_predictions.shape[1]):
                term = super().compute_loss(
                    x, y, step_predictions[:, step], sample_weight, training)
                term = ops.cast(weights[step], term.dtype) * term
                loss = term if loss is None else loss + term
        else:
            loss = super().compute_loss(
                x, y, y_pred["predictions"], sample_weight, training)
        if "auxiliary_loss" in y_pred:
            # Averaged over this replica's tasks; like the compiled loss it is
            # divided by the replica count, so that the strategy's sum of
            # gradients over replicas is the mean over the global batch.
            auxiliary = ops.cast(
                ops.mean(y_pred["auxiliary_loss"]), loss.dtype)
            loss = loss + auxiliary / ops.cast(
                backend.num_replicas(), loss.dtype)
        return loss

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # TensorFlow trainer only: build from one replica's share of the
        # first batch (see `backend.tensorflow.local_batch`).
        if iterator is not None and getattr(
                self, "_distribute_strategy", None) is not None:
            from keras_meta.backend import tensorflow as tf_backend

            with self.distribute_strategy.scope():
                for _, _, batches in iterator:
                    data_batch = tf_backend.local_batch(next(batches))
                    break
            iterator = None
        elif getattr(self, "_distribute_strategy", None) is None:
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

    def make_train_function(self, force=False):
        """Keras's, except that on JAX an execution of several compiled
        steps runs as one `lax.scan` (`backend.scan_steps`)."""
        if self.train_function is not None and not force:
            return super().make_train_function(force)
        result = super().make_train_function(force)
        if self._scans_steps():
            self.train_function = backend.scan_steps(
                self.train_step, self.steps_per_execution)
        return result

    def make_predict_function(self, force=False):
        """Keras's, except that on TensorFlow an execution of several steps
        calls one traced step.

        Keras unrolls `steps_per_execution` predict steps into the traced
        function, so a meta-step's inner loop was traced once per step of
        an execution (50 times for the sinusoid job), and again for each
        new `eval_inner_steps`.
        """
        if self.predict_function is not None and not force:
            return self.predict_function
        step = None
        if (keras.backend.backend() == "tensorflow"
                and self.steps_per_execution > 1 and not self.run_eagerly
                and not self.jit_compile):
            import tensorflow as tf

            step = _StepFunction(tf.function(
                super().predict_step, reduce_retracing=True,
                experimental_attributes={"_noinline": True}))
        object.__setattr__(self, "_predict_step_function", step)
        return super().make_predict_function(force)

    def predict_step(self, *args, **kwargs):
        # TensorFlow's step takes `data`, JAX's `(state, data)`.
        step = getattr(self, "_predict_step_function", None)
        if step is not None:
            return step.function(*args, **kwargs)
        return super().predict_step(*args, **kwargs)

    def _scans_steps(self):
        nnx = getattr(keras.config, "is_nnx_enabled", lambda: False)
        return (backend.scan_steps is not None
                and self.steps_per_execution > 1 and bool(self.jit_compile)
                and not self.run_eagerly
                and keras.distribution.distribution() is None and not nnx())

    def train_step(self, *args, **kwargs):
        # Read while the step is traced: training logs report the compiled
        # metrics only, evaluation logs add their confidence intervals.
        with _tracing_train_step(self):
            # The JAX trainer's step takes `(state, data)`.
            if keras.backend.backend() == "tensorflow" and (
                    self._uses_task_gradients(*args)):
                logs = self._train_step_by_task(*args, **kwargs)
            else:
                logs = super().train_step(*args, **kwargs)
        if keras.backend.backend() == "tensorflow":
            logs = backend.per_replica_logs(logs)
        return logs

    def _uses_task_gradients(self, data):
        """Whether a training step sums per-task gradients (TensorFlow)."""
        if keras.backend.backend() != "tensorflow" or not (
                self.task_gradients):
            return False
        if self.task_gradients is True:
            return True
        if type(self).compute_loss is not MetaModel.compute_loss:
            return False
        loss = self.loss
        if loss is None or isinstance(loss, (dict, list, tuple)):
            return False
        loss = keras.losses.get(loss)
        # Functions are wrapped by Keras with its default reduction.
        if isinstance(loss, keras.losses.Loss) and (
                loss.reduction != "sum_over_batch_size"):
            return False
        return (_is_convolutional(self.model)
                or self._batch_activation_bytes(data) >= TASK_GRADIENT_BYTES)

    def _batch_activation_bytes(self, data):
        """Bytes of the wrapped model's layer outputs for a whole batch.

        Summed over the layers of a Sequential or functional model, for
        every support and query example of the batch; 0 where a shape is
        unknown (subclassed models), which keeps whole-batch gradients.
        """
        per_example = _activation_elements(self.model)
        x = data[0] if isinstance(data, (tuple, list)) else data
        if not per_example or not isinstance(x, dict):
            return 0
        examples = 0
        for key in (episode.SUPPORT_INPUTS, episode.QUERY_INPUTS):
            shape = tuple(x[key].shape)
            if len(shape) < 2 or shape[1] is None:
                return 0
            examples += shape[1] * (shape[0] or 1)
        return 4 * per_example * examples

    def _train_step_by_task(self, data):
        """Keras's TensorFlow `train_step`, one task at a time.

        Each task runs as a batch of one through `__call__` and
        `compute_loss`, exactly as the whole batch would; the gradients of
        the tasks' losses, each divided by the number of tasks, add up to
        the gradient of the batch's loss (see `task_gradients`).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        query_inputs = x[episode.QUERY_INPUTS]

        def task_step(task):
            x_t, y_t, weight_t = task
            y_pred = self(x_t, training=True)
            loss = self._compute_loss(
                x=x_t, y=y_t, y_pred=y_pred, sample_weight=weight_t,
                training=True)
            return y_pred, loss

        scale_loss = None
        if self.optimizer is not None:
            scale_loss = self.optimizer.scale_loss
        weights = self.trainable_weights
        y_pred, loss, gradients = backend.sum_task_gradients(
            task_step, (x, y, sample_weight), weights,
            self._task_output_dtypes(query_inputs, True), scale_loss)
        # As Keras does: the tracker shows the loss before the strategy's
        # division by the replica count.
        replicas = backend.num_replicas()
        if replicas > 1:
            loss = loss * ops.cast(replicas, loss.dtype)
        self._loss_tracker.update_state(
            loss, sample_weight=ops.shape(query_inputs)[0],
        )
        if weights:
            self.optimizer.apply_gradients(zip(gradients, weights))
        else:
            warnings.warn("The model does not have any trainable weights.")
        return self.compute_metrics(
            x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, *args, **kwargs):
        logs = super().test_step(*args, **kwargs)
        if keras.backend.backend() == "tensorflow":
            logs = backend.per_replica_logs(logs)
        return logs

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # The compiled metrics are built by the first call: compute them
        # first, then the per-episode statistics over all of them.
        if isinstance(y_pred, dict):
            y_pred = y_pred["predictions"]
        if y is not None and isinstance(x, dict) and (
                episode.QUERY_INPUTS in x):
            y = self._check_labels(y, "query_labels", x[episode.QUERY_INPUTS])
        logs = super().compute_metrics(x, y, y_pred, sample_weight)
        if not _in_train_step(self) and y is not None:
            values = self._per_episode_values(y, y_pred, sample_weight)
            if not self.episode_statistics.names:
                self.episode_statistics.set_names(list(values))
            self.episode_statistics.update_state(
                ops.stack(list(values.values()), axis=1)
            )
            logs.update(self.episode_statistics.result())
        return logs

    @property
    def metrics_names(self):
        """The names of the values `evaluate(return_dict=False)` returns,
        in order: the loss and each compiled metric, then their 95%
        confidence-interval half-widths (`*_ci95`), sorted."""
        names = []
        for metric in self.metrics:
            if metric is self.episode_statistics:
                continue
            nested = getattr(metric, "metrics", None)
            if isinstance(nested, list):
                names += [m.name for m in nested]
            else:
                names.append(metric.name)
        return names + sorted(f"{name}_ci95" for name in names)

    def get_metrics_result(self):
        result = super().get_metrics_result()
        if _in_train_step(self):
            for key in self.episode_statistics.result_names():
                result.pop(key, None)
        return result

    def _compiled_metric_objects(self, weighted_only=False):
        # The compiled metrics live in one container metric whose `metrics`
        # lists them; the loss tracker and per-output loss trackers have none.
        for metric in self.metrics:
            nested = getattr(metric, "metrics", None)
            if not isinstance(nested, list):
                continue
            if weighted_only:
                # One `MetricsList` per output (or `None`).
                nested = [m for group in getattr(
                    metric, "_flat_weighted_metrics", []) if group
                    for m in getattr(group, "metrics", [group])]
            yield from nested

    def _per_episode_values(self, y, y_pred, sample_weight):
        """Loss and each compiled metric computed separately per task."""
        loss_fn = (
            _unreduced(self.loss)
            if self.loss is not None
            and not isinstance(self.loss, (dict, list, tuple))
            else None
        )
        metrics = list(self._compiled_metric_objects())
        # As Keras does, only `weighted_metrics` see the sample weights.
        weighted = {id(m) for m in self._compiled_metric_objects(
            weighted_only=True)}
        initial = [m.stateless_reset_state() for m in metrics]
        names = (["loss"] if loss_fn is not None else []) + [
            m.name for m in metrics
        ]

        def per_task(task):
            y_t, p_t, w_t = task
            values = []
            if loss_fn is not None:
                labels = y_t
                if "float" in str(labels.dtype):
                    labels = ops.cast(labels, p_t.dtype)
                losses = ops.cast(loss_fn(labels, p_t), "float32")
                weights = ops.cast(w_t, "float32")
                weights = ops.reshape(
                    weights,
                    ops.shape(weights)
                    + (1,) * (len(losses.shape) - len(weights.shape)),
                )
                weights = ops.broadcast_to(weights, ops.shape(losses))
                values.append(
                    ops.sum(losses * weights) / ops.maximum(ops.sum(weights), 1e-12)
                )
            for metric, state in zip(metrics, initial):
                state = metric.stateless_update_state(
                    state, y_t, p_t,
                    sample_weight=w_t if id(metric) in weighted else None,
                )
                values.append(
                    ops.cast(metric.stateless_result(state), "float32")
                )
            return ops.stack(values)

        if sample_weight is None:
            sample_weight = ops.ones(ops.shape(y)[:2])
        values = backend.map_tasks(
            per_task, (y, y_pred, sample_weight), "float32"
        )
        return {name: values[:, i] for i, name in enumerate(names)}

    # ------------------------------------------------------------------
    # Serialization.
    # ------------------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.model),
                "batch_norm": self.batch_norm,
                "inner_loss": (
                    None
                    if self.inner_loss is None
                    else keras.saving.serialize_keras_object(self.inner_loss)
                ),
                "task_gradients": self.task_gradients,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # Keras's deserialization consumes nested configs: work on a copy.
        config = copy.deepcopy(config)
        model_config = config["model"]
        config["model"] = keras.saving.deserialize_keras_object(model_config)
        if not config["model"].weights:
            # A subclassed model gets its weights when first called.
            input_shape = (model_config.get("build_config") or {}).get(
                "input_shape"
            )
            ensure_weights(config["model"], input_shape)
        if config.get("inner_loss") is not None:
            config["inner_loss"] = keras.losses.get(config["inner_loss"])
        return cls(**config)
