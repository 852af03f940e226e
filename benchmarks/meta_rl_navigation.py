"""Meta-reinforcement learning on 2D navigation, as in the MAML paper.

Trains, each for `--iterations` meta-steps of `--meta-batch-size` tasks with
`--trajectories` rollouts per task and step (horizon 100), a 100-100 ReLU
Gaussian policy with `promp` (`keras_meta.rl.ProMP`), `maml`
(`keras_meta.rl.MAMLRL`) and `pretrained` (trained on all tasks without
adaptation), and keeps the untrained `random` policy; scores each on 40
fixed test goals after 0, 1, 2 and 3 policy-gradient steps with 95% CIs
(see `keras_meta.experiments.navigation`). Prints a table and writes JSON
and a PNG.

    python benchmarks/meta_rl_navigation.py

`--protocol paper` runs the MAML paper's evaluation instead
(`keras_meta.experiments.navigation_paper`): its 40 test goals, 40
trajectories per step, steps of 0.5 then 0.25, checkpoints and baseline
step sizes chosen on validation goals, `--seeds` seeds, each learner's
per-goal returns paired with the paper's
(`benchmarks/reference/maml_rl_point_results.json`):

    python benchmarks/meta_rl_navigation.py --protocol paper \
        --output benchmarks/results/meta_rl_navigation_paper.json
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

from keras_meta.experiments import navigation  # noqa: E402
from keras_meta.experiments import navigation_paper  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(__file__), "reference",
                         "maml_rl_point_results.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("ours", "paper"),
                        default="ours")
    parser.add_argument("--learners", default=None)
    parser.add_argument("--seeds", default="0,1,2",
                        help="--protocol paper: the seeds")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--meta-batch-size", type=int, default=20)
    parser.add_argument("--trajectories", type=int, default=20)
    parser.add_argument("--inner-learning-rate", type=float, default=None,
                        help="0.1 (ours) or 0.5 (paper)")
    parser.add_argument("--outer-learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-steps", type=int, default=3)
    parser.add_argument("--num-test-tasks", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "meta_rl_navigation.json"))
    args = parser.parse_args()
    if args.protocol == "paper":
        with open(REFERENCE) as f:
            paper = json.load(f)["returns_per_step_and_goal"]
        navigation_paper.run(
            paper_returns=paper,
            learners=(args.learners or ",".join(
                navigation_paper.LEARNERS)).split(","),
            seeds=[int(s) for s in args.seeds.split(",")],
            output=args.output, iterations=args.iterations,
            meta_batch_size=args.meta_batch_size,
            num_trajectories=args.trajectories,
            inner_learning_rate=args.inner_learning_rate or 0.5,
            learning_rate=args.outer_learning_rate,
            eval_every=args.eval_every, eval_steps=args.eval_steps,
            command="python " + " ".join(sys.argv))
        with open(args.output) as f:
            print(navigation_paper.format_table(json.load(f)))
        print(f"wrote {args.output}")
        return
    results = navigation.run(
        learners=(args.learners or ",".join(navigation.LEARNERS)).split(","),
        output=args.output,
        iterations=args.iterations, meta_batch_size=args.meta_batch_size,
        num_trajectories=args.trajectories,
        inner_learning_rate=args.inner_learning_rate or 0.1,
        learning_rate=args.outer_learning_rate, eval_every=args.eval_every,
        eval_steps=args.eval_steps, num_test_tasks=args.num_test_tasks,
        seed=args.seed, command="python " + " ".join(sys.argv))
    print()
    print(navigation.format_table(results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
