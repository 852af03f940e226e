"""Meta-training on simulators: rollouts stepped in Python (gymnasium's
MuJoCo environments cannot run inside a compiled step), adaptation and
outer updates compiled, alternating so that no rollout is stale.

`SimulatorTraining` is mixed into `keras_meta.rl.MetaPolicyGradient`, whose
`fit()` hands over to `_fit_simulator` when its environment is a
`keras_meta.rl.SimulatorEnvironment`.
"""

import keras
import numpy as np
from keras import ops

from keras_meta import backend


class SimulatorTraining:
    """The training loop of a meta-policy-gradient learner on a simulator:
    sample with the current weights, adapt (compiled), sample with the
    adapted weights, apply the outer update (compiled), step after step,
    driving Keras callbacks as `fit()` does."""

    def _functions(self):
        if self._simulator_functions is None:
            def outputs_shared(weights, observations):
                return self._per_task_outputs(weights, observations, False)

            def outputs_per_task(weights, observations):
                return self._per_task_outputs(weights, observations, True)

            def adapt(per_task, samples, rate):
                return backend.map_tasks(
                    lambda task: self.inner_update(
                        task[0], task[1], rate, create_graph=False),
                    (per_task, samples), [w.dtype for w in per_task])

            self._simulator_functions = {
                False: backend.compiled(outputs_shared),
                True: backend.compiled(outputs_per_task),
                "process": backend.compiled(self.process),
                "adapt": backend.compiled(adapt),
                "update": backend.compiled(self.update),
            }
        return self._simulator_functions

    def _simulate(self, tasks, weights, per_task, num_trajectories, rng,
                  noise):
        """Rolls out in the simulator with the action noise `noise`
        `[horizon, tasks, trajectories, action_dim]`; returns processed
        samples."""
        env = self.environment
        functions = self._functions()
        observation = env.reset(tasks, num_trajectories,
                                seed=int(rng.integers(2 ** 31)))
        alive = np.ones(observation.shape[:2], "float32")
        columns = {k: [] for k in ("observations", "actions", "means",
                                   "log_stds", "rewards", "mask")}
        for t in range(env.horizon):
            mean, log_std = (ops.convert_to_numpy(v) for v in functions[
                per_task](weights, ops.convert_to_tensor(observation)))
            action = mean + np.exp(log_std) * noise[t]
            next_observation, reward, done = env.step(action)
            for key, value in (("observations", observation),
                               ("actions", action), ("means", mean),
                               ("log_stds", log_std),
                               ("rewards", reward * alive),
                               ("mask", alive.copy())):
                columns[key].append(np.asarray(value, "float32"))
            alive = alive * (1.0 - np.asarray(done, "float32"))
            observation = next_observation
        samples = {k: ops.convert_to_tensor(np.stack(v, axis=2))
                   for k, v in columns.items()}
        return functions["process"](samples)

    def _collect_simulated(self, tasks, num_trajectories, rates, rng):
        """`collect` for simulators: the same samples, stepped in Python.

        The action noise is drawn first, in the graph path's layout, so a
        simulator stepping the same dynamics as a graph environment gives
        the same rollouts for the same seed."""
        functions = self._functions()
        env = self.environment
        noise = rng.standard_normal(
            (len(rates) + 1, env.horizon, len(tasks), num_trajectories,
             env.action_dim)).astype("float32")
        weights = [ops.convert_to_tensor(ops.convert_to_numpy(w))
                   for w in self._weights()]
        batches = [self._simulate(tasks, weights, False, num_trajectories,
                                  rng, noise[0])]
        if not rates:
            return batches, weights
        per_task = [ops.convert_to_tensor(np.broadcast_to(
            ops.convert_to_numpy(w), (len(tasks),) + tuple(w.shape)))
            for w in weights]
        for step, rate in enumerate(rates, 1):
            per_task = functions["adapt"](
                per_task, batches[-1], ops.convert_to_tensor(rate, "float32"))
            batches.append(self._simulate(tasks, per_task, True,
                                          num_trajectories, rng,
                                          noise[step]))
        return batches, per_task

    def _fit_simulator(self, x=None, *args, steps_per_epoch=None, epochs=1,
                       initial_epoch=0, callbacks=None, verbose="auto",
                       **kwargs):
        owner = type(self).__name__
        if args or kwargs:
            raise ValueError(
                f"`{owner}.fit()` with a simulator takes `x` (a dataset of "
                "task batches), `steps_per_epoch`, `epochs`, "
                "`initial_epoch`, `callbacks` and `verbose`; received also "
                f"{sorted(kwargs) or args}.")
        if x is None or not steps_per_epoch:
            raise ValueError(
                f"`{owner}.fit()` needs `x`, a dataset of task batches such "
                "as `environment.task_dataset(meta_batch_size)`, and "
                "`steps_per_epoch`.")
        if getattr(self, "optimizer", None) is None:
            raise ValueError(
                f"Call `{owner}.compile(optimizer=...)` before `fit()`.")
        strategy = getattr(self, "distribute_strategy", None)
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            raise ValueError(
                f"`{owner}.fit()` with a simulator samples outside the "
                "training step and runs on one replica; it was built under "
                f"a strategy with {strategy.num_replicas_in_sync} replicas. "
                "Build it outside the strategy's scope, or distribute a "
                "learner on a `PureFunctionEnvironment` (rollouts in the "
                "step), such as `rl.Navigation2D`.")
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)
        verbose = 1 if verbose == "auto" else verbose
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_history=True, add_progbar=verbose != 0,
            model=self, verbose=verbose, epochs=epochs,
            steps=steps_per_epoch)
        functions = self._functions()
        iterator = iter(x)
        self.stop_training = False
        callback_list.on_train_begin()
        # `BackupAndRestore` sets the epoch to resume from.
        initial_epoch = self._initial_epoch or initial_epoch
        logs = {}
        for epoch in range(initial_epoch, epochs):
            for metric in self.metrics:
                metric.reset_state()
            callback_list.on_epoch_begin(epoch)
            for step in range(steps_per_epoch):
                callback_list.on_train_batch_begin(step)
                tasks = np.asarray(next(iterator), "float32")
                # Seeded by the update count: a resumed run draws the same
                # rollouts as an uninterrupted one.
                rng = np.random.default_rng(
                    (self.seed or 0, int(self.optimizer.iterations)))
                batches, _ = self._collect_simulated(
                    tasks, self.num_trajectories,
                    [self.inner_learning_rate] * self.num_inner_steps, rng)
                self._track(functions["update"](batches), batches)
                logs = {m.name: float(m.result()) for m in self.metrics}
                callback_list.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            callback_list.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return self.history
