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
very step. `SimulatorEnvironment`s (gymnasium's MuJoCo robots) step in
Python; `MetaPolicyGradient.fit` then alternates sampling with the current
(and adapted) weights and the outer update, in its own loop (see
`keras_meta.rl.MetaPolicyGradient`).
"""

import keras
import numpy as np
from keras import ops

from keras_meta.rl import simulators


class TaskFamily:
    """Base class of task families: spaces, horizon, task sampling.

    Subclasses set `observation_dim`, `action_dim`, `task_dim` and
    `horizon` and implement `sample_tasks`.
    """

    observation_dim = None
    action_dim = None
    task_dim = None
    horizon = None

    def sample_tasks(self, num_tasks, seed=None):
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


class PureFunctionEnvironment(TaskFamily):
    """Base class of task families whose dynamics are `keras.ops` functions.

    Subclasses implement `reset` and `step` in `keras.ops`. The state is a
    tensor `[tasks, trajectories, ...]`; nothing is kept in the object, so
    one instance serves any number of concurrent rollouts.
    """

    def reset(self, tasks, num_trajectories):
        """Returns `(state, observation)` for `[tasks, num_trajectories]`."""
        raise NotImplementedError

    def step(self, state, actions, tasks):
        """Returns `(state, observation, reward, done)`."""
        raise NotImplementedError


class SimulatorEnvironment(TaskFamily):
    """Base class of task families stepped in Python (a simulator).

    `reset(tasks, num_trajectories, seed)` starts one episode per task and
    trajectory and returns the observations `[tasks, trajectories,
    obs_dim]` (NumPy); `step(actions)` advances all of them and returns
    `(observations, rewards, dones)`. The object holds the simulators.
    """

    def reset(self, tasks, num_trajectories, seed=None):
        raise NotImplementedError

    def step(self, actions):
        raise NotImplementedError


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

    @staticmethod
    def paper_test_goals():
        """The MAML paper's 40 test goals, in its order.

        Its evaluation script (`maml_examples/test_maml_point.py` in
        cbfinn/maml_rl) seeds NumPy's legacy generator with 1 and draws
        40 goals uniform in `[-0.5, 0.5]^2`; its result files
        (`icml/icml_point_results_*.pkl`) hold one return per goal in this
        order, so per-goal returns pair with them
        (`benchmarks/reference/maml_rl_point_results.json`).

        Returns:
            A float32 NumPy array `[40, 2]`.
        """
        return np.random.RandomState(1).uniform(
            -0.5, 0.5, size=(40, 2)).astype("float32")

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


# The HalfCheetah variants. "v5": gymnasium's `HalfCheetah-v5` (five
# physics steps of 0.01 s per action, the velocity from the root's x
# displacement, 17 observations), the environment of ProMP's code. "rllab":
# rllab's HalfCheetah as the MAML paper's code (cbfinn/maml_rl) ran it: one
# physics step per action, the velocity of the torso subtree's centre of
# mass from MuJoCo, and 20 observations (joint positions but the root's x,
# joint velocities, the centre of mass).
HALF_CHEETAH_VARIANTS = ("v5", "rllab")


class _MujocoTasks(SimulatorEnvironment):
    """A pool of MuJoCo simulators, one per task and trajectory, grown as
    needed and reseeded at every `reset` (simulator `k` seeded `seed *
    1_000_003 + k`), stepped in this process or, with `num_processes` above
    1, split over that many worker processes (`keras_meta.rl.simulators`;
    the same numbers either way). Subclasses name their simulator
    (`_simulator_kind`, `_simulator_options`)."""

    _simulator_kind = None

    def __init__(self, horizon, num_processes=1):
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(
                "`horizon` must be a positive int. Received: "
                f"horizon={horizon!r}.")
        if (isinstance(num_processes, bool)
                or not isinstance(num_processes, int) or num_processes < 1):
            raise ValueError(
                "`num_processes` is the number of worker processes that "
                "step the simulators, a positive int (1: step them in this "
                f"process). Received: num_processes={num_processes!r}.")
        self.horizon = horizon
        self.num_processes = num_processes
        self._pool = None

    def _simulator_options(self):
        return {}

    def _simulators(self):
        if self._pool is None:
            self._gym()
            if self.num_processes == 1:
                self._pool = simulators.LocalPool(
                    self._simulator_kind, self._simulator_options())
            else:
                self._pool = simulators.ProcessPool(
                    self._simulator_kind, self._simulator_options(),
                    self.num_processes)
        return self._pool

    @property
    def _envs(self):
        """The simulators of this process (none with worker processes)."""
        pool = self._simulators()
        return getattr(pool, "sims", [])

    def close(self):
        """Stops the worker processes, if any, and drops the simulators."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _gym(self):
        try:
            import gymnasium
        except ImportError:
            raise ImportError(
                f"`keras_meta.rl.{type(self).__name__}` runs gymnasium's "
                "MuJoCo simulators. Install the extra: "
                '`pip install -e ".[rl]"` (gymnasium[mujoco]).') from None
        return gymnasium

    def _reset_pool(self, tasks, num_trajectories, seed):
        """Resets one simulator per task and trajectory; returns the first
        observations `[tasks * trajectories, obs_dim]`."""
        tasks = np.asarray(tasks, dtype="float64").reshape(-1, 1)
        count = len(tasks) * num_trajectories
        self._shape = (len(tasks), num_trajectories)
        self._targets = np.repeat(tasks[:, 0], num_trajectories)
        base = 0 if seed is None else int(seed) * 1_000_003
        return self._simulators().reset(base + np.arange(count))

    def _batched(self, values, dim=None):
        """`values` in the `[tasks, trajectories, ...]` layout, float32."""
        shape = self._shape + (() if dim is None else (dim,))
        return np.asarray(values, "float32").reshape(shape)

    def get_config(self):
        return {"horizon": self.horizon,
                "num_processes": self.num_processes}


class _HalfCheetah(_MujocoTasks):
    """HalfCheetah with a task-dependent reward, in one of two variants."""

    action_dim = 6
    task_dim = 1
    _simulator_kind = "half_cheetah"

    def __init__(self, horizon=200, control_cost=0.05, variant="v5",
                 num_processes=1):
        super().__init__(horizon, num_processes)
        if variant not in HALF_CHEETAH_VARIANTS:
            raise ValueError(
                f"`variant` must be one of {list(HALF_CHEETAH_VARIANTS)}: "
                "'v5' for gymnasium's HalfCheetah-v5 (ProMP's), 'rllab' for "
                "the MAML paper's. Received: "
                f"variant={variant!r}.")
        self.control_cost = float(control_cost)
        self.variant = variant

    def _simulator_options(self):
        return {"variant": self.variant}

    @property
    def _model(self):
        return self._simulators().simulator.model

    @property
    def _torso(self):
        return self._simulators().simulator.torso

    @property
    def observation_dim(self):
        return 20 if self.variant == "rllab" else 17

    def reset(self, tasks, num_trajectories, seed=None):
        return self._batched(
            self._reset_pool(tasks, num_trajectories, seed),
            self.observation_dim)

    def step(self, actions):
        actions = np.clip(np.asarray(actions, "float64").reshape(
            -1, self.action_dim), -1.0, 1.0)
        observations, outputs = self._simulators().step(actions)
        rewards = self._reward(outputs["velocity"], self._targets) - (
            self.control_cost * np.square(actions).sum(-1))
        return (self._batched(observations, self.observation_dim),
                self._batched(rewards), np.zeros(self._shape, bool))

    def get_config(self):
        return {**super().get_config(), "control_cost": self.control_cost,
                "variant": self.variant}


@keras.saving.register_keras_serializable(package="keras_meta")
class HalfCheetahVelocity(_HalfCheetah):
    """HalfCheetah running at a target velocity (MAML paper, section 5.3).

    Tasks are target forward velocities, uniform in `[0, 2]`; the reward is
    `-|forward velocity - target| - control_cost * |action|^2` with
    `control_cost=0.05`, as in the paper's code, over `horizon=200` steps,
    with actions clipped to [-1, 1]. Needs the `rl` extra
    (`pip install -e ".[rl]"`).

    `variant` picks the simulator:

    - `"v5"` (default): gymnasium's `HalfCheetah-v5`, five physics steps of
      0.01 s per action (200 actions are 10 simulated seconds), the
      forward velocity measured by differencing the root's x position, 17
      observations. This is the environment of ProMP's code (which draws
      targets from `[0, 3]`: `max_velocity=3.0`).
    - `"rllab"`: the HalfCheetah of the MAML paper's code (rllab's): one
      physics step per action (2 simulated seconds), the forward velocity
      of the robot's centre of mass from MuJoCo, 20 observations (the
      joint positions but the root's x, the 9 joint velocities and the
      centre of mass), rllab's reset noise (Gaussian, 0.01 on positions,
      0.1 on velocities). The model file is gymnasium's, whose physics is
      rllab's `half_cheetah.xml`.

    `num_processes` above 1 steps the simulators in that many worker
    processes (`keras_meta.rl.simulators.ProcessPool`), each a contiguous
    share of the tasks and trajectories, with the same results as one
    process; `close()` stops them (they stop with this process too).
    """

    def __init__(self, horizon=200, control_cost=0.05, min_velocity=0.0,
                 max_velocity=2.0, variant="v5", num_processes=1):
        super().__init__(horizon, control_cost, variant, num_processes)
        self.min_velocity = float(min_velocity)
        self.max_velocity = float(max_velocity)

    def sample_tasks(self, num_tasks, seed=None):
        rng = np.random.default_rng(seed)
        return rng.uniform(self.min_velocity, self.max_velocity,
                           size=(num_tasks, 1)).astype("float32")

    @staticmethod
    def paper_test_goals():
        """The MAML paper's 40 test velocities, in its order.

        Its test script (`maml_examples/test_maml_cheetah.py` in
        cbfinn/maml_rl) draws them with NumPy's legacy generator seeded 1,
        uniform in `[0, 2]`; its result files give the per-goal returns in
        this order (`benchmarks/reference/maml_rl_cheetah_results.json`).
        Returns `[40, 1]` float32.
        """
        goals = np.random.RandomState(1).uniform(0.0, 2.0, size=(40,))
        return goals.reshape(40, 1).astype("float32")

    def _reward(self, velocities, targets):
        return -np.abs(velocities - targets)

    def get_config(self):
        return {**super().get_config(), "min_velocity": self.min_velocity,
                "max_velocity": self.max_velocity}


@keras.saving.register_keras_serializable(package="keras_meta")
class HalfCheetahDirection(_HalfCheetah):
    """HalfCheetah running forward or backward (MAML paper, section 5.3).

    Tasks are directions, +1 or -1 with equal probability; the reward is
    `direction * forward velocity - control_cost * |action|^2`
    (`control_cost=0.05`), over `horizon=200` steps. `variant` is `"v5"`
    (gymnasium's `HalfCheetah-v5`, the default) or `"rllab"` (the MAML
    paper's HalfCheetah; see `HalfCheetahVelocity`), `num_processes` as
    there. Needs the `rl` extra.
    """

    def sample_tasks(self, num_tasks, seed=None):
        rng = np.random.default_rng(seed)
        return rng.choice([-1.0, 1.0], size=(num_tasks, 1)).astype("float32")

    def _reward(self, velocities, targets):
        return targets * velocities


class _Ant(_MujocoTasks):
    """gymnasium's `Ant-v5` with the MAML paper's task rewards.

    Each simulator is a gymnasium `Ant-v5` (five physics steps of 0.01 s
    per action, 105 observations: joint positions but the torso's x and y,
    joint velocities, the clipped external contact forces of the 13
    bodies). A trajectory ends when gymnasium's Ant becomes unhealthy (its
    torso's height leaves `[0.2, 1.0]` or the state is not finite), the
    MAML paper's condition: its later steps are masked, and its simulator
    is no longer stepped (its last observation is repeated).

    The reward is the task's forward reward (subclasses) minus the MAML
    paper's control cost `0.005 * |action|^2` and contact cost `0.0005 *
    |clip(contact forces, -1, 1)|^2` (gymnasium's own contact term with
    its default range), plus its survival reward 0.05. The forward velocity
    is gymnasium's (the torso's x displacement over the action's 0.05 s);
    the paper's rllab Ant measured the velocity of the centre of mass, took
    one 0.02 s physics step per action with other contact parameters and
    observed 125 numbers: this is not the paper's simulator, and returns
    are not comparable with its figures.
    """

    action_dim = 8
    task_dim = 1
    observation_dim = 105
    control_cost = 0.005
    contact_cost = 0.0005
    survive_reward = 0.05
    _simulator_kind = "ant"

    def __init__(self, horizon=200, num_processes=1):
        super().__init__(horizon, num_processes)

    def reset(self, tasks, num_trajectories, seed=None):
        observations = self._reset_pool(tasks, num_trajectories, seed)
        self._ended = np.zeros(len(observations), bool)
        return self._batched(observations, self.observation_dim)

    def step(self, actions):
        actions = np.clip(np.asarray(actions, "float64").reshape(
            -1, self.action_dim), -1.0, 1.0)
        active = ~self._ended
        observations, outputs = self._simulators().step(actions, active)
        # No output at all when every trajectory has ended.
        zeros = np.zeros(len(actions))
        rewards = np.where(active, (
            self._forward_reward(outputs.get("velocity", zeros),
                                 self._targets)
            - self.control_cost * np.square(actions).sum(-1)
            + outputs.get("contact", zeros) + self.survive_reward), 0.0)
        self._ended = self._ended | (outputs.get("terminated", zeros) > 0)
        return (self._batched(observations, self.observation_dim),
                self._batched(rewards),
                self._ended.copy().reshape(self._shape))


@keras.saving.register_keras_serializable(package="keras_meta")
class AntVelocity(_Ant):
    """Ant walking forward at a target velocity (the MAML paper's Ant
    velocity task, section 5.3, on gymnasium's `Ant-v5`).

    Tasks are target velocities uniform in `[min_velocity, max_velocity]`
    (`[0, 3]`, the paper's); the forward reward is `1 - |velocity -
    target|`, the paper's (its "+1" keeps an Ant that survives better off
    than one that falls). See `AntDirection` for the rest of the reward,
    the termination and how this differs from the paper's simulator;
    `num_processes` as in `HalfCheetahVelocity`. Needs the `rl` extra.
    """

    def __init__(self, horizon=200, min_velocity=0.0, max_velocity=3.0,
                 num_processes=1):
        super().__init__(horizon, num_processes)
        if not min_velocity <= max_velocity:
            raise ValueError(
                "`min_velocity` must not exceed `max_velocity`. Received: "
                f"{min_velocity!r} and {max_velocity!r}.")
        self.min_velocity = float(min_velocity)
        self.max_velocity = float(max_velocity)

    def sample_tasks(self, num_tasks, seed=None):
        rng = np.random.default_rng(seed)
        return rng.uniform(self.min_velocity, self.max_velocity,
                           size=(num_tasks, 1)).astype("float32")

    def _forward_reward(self, velocity, target):
        return 1.0 - abs(velocity - target)

    def get_config(self):
        return {**super().get_config(), "min_velocity": self.min_velocity,
                "max_velocity": self.max_velocity}


@keras.saving.register_keras_serializable(package="keras_meta")
class AntDirection(_Ant):
    """Ant walking forward or backward (the MAML paper's Ant direction
    task, section 5.3, on gymnasium's `Ant-v5`).

    Tasks are directions, +1 or -1 with equal probability; the forward
    reward is `direction * velocity`. Every step's reward also subtracts
    the paper's control cost `0.005 * |action|^2` (actions clipped to
    [-1, 1]) and contact cost `0.0005 * |clip(contact forces, -1, 1)|^2`
    and adds its survival reward 0.05; a trajectory of `horizon=200` steps
    ends early when the Ant becomes unhealthy (torso height outside
    `[0.2, 1.0]`), as in the paper.

    The simulator is gymnasium's `Ant-v5` (five 0.01 s physics steps per
    action, the torso's x displacement as velocity, 105 observations), not
    the paper's rllab Ant (one 0.02 s step per action, centre-of-mass
    velocity, other contact parameters, 125 observations), so returns are
    not comparable with the paper's figures. `num_processes` as in
    `HalfCheetahVelocity`. Needs the `rl` extra.
    """

    def sample_tasks(self, num_tasks, seed=None):
        rng = np.random.default_rng(seed)
        return rng.choice([-1.0, 1.0], size=(num_tasks, 1)).astype("float32")

    def _forward_reward(self, velocity, target):
        return target * velocity
