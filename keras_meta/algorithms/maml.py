"""Model-Agnostic Meta-Learning."""

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta import inner
from keras_meta.algorithms.gradient_steps import eval_inner_steps_property
from keras_meta.algorithms.meta_model import MetaModel
from keras_meta.checks import check_count
from keras_meta.models.surgery import walk_layers


@keras.saving.register_keras_serializable(package="keras_meta")
class MAML(MetaModel):
    """Model-Agnostic Meta-Learning.

    Meta-learns an initialization of the wrapped model's weights from which
    a few gradient steps on a task's support set give good predictions on
    its query set. The meta-gradient differentiates through the inner
    steps (second order) unless `first_order=True`.

    Args:
        model: A built `keras.Model` mapping inputs to predictions (logits
            for classification).
        inner_learning_rate: Float, size of each adaptation step (the
            initial value when `learn_inner_learning_rates=True`). Defaults
            to `0.01`.
        num_inner_steps: Int, adaptation steps per task during training.
            Defaults to `1`.
        eval_inner_steps: Int, adaptation steps when evaluating, predicting
            and in `adapt()`; may exceed `num_inner_steps` (0 gives the
            unadapted model). Defaults to `num_inner_steps`.
        first_order: Bool. If `True`, the meta-gradient ignores second
            derivatives (first-order MAML): cheaper, and memory does not
            grow with the number of inner steps. Defaults to `False`.
        learn_inner_learning_rates: Bool. MAML++'s LSLR: a learned inner
            learning rate per weight tensor and per inner step, meta-trained
            with the initialization and saved with the model. Steps beyond
            `num_inner_steps` (see `eval_inner_steps`) reuse the last step's
            rates. Defaults to `False`.
        multi_step_loss_epochs: Optional int. MAML++'s multi-step loss:
            during the first `multi_step_loss_epochs` epochs of `fit()`, the
            training loss is a weighted sum of the query losses after every
            inner step, the weights moving linearly from uniform towards the
            last step (the earlier steps' weights fall to at least
            `0.03 / num_inner_steps`); afterwards only the last step counts.
            Defaults to `None` (the last step's loss throughout).
        first_order_epochs: Int. MAML++'s derivative-order annealing: train
            first-order for this many epochs of `fit()`, then second order
            (the training step is retraced once at the switch). Defaults to
            `0`.
        adapt_normalization: Bool. If `False`, the scales and offsets of
            the normalization layers (BatchNormalization,
            LayerNormalization, GroupNormalization) stay out of the inner
            loop and are learned by the outer loop alone, as in the MAML
            paper's reference code. Defaults to `True` (every trainable
            weight adapts).
        remat_inner_steps: Bool. Rematerialize the inner loop in training:
            the meta-gradient's backward pass recomputes each inner step
            from its input weights instead of keeping its activations, so
            the activations kept no longer grow with `num_inner_steps`,
            for about one more forward and inner backward pass per step
            (see the benchmarks' memory section for the measured trade).
            Training goes task by task (`task_gradients`). No effect on
            first-order training. Defaults to `False`.
        batch_norm: See `keras_meta.MetaModel`. Defaults to
            `"inductive"`. `"per_step"` is MAML++'s per-step BatchNorm:
            statistics are those of each step's batch (support set at inner
            step `j`, query set after the last), and every step gets its own
            meta-learned BatchNormalization scale and offset, which the
            inner loop does not adapt. Evaluation beyond `num_inner_steps`
            reuses the last step's.
        inner_loss: See `keras_meta.MetaModel`. Defaults to the compiled
            loss.

    MAML++'s cosine-annealed outer learning rate is an ordinary Keras
    schedule: `compile(optimizer=keras.optimizers.Adam(
    keras.optimizers.schedules.CosineDecay(1e-3, decay_steps)))`.

    Example:

    ```python
    maml = keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=5), inner_learning_rate=0.4)
    maml.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    maml.fit(train_episodes, validation_data=val_episodes, epochs=5)
    learner = maml.adapt(support_inputs, support_labels)  # a keras.Model
    ```

    MAML++ is this class with its options on:

    ```python
    maml_plus_plus = keras_meta.MAML(
        model, inner_learning_rate=0.1, num_inner_steps=5,
        learn_inner_learning_rates=True, multi_step_loss_epochs=10,
        first_order_epochs=50)
    ```

    References:
        - [Finn et al., 2017](https://arxiv.org/abs/1703.03400)
        - [Antoniou et al., 2019](https://arxiv.org/abs/1810.09502)
          (MAML++)
    """

    batch_norm_modes = ("inductive", "transductive", "per_step")

    def __init__(
        self,
        model,
        *,
        inner_learning_rate=0.01,
        num_inner_steps=1,
        eval_inner_steps=None,
        first_order=False,
        learn_inner_learning_rates=False,
        multi_step_loss_epochs=None,
        first_order_epochs=0,
        adapt_normalization=True,
        remat_inner_steps=False,
        **kwargs,
    ):
        super().__init__(model, **kwargs)
        if (
            isinstance(inner_learning_rate, bool)
            or not isinstance(inner_learning_rate, (int, float))
            or not inner_learning_rate > 0
        ):
            raise ValueError(
                "`inner_learning_rate` must be a positive number. Received: "
                f"inner_learning_rate={inner_learning_rate!r}."
            )
        check_count("num_inner_steps", num_inner_steps, 1)
        if multi_step_loss_epochs is not None:
            check_count("multi_step_loss_epochs", multi_step_loss_epochs, 1)
        check_count("first_order_epochs", first_order_epochs, 0)
        if eval_inner_steps is None:
            eval_inner_steps = num_inner_steps
        self.inner_learning_rate = float(inner_learning_rate)
        self.num_inner_steps = num_inner_steps
        self.eval_inner_steps = eval_inner_steps
        self.first_order = bool(first_order)
        self.learn_inner_learning_rates = bool(learn_inner_learning_rates)
        self.multi_step_loss_epochs = multi_step_loss_epochs
        self.first_order_epochs = first_order_epochs
        self._use_first_order = self.first_order or first_order_epochs > 0
        self.adapt_normalization = bool(adapt_normalization)
        self.remat_inner_steps = bool(remat_inner_steps)
        self._fixed_norm_indices = []
        if not self.adapt_normalization:
            self._fixed_norm_indices = _normalization_weight_indices(model)
            if not self._fixed_norm_indices:
                raise ValueError(
                    "adapt_normalization=False keeps the normalization "
                    "layers' scales and offsets out of the inner loop, but "
                    f"the model '{model.name}' has no trainable "
                    "normalization weights. Leave adapt_normalization=True.")
        if self.learn_inner_learning_rates:
            self.step_learning_rates = self.add_weight(
                shape=(num_inner_steps, len(model.trainable_variables)),
                initializer=keras.initializers.Constant(inner_learning_rate),
                name="step_learning_rates",
            )
        self._norm_indices = []
        if self.batch_norm == "per_step":
            self._norm_indices = _batch_norm_weight_indices(model)
            if not self._norm_indices:
                raise ValueError(
                    "batch_norm='per_step' gives each inner step its own "
                    "BatchNormalization scale and offset, but the model "
                    f"'{model.name}' has no trainable BatchNormalization "
                    "weights. Use batch_norm='inductive' or 'transductive'.")
            variables = model.trainable_variables
            # One copy per forward pass: the support set at each step, and
            # the query set after the last.
            self.step_norm_weights = [
                self.add_weight(
                    shape=(num_inner_steps + 1,) + tuple(variables[i].shape),
                    # Contiguous: a broadcast array's strides became a
                    # strided torch weight.
                    initializer=keras.initializers.Constant(
                        np.ascontiguousarray(np.broadcast_to(
                            ops.convert_to_numpy(variables[i].value),
                            (num_inner_steps + 1,)
                            + tuple(variables[i].shape)))),
                    name=f"step_{variables[i].name}",
                )
                for i in self._norm_indices
            ]
        if multi_step_loss_epochs is not None:
            self.step_loss_importance = self.add_weight(
                shape=(num_inner_steps,),
                initializer=keras.initializers.Constant(
                    1.0 / num_inner_steps),
                trainable=False,
                name="step_loss_importance",
            )

    eval_inner_steps = eval_inner_steps_property

    @property
    def trainable_weights(self):
        weights = super().trainable_weights
        if not self._norm_indices:
            return weights
        # Per-step BatchNorm replaces the wrapped model's own scale and
        # offset in every pass: they get no gradient, so the optimizer
        # leaves them out (and does not warn that their gradients are
        # missing).
        variables = self.model.trainable_variables
        unused = {id(variables[i]) for i in self._norm_indices}
        return [w for w in weights if id(w) not in unused]

    def inner_steps(self, training):
        return self.num_inner_steps if training else self.eval_inner_steps

    # ------------------------------------------------------------------
    # Hooks of the MAML family.
    # ------------------------------------------------------------------

    def meta_parameters(self):
        params = super().meta_parameters()
        if self.learn_inner_learning_rates:
            params["step_learning_rates"] = backend.read_value(
                self.step_learning_rates)
        if self._norm_indices:
            params["step_norm_weights"] = [
                backend.read_value(w) for w in self.step_norm_weights]
        return params

    def with_step_norm(self, params, step, weights):
        """`weights` with step `step`'s BatchNorm scale and offset (per-step
        BatchNorm), or unchanged."""
        if not self._norm_indices:
            return weights
        step = min(step, self.num_inner_steps)
        weights = list(weights)
        for index, values in zip(self._norm_indices,
                                 params["step_norm_weights"]):
            weights[index] = values[step]
        return weights

    def _adapted_mask(self):
        mask = self.inner_mask()
        fixed = self._norm_indices + self._fixed_norm_indices
        if not fixed:
            return mask
        count = len(self.model.trainable_variables)
        mask = [True] * count if mask is None else list(mask)
        for index in fixed:
            mask[index] = False
        return mask

    def inner_mask(self):
        """Which of the wrapped model's trainable weights adapt (a list of
        bools), or `None` for all of them."""
        return None

    def inner_learning_rates(self, params):
        """The inner step size: a float, per-weight rates, or a callable of
        the step index (see `keras_meta.inner.gradient_descent`)."""
        if not self.learn_inner_learning_rates:
            return self.inner_learning_rate
        rates = params["step_learning_rates"]
        count = rates.shape[1]

        def at_step(step):
            step = min(step, self.num_inner_steps - 1)
            return [rates[step, i] for i in range(count)]

        return at_step

    def step_loss_weights(self):
        return backend.read_value(self.step_loss_importance)

    def task_output_keys(self, training):
        if training and self.multi_step_loss_epochs is not None:
            return ("predictions", "step_predictions")
        return None

    def on_epoch_begin(self, epoch):
        if self.multi_step_loss_epochs is not None:
            self.step_loss_importance.assign(
                step_loss_importance(
                    epoch, self.num_inner_steps, self.multi_step_loss_epochs
                ).astype(self.step_loss_importance.dtype)
            )
        use_first_order = self.first_order or epoch < self.first_order_epochs
        if use_first_order != self._use_first_order:
            self._use_first_order = use_first_order
            if self.train_function is not None:
                self.make_train_function(force=True)

    # ------------------------------------------------------------------
    # MetaModel hooks.
    # ------------------------------------------------------------------

    def task_gradient_parallelism(self):
        # A second-order task keeps its inner steps' graph for the outer
        # backward pass, and its work alone fills two cores: one at a time
        # (docs/benchmarks.md, "Speed and memory of a convolutional
        # meta-step"). First-order tasks hold less and gain from overlap.
        if self._use_first_order or not self.num_inner_steps:
            return super().task_gradient_parallelism()
        return 1

    def adapt_task(self, params, support_inputs, support_labels, training,
                   support_weights=None):
        loss_fn = self.inner_loss_fn()

        def support_objective(weights, state):
            predictions, state = self.run_model(
                weights, state, support_inputs, training
            )
            loss = self.support_loss(
                support_labels, predictions, loss_fn, support_weights
            )
            return loss, state

        return inner.gradient_descent(
            support_objective,
            params["weights"],
            params["state"],
            learning_rate=self.inner_learning_rates(params),
            num_steps=self.inner_steps(training),
            first_order=self._use_first_order,
            mask=self._adapted_mask(),
            remat=self.remat_inner_steps and training,
            trajectory=self.task_output_keys(training) is not None,
            step_weights=(
                (lambda step, weights: self.with_step_norm(
                    params, step, weights))
                if self._norm_indices else None),
        )

    def predict_task(self, params, task_state, query_inputs, training,
                     support_inputs):
        if self.task_output_keys(training) is None:
            weights, state = task_state
            weights = self.with_step_norm(
                params, self.inner_steps(training), weights)
            predictions, _ = self.run_query(
                weights, state, query_inputs, training, support_inputs)
            return predictions
        steps = [
            self.run_query(self.with_step_norm(params, step + 1, weights),
                           state, query_inputs, training, support_inputs)[0]
            for step, (weights, state) in enumerate(task_state)
        ]
        return {"predictions": steps[-1],
                "step_predictions": ops.stack(steps)}

    def build_adapted_model(self, task_state, support_inputs):
        weights, _ = task_state
        if self._norm_indices:
            weights = self.with_step_norm(
                self.meta_parameters(), self.eval_inner_steps, weights)
        return self.copy_model(weights, support_inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inner_learning_rate": self.inner_learning_rate,
                "num_inner_steps": self.num_inner_steps,
                "eval_inner_steps": self.eval_inner_steps,
                "first_order": self.first_order,
                "learn_inner_learning_rates": self.learn_inner_learning_rates,
                "multi_step_loss_epochs": self.multi_step_loss_epochs,
                "first_order_epochs": self.first_order_epochs,
                "adapt_normalization": self.adapt_normalization,
                "remat_inner_steps": self.remat_inner_steps,
            }
        )
        return config


def step_loss_importance(epoch, num_steps, num_epochs):
    """MAML++'s weights of the per-step query losses at an epoch.

    Uniform at epoch 0; each earlier step's weight then falls by
    `1 / (num_steps * num_epochs)` per epoch down to `0.03 / num_steps`, the
    last step taking the rest; from `num_epochs` on only the last step
    counts.

    Returns:
        A NumPy array of `num_steps` weights summing to 1.
    """
    weights = np.zeros(num_steps)
    if epoch >= num_epochs:
        weights[-1] = 1.0
        return weights
    floor = 0.03 / num_steps
    weights[:-1] = np.maximum(
        1.0 / num_steps - epoch / (num_steps * num_epochs), floor)
    weights[-1] = 1.0 - weights[:-1].sum()
    return weights


def _normalization_weight_indices(model):
    """Indices in `model.trainable_variables` of the normalization layers'
    scales and offsets."""
    kinds = (keras.layers.BatchNormalization,
             keras.layers.LayerNormalization,
             keras.layers.GroupNormalization)
    owned = set()
    for layer in walk_layers(model):
        if isinstance(layer, kinds):
            owned.update(id(v) for v in layer.trainable_variables)
    return [i for i, v in enumerate(model.trainable_variables)
            if id(v) in owned]


def _batch_norm_weight_indices(model):
    """Indices in `model.trainable_variables` of BatchNorm scales/offsets."""
    owned = set()
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            owned.update(id(v) for v in layer.trainable_variables)
    return [i for i, v in enumerate(model.trainable_variables)
            if id(v) in owned]
