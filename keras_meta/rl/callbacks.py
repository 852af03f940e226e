"""Callbacks for meta-reinforcement learning."""

import keras
import numpy as np

from keras_meta.metrics import t_95


class AdaptationReturns(keras.callbacks.Callback):
    """Logs the returns after 0..`num_steps` adaptation steps on fixed tasks.

    Every `every` epochs (and after the last), runs
    `MetaPolicyGradient.adaptation_returns` on `tasks` with a fixed noise
    seed and adds `return_step_{k}` (the mean over tasks) and
    `return_step_{k}_ci95` (the half-width of its 95% confidence interval
    over tasks) to the epoch's logs, so `History`, `CSVLogger`,
    `ModelCheckpoint(monitor=...)` and TensorBoard see them.

    With `restore_best_weights=True` it also chooses a checkpoint, as
    `keras.callbacks.EarlyStopping(restore_best_weights=True)` does: the
    weights of the evaluation with the best score (the mean return after
    1..`num_steps` steps, averaged over the steps; the return before
    adaptation when `num_steps=0`) are kept, and set on the model when
    training ends (`best_epoch` and `best_score` say which). Evaluate on
    tasks that are not test tasks when choosing a checkpoint.

    Args:
        tasks: Task parameters `[num_tasks, task_dim]`, e.g.
            `environment.sample_tasks(40, seed=1)`.
        num_steps: Int. Defaults to `3`.
        every: Int, epochs between evaluations. Defaults to `1`.
        seed: Int seeding the evaluation rollouts. Defaults to `0`.
        num_trajectories: Int, trajectories per task and step. Defaults to
            `None`, the learner's training value.
        restore_best_weights: Bool. Defaults to `False`.
    """

    def __init__(self, tasks, *, num_steps=3, every=1, seed=0,
                 num_trajectories=None, restore_best_weights=False):
        super().__init__()
        self.tasks = np.asarray(tasks, dtype="float32")
        self.num_steps = num_steps
        self.every = every
        self.seed = seed
        self.num_trajectories = num_trajectories
        self.restore_best_weights = bool(restore_best_weights)
        self.history = []
        self.best_epoch = None
        self.best_score = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        last = self.params and epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.every and not last:
            return
        returns = self.model.adaptation_returns(
            self.tasks, num_steps=self.num_steps,
            num_trajectories=self.num_trajectories, seed=self.seed)
        summary = summarize_returns(returns)
        self.history.append({"epoch": epoch + 1, **summary})
        if logs is not None:
            for step, (mean, ci) in enumerate(
                    zip(summary["mean"], summary["ci95"])):
                logs[f"return_step_{step}"] = mean
                logs[f"return_step_{step}_ci95"] = ci
        score = self.score(summary)
        if self.best_score is None or score > self.best_score:
            self.best_epoch, self.best_score = epoch + 1, score
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()

    @staticmethod
    def score(evaluation):
        """The score a checkpoint is chosen by: the mean return after
        1..`num_steps` steps of an evaluation (`summarize_returns`'s dict,
        or an entry of `history`), the return before adaptation when it
        has no steps."""
        return float(np.mean(evaluation["mean"][1:] or evaluation["mean"]))

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def summarize_returns(returns):
    """Mean and 95% confidence half-width over tasks, per adaptation step
    (Student's t quantile for the task count)."""
    returns = np.asarray(returns, dtype="float64")
    count = returns.shape[0]
    std = returns.std(axis=0, ddof=1) if count > 1 else np.zeros(
        returns.shape[1])
    return {
        "mean": [float(v) for v in returns.mean(axis=0)],
        "ci95": [float(v) for v in t_95(max(count - 1, 1)) * std
                 / np.sqrt(count)],
    }
