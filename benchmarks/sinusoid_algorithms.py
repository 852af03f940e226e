"""Every gradient-based learner on sinusoid regression, side by side.

Trains each algorithm with the MAML paper's sinusoid setup (MLP 1-40-40-1,
K=10, meta-batch 25, Adam 1e-3; each algorithm's own inner settings from
`keras_meta.experiments.catalog`), then reports the query MSE on the same
600 fixed test tasks (100 query points each) after 1 and 10 inner steps,
with 95% confidence intervals. Prints a table and writes JSON.

    python benchmarks/sinusoid_algorithms.py                 # all, 20000 steps
    python benchmarks/sinusoid_algorithms.py --algorithms maml,metasgd \
        --meta-steps 70000

Published K=10 one-step MSEs for reference (Li et al., 2017, table 1):
MAML 0.77 +- 0.11, Meta-SGD 0.53 +- 0.09.
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import catalog  # noqa: E402
from keras_meta.experiments import sinusoid  # noqa: E402

PUBLISHED = {"maml": 0.77, "metasgd": 0.53}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", default=",".join(catalog.GRADIENT_BASED))
    parser.add_argument("--meta-steps", type=int, default=20000)
    parser.add_argument("--num-test-tasks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "sinusoid_algorithms.json"))
    args = parser.parse_args()

    rows = []
    for name in args.algorithms.split(","):
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as directory:
            results = sinusoid.run(
                algorithm=name, output_dir=directory,
                meta_steps=args.meta_steps, num_test_tasks=args.num_test_tasks,
                seed=args.seed, verbose=0, baseline=False)
        curve = results["curves"][name]["K=10"]
        row = {
            "algorithm": name,
            "train_inner_steps": results["config"]["num_inner_steps"],
            "mse_1_step": curve[1]["mse"], "ci95_1_step": curve[1]["ci95"],
            "mse_10_steps": curve[10]["mse"], "ci95_10_steps": curve[10]["ci95"],
            "published_1_step": PUBLISHED.get(name),
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        _write(args, rows)
        print(f"{name:<9} 1 step {row['mse_1_step']:.3f} +- "
              f"{row['ci95_1_step']:.3f}   10 steps {row['mse_10_steps']:.3f}"
              f" +- {row['ci95_10_steps']:.3f}   ({row['seconds']:.0f} s)",
              flush=True)

    print()
    print(f"sinusoid K=10, {args.meta_steps} meta-steps, "
          f"{args.num_test_tasks} test tasks: query MSE +- 95% CI")
    print(f"{'algorithm':<10}{'train steps':>12}{'1 step':>18}"
          f"{'10 steps':>18}{'published':>11}{'seconds':>9}")
    for row in rows:
        published = row["published_1_step"]
        print(f"{row['algorithm']:<10}{row['train_inner_steps']:>12}"
              f"{row['mse_1_step']:>10.3f} +- {row['ci95_1_step']:<5.3f}"
              f"{row['mse_10_steps']:>10.3f} +- {row['ci95_10_steps']:<5.3f}"
              f"{'' if published is None else published:>11}"
              f"{row['seconds']:>9.0f}")
    print(f"wrote {args.output}")


def _write(args, rows):
    """Writes the rows so far (a cut-short run keeps them); a diverged
    value is written as null."""
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    rows = [{key: sinusoid.finite_or_none(value)
             if isinstance(value, float) else value
             for key, value in row.items()} for row in rows]
    with open(args.output, "w") as f:
        json.dump({"meta_steps": args.meta_steps,
                   "num_test_tasks": args.num_test_tasks,
                   "seed": args.seed, "rows": rows}, f, indent=2,
                  allow_nan=False)


if __name__ == "__main__":
    main()
