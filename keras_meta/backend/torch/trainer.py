"""keras_meta's additions to Keras's torch trainer: gradients task by task.

Keras's torch trainer differentiates the compiled loss of a batch with one
`loss.backward()`; the inner loops inside the step keep their graphs
(`keras_meta.backend.torch.value_and_grad`), so that backward pass is the
exact meta-gradient, but every task's graph stays alive until it runs.

Where a batch's loss is the mean of its tasks' losses (every compiled
loss reduced by `"sum_over_batch_size"`, unless a learner overrides
`compute_loss()`), `task_gradients=True` adapts, predicts and
differentiates each task in turn, accumulating the gradients of the tasks'
losses divided by the number of tasks in the weights' `.grad`: the same
gradient, with one task's graph in memory at a time. `"auto"` does so
for convolutional models and large batches, as on TensorFlow
(`MetaModel._uses_task_gradients`); for small dense models the fixed cost
of a backward pass per task outweighs the memory saved.
`task_gradients=False` keeps Keras's step.
"""

import warnings

import torch
from keras import tree
from keras.src.trainers import data_adapters

from keras_meta import episode


class MetaTrainer:
    """Mixed in under `MetaModel` on the torch backend."""

    def train_step(self, data):
        if self._uses_task_gradients(data):
            return self._train_step_by_task(data)
        return super().train_step(data)

    def _train_step_by_task(self, data):
        """Keras's torch `train_step`, one task at a time.

        Each task runs as a batch of one through `__call__` and
        `compute_loss`, exactly as the whole batch would, and its loss
        divided by the number of tasks is back-propagated at once; the
        weights' gradients add up to the gradient of the batch's loss.
        """
        x, y, sample_weight = (
            data_adapters.data_adapter_utils.unpack_x_y_sample_weight(data))
        num_tasks = int(x[episode.QUERY_INPUTS].shape[0])
        self.zero_grad()
        trainable_weights = self.trainable_weights[:]
        predictions = []
        loss_sum = 0.0
        for index in range(num_tasks):
            x_t, y_t, weight_t = tree.map_structure(
                lambda e: None if e is None else e[index:index + 1],
                (x, y, sample_weight), none_is_leaf=True)
            if self._call_has_training_arg:
                y_pred = self(x_t, training=True)
            else:
                y_pred = self(x_t)
            loss = self._compute_loss(
                x=x_t, y=y_t, y_pred=y_pred, sample_weight=weight_t,
                training=True) / num_tasks
            loss_sum = loss_sum + loss.detach()
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
            if trainable_weights and loss.requires_grad:
                loss.backward()
            predictions.append(tree.map_structure(
                lambda p: p.detach() if isinstance(p, torch.Tensor) else p,
                y_pred))
        y_pred = tree.map_structure(
            lambda *values: torch.cat(values), *predictions)
        self._loss_tracker.update_state(loss_sum, sample_weight=num_tasks)
        if trainable_weights:
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
        else:
            warnings.warn("The model does not have any trainable weights.")
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
