"""Meta-reinforcement learning on HalfCheetah (MAML paper, section 5.3).

Trains a 100-100 ReLU Gaussian policy with `keras_meta.rl.ProMP` (or
`--learner maml`) on `HalfCheetahVelocity` (`--task velocity`, target
velocities uniform in [0, 2]) or `HalfCheetahDirection` (`--task
direction`), horizon 200, then scores it after 0..3 policy-gradient steps
(each step on fresh rollouts, each score from new rollouts; steps 0.1 then
0.05 as the paper's test script), beside the untrained policy.

`--variant rllab` (the default) is the MAML paper's HalfCheetah (one
physics step per action, the centre of mass's velocity, 20 observations);
on the velocity task it scores on the paper's 40 test velocities with its
20 trajectories per step and pairs each velocity's return with the paper's
(`benchmarks/reference/maml_rl_cheetah_results.json`). `--variant v5` is
gymnasium's HalfCheetah-v5, the environment of ProMP's code; the paper's
numbers are then printed beside ours but come from another environment.

The checkpoint scored is chosen on 40 validation tasks that are not test
tasks (`sample_tasks(40, seed=20000)`, `--validation-trajectories` per
step): every `--eval-every` iterations, the weights with the best mean
return after 1 to 3 steps are kept (`rl.AdaptationReturns(...,
restore_best_weights=True)`); the last weights are scored on the test
tasks too. `--outer trpo` is the paper's outer step (TRPO, KL 0.01),
`--outer adam` Adam at `--outer-learning-rate`.

The paper's evaluated MAML checkpoint is iteration 475 of 40 tasks x 10
trajectories (about 3.8 million simulator steps per 100 iterations): a
multi-hour job on CPU. `--minutes` stops training when the time is spent,
and the result file says how far it got. Needs the `rl` extra
(`pip install -e ".[rl]"`).

    python benchmarks/meta_rl_half_cheetah.py --task velocity --minutes 60

`--summarize FILE [FILE ...] --output SEEDS.json` reads result files of
runs with different `--seed`s (the same task, variant and learner) and
writes each seed's chosen iteration and returns beside the mean and the
standard deviation over seeds (`summarize_seeds`).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MUJOCO_GL", "egl")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_meta import rl  # noqa: E402

# Mean return over test tasks after 0 / 1 / 2 / 3 steps, from the MAML
# paper's result files.
PAPER = {
    "velocity": {"maml": [-129.5, -78.6, -66.6, -60.8],
                 "pretrained": [-158.0, -135.4, -128.5, -133.6],
                 "random": [-254.8]},
    "direction": {"maml": [-50.7, 293.2, 313.5, 315.7]},
}


class TimeLimit(keras.callbacks.Callback):
    """Stops training once `minutes` have passed or after `iterations`."""

    def __init__(self, minutes, iterations):
        super().__init__()
        self.seconds = minutes * 60
        self.max_iterations = iterations
        self.start = None
        self.iterations = 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.iterations += 1
        if (time.perf_counter() - self.start > self.seconds
                or self.iterations >= self.max_iterations):
            self.model.stop_training = True


class LastWeights(keras.callbacks.Callback):
    """Keeps the weights training ended with."""

    def on_train_end(self, logs=None):
        self.weights = self.model.get_weights()


def summarize_seeds(records):
    """The spread over seeds of result records (`main`'s output) of one
    configuration run with different seeds.

    Returns a dict with `seeds`, `files` and, per policy row (`random`,
    the learner, the learner's last weights, and each paired difference
    from the paper), every seed's mean after 0..3 steps and the mean and
    standard deviation (ddof 1) over seeds, plus the chosen iterations and
    iterations completed. Raises if the records do not share a task,
    variant, learner and outer step, or repeat a seed.
    """
    if len(records) < 2:
        raise ValueError(
            f"--summarize needs the result files of at least two seeds; "
            f"received {len(records)}.")
    keys = ("task", "variant", "learner", "outer")
    first = {k: records[0]["config"][k] for k in keys}
    for record in records[1:]:
        other = {k: record["config"][k] for k in keys}
        if other != first:
            raise ValueError(
                "--summarize compares seeds of one configuration; "
                f"received {first} and {other}.")
    seeds = [r["config"]["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--summarize received repeated seeds: {seeds}.")
    rows = {}
    for section in ("results", "paired_with_paper"):
        for name in records[0][section]:
            per_seed = np.asarray([r[section][name]["mean"]
                                   for r in records])
            rows[name] = {
                "per_seed": per_seed.round(2).tolist(),
                "mean": per_seed.mean(axis=0).round(2).tolist(),
                "sd": per_seed.std(axis=0, ddof=1).round(2).tolist(),
            }
    return {
        "configuration": first,
        "seeds": seeds,
        "commands": [r["command"] for r in records],
        "iterations_completed": [r["iterations_completed"] for r in records],
        "chosen_iterations": [r["checkpoint"]["iteration"] for r in records],
        "rows": rows,
    }


def _summarize(paths, output):
    records = []
    for path in paths:
        with open(path) as f:
            records.append(json.load(f))
    summary = summarize_seeds(records)
    summary["files"] = list(paths)
    summary["command"] = "python " + " ".join(sys.argv)
    print(f"seeds {summary['seeds']}: iterations "
          f"{summary['iterations_completed']}, chosen "
          f"{summary['chosen_iterations']}")
    for name, row in summary["rows"].items():
        print(f"{name:>28}: " + " / ".join(
            f"{m:.1f} +- {s:.1f}" for m, s in zip(row["mean"], row["sd"])))
    if output:
        with open(output, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"wrote {output}")
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("velocity", "direction"),
                        default="velocity")
    parser.add_argument("--learner", choices=("promp", "maml"),
                        default="promp")
    parser.add_argument("--variant", choices=("rllab", "v5"),
                        default="rllab",
                        help="rllab: the MAML paper's HalfCheetah; v5: "
                             "gymnasium's HalfCheetah-v5 (ProMP's)")
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--meta-batch-size", type=int, default=40)
    parser.add_argument("--trajectories", type=int, default=10)
    parser.add_argument("--eval-trajectories", type=int, default=20)
    parser.add_argument("--inner-learning-rate", type=float, default=0.1)
    parser.add_argument("--outer-learning-rate", type=float, default=1e-3)
    parser.add_argument("--outer", choices=("adam", "trpo"), default="adam",
                        help="the outer step: Adam, or the MAML paper's "
                             "TRPO (trust region 0.01)")
    parser.add_argument("--eval-every", type=int, default=25,
                        help="iterations between validation evaluations")
    parser.add_argument("--validation-trajectories", type=int, default=10)
    parser.add_argument("--num-processes", type=int, default=1,
                        help="worker processes stepping the simulators")
    parser.add_argument("--num-test-tasks", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    parser.add_argument("--summarize", nargs="+", metavar="FILE",
                        help="result files of several seeds: write their "
                             "spread to --output and train nothing")
    args = parser.parse_args()
    if args.summarize:
        _summarize(args.summarize, args.output)
        return
    output = args.output or os.path.join(
        os.path.dirname(__file__), "results",
        f"meta_rl_half_cheetah_{args.task}_{args.variant}.json")
    env = (rl.HalfCheetahVelocity(variant=args.variant,
                                  num_processes=args.num_processes)
           if args.task == "velocity"
           else rl.HalfCheetahDirection(variant=args.variant,
                                        num_processes=args.num_processes))
    paper_goals = args.task == "velocity" and args.num_test_tasks == 40
    if paper_goals:
        test_tasks = rl.HalfCheetahVelocity.paper_test_goals()
        with open(os.path.join(os.path.dirname(__file__), "reference",
                               "maml_rl_cheetah_results.json")) as f:
            paper_per_goal = json.load(f)["returns_per_step_and_goal"]
    else:
        test_tasks = env.sample_tasks(args.num_test_tasks,
                                      seed=10_000 + args.seed)
        paper_per_goal = None

    def score(model):
        returns = model.adaptation_returns(
            test_tasks, num_steps=3, num_trajectories=args.eval_trajectories,
            seed=args.seed + 2)
        row = rl.summarize_returns(returns)
        row["per_goal"] = returns.tolist()
        return row

    def learner():
        keras.utils.set_random_seed(args.seed)
        policy = rl.gaussian_mlp_policy(
            env.observation_dim, env.action_dim, seed=args.seed)
        cls = rl.ProMP if args.learner == "promp" else rl.MAMLRL
        model = cls(policy, env, inner_learning_rate=args.inner_learning_rate,
                    num_trajectories=args.trajectories, seed=args.seed,
                    trust_region=0.01 if args.outer == "trpo" else None)
        model.compile(optimizer=keras.optimizers.Adam(
            args.outer_learning_rate))
        return model

    results = {}
    start = time.perf_counter()
    untrained = learner()
    results["random"] = score(untrained)
    print("random:", results["random"]["mean"], flush=True)
    evaluation_seconds = time.perf_counter() - start
    trained = learner()
    limit = TimeLimit(args.minutes, args.iterations)
    validation = rl.AdaptationReturns(
        env.sample_tasks(40, seed=20_000), num_steps=3,
        num_trajectories=args.validation_trajectories, seed=args.seed + 1,
        restore_best_weights=True)
    last = LastWeights()
    # Evaluations every `eval_every` iterations: one epoch each. `last`
    # comes before `validation`, which restores the chosen weights.
    start = time.perf_counter()
    history = trained.fit(
        env.task_dataset(args.meta_batch_size, seed=args.seed),
        steps_per_epoch=args.eval_every,
        epochs=-(-args.iterations // args.eval_every),
        callbacks=[limit, last, validation], verbose=2).history
    train_seconds = time.perf_counter() - start
    chosen = trained.get_weights()
    trained.set_weights(last.weights)
    results[f"{args.learner}_last"] = score(trained)
    trained.set_weights(chosen)
    results[args.learner] = score(trained)
    print(f"{args.learner}:", results[args.learner]["mean"], flush=True)
    # Ours minus the paper's, goal by goal (the same 40 velocities), where
    # the environment is the paper's.
    paired = {}
    if paper_per_goal is not None and args.variant == "rllab":
        for name, paper_name in (("random", "random"),
                                 (args.learner, "maml"),
                                 (f"{args.learner}_last", "maml")):
            ours = np.asarray(results[name]["per_goal"])
            theirs = np.asarray(paper_per_goal[paper_name]).T
            paired[f"{name} minus paper {paper_name}"] = rl.summarize_returns(
                ours - theirs[:, :ours.shape[1]])
    steps = (2 * args.meta_batch_size * args.trajectories * env.horizon
             * limit.iterations)
    record = {
        "command": "python " + " ".join(sys.argv),
        "config": vars(args),
        "iterations_completed": limit.iterations,
        "checkpoint": {
            "rule": "best mean return after 1-3 steps on 40 validation "
                    "tasks (sample_tasks(40, seed=20000), "
                    f"{args.validation_trajectories} trajectories per "
                    f"step), every {args.eval_every} iterations",
            "iteration": min(validation.best_epoch * args.eval_every,
                             limit.iterations),
            "validation_curve": [
                {"iterations": min(h["epoch"] * args.eval_every,
                                   limit.iterations),
                 "mean": [round(v, 2) for v in h["mean"]]}
                for h in validation.history]},
        "iterations_planned": args.iterations,
        "simulator_steps_in_training": steps,
        "train_seconds": round(train_seconds, 1),
        "evaluation_seconds": round(evaluation_seconds, 1),
        "training_curve": {k: [round(v, 2) for v in vals]
                           for k, vals in history.items()},
        "test_goals": ("HalfCheetahVelocity.paper_test_goals()" if paper_goals
                       else f"sample_tasks({args.num_test_tasks}, seed="
                            f"{10_000 + args.seed})"),
        "environment": (
            "rllab's HalfCheetah, as the MAML paper's code: one physics "
            "step per action, centre-of-mass velocity, 20 observations"
            if args.variant == "rllab" else
            "gymnasium HalfCheetah-v5 (ProMP's code's environment): five "
            "physics steps per action, x-position differences, 17 "
            "observations; the paper's numbers come from rllab's"),
        "results": results,
        "paired_with_paper": paired,
        "paper": PAPER[args.task],
    }
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as f:
        json.dump(record, f, indent=1)
    print(f"{limit.iterations} of {args.iterations} iterations "
          f"({steps:,} simulator steps) in {train_seconds:.0f} s")
    for name, row in list(results.items()) + list(paired.items()):
        print(f"{name:>8}: " + " / ".join(
            f"{m:.1f} +- {c:.1f}" for m, c in zip(row["mean"], row["ci95"])))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
