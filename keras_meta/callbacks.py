"""Callbacks for long meta-training runs."""

import json
import os
import shutil

import keras

_POINTER = "latest"


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore`, atomic and exact for meta-learners.

    Keras's callback writes the weights and a JSON of the epoch in place, one
    after the other: a process killed while writing leaves a truncated file,
    or new weights beside the old epoch. This one writes each backup (the
    meta-learner's weights with its optimizer state, learned inner rates and
    random-generator state, and the epoch reached) into a fresh folder, then
    switches a one-line pointer file to it with an atomic rename: a backup
    is whole or absent, whenever the process dies.

    Resuming is exact. `MetaModel.fit()` reads the epoch reached before it
    starts and, for an endless episode pipeline with `steps_per_epoch`
    (such as `keras_meta.data.episodes`, whose episode `i` is a pure function
    of its seed and `i`), skips the episodes already trained on, so the
    resumed run sees the same episode stream as an uninterrupted one. With
    deterministic ops (`tf.config.experimental.enable_op_determinism()`)
    the final weights are then bitwise equal.

    Backups are taken at the end of each epoch: Keras resumes at epoch
    boundaries, so a mid-epoch backup could not be resumed exactly.

    Under `tf.distribute.MultiWorkerMirroredStrategy`, give each worker its
    own folder. A worker killed while writing a backup can leave the other
    workers one epoch ahead of it (their backups of that epoch are whole,
    its own is not), so each worker keeps its two newest backups, and a
    resumed `fit()` first agrees with the other workers on the newest
    epoch every worker has (one gather of one number) and restores that
    one everywhere: the workers never resume at different epochs.

    Args:
        backup_dir: String, the folder for backups (created if needed).
        delete_checkpoint: Bool, whether to delete the backups once
            training finishes. Defaults to `True`.
    """

    def __init__(self, backup_dir, delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch",
                         delete_checkpoint=delete_checkpoint)
        self._agreed_epoch = None

    def restored_epoch(self, strategy=None):
        """The epoch a resumed `fit()` starts at (0 without a backup).

        Under a multi-worker strategy (`strategy`, or the model's), the
        newest epoch whose backup every worker holds; each worker must call
        this the same number of times (`fit()` does).
        """
        if self._agreed_epoch is None:
            folder = self._latest_folder()
            epoch = 0
            if folder is not None:
                with open(os.path.join(folder,
                                       "training_metadata.json")) as f:
                    epoch = int(json.load(f)["epoch"])
            if strategy is None and self.model is not None:
                strategy = getattr(self.model, "distribute_strategy", None)
            self._agreed_epoch = _agree_across_workers(epoch, strategy)
        return self._agreed_epoch

    def _latest_folder(self):
        pointer = os.path.join(self.backup_dir, _POINTER)
        if not os.path.isfile(pointer):
            return None
        with open(pointer) as f:
            name = f.read().strip()
        folder = os.path.join(self.backup_dir, name)
        if not os.path.isdir(folder):
            raise ValueError(
                f"The backup pointer {pointer!r} names {name!r}, which does "
                "not exist: the backup folder was modified by hand. Delete "
                f"{self.backup_dir!r} to start over."
            )
        return folder

    def on_train_begin(self, logs=None):
        epoch = self.restored_epoch()
        if epoch == 0:
            return
        folder = os.path.join(self.backup_dir, _folder_name(epoch))
        if not os.path.isdir(folder):
            raise ValueError(
                f"The workers agreed to resume at epoch {epoch}, but this "
                f"worker's backup folder {self.backup_dir!r} holds no whole "
                f"backup of it ({os.listdir(self.backup_dir)}). Each worker "
                "needs its own backup folder, kept between restarts; "
                "delete every worker's folder to start over.")
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(folder, "model.weights.h5"))
        self.model._initial_epoch = epoch
        self._current_epoch = epoch

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = _folder_name(self._current_epoch)
        previous = self._latest_folder()
        folder = os.path.join(self.backup_dir, name)
        partial = folder + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        self.model.save_weights(os.path.join(partial, "model.weights.h5"))
        with open(os.path.join(partial, "training_metadata.json"), "w") as f:
            json.dump({"epoch": self._current_epoch}, f)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(partial, folder)
        pointer = os.path.join(self.backup_dir, _POINTER)
        with open(pointer + ".partial", "w") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer + ".partial", pointer)
        # The previous backup stays: another worker may resume there.
        keep = {name, os.path.basename(previous) if previous else None}
        for entry in os.listdir(self.backup_dir):
            if entry.startswith("epoch-") and entry not in keep:
                shutil.rmtree(os.path.join(self.backup_dir, entry),
                              ignore_errors=True)

    def on_train_end(self, logs=None):
        self._agreed_epoch = None
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def _folder_name(epoch):
    return f"epoch-{epoch:06d}"


def _agree_across_workers(epoch, strategy):
    """The smallest of every worker's `epoch` under a multi-worker
    TensorFlow strategy; `epoch` itself otherwise."""
    if strategy is None or keras.backend.backend() != "tensorflow":
        return epoch
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return epoch
    values = strategy.run(lambda: tf.constant([epoch], tf.int64))
    return int(tf.reduce_min(strategy.gather(values, axis=0)).numpy())


def skip_trained_batches(x, callbacks, steps_per_epoch, strategy=None):
    """`x` without the batches a resumed run has already trained on.

    With a `BackupAndRestore` among `callbacks`, an endless dataset (such
    as `keras_meta.data.episodes` or an environment's `task_dataset`, whose
    batch `i` is a pure function of its seed and `i`) and
    `steps_per_epoch`, a run resumed at epoch `e` starts from batch
    `e * steps_per_epoch`, as the uninterrupted run does. A finite dataset
    restarts every epoch, so nothing is skipped.
    """
    backups = [c for c in callbacks or []
               if isinstance(c, BackupAndRestore)]
    if not backups or not steps_per_epoch or not hasattr(x, "skip"):
        return x
    epoch = backups[0].restored_epoch(strategy)
    if epoch <= 0:
        return x
    import tensorflow as tf

    if x.cardinality() != tf.data.INFINITE_CARDINALITY:
        return x
    return x.skip(epoch * steps_per_epoch)


class AdaptationMetrics(keras.callbacks.Callback):
    """Logs what adaptation does, for TensorBoard and the progress bar.

    At the end of every epoch it scores fixed episodes with the compiled
    loss and adds to the epoch's logs:

    - `adaptation_support_loss`: the loss on the support set after
      adapting to it (how well the learner fits what it adapted to);
    - `adaptation_query_loss`: the query loss after adaptation (what
      `evaluate()` reports as `loss`);
    - for learners with inner steps (`eval_inner_steps`: MAML and the
      other gradient-based learners), `adaptation_query_loss_before`, the
      query loss of the initialization (0 inner steps), and
      `adaptation_gain`, before minus after.

    Place it before `keras.callbacks.TensorBoard` in the callback list, so
    that TensorBoard writes these logs too. The episodes are predicted
    eagerly, a few per epoch: keep `num_batches` small. Padding weights of
    variable-way episodes are not applied.

    Args:
        episodes: An episode dataset (or an `(inputs, query_labels)` batch);
            its first `num_batches` batches are scored every epoch.
        num_batches: Int, batches to score. Defaults to `1`.

    Example:

    ```python
    maml.fit(train, epochs=10, callbacks=[
        keras_meta.callbacks.AdaptationMetrics(validation),
        keras.callbacks.TensorBoard("logs")])
    ```
    """

    def __init__(self, episodes, num_batches=1):
        super().__init__()
        if isinstance(episodes, tuple):
            self.batches = [episodes[:2]]
        else:
            self.batches = [batch[:2] for batch in
                            episodes.take(num_batches).as_numpy_iterator()]
        if not self.batches:
            raise ValueError("`AdaptationMetrics` received no episodes.")

    def _loss(self, labels, predictions):
        import numpy as np

        loss = keras.losses.get(self.model.loss)
        predictions = keras.ops.convert_to_numpy(predictions)
        flat = predictions.reshape((-1,) + predictions.shape[2:])
        labels = np.asarray(labels).reshape((len(flat),) + np.shape(
            labels)[2:])
        return float(np.mean(keras.ops.convert_to_numpy(
            loss(labels, flat))))

    def scores(self):
        """The logged values, as a dict of floats."""
        import numpy as np

        from keras_meta import episode

        learner = self.model
        totals = {}

        def add(name, value):
            totals.setdefault(name, []).append(value)

        for inputs, labels in self.batches:
            add("adaptation_query_loss",
                self._loss(labels, learner(inputs, training=False)))
            on_support = dict(inputs)
            on_support[episode.QUERY_INPUTS] = inputs[episode.SUPPORT_INPUTS]
            add("adaptation_support_loss", self._loss(
                inputs[episode.SUPPORT_LABELS],
                learner(on_support, training=False)))
            if hasattr(learner, "eval_inner_steps"):
                steps = learner.eval_inner_steps
                learner.eval_inner_steps = 0
                try:
                    add("adaptation_query_loss_before", self._loss(
                        labels, learner(inputs, training=False)))
                finally:
                    learner.eval_inner_steps = steps
        scores = {name: float(np.mean(values))
                  for name, values in totals.items()}
        if "adaptation_query_loss_before" in scores:
            scores["adaptation_gain"] = (
                scores["adaptation_query_loss_before"]
                - scores["adaptation_query_loss"])
        return scores

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.scores())
