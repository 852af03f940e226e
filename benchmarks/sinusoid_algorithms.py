"""Every learner on sinusoid regression, side by side.

Trains each algorithm with the MAML paper's sinusoid setup (MLP 1-40-40-1,
K=10, meta-batch 25, Adam 1e-3; each algorithm's own inner settings from
`keras_meta.experiments.catalog`), then reports the query MSE on the same
600 fixed test tasks (100 query points each) after 1 and 10 inner steps,
with 95% confidence intervals. The neural processes (`cnp`, `anp`, from
`keras_meta.experiments.neural_process`) take no steps: their row is the
MSE of the predictive mean given the support set, and the fraction of
targets inside the predicted 95% interval. Prints a table and writes JSON
(`--append` adds rows to an existing file).

    python benchmarks/sinusoid_algorithms.py                 # all, 20000 steps
    python benchmarks/sinusoid_algorithms.py --algorithms maml,metasgd \
        --meta-steps 70000
    python benchmarks/sinusoid_algorithms.py --algorithms cnp,anp --append

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
from keras_meta.experiments import neural_process  # noqa: E402
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
    parser.add_argument("--append", action="store_true",
                        help="keep the rows already in --output (those of "
                             "the algorithms run again are replaced)")
    args = parser.parse_args()
    names = args.algorithms.split(",")
    known = (*catalog.GRADIENT_BASED, *neural_process.ALGORITHMS)
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown algorithms {unknown}; choose from {known}")

    rows = []
    if args.append and os.path.exists(args.output):
        with open(args.output) as f:
            previous = json.load(f)
        for key in ("meta_steps", "num_test_tasks", "seed"):
            if previous[key] != getattr(args, key):
                parser.error(
                    f"--append: {args.output} holds rows of {key} "
                    f"{previous[key]}, not {getattr(args, key)}; pass the "
                    "same settings or another --output")
        rows = [row for row in previous["rows"]
                if row["algorithm"] not in names]
    for name in names:
        start = time.perf_counter()
        if name in neural_process.ALGORITHMS:
            with tempfile.TemporaryDirectory() as directory:
                results = neural_process.run(
                    algorithm=name, output_dir=directory,
                    meta_steps=args.meta_steps,
                    num_test_tasks=args.num_test_tasks, seed=args.seed,
                    verbose=0)
            scores = results["rows"]["K=10"]
            rows.append({
                "algorithm": name, "train_inner_steps": None,
                "mse_1_step": None, "ci95_1_step": None,
                "mse_10_steps": None, "ci95_10_steps": None,
                "mse_conditioned": scores["mse"],
                "ci95_conditioned": scores["mse_ci95"],
                "coverage_95": scores["coverage_95"],
                "published_1_step": None,
                "seconds": time.perf_counter() - start,
            })
            _write(args, rows)
            print(f"{name:<9} conditioned {scores['mse']:.3f} +- "
                  f"{scores['mse_ci95']:.3f}, inside the 95% interval "
                  f"{scores['coverage_95']:.3f}", flush=True)
            continue
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
          f"{'10 steps':>18}{'no steps':>18}{'published':>11}{'seconds':>9}")

    def cell(row, key):
        mse = row.get(f"mse_{key}")
        if mse is None:
            return f"{'-':>18}"
        return f"{mse:>10.3f} +- {row[f'ci95_{key}']:<5.3f}"

    for row in rows:
        published = row["published_1_step"]
        steps = row["train_inner_steps"]
        print(f"{row['algorithm']:<10}{'-' if steps is None else steps:>12}"
              f"{cell(row, '1_step')}{cell(row, '10_steps')}"
              f"{cell(row, 'conditioned')}"
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
