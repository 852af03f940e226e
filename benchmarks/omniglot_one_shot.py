"""Lake et al.'s one-shot task: 20-way within-alphabet one-shot Omniglot
from a minimal background set, as a ladder of ingredients.

Each row of the ladder changes one thing from the row above and is trained
and scored by `keras_meta.experiments.one_shot.run` (see its docstring for
the protocol: train on one minimal set with Latin held out for checkpoint
choice, test 20-way within-alphabet one-shot on the other set's unseen
alphabets, Tagalog at 17 ways apart, fixed trials, Student-t 95%
intervals).

    python benchmarks/omniglot_one_shot.py --direction small1 \\
        --data-dir ../shared/data/omniglot

Writes `--output` (default `benchmarks/results/omniglot_one_shot_DIRECTION
.json`) after every row, with each row's learning curve beside it
(`..._ROW.png`), and prints the table. `--rows` picks rows by name;
`--max-minutes` caps each run's training.
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import one_shot  # noqa: E402

# Each row: (name, what changed, run() arguments on top of the row above).
LADDER = (
    ("baseline", "ProtoNet, Conv-4-64 at 28 px, 20-way episodes across "
     "alphabets, characters at 4 rotations as classes", {}),
    ("within_alphabet", "training episodes drawn within one alphabet",
     {"within_alphabet": True}),
    ("affine", "random affine distortions of training images "
     "(keras_meta.data.affine_distortions)", {"augment": True}),
    ("more_ways", "60-way training episodes (meta-batch 1, 5 queries)",
     {"train_ways": 60, "meta_batch_size": 1}),
    ("wider", "Conv-4 with 128 filters", {"filters": 128}),
    ("larger_images", "images at 56 px", {"image_size": 56}),
)


def ladder_configs(names=None):
    """`[(name, description, run() arguments)]`, each row's arguments
    accumulated from the rows above it."""
    rows, config = [], {}
    for name, description, change in LADDER:
        config = {**config, **change}
        rows.append((name, description, dict(config)))
    if names:
        known = [row[0] for row in LADDER]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise SystemExit(f"Unknown rows {unknown}; choose among {known}.")
        rows = [row for row in rows if row[0] in names]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--direction", default="small1",
                        choices=tuple(one_shot.SUBSETS),
                        help="the minimal set trained on")
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot"))
    parser.add_argument("--rows", default=None,
                        help="comma-separated row names (default: all)")
    parser.add_argument("--meta-steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--num-test-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    output = args.output or os.path.join(
        os.path.dirname(__file__), "results",
        f"omniglot_one_shot_{args.direction}.json")
    names = args.rows.split(",") if args.rows else None

    results = {"args": vars(args), "machine": platform.platform(),
               "published_error": one_shot.PUBLISHED_ERROR, "rows": []}
    if os.path.exists(output) and names:
        # Rows run before are kept; a row run again replaces its old one.
        with open(output) as f:
            results["rows"] = [row for row in json.load(f).get("rows", [])
                               if row["name"] not in names]
    stem = os.path.splitext(output)[0]
    for name, description, config in ladder_configs(names):
        print(f"== {name}: {description}", flush=True)
        start = time.perf_counter()
        run = one_shot.run(
            data_dir=args.data_dir, train_subset=args.direction,
            meta_steps=args.meta_steps, eval_every=args.eval_every,
            patience=args.patience, max_minutes=args.max_minutes,
            num_test_episodes=args.num_test_episodes, seed=args.seed,
            output=f"{stem}_{name}.json", verbose=2, **config)
        row = {"name": name, "change": description, "config": run["config"],
               "error": run["pooled"]["error"],
               "error_ci95": run["pooled"]["error_ci95"],
               "alphabets": run["alphabets"], "steps": run["steps"],
               "best_step": run["best_step"],
               "stopped_by": run["stopped_by"],
               "train_seconds": run["train_seconds"],
               "wall_seconds": time.perf_counter() - start}
        results["rows"].append(row)
        order = [entry[0] for entry in LADDER]
        results["rows"].sort(key=lambda r: order.index(r["name"]))
        with open(output, "w") as f:
            json.dump(results, f, indent=2)
        print(one_shot.format_results(run), flush=True)
    print(format_ladder(results["rows"]))
    print(f"wrote {output}")


def format_ladder(rows):
    lines = [f"{'row':16s} {'20-way error (%)':>18s} {'Tagalog 17-way':>15s}"
             f" {'steps':>6s} {'minutes':>8s}"]
    for row in rows:
        tagalog = row["alphabets"].get("Tagalog")
        tagalog = (f"{tagalog['error']:5.1f} +- {tagalog['error_ci95']:.1f}"
                   if tagalog else "")
        lines.append(
            f"{row['name']:16s} {row['error']:9.1f} +- {row['error_ci95']:4.1f}"
            f" {tagalog:>15s} {row['best_step']:6d} "
            f"{row['train_seconds'] / 60:8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
