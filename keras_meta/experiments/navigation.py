"""The MAML paper's meta-reinforcement-learning experiments, run by
`keras-meta train --task navigation2d|halfcheetah-vel|halfcheetah-dir` and
`benchmarks/meta_rl_navigation.py`.

Trains a 100-100 ReLU Gaussian policy with a meta-policy-gradient learner
(`promp` or `maml`), the multi-task `pretrained` baseline (the same policy
trained on all tasks without adaptation) and keeps the untrained `random`
policy, then scores each as the paper reports it: the mean return over 40
fixed test goals after 0, 1, 2 and 3 policy-gradient steps (each step on
fresh rollouts of the policy adapted so far, each return from new rollouts;
the first step at the training rate, later ones at half of it), with 95%
confidence intervals over tasks.
"""

import json
import os
import time

import keras
import numpy as np

from keras_meta import rl

# Mean return over 40 test tasks after 0 / 1 / 2 / 3 steps, from the MAML
# paper's result files (Finn et al., 2017, figure 4).
PAPER = {
    "maml": [-40.4, -11.7, -3.3, -3.2],
    "pretrained": [-40.8, -19.7, -11.7, -8.5],
    "random": [-82.7, -58.0, -53.8, -46.8],
}
# The same for the HalfCheetah tasks.
PAPERS = {
    "navigation2d": PAPER,
    "halfcheetah-vel": {"maml": [-129.5, -78.6, -66.6, -60.8],
                        "pretrained": [-158.0, -135.4, -128.5, -133.6],
                        "random": [-254.8]},
    "halfcheetah-dir": {"maml": [-50.7, 293.2, 313.5, 315.7]},
    # gymnasium's Ant-v5 is not the paper's simulator: no paper row.
    "ant-vel": {},
    "ant-dir": {},
}


def environment(task, num_processes=1):
    """The task family of a `--task` name; `num_processes` worker
    processes step MuJoCo simulators."""
    if task == "navigation2d":
        return rl.Navigation2D()
    # HalfCheetah as the MAML paper ran it (rllab's), since its numbers
    # are printed beside ours.
    if task == "halfcheetah-vel":
        return rl.HalfCheetahVelocity(variant="rllab",
                                      num_processes=num_processes)
    if task == "halfcheetah-dir":
        return rl.HalfCheetahDirection(variant="rllab",
                                       num_processes=num_processes)
    if task == "ant-vel":
        return rl.AntVelocity(num_processes=num_processes)
    if task == "ant-dir":
        return rl.AntDirection(num_processes=num_processes)
    raise ValueError(
        f"Unknown task {task!r}; expected one of {sorted(PAPERS)}.")


LEARNERS = ("promp", "maml", "pretrained", "random")


def test_tasks(env, num_tasks, seed):
    """The fixed test goals: a seed stream training never uses (training
    batches draw from `(seed, i)`)."""
    return env.sample_tasks(num_tasks, seed=10_000 + seed)


def build(name, env, *, inner_learning_rate, num_trajectories, seed):
    """A learner (`promp`, `maml`, `pretrained` or `random`) with a 100-100
    ReLU Gaussian policy for `env`."""
    policy = rl.gaussian_mlp_policy(
        env.observation_dim, env.action_dim, seed=seed)
    common = dict(inner_learning_rate=inner_learning_rate,
                  num_trajectories=num_trajectories, seed=seed)
    if name == "promp":
        return rl.ProMP(policy, env, **common)
    if name == "maml":
        return rl.MAMLRL(policy, env, **common)
    if name in ("pretrained", "random"):
        return rl.ProMP(policy, env, num_inner_steps=0, **common)
    raise ValueError(
        f"Unknown learner {name!r}; expected one of {list(LEARNERS)}.")


def train_and_score(name, env, tasks, *, iterations, meta_batch_size,
                    num_trajectories, inner_learning_rate, learning_rate,
                    eval_every, eval_steps, seed, verbose=2):
    """Trains one learner (none for `random`) and scores it on `tasks`.

    Returns the learner and a dict: `returns` (mean and 95% CI per
    adaptation step), `history` (the same every `eval_every` iterations)
    and `train_seconds`.
    """
    keras.utils.set_random_seed(seed)
    env_tasks = env.task_dataset(meta_batch_size, seed=seed)
    learner = build(name, env, inner_learning_rate=inner_learning_rate,
                    num_trajectories=num_trajectories, seed=seed)
    learner.compile(optimizer=keras.optimizers.Adam(learning_rate))
    history, seconds = [], 0.0
    if name != "random":
        callback = rl.AdaptationReturns(tasks, num_steps=eval_steps,
                                        seed=seed + 1)
        epochs = max(1, iterations // eval_every)
        start = time.perf_counter()
        fit = learner.fit(env_tasks, steps_per_epoch=eval_every,
                          epochs=epochs, callbacks=[callback],
                          verbose=verbose)
        seconds = time.perf_counter() - start
        history = [
            {**entry,
             "return_before":
                 fit.history["return_before"][entry["epoch"] - 1],
             "iterations": entry["epoch"] * eval_every}
            for entry in callback.history]
    returns = learner.adaptation_returns(
        tasks, num_steps=eval_steps, seed=seed + 2)
    return learner, {"returns": rl.summarize_returns(returns),
                     "history": history,
                     "train_seconds": round(seconds, 1)}


def format_table(results, paper=PAPER):
    lines = ["mean return over test tasks after 0 / 1 / 2 / 3 "
             "adaptation steps (+- 95% CI)",
             "| learner | keras_meta | MAML paper | train s |",
             "| --- | --- | --- | --- |"]
    for name, result in results.items():
        ours = " / ".join(
            f"{m:.1f} +- {c:.1f}" for m, c in zip(
                result["returns"]["mean"], result["returns"]["ci95"]))
        row = paper.get("maml" if name in ("promp", "maml") else name)
        row = " / ".join(str(v) for v in row) if row else ""
        lines.append(
            f"| {name} | {ours} | {row} | {result['train_seconds']} |")
    return "\n".join(lines)


def plot(results, path, paper=PAPER, title="2D navigation"):
    """Return against adaptation steps (left) and the test return after one
    step during training (right)."""
    # A Figure without pyplot: no backend is chosen or switched.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    (left, right) = fig.subplots(1, 2)
    for name, result in results.items():
        mean = np.array(result["returns"]["mean"])
        ci = np.array(result["returns"]["ci95"])
        steps = np.arange(len(mean))
        line = left.errorbar(steps, mean, yerr=ci, marker="o", capsize=3,
                             label=name)
        row = paper.get("maml" if name in ("promp", "maml") else name)
        if row and name != "maml":
            left.plot(steps[:len(row)], row[:len(steps)], ls=":",
                      color=line.lines[0].get_color(), alpha=0.7)
        if result["history"] and len(mean) > 1:
            right.plot([h["iterations"] for h in result["history"]],
                       [h["mean"][1] for h in result["history"]],
                       marker=".", label=name)
    left.set_xlabel("policy-gradient adaptation steps")
    left.set_ylabel("mean return over test goals")
    left.set_title(f"{title} (dotted: MAML paper)" if paper else title)
    left.legend()
    right.set_xlabel("meta-training iterations")
    right.set_ylabel("test return after one adaptation step")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run(*, learners=LEARNERS, output, iterations=300, meta_batch_size=20,
        num_trajectories=20, inner_learning_rate=0.1, learning_rate=1e-3,
        eval_every=25, eval_steps=3, num_test_tasks=40, seed=0, verbose=2,
        save_dir=None, command=None, plot_path=None, task="navigation2d",
        paths_plot_path=None, num_processes=1):
    """Trains and scores `learners`; writes JSON to `output` and a PNG to
    `plot_path` (default: beside it), and each trained learner's `.keras`
    to `save_dir`. On navigation2d, `paths_plot_path` also gets a picture of
    the first learner's paths to 4 test goals before and after adaptation
    (`keras_meta.rl.plot_navigation_paths`). `num_processes` worker
    processes step MuJoCo simulators."""
    env = environment(task, num_processes)
    paper = PAPERS[task]
    tasks = test_tasks(env, num_test_tasks, seed)
    config = dict(iterations=iterations, meta_batch_size=meta_batch_size,
                  num_trajectories=num_trajectories,
                  inner_learning_rate=inner_learning_rate,
                  learning_rate=learning_rate, eval_every=eval_every,
                  eval_steps=eval_steps, num_test_tasks=num_test_tasks,
                  seed=seed, horizon=env.horizon, policy="100-100 ReLU",
                  task=task)
    results, first = {}, None
    for name in learners:
        learner, results[name] = train_and_score(
            name, env, tasks, iterations=iterations,
            meta_batch_size=meta_batch_size,
            num_trajectories=num_trajectories,
            inner_learning_rate=inner_learning_rate,
            learning_rate=learning_rate, eval_every=eval_every,
            eval_steps=eval_steps, seed=seed, verbose=verbose)
        row = results[name]["returns"]
        print(f"{name:>10}: " + " / ".join(
            f"{m:.1f} +- {c:.1f}" for m, c in zip(row["mean"], row["ci95"]))
            + f"  ({results[name]['train_seconds']} s)", flush=True)
        first = first or learner
        if save_dir and name != "random":
            os.makedirs(save_dir, exist_ok=True)
            learner.save(os.path.join(save_dir, f"{name}.keras"))
    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(output, "w") as f:
        json.dump({"command": command, "config": config, "paper": paper,
                   "results": results}, f, indent=1)
    plot(results, plot_path or os.path.splitext(output)[0] + ".png",
         paper=paper, title=task)
    if paths_plot_path and task == "navigation2d" and first is not None:
        rl.plot_navigation_paths(first, tasks[:4], num_steps=eval_steps,
                                 seed=seed + 2, path=paths_plot_path)
    return results
