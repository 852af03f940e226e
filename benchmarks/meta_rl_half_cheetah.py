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

`--state-dir DIR` makes the run resumable across processes: the
learner's backup (`keras_meta.callbacks.BackupAndRestore`) and the run's
own state (validation evaluations, the chosen weights, the training curve
and seconds) are kept in DIR at the end of each epoch of `--eval-every`
iterations, `--minutes` then stops at the last epoch end it has time for,
and the same command resumes where the folder left off, with the
rollouts and tasks of an uninterrupted run (the simulators are seeded by
iteration): a run longer than one sitting goes in several, and a larger
`--iterations` extends a finished one. Each sitting writes `--output`
as of where it stopped; `sessions` in it lists them.

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

import keras_meta  # noqa: E402
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
    """Stops training once `minutes` have passed or after `iterations`
    (counted from `done`, the iterations of earlier sessions).

    With `at_epoch_ends=True` (a resumable run) it stops only at the end
    of an epoch, the last one that the time left allows by the pace of
    this process's epochs so far: a backup is then always of whole
    epochs, which is what an exact resume needs.
    """

    def __init__(self, minutes, iterations, *, done=0, at_epoch_ends=False):
        super().__init__()
        self.seconds = minutes * 60
        self.max_iterations = iterations
        self.at_epoch_ends = at_epoch_ends
        self.start = None
        self.iterations = done
        self.epochs = 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.iterations += 1
        if self.iterations >= self.max_iterations or (
                not self.at_epoch_ends
                and time.perf_counter() - self.start > self.seconds):
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        elapsed = time.perf_counter() - self.start
        if (self.at_epoch_ends
                and elapsed + elapsed / self.epochs > self.seconds):
            self.model.stop_training = True


class LastWeights(keras.callbacks.Callback):
    """Keeps the weights training ended with."""

    def on_train_end(self, logs=None):
        self.weights = self.model.get_weights()


# What a resumed run must share with the run it resumes.
RESUME_KEYS = ("task", "learner", "variant", "meta_batch_size",
               "trajectories", "eval_trajectories", "inner_learning_rate",
               "outer_learning_rate", "outer", "eval_every",
               "validation_trajectories", "num_test_tasks", "seed")


class RunState(keras.callbacks.Callback):
    """Keeps, in `directory`, what a resumed run needs beyond the learner's
    own backup (`keras_meta.callbacks.BackupAndRestore`, in
    `directory/backup`): the score of the untrained policy, every
    validation evaluation with the weights of each one that was the best
    so far, the training curve and the training seconds, all as of the end
    of each epoch.

    Put it after the validation callback and before the backup: the state
    of an epoch is then written before that epoch's backup, and a process
    killed between the two leaves a state one epoch ahead of the backup,
    which `load` cuts back (the resumed run trains and evaluates that
    epoch again, exactly).
    """

    def __init__(self, directory, config, validation, *, previous=None,
                 random_score=None, evaluation_seconds=None):
        super().__init__()
        self.directory = directory
        self.config = {k: config[k] for k in RESUME_KEYS}
        self.num_processes = config.get("num_processes")
        self.validation = validation
        previous = previous or {}
        self.curve = previous.get("curve", [])
        self.epoch_train_seconds = previous.get("epoch_train_seconds", [])
        self.train_seconds = previous.get("train_seconds", 0.0)
        self.sessions = previous.get("sessions", [])
        self.random_score = previous.get("random", random_score)
        self.evaluation_seconds = previous.get(
            "evaluation_seconds", evaluation_seconds)
        self.start = None
        self.before = self.train_seconds
        os.makedirs(directory, exist_ok=True)

    @staticmethod
    def load(directory, config, epoch):
        """The state as of the end of epoch `epoch` (the backup's), or
        `None` for a fresh run; raises if the state is of another
        configuration or behind the backup."""
        path = os.path.join(directory, "state.json")
        if not os.path.exists(path):
            if epoch:
                raise ValueError(
                    f"{directory} holds a backup of epoch {epoch} but no "
                    "state.json: it is not a folder this script wrote. "
                    "Give another --state-dir.")
            return None
        with open(path) as f:
            state = json.load(f)
        wanted = {k: config[k] for k in RESUME_KEYS}
        if state["config"] != wanted:
            changed = sorted(k for k in RESUME_KEYS
                             if state["config"].get(k) != wanted[k])
            raise ValueError(
                f"--state-dir {directory} is a run of another "
                f"configuration: {changed} differ "
                f"({ {k: state['config'].get(k) for k in changed} } there, "
                f"{ {k: wanted[k] for k in changed} } here). Resume it with "
                "its own options, or give another --state-dir.")
        if state["epoch"] < epoch:
            raise ValueError(
                f"{directory}: state.json is of epoch {state['epoch']}, "
                f"behind the backup's epoch {epoch}; the folder was not "
                "written by this script's callbacks in their order.")
        state["validation"] = [h for h in state["validation"]
                               if h["epoch"] <= epoch]
        state["curve"] = state["curve"][:epoch]
        state["train_seconds"] = (state["epoch_train_seconds"][epoch - 1]
                                  if epoch else 0.0)
        state["epoch_train_seconds"] = state["epoch_train_seconds"][:epoch]
        state["epoch"] = epoch
        return state

    def restore(self, state):
        """Sets the validation callback's history and best evaluation (with
        its weights) from `state`."""
        self.epoch_train_seconds = list(state["epoch_train_seconds"])
        history = state["validation"]
        self.validation.history = [dict(h) for h in history]
        if history:
            best = max(history, key=rl.AdaptationReturns.score)
            self.validation.best_epoch = best["epoch"]
            self.validation.best_score = rl.AdaptationReturns.score(best)
            with np.load(self._weights_path(best["epoch"])) as weights:
                self.validation.best_weights = [
                    weights[f"w{i}"] for i in range(len(weights.files))]

    def _weights_path(self, epoch):
        return os.path.join(self.directory, f"best_at_epoch_{epoch}.npz")

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.sessions.append({"from_epoch": len(self.curve),
                              "num_processes": self.num_processes})

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds = self.before + time.perf_counter() - self.start
        self.curve.append({k: float(v) for k, v in (logs or {}).items()})
        self.epoch_train_seconds.append(round(self.train_seconds, 1))
        self.sessions[-1]["epochs_to"] = epoch + 1
        if self.validation.best_epoch == epoch + 1:
            path = self._weights_path(epoch + 1)
            np.savez(path + ".tmp.npz", **{
                f"w{i}": w for i, w in enumerate(self.model.get_weights())})
            os.replace(path + ".tmp.npz", path)
        state = {
            "config": self.config,
            "epoch": epoch + 1,
            "random": self.random_score,
            "evaluation_seconds": self.evaluation_seconds,
            "validation": self.validation.history,
            "curve": self.curve,
            "epoch_train_seconds": self.epoch_train_seconds,
            "sessions": self.sessions,
        }
        path = os.path.join(self.directory, "state.json")
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)


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
    parser.add_argument("--state-dir", default=None,
                        help="a folder that makes the run resumable: the "
                             "learner's backup and the run's state are "
                             "kept there at the end of each epoch, and the "
                             "same command resumes from them (a larger "
                             "--iterations extends a finished run)")
    parser.add_argument("--summarize", nargs="+", metavar="FILE",
                        help="result files of several seeds: write their "
                             "spread to --output and train nothing")
    args = parser.parse_args()
    if args.summarize:
        _summarize(args.summarize, args.output)
        return
    if args.state_dir and args.iterations % args.eval_every:
        raise ValueError(
            "A resumable run (--state-dir) stops at epoch ends, so "
            f"--iterations ({args.iterations}) must be a multiple of "
            f"--eval-every ({args.eval_every}).")
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

    config = vars(args)
    backup = state = None
    if args.state_dir:
        backup = keras_meta.callbacks.BackupAndRestore(
            os.path.join(args.state_dir, "backup"), delete_checkpoint=False)
        state = RunState.load(args.state_dir, config,
                              backup.restored_epoch())
    results = {}
    if state is not None:
        results["random"] = state["random"]
        evaluation_seconds = state["evaluation_seconds"]
        print(f"resuming {args.state_dir} after epoch {state['epoch']} "
              f"({state['epoch'] * args.eval_every} iterations)", flush=True)
    else:
        start = time.perf_counter()
        untrained = learner()
        results["random"] = score(untrained)
        evaluation_seconds = time.perf_counter() - start
    print("random:", results["random"]["mean"], flush=True)
    trained = learner()
    done = state["epoch"] * args.eval_every if state else 0
    limit = TimeLimit(args.minutes, args.iterations, done=done,
                      at_epoch_ends=backup is not None)
    validation = rl.AdaptationReturns(
        env.sample_tasks(40, seed=20_000), num_steps=3,
        num_trajectories=args.validation_trajectories, seed=args.seed + 1,
        restore_best_weights=True)
    last = LastWeights()
    # Evaluations every `eval_every` iterations: one epoch each. `last`
    # comes before `validation`, which restores the chosen weights; the
    # run's state after `validation` and before the learner's backup.
    callbacks = [limit, last, validation]
    if backup is not None:
        run_state = RunState(args.state_dir, config, validation,
                             previous=state, random_score=results["random"],
                             evaluation_seconds=evaluation_seconds)
        if state is not None:
            run_state.restore(state)
        callbacks += [run_state, backup]
    start = time.perf_counter()
    history = trained.fit(
        env.task_dataset(args.meta_batch_size, seed=args.seed),
        steps_per_epoch=args.eval_every,
        epochs=-(-args.iterations // args.eval_every),
        callbacks=callbacks, verbose=2).history
    train_seconds = time.perf_counter() - start
    if backup is not None:
        train_seconds = run_state.train_seconds
        history = {k: [epoch.get(k) for epoch in run_state.curve]
                   for k in run_state.curve[0]} if run_state.curve else {}
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
        "config": config,
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
        "sessions": run_state.sessions if backup is not None else None,
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
