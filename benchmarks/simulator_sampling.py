"""Time of one meta-training iteration's rollouts on MuJoCo simulators,
stepped in this process or in worker processes (`num_processes`).

For each task family (the MAML paper's HalfCheetah, gymnasium's
HalfCheetah-v5 and Ant-v5) and each process count, samples what one
training iteration samples (`--tasks` tasks x `--trajectories`
trajectories of 200 steps, before and after one adaptation step, with a
100-100 ReLU policy), `--rounds` times, alternating the process counts
round by round, and reports the median seconds and the speed-up over one
process. The rollouts are checked equal across process counts. Prints a
table and writes JSON.

    python benchmarks/simulator_sampling.py
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_meta import rl  # noqa: E402

FAMILIES = {
    "halfcheetah_rllab": lambda n: rl.HalfCheetahVelocity(
        variant="rllab", num_processes=n),
    "halfcheetah_v5": lambda n: rl.HalfCheetahVelocity(
        variant="v5", num_processes=n),
    "ant_v5": lambda n: rl.AntVelocity(num_processes=n),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--trajectories", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "simulator_sampling.json"))
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    rows = {}
    for family in args.families.split(","):
        learners = {}
        for n in counts:
            env = FAMILIES[family](n)
            policy = rl.gaussian_mlp_policy(env.observation_dim,
                                            env.action_dim, seed=0)
            learners[n] = rl.MAMLRL(policy, env, num_trajectories=1,
                                    seed=0)
        tasks = learners[counts[0]].environment.sample_tasks(args.tasks,
                                                             seed=0)
        seconds = {n: [] for n in counts}
        returns = {}
        # Round 0 warms up (compiles the policy, makes the simulators and
        # starts the workers) and is not timed.
        for round_ in range(args.rounds + 1):
            for n in counts:
                rng = np.random.default_rng(round_)
                start = time.perf_counter()
                batches, _ = learners[n]._collect_simulated(
                    tasks, args.trajectories, [0.1], rng)
                elapsed = time.perf_counter() - start
                returns[n] = np.stack([np.asarray(b["returns"])
                                       for b in batches])
                if round_:
                    seconds[n].append(elapsed)
        for n in counts[1:]:
            np.testing.assert_array_equal(returns[n], returns[counts[0]])
        for learner in learners.values():
            learner.environment.close()
        medians = {n: float(np.median(s)) for n, s in seconds.items()}
        rows[family] = {
            "seconds": {str(n): [round(v, 3) for v in s]
                        for n, s in seconds.items()},
            "median_seconds": {str(n): round(v, 3)
                               for n, v in medians.items()},
            "speedup": {str(n): round(medians[counts[0]] / v, 2)
                        for n, v in medians.items()},
            "simulator_steps": 2 * args.tasks * args.trajectories * 200,
        }
        print(f"{family}: " + ", ".join(
            f"{n} process{'es' if n > 1 else ''} {medians[n]:.2f} s "
            f"({medians[counts[0]] / medians[n]:.2f}x)" for n in counts),
            flush=True)
    record = {"command": "python " + " ".join(sys.argv),
              "config": vars(args), "cores": os.cpu_count(),
              "what": "one training iteration's rollouts (before and after "
                      "one adaptation step), median seconds over rounds; "
                      "the returns are equal across process counts",
              "results": rows}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(record, f, indent=1)
    print("| family | " + " | ".join(f"{n} proc. s" for n in counts)
          + " | speed-up |")
    print("| --- |" + " --- |" * (len(counts) + 1))
    for family, row in rows.items():
        print(f"| {family} | " + " | ".join(
            str(row["median_seconds"][str(n)]) for n in counts)
            + " | " + ", ".join(f"{row['speedup'][str(n)]}x"
                                for n in counts[1:]) + " |")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
