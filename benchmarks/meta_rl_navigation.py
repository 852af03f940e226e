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
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import navigation  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--learners", default=",".join(navigation.LEARNERS))
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
    results = navigation.run(
        learners=args.learners.split(","), output=args.output,
        iterations=args.iterations, meta_batch_size=args.meta_batch_size,
        num_trajectories=args.trajectories,
        inner_learning_rate=args.inner_learning_rate,
        learning_rate=args.outer_learning_rate, eval_every=args.eval_every,
        eval_steps=args.eval_steps, num_test_tasks=args.num_test_tasks,
        seed=args.seed, command="python " + " ".join(sys.argv))
    print()
    print(navigation.format_table(results))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
