"""Where an adapted navigation policy goes: paths before and after
adaptation, and their picture."""

import numpy as np
from keras import ops

from keras_meta.rl.environments import Navigation2D


def navigation_paths(learner, goal, *, num_steps=3, seed=0):
    """The path of the policy's mean action to `goal` after 0, 1, ...,
    `num_steps` adaptation steps.

    Each adapted policy is `learner.adapt(goal, num_steps=k, seed=seed)`,
    the procedure `adaptation_returns` scores (rollouts drawn from `seed`,
    so the policy after k steps is the one the k+1-step adaptation passes
    through). Its path follows the environment's own dynamics
    (`Navigation2D.step`) with the mean action at every step, from the
    start to the horizon or to the goal.

    Args:
        learner: A `keras_meta.rl.MetaPolicyGradient` on a
            `keras_meta.rl.Navigation2D`.
        goal: The task, 2 numbers.
        num_steps: Int, the most adaptation steps.
        seed: Int, seeds the rollouts adapted on.

    Returns:
        A list of `num_steps + 1` float arrays `[length, 2]`, positions
        from the start (the origin) on, the k-th after k steps.
    """
    env = learner.environment
    if not isinstance(env, Navigation2D):
        raise ValueError(
            "`navigation_paths` draws `keras_meta.rl.Navigation2D` paths; "
            f"this learner's environment is a {type(env).__name__}. Use "
            "`adaptation_returns` to score other task families.")
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError("`num_steps` must be an int >= 0. Received: "
                         f"num_steps={num_steps!r}.")
    goal = np.asarray(goal, dtype="float32").reshape(-1)
    if goal.shape != (2,):
        raise ValueError(
            "`goal` is one 2D navigation task: 2 numbers. Received shape "
            f"{np.asarray(goal).shape}.")
    tasks = ops.convert_to_tensor(goal[None])
    paths = []
    for steps in range(num_steps + 1):
        policy = learner.adapt(goal, num_steps=steps, seed=seed)
        state, observation = env.reset(tasks, 1)
        path = [ops.convert_to_numpy(state)[0, 0]]
        for _ in range(env.horizon):
            outputs = policy(ops.reshape(observation, (1, 2)))
            mean = ops.reshape(outputs[:, :env.action_dim], (1, 1, 2))
            state, observation, _, done = env.step(state, mean, tasks)
            path.append(ops.convert_to_numpy(state)[0, 0])
            if bool(ops.convert_to_numpy(done)[0, 0]):
                break
        paths.append(np.array(path, dtype="float64"))
    return paths


def plot_navigation_paths(learner, goals, *, num_steps=3, seed=0,
                          path=None):
    """A picture of `navigation_paths` for each goal, one panel per goal.

    Args:
        learner: A `keras_meta.rl.MetaPolicyGradient` on a
            `keras_meta.rl.Navigation2D`.
        goals: Tasks `[num_goals, 2]` (at most 8 panels).
        num_steps: Int, the most adaptation steps drawn.
        seed: Int, seeds the rollouts adapted on.
        path: Optional file path: the figure is also saved there (PNG).

    Returns:
        A `matplotlib.figure.Figure` (no pyplot backend is chosen or
        switched).
    """
    from matplotlib.figure import Figure

    goals = np.asarray(goals, dtype="float32").reshape(-1, 2)
    if not 1 <= len(goals) <= 8:
        raise ValueError(
            f"Draws 1 to 8 goals, one panel each. Received {len(goals)}.")
    env = learner.environment
    columns = min(4, len(goals))
    rows = -(-len(goals) // columns)
    fig = Figure(figsize=(3.2 * columns, 3.2 * rows + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    colors = ["#9e9e9e", "#1f77b4", "#2ca02c", "#d62728", "#9467bd",
              "#8c564b"]
    extent = 1.1 * max(float(getattr(env, "goal_range", 0.5)), 0.1)
    for panel, (axis, goal) in enumerate(zip(axes, goals)):
        paths = navigation_paths(learner, goal, num_steps=num_steps,
                                 seed=seed)
        for steps, points in enumerate(paths):
            axis.plot(points[:, 0], points[:, 1], "-", lw=1.5,
                      color=colors[min(steps, len(colors) - 1)],
                      label=f"{steps} step{'s' if steps != 1 else ''}")
        axis.plot(0.0, 0.0, "ko", ms=4)
        axis.plot(goal[0], goal[1], "*", color="#ff7f0e", ms=12)
        axis.set_xlim(-extent, extent)
        axis.set_ylim(-extent, extent)
        axis.set_aspect("equal")
        axis.set_title(f"goal ({goal[0]:.2f}, {goal[1]:.2f})", fontsize=9)
        if panel == 0:
            axis.legend(fontsize=7, loc="best")
    for axis in axes[len(goals):]:
        axis.set_visible(False)
    fig.suptitle(f"{type(learner).__name__}: mean-action paths after "
                 "0 to {} adaptation steps".format(num_steps), fontsize=10)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig
