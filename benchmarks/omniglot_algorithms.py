"""Every learner on few-shot Omniglot from the real background subsets.

Trains each algorithm on `images_background_small1` (4 rotations per
character) and evaluates it on 600 fixed episodes of the characters of
`images_background_small2` that are not classes of small1 (Japanese
(katakana), Sanskrit and Tagalog: the two subsets share Greek and Latin),
all with the same CPU budget: Conv-4 with `--filters` filters on 28x28
images, meta-batch `--meta-batch-size`, `--meta-steps` Adam steps, each
algorithm's own inner settings from `keras_meta.experiments.catalog`, in
each `--batch-norm` mode. Prints a table of query accuracy +- 95% CI and
writes JSON.

    python benchmarks/omniglot_algorithms.py --data-dir ../shared/data/omniglot

The default budget is far below the papers' (MAML: 60,000 steps of
meta-batch 32 with 64 filters), so the numbers rank the algorithms under a
small CPU budget; they are not the papers' asymptotic accuracies.
"""

import argparse
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import catalog  # noqa: E402
from keras_meta.experiments import omniglot  # noqa: E402

FIVE_SHOT = ("protonet", "matchingnet", "relationnet", "r2d2", "protomaml",
             "leo", "snail", "mann")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot"))
    parser.add_argument("--algorithms", default=",".join(catalog.ALGORITHMS))
    parser.add_argument("--five-shot", default=",".join(FIVE_SHOT),
                        help="algorithms also run 5-shot ('' for none)")
    parser.add_argument("--meta-steps", type=int, default=1000)
    parser.add_argument("--meta-batch-size", type=int, default=8)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--num-test-episodes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-per-execution", type=int, default=10,
                        help="1 avoids TensorFlow's AlreadyExistsError on "
                             "large episodes (SNAIL 5-shot)")
    parser.add_argument(
        "--batch-norm", default="inductive",
        help="comma-separated modes, e.g. 'inductive,transductive'")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "omniglot_algorithms.json"))
    args = parser.parse_args()

    modes = args.batch_norm.split(",")
    runs = [(name, 1, mode) for name in args.algorithms.split(",") if name
            for mode in modes]
    runs += [(name, 5, mode) for name in args.five_shot.split(",") if name
             for mode in modes]
    rows = []
    for name, shots, mode in runs:
        with tempfile.TemporaryDirectory() as directory:
            results = omniglot.run(
                algorithm=name, data_dir=args.data_dir, output_dir=directory,
                num_shots=shots, meta_steps=args.meta_steps,
                meta_batch_size=args.meta_batch_size, filters=args.filters,
                num_test_episodes=args.num_test_episodes, seed=args.seed,
                steps_per_execution=args.steps_per_execution,
                batch_norm=mode, verbose=0)
        rows.append({
            "algorithm": name, "num_shots": shots, "batch_norm": mode,
            "accuracy": results["accuracy"],
            "accuracy_ci95": results["accuracy_ci95"],
            "final_train_accuracy": results["final_train_accuracy"],
            "train_seconds": results["seconds"]["training"],
            "config": results["config"],
        })
        print(f"[{mode}] " + omniglot.format_row(results), flush=True)
        # Written after every run, so that a run cut short keeps its rows.
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)

    print()
    print(f"Omniglot 5-way, train small1 / test small2's unseen alphabets, "
          f"{args.meta_steps} steps x meta-batch {args.meta_batch_size}, "
          f"Conv-4 {args.filters} filters, {args.num_test_episodes} test "
          "episodes")
    columns = [(shots, mode) for shots in (1, 5) for mode in modes]
    print(f"{'algorithm':<13}" + "".join(
        f"{f'{shots}-shot {mode}':>24}" for shots, mode in columns)
        + f"{'seconds':>10}")
    table = {}
    for row in rows:
        table.setdefault(row["algorithm"], {})[
            (row["num_shots"], row["batch_norm"])] = row
    for name, cells_by_column in table.items():
        cells = ""
        for column in columns:
            row = cells_by_column.get(column)
            cells += (f"{'':>24}" if row is None else
                      f"{100 * row['accuracy']:>16.1f} +- "
                      f"{100 * row['accuracy_ci95']:<4.1f}")
        seconds = sum(r["train_seconds"] for r in cells_by_column.values())
        print(f"{name:<13}{cells}{seconds:>10.0f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
