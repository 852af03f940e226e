"""Task families of environments for meta-reinforcement learning.

A task family is a distribution over environments that share observation
and action spaces (2D navigation to a random goal, a running robot with a
random target velocity). Meta-learners in `keras_meta.rl` meet it through a
small interface, vectorized over a batch of tasks and of trajectories per
task:

- `sample_tasks(num_tasks, seed)`: NumPy task parameters `[num_tasks,
  task_dim]`, reproducible from the seed.
- `reset(tasks, num_trajectories)`: the initial state and observation.
- `step(state, actions, tasks)`: the next state and observation, the reward
  and whether the trajectory ended, for actions `[tasks, trajectories,
  action_dim]`.

`PureFunctionEnvironment`s write `reset` and `step` in `keras.ops`, so
rollouts run inside the compiled training step with the weights of that
very step (see `keras_meta.rl.MetaPolicyGradient`).
"""

import keras
import numpy as np
from keras import ops


class PureFunctionEnvironment:
    """Base class of task families whose dynamics are `keras.ops` functions.

    Subclasses set `observation_dim`, `action_dim`, `task_dim` and
    `horizon` and implement `sample_tasks`, `reset` and `step`. The state
    is a tensor `[tasks, trajectories, ...]`; nothing is kept in the
    object, so one instance serves any number of concurrent rollouts.
    """

    observation_dim = None
    action_dim = None
    task_dim = None
    horizon = None

    def sample_tasks(self, num_tasks, seed=None):
        raise NotImplementedError

    def reset(self, tasks, num_trajectories):
        """Returns `(state, observation)` for `[tasks, num_trajectories]`."""
        raise NotImplementedError

    def step(self, state, actions, tasks):
        """Returns `(state, observation, reward, done)`."""
        raise NotImplementedError

    def task_dataset(self, batch_size, *, seed=0, num_batches=None):
        """A `tf.data.Dataset` of task batches `[batch_size, task_dim]`.

        The batches are a pure function of `seed` (batch `i` holds the tasks
        of `sample_tasks(batch_size, seed=(seed, i))`), so a resumed run sees
        the tasks the uninterrupted run would. Endless unless `num_batches`
        is given. Task parameters do not depend on the policy, so Keras may
        prefetch them freely; the rollouts themselves happen inside the
        training step.
        """
        import tensorflow as tf

        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                "`batch_size` is the number of tasks per meta-step, a "
                f"positive int. Received: batch_size={batch_size!r}.")
        dim = self.task_dim

        def tasks(index):
            def draw(i):
                return self.sample_tasks(
                    batch_size, seed=(seed, int(i))).astype("float32")

            batch = tf.numpy_function(draw, [index], tf.float32)
            batch.set_shape((batch_size, dim))
            return batch

        indices = tf.data.Dataset.counter()
        if num_batches is not None:
            indices = indices.take(num_batches)
        return indices.map(tasks).prefetch(2)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_meta")
class Navigation2D(PureFunctionEnvironment):
    """2D navigation to a random goal, as in the MAML paper's code.

    A point starts at the origin and moves by the action at every step;
    the reward is minus the distance to the task's goal after the move,
    and a trajectory ends after `horizon` steps or on reaching the goal
    (both coordinates within 0.01 of it; later steps have no reward).
    Goals are uniform in `[-goal_range, goal_range]^2`.

    The policy acts in normalized units, as through the reference code's
    `normalize` wrapper: an action `a` moves the point by
    `clip(a, -1, 1) * max_step` in each coordinate, so each step moves at
    most `max_step` (0.1) per coordinate.

    Args:
        horizon: Int, steps per trajectory. Defaults to `100`.
        goal_range: Float, goals are uniform in the square
            `[-goal_range, goal_range]^2`. Defaults to `0.5`.
        max_step: Float, the largest move per coordinate and step.
            Defaults to `0.1`.

    Reference:
        - [Finn et al., 2017](https://arxiv.org/abs/1703.03400), section
          5.3, and the paper's code (`maml_examples/point_env_randgoal.py`).
    """

    observation_dim = 2
    action_dim = 2
    task_dim = 2

    def __init__(self, horizon=100, goal_range=0.5, max_step=0.1):
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(
                "`horizon` must be a positive int. Received: "
                f"horizon={horizon!r}.")
        if not goal_range > 0 or not max_step > 0:
            raise ValueError(
                "`goal_range` and `max_step` must be positive. Received: "
                f"goal_range={goal_range!r}, max_step={max_step!r}.")
        self.horizon = horizon
        self.goal_range = float(goal_range)
        self.max_step = float(max_step)

    def sample_tasks(self, num_tasks, seed=None):
        rng = np.random.default_rng(seed)
        return rng.uniform(
            -self.goal_range, self.goal_range, size=(num_tasks, 2)
        ).astype("float32")

    def reset(self, tasks, num_trajectories):
        state = ops.zeros(
            (ops.shape(tasks)[0], num_trajectories, 2), dtype=tasks.dtype)
        return state, state

    def step(self, state, actions, tasks):
        move = ops.clip(ops.cast(actions, state.dtype), -1.0, 1.0)
        state = state + self.max_step * move
        offset = state - tasks[:, None, :]
        reward = -ops.sqrt(ops.sum(ops.square(offset), axis=-1))
        done = ops.all(ops.abs(offset) < 0.01, axis=-1)
        return state, state, reward, done

    def get_config(self):
        return {"horizon": self.horizon, "goal_range": self.goal_range,
                "max_step": self.max_step}
