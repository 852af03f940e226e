"""keras_meta's additions to Keras's TensorFlow trainer.

`MetaTrainer` stands between `MetaModel` and `keras.Model` when the backend
is TensorFlow, as Keras puts its TensorFlow trainer under `keras.Model`:
gradients summed task by task, steps under a distribution strategy,
building from one replica's share of the first batch, and one traced
predict step per execution.

Where `task_gradients="auto"` takes gradients task by task
(`MetaModel._uses_task_gradients`: convolutional models and large
batches), the gradients of convolutions and max pooling run on oneDNN's
kernels, which TensorFlow cannot use in the gradient of a loop over tasks
(`benchmarks/conv_step.py` measures the difference).
"""

import warnings

import keras
import tensorflow as tf
from keras import ops

from keras_meta import episode
from keras_meta.backend import tensorflow as tf_backend


class _StepFunction:
    """Holds a traced step out of sight of TensorFlow's object tracking
    (which would export a `tf.function` attribute with the model)."""

    def __init__(self, function):
        self.function = function


class MetaTrainer:
    """Mixed in under `MetaModel` on the TensorFlow backend."""

    def train_step(self, data):
        tf_backend.check_even_split(data)
        if self._uses_task_gradients(data):
            logs = self._train_step_by_task(data)
        else:
            logs = super().train_step(data)
        return tf_backend.per_replica_logs(logs)

    def test_step(self, data):
        tf_backend.check_even_split(data)
        return tf_backend.per_replica_logs(super().test_step(data))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy, build from one replica's share of the first
        # batch (see `local_batch`).
        if iterator is not None and getattr(
                self, "_distribute_strategy", None) is not None:
            with self.distribute_strategy.scope():
                for _, _, batches in iterator:
                    data_batch = tf_backend.local_batch(next(batches))
                    break
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch)

    def make_predict_function(self, force=False):
        """Keras's, except that an execution of several steps calls one
        traced step.

        Keras unrolls `steps_per_execution` predict steps into the traced
        function, so a meta-step's inner loop was traced once per step of
        an execution (50 times for the sinusoid job), and again for each
        new `eval_inner_steps`.
        """
        if self.predict_function is not None and not force:
            return self.predict_function
        step = None
        if (self.steps_per_execution > 1 and not self.run_eagerly
                and not self.jit_compile):
            step = _StepFunction(tf.function(
                super().predict_step, reduce_retracing=True,
                experimental_attributes={"_noinline": True}))
        object.__setattr__(self, "_predict_step_function", step)
        return super().make_predict_function(force)

    def predict_step(self, data):
        step = getattr(self, "_predict_step_function", None)
        if step is not None:
            return step.function(data)
        return super().predict_step(data)

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
        parallelism = tf_backend.TASK_GRADIENT_PARALLELISM
        if parallelism == "auto":
            parallelism = self.task_gradient_parallelism()
        y_pred, loss, gradients = tf_backend.sum_task_gradients(
            task_step, (x, y, sample_weight), weights,
            self.task_output_dtypes(query_inputs, True), scale_loss,
            parallelism=parallelism)
        # As Keras does: the tracker shows the loss before the strategy's
        # division by the replica count.
        replicas = tf_backend.num_replicas()
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
