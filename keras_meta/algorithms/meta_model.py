"""`MetaModel`: the Keras integration that every algorithm inherits.

`MetaModel` holds the hook contract (`adapt_task`, `predict_task`,
`build_adapted_model`), `call()` and `adapt()`, the loss and Keras's train
step; it delegates the rest to rooms of their own:

- `keras_meta.algorithms.trainer`: what it adds to Keras's `compile()`,
  `fit()`, `evaluate()` and `predict()` on every backend;
- `keras_meta.backend.trainer`: the backend's trainer (task-by-task
  gradients, strategies and traced predict steps on TensorFlow, scanned
  executions on JAX), as Keras picks its own;
- `keras_meta.algorithms.batch_norm_modes`: how networks run under each
  `batch_norm` mode;
- `keras_meta.episode_checks`: checks of the wrapped model and of episodes;
- `keras_meta.per_episode`: per-episode scores and their confidence
  intervals.
"""

import copy
import json

import keras
from keras import ops

from keras_meta import backend
from keras_meta import episode
from keras_meta import episode_checks
from keras_meta.algorithms.batch_norm_modes import MODES
from keras_meta.algorithms.batch_norm_modes import batch_norm_mode
from keras_meta.algorithms.step_context import tracing_train_step
from keras_meta.algorithms.trainer import Trainer
from keras_meta.backend.promotion import computes_in_float64
from keras_meta.backend.promotion import float64_promotion
from keras_meta.backend.trainer import MetaTrainer
from keras_meta.losses import averages_over_batch
from keras_meta.losses import unreduced
from keras_meta.losses import weighted_mean
from keras_meta.metrics import EpisodeStatistics
from keras_meta.models.inspection import activation_elements
from keras_meta.models.inspection import dense_only
from keras_meta.models.inspection import is_convolutional
from keras_meta.models.surgery import deserialize_model

BATCH_NORM_MODES = tuple(MODES)


@keras.saving.register_keras_serializable(package="keras_meta")
def _checked_preprocessing(preprocessing):
    if preprocessing is None:
        return None
    try:
        return json.loads(json.dumps(dict(preprocessing)))
    except (TypeError, ValueError):
        raise ValueError(
            "`preprocessing` must be a dict of plain JSON values (strings, "
            f"numbers, lists, dicts). Received: {preprocessing!r}.") from None


# `task_gradients="auto"` differentiates task by task from this many bytes
# of layer outputs per batch (`MetaModel._uses_task_gradients`).
TASK_GRADIENT_BYTES = 256 * 2**20


class MetaModel(Trainer, MetaTrainer, keras.Model):
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

    `evaluate()` reports, beside each compiled metric, its mean over
    episodes and the half-width of that mean's 95% confidence interval
    (`accuracy_episode_mean`, `accuracy_ci95`; see `keras_meta.metrics`).

    Args:
        model: A built `keras.Model` mapping inputs to predictions (logits
            for classification).
        batch_norm: String, how BatchNormalization layers in `model`
            normalize query sets (support sets always use their own batch
            statistics; `keras_meta.algorithms.batch_norm_modes` says how
            each mode treats moving statistics, frozen layers and Dropout):

            - `"inductive"` (the default): with the statistics of the task's
              support set under the adapted weights (MetaBN, Bronskill et
              al., 2020), in training and at test time alike. Each query is
              predicted on its own, and `adapt()` returns a stock Keras
              model whose BatchNormalization layers hold those statistics.
            - `"transductive"`: each query set with its own batch
              statistics, as in the MAML paper's code and published
              numbers. A query's prediction then depends on the other
              queries in its batch; `adapt()` returns a
              `keras_meta.models.BatchStatisticsModel` (predict a query set
              in one batch).
            - `"per_step"` (MAML++, accepted by `keras_meta.MAML` and its
              subclasses): transductive statistics, and every inner step
              gets its own meta-learned BatchNormalization scale and offset.
        inner_loss: Optional loss (name, function or `keras.losses.Loss`)
            for adaptation on the support set. Defaults to the compiled
            loss. Either way it is computed unreduced and averaged here, so
            a distribution strategy never rescales inner steps.
        task_gradients: `"auto"` (the default), `True` or `False`. With
            `True`, the TensorFlow and torch backends adapt, predict and
            differentiate each task in turn and sum the tasks' gradients
            (one task's activations in memory at a time); exact when a
            batch's loss is the mean of its tasks' losses, as for every
            compiled loss reduced by `"sum_over_batch_size"` (Keras's
            default). `False` differentiates the whole meta-batch at once,
            as the JAX backend always does. `"auto"` goes task by task
            where that is exact, for convolutional models, for batches
            whose layer outputs would take 256 MiB or more and for learners
            with `remat_inner_steps=True`; small dense models run faster
            whole.
        preprocessing: Optional dict, saved with the learner, describing
            how raw inputs become model inputs, so that a loaded learner
            can prepare new data itself; plain JSON values only. `keras-meta
            train` on an image folder stores `{"kind": "image",
            "image_size": [height, width], "channels": 1 or 3}` and
            `keras-meta predict` reads it. Defaults to `None`.
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
        task_gradients="auto", preprocessing=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.preprocessing = _checked_preprocessing(preprocessing)
        owner = type(self).__name__
        if task_gradients not in ("auto", True, False):
            raise ValueError(
                "`task_gradients` must be 'auto', True or False. Received: "
                f"task_gradients={task_gradients!r}."
            )
        episode_checks.check_wrapped_model(
            model, owner,
            owner != "MetaModel" and self.requires_trainable_model)
        mode = batch_norm_mode(batch_norm, owner)
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
        object.__setattr__(self, "_batch_norm_mode", mode)
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

    def uses_query_labels(self):
        """Whether training passes the query labels to `call()` too, in
        `inputs[keras_meta.episode.QUERY_LABELS]` (Reptile adapting on the
        query set, the latent posterior of attentive neural processes).
        `False` unless a subclass says otherwise."""
        return False

    def on_epoch_begin(self, epoch):
        """Called by `fit()` before each epoch, for schedules kept by the
        meta-learner itself (MAML++'s annealed step losses and its switch
        from first to second order). Epochs count from 0, and resumed runs
        (`initial_epoch`, `BackupAndRestore`) see the true epoch."""

    def prepare_normalization(self, model):
        """Prepares `model` (the wrapped model, or another network the
        learner runs with the same semantics, such as a relation module)
        for `run_model` and `run_query`."""
        self._batch_norm_mode.prepare(model)

    def run_model(self, weights, state, inputs, training, model=None):
        """Runs a network (default: the wrapped model) on `weights`,
        normalizing `inputs` with their own batch statistics; Dropout-like
        layers are active only if `training`. Returns `(outputs,
        new_state)`."""
        return self._batch_norm_mode.run_model(
            self.model if model is None else model, weights, state, inputs,
            training)

    def support_statistics(self, weights, state, support_inputs, training,
                           model=None):
        """`(support_outputs, state)`: in the inductive mode the state
        holds the support set's batch statistics under `weights` as moving
        statistics; otherwise it is `state` unchanged."""
        return self._batch_norm_mode.support_statistics(
            self.model if model is None else model, weights, state,
            support_inputs, training)

    def run_query(self, weights, state, query_inputs, training,
                  support_inputs, model=None, statistics=None):
        """Runs a network on query examples as `batch_norm` says: with the
        support set's statistics (inductive; `statistics` if already
        computed by `support_statistics`) or their own (transductive).
        Returns `(outputs, new_state)`."""
        return self._batch_norm_mode.run_query(
            self.model if model is None else model, weights, state,
            query_inputs, training, support_inputs, statistics)

    def copy_model(self, weights, support_inputs, model=None):
        """A copy of a network holding `weights` that predicts as
        `run_query` does after adapting on `support_inputs`: a stock Keras
        model, or a `keras_meta.models.BatchStatisticsModel` in the
        transductive modes."""
        return self._batch_norm_mode.copy_model(
            self.model if model is None else model, weights, support_inputs)

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
        return unreduced(loss)

    def support_loss(self, labels, predictions, loss_fn=None, weights=None):
        """Mean of the unreduced inner loss over one task's examples.

        With `weights` (0 for padding), the weighted mean over real ones.
        """
        loss_fn = loss_fn or self.inner_loss_fn()
        if "float" in str(labels.dtype):
            labels = ops.cast(labels, predictions.dtype)
        return weighted_mean(loss_fn(labels, predictions), weights)

    def output_dtype(self, query_inputs):
        """The dtype of the predictions for `query_inputs`."""
        spec = self.model.compute_output_spec(
            keras.KerasTensor(
                tuple(query_inputs.shape[1:]), dtype=query_inputs.dtype
            )
        )
        return spec.dtype

    def task_output_dtypes(self, query_inputs, training):
        """The dtypes of what `call` returns per task (a nest)."""
        prediction = self.output_dtype(query_inputs)
        keys = self.task_output_keys(training)
        if keys is None:
            return prediction
        return {
            key: (self.model.variable_dtype
                  if key == "auxiliary_loss" else prediction)
            for key in keys
        }

    def num_outputs(self, example_shape, dtype):
        """The size of the last axis of the predictions for examples of
        `example_shape` (the classes a classifier tells apart), or `None`
        where the predictions have no such axis."""
        spec = self.model.compute_output_spec(
            keras.KerasTensor((None,) + tuple(example_shape), dtype=dtype)
        )
        if not hasattr(spec, "shape") or not spec.shape:
            return None
        return spec.shape[-1]

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

    def call(self, inputs, training=False):
        episode.check_episode_inputs(inputs, type(self).__name__)
        inputs = dict(inputs)
        inputs[episode.SUPPORT_LABELS] = episode_checks.check_labels(
            self, inputs[episode.SUPPORT_LABELS], "support_labels",
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
            return self.task_output_dtypes(query_inputs, training)

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
        return self.vectorizable and dense_only(self.model)

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
        episode_checks.check_single_task(self, support_inputs, support_labels)
        with self.float64_scope():
            task_state = self.adapt_task(
                self.meta_parameters(), support_inputs, support_labels, False
            )
            return self.build_adapted_model(task_state, support_inputs)

    # ------------------------------------------------------------------
    # Keras integration.
    # ------------------------------------------------------------------

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        y = self._checked_query_labels(x, y)
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

    def _checked_query_labels(self, x, y):
        if y is not None and isinstance(x, dict) and (
                episode.QUERY_INPUTS in x):
            return episode_checks.check_labels(
                self, y, "query_labels", x[episode.QUERY_INPUTS])
        return y

    def _uses_task_gradients(self, data):
        """Whether a training step on the TensorFlow or torch backend sums
        per-task gradients (`task_gradients`); the JAX trainer always
        differentiates whole batches.

        `"auto"` takes them where that is exact (`_loss_is_mean_over_tasks`)
        and pays: for learners that rematerialize their inner loop, for a
        wrapped model with a convolution or max-pooling
        layer, and wherever the layer outputs of the batch `data` would
        take `TASK_GRADIENT_BYTES` or more (known for Sequential and
        functional models). Small dense models run faster whole.
        """
        if not self.task_gradients:
            return False
        if self.task_gradients is True:
            return True
        if not self._loss_is_mean_over_tasks():
            return False
        if getattr(self, "remat_inner_steps", False):
            # A rematerialized inner loop saves memory task by task (and
            # on TensorFlow needs its tape inside the loop over tasks).
            return True
        convolutional, _ = self._model_facts()
        return (convolutional
                or self._batch_activation_bytes(data) >= TASK_GRADIENT_BYTES)

    def _model_facts(self):
        """`(is_convolutional, activation_elements)` of the wrapped model,
        computed once per model (the torch trainer asks every step)."""
        facts = getattr(self, "_inspected_model_facts", None)
        if facts is None or facts[0] != id(self.model):
            facts = (id(self.model), is_convolutional(self.model),
                     activation_elements(self.model))
            self._inspected_model_facts = facts
        return facts[1:]

    def _batch_activation_bytes(self, data):
        """Bytes of the wrapped model's layer outputs for a whole batch.

        Summed over the layers of a Sequential or functional model, for
        every support and query example of the batch; 0 where a shape is
        unknown (subclassed models), which keeps whole-batch gradients.
        """
        _, per_example = self._model_facts()
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

    def task_gradient_parallelism(self):
        """How many tasks a task-by-task training step on TensorFlow
        differentiates at once (`task_gradients`), where
        `keras_meta.backend.tensorflow.TASK_GRADIENT_PARALLELISM` is
        `"auto"` (the default).

        Each task in flight holds its own activations. Two keep both cores
        of a small machine busy where one task's work would leave them
        idle; learners whose tasks hold more (a second-order inner loop)
        return 1. Read when the training step is traced.
        """
        return 2

    def _loss_is_mean_over_tasks(self):
        """Whether a batch's loss is the mean of its tasks' losses, so
        that the tasks' gradients add up to the batch's (`task_gradients`):
        `compute_loss` not overridden, the compiled loss averaging."""
        return (type(self).compute_loss is MetaModel.compute_loss
                and averages_over_batch(self.loss))

    def train_step(self, *args, **kwargs):
        if self.uses_query_labels():
            # The JAX trainer's step takes `(state, data)`.
            *rest, data = args
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            if isinstance(x, dict) and y is not None:
                x = {**x, episode.QUERY_LABELS: y}
            args = (*rest, keras.utils.pack_x_y_sample_weight(
                x, y, sample_weight))
        # Read while the step is traced: training logs report the compiled
        # metrics only, evaluation logs add their confidence intervals.
        with tracing_train_step(self), self.float64_scope():
            return super().train_step(*args, **kwargs)

    def test_step(self, *args, **kwargs):
        with self.float64_scope():
            return super().test_step(*args, **kwargs)

    def predict_step(self, *args, **kwargs):
        with self.float64_scope():
            return super().predict_step(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        with self.float64_scope():
            return super().__call__(*args, **kwargs)

    def float64_scope(self):
        """A context in which a float64 learner computes in float64 on
        every backend (`keras_meta.backend.promotion`): entered around the
        training, test and prediction steps, calls and `adapt()`. Does
        nothing for other dtypes and on TensorFlow."""
        return float64_promotion(computes_in_float64(self.model))

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
        if self.preprocessing is not None:
            config["preprocessing"] = copy.deepcopy(self.preprocessing)
        return config

    @classmethod
    def from_config(cls, config):
        # Keras's deserialization consumes nested configs: work on a copy.
        config = copy.deepcopy(config)
        config["model"] = deserialize_model(config["model"])
        if config.get("inner_loss") is not None:
            config["inner_loss"] = keras.losses.get(config["inner_loss"])
        return cls(**config)
