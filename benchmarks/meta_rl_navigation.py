"""Meta-reinforcement learning on 2D navigation, as in the MAML paper.

Trains, each for `--iterations` meta-steps of `--meta-batch-size` tasks with
`--trajectories` rollouts per task and step (horizon 100), a 100-100 ReLU
Gaussian policy with:

- `promp`: `keras_meta.rl.ProMP` (low-variance curvature inner step, clipped
  outer objective, 5 Adam updates per batch of rollouts);
- `maml`: `keras_meta.rl.MAMLRL` (vanilla policy-gradient inner step, second
  order, one Adam update per batch);
- `pretrained`: the same policy trained on all tasks without adaptation
  (`num_inner_steps=0`), the paper's multi-task baseline;
- `random`: the untrained policy.

Each is scored as the paper reports it: the mean return over 40 fixed test
tasks (goals never used in training) after 0, 1, 2 and 3 policy-gradient
steps, each step on fresh rollouts of the policy adapted so far and each
return from new rollouts (first step at the training rate, later steps at
half of it), with 95% confidence intervals over tasks. Prints a table and
writes JSON and a PNG (return against adaptation steps; training curves).

    python benchmarks/meta_rl_navigation.py
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_meta import rl  # noqa: E402

# Mean return over 40 test tasks after 0 / 1 / 2 / 3 steps, from the MAML
# paper's result files (Finn et al., 2017, figure 4).
PAPER = {
    "maml": [-40.4, -11.7, -3.3, -3.2],
    "pretrained": [-40.8, -19.7, -11.7, -8.5],
    "random": [-82.7, -58.0, -53.8, -46.8],
}


def build(name, env, args):
    policy = rl.gaussian_mlp_policy(
        env.observation_dim, env.action_dim, seed=args.seed)
    common = dict(inner_learning_rate=args.inner_learning_rate,
                  num_trajectories=args.trajectories, seed=args.seed)
    if name == "promp":
        return rl.ProMP(policy, env, **common)
    if name == "maml":
        return rl.MAMLRL(policy, env, **common)
    if name in ("pretrained", "random"):
        return rl.ProMP(policy, env, num_inner_steps=0, **common)
    raise ValueError(f"Unknown learner {name!r}.")


def run(name, env, test_tasks, args):
    keras.utils.set_random_seed(args.seed)
    learner = build(name, env, args)
    learner.compile(optimizer=keras.optimizers.Adam(args.outer_learning_rate))
    history, seconds = [], 0.0
    if name != "random":
        callback = rl.AdaptationReturns(
            test_tasks, num_steps=args.eval_steps, seed=args.seed + 1)
        epochs = max(1, args.iterations // args.eval_every)
        start = time.perf_counter()
        fit = learner.fit(
            env.task_dataset(args.meta_batch_size, seed=args.seed),
            steps_per_epoch=args.eval_every, epochs=epochs,
            callbacks=[callback], verbose=2)
        seconds = time.perf_counter() - start
        history = [
            {**entry,
             "return_before": fit.history["return_before"][entry["epoch"] - 1],
             "iterations": entry["epoch"] * args.eval_every}
            for entry in callback.history]
    returns = learner.adaptation_returns(
        test_tasks, num_steps=args.eval_steps, seed=args.seed + 2)
    summary = rl.summarize_returns(returns)
    return {"returns": summary, "history": history,
            "train_seconds": round(seconds, 1)}


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, result in results.items():
        mean = np.array(result["returns"]["mean"])
        ci = np.array(result["returns"]["ci95"])
        steps = np.arange(len(mean))
        left.errorbar(steps, mean, yerr=ci, marker="o", capsize=3,
                      label=name)
        if name in PAPER:
            left.plot(steps[:len(PAPER[name])], PAPER[name], ls=":",
                      color=left.lines[-1].get_color(), alpha=0.6)
        if result["history"]:
            iters = [h["iterations"] for h in result["history"]]
            right.plot(iters, [h["mean"][1] if len(h["mean"]) > 1
                               else h["mean"][0] for h in result["history"]],
                       marker=".", label=f"{name}, after 1 step")
    left.set_xlabel("policy-gradient adaptation steps")
    left.set_ylabel("mean return over test tasks")
    left.set_title("2D navigation (dotted: MAML paper)")
    left.legend()
    right.set_xlabel("meta-training iterations")
    right.set_ylabel("test return after one step")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", default="promp,maml,pretrained,random")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--meta-batch-size", type=int, default=20)
    parser.add_argument("--trajectories", type=int, default=20)
    parser.add_argument("--inner-learning-rate", type=float, default=0.1)
    parser.add_argument("--outer-learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-steps", type=int, default=3)
    parser.add_argument("--num-test-tasks", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "meta_rl_navigation.json"))
    args = parser.parse_args()
    env = rl.Navigation2D()
    # Test goals come from a seed stream the training tasks never use.
    test_tasks = env.sample_tasks(args.num_test_tasks, seed=10_000 + args.seed)
    results = {}
    for name in args.learners.split(","):
        results[name] = run(name, env, test_tasks, args)
        row = results[name]["returns"]
        print(f"{name:>10}: " + " / ".join(
            f"{m:.1f} +- {c:.1f}" for m, c in zip(row["mean"], row["ci95"]))
            + f"  ({results[name]['train_seconds']} s)", flush=True)
    print("\nmean return over test tasks after 0 / 1 / 2 / 3 steps")
    print(f"| learner | ours | MAML paper | train s |")
    print("| --- | --- | --- | --- |")
    for name, result in results.items():
        ours = " / ".join(
            f"{m:.1f} +- {c:.1f}" for m, c in zip(
                result["returns"]["mean"], result["returns"]["ci95"]))
        paper = PAPER.get("maml" if name in ("promp", "maml") else name)
        paper = " / ".join(f"{v}" for v in paper) if paper else ""
        print(f"| {name} | {ours} | {paper} | {result['train_seconds']} |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({
            "command": "python benchmarks/meta_rl_navigation.py "
                       + " ".join(f"--{k.replace('_', '-')} {v}"
                                  for k, v in vars(args).items()
                                  if k != "output"),
            "config": vars(args),
            "paper": PAPER,
            "results": results,
        }, f, indent=1)
    plot(results, args.output.replace(".json", ".png"))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
