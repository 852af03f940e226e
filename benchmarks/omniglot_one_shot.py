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

# Each row: (name, what changed, run() arguments on top of its parent,
# parent); the trained rows are scored without test-time views (run()'s
# defaults are the best row's configuration, views included). The parent is the row above unless named: the later rows branch
# from the trained row best on the validation alphabet (within_alphabet),
# or, for training length, from the row whose validation error was still
# falling at the step limit (affine).
LADDER = (
    ("baseline", "ProtoNet, Conv-4-64 at 28 px, 20-way episodes across "
     "alphabets, characters at 4 rotations as classes",
     {"within_alphabet": False, "test_time_views": None}, None),
    ("within_alphabet", "training episodes drawn within one alphabet",
     {"within_alphabet": True}, None),
    ("affine", "random affine distortions of training images "
     "(keras_meta.data.affine_distortions)", {"augment": True}, None),
    ("more_ways", "60-way training episodes (meta-batch 1, 5 queries)",
     {"train_ways": 60, "meta_batch_size": 1}, None),
    ("longer", "affine, trained up to 4,000 steps",
     {"meta_steps": 4000}, "affine"),
    ("wider", "within_alphabet with Conv-4 of 128 filters",
     {"filters": 128}, "within_alphabet"),
    ("larger_images", "within_alphabet with images at 56 px",
     {"image_size": 56}, "within_alphabet"),
    ("images_84", "within_alphabet with images at 84 px",
     {"image_size": 84}, "within_alphabet"),
    ("resnet12", "within_alphabet with ResNet-12 (widths 64, 160, 320, "
     "640) instead of Conv-4", {"backbone": "resnet12"}, "within_alphabet"),
)

# Rows that retrain nothing: the learner of the last trained row above them
# (its saved `.keras`), scored with test-time options.
TEST_TIME = (
    ("test_time_views", "test-time augmentation: every image embedded as "
     "the mean of 9 fixed affine views (keras_meta.models.AffineViews)"),
    ("fine_tune", "the encoder fine-tuned on each support set's views "
     "(steps and rate chosen on the validation alphabet)"),
)
ORDER = [row[0] for row in LADDER] + [row[0] for row in TEST_TIME]


def ladder_configs(names=None):
    """`[(name, description, run() arguments)]`, each row's arguments
    accumulated from its parent's."""
    rows, configs, config = [], {}, {}
    for name, description, change, parent in LADDER:
        config = {**(configs[parent] if parent else config), **change}
        configs[name] = config
        rows.append((name, description, dict(config)))
    if names:
        unknown = sorted(set(names) - set(ORDER))
        if unknown:
            raise SystemExit(f"Unknown rows {unknown}; choose among {ORDER}.")
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
    parser.add_argument(
        "--base", default=None,
        help="the trained row the test-time rows score (default: the "
             "trained row of --output best on the validation alphabet)")
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
        run = one_shot.run(**{
            "data_dir": args.data_dir, "train_subset": args.direction,
            "meta_steps": args.meta_steps, "eval_every": args.eval_every,
            "patience": args.patience, "max_minutes": args.max_minutes,
            "num_test_episodes": args.num_test_episodes, "seed": args.seed,
            "output": f"{stem}_{name}.json", "verbose": 2, **config})
        row = {"name": name, "change": description, "config": run["config"],
               "validation_error": 100 * (1 - max(
                   run["curve"].get("val_accuracy", [float("nan")]))),
               "error": run["pooled"]["error"],
               "error_ci95": run["pooled"]["error_ci95"],
               "alphabets": run["alphabets"], "steps": run["steps"],
               "best_step": run["best_step"],
               "stopped_by": run["stopped_by"],
               "train_seconds": run["train_seconds"],
               "wall_seconds": time.perf_counter() - start}
        _add(results, row, output)
        print(one_shot.format_results(run), flush=True)
    test_time = [row for row in TEST_TIME if not names or row[0] in names]
    if test_time:
        # The trained row best on the validation alphabet (never chosen
        # on the test alphabets); rows with as many validation errors tie,
        # and a tie goes to the row higher in the ladder.
        trained = [row for row in results["rows"]
                   if row["name"] in [entry[0] for entry in LADDER]]
        base = args.base or (min(
            trained,
            key=lambda row: round(_validation_error(stem, row), 3))["name"]
            if trained else None)
        if base is None:
            raise SystemExit("The test-time rows score a trained row: run "
                             "one first or name it with --base.")
        for row in _test_time_rows(args, f"{stem}_{base}.keras", base,
                                   test_time):
            _add(results, row, output)
    print(format_ladder(results["rows"]))
    print(f"wrote {output}")


def _validation_error(stem, row):
    """A trained row's best validation error (%), from its run's JSON."""
    if "validation_error" not in row:
        with open(f"{stem}_{row['name']}.json") as f:
            curve = json.load(f)["curve"]
        row["validation_error"] = 100 * (1 - max(curve["val_accuracy"]))
    return row["validation_error"]


def _add(results, row, output):
    results["rows"] = [r for r in results["rows"] if r["name"] != row["name"]]
    results["rows"].append(row)
    results["rows"].sort(key=lambda r: ORDER.index(r["name"]))
    with open(output, "w") as f:
        json.dump(results, f, indent=2)


def _test_time_rows(args, path, base, rows):
    """Scores the learner saved at `path` with test-time views, then with
    fine-tuning chosen on the validation alphabet as well."""
    import keras

    import keras_meta  # noqa: F401  (registers the learners for loading)

    learner = keras.models.load_model(path)
    base_config = json.load(open(path[:-len(".keras")] + ".json"))["config"]
    sets = one_shot.load(
        args.data_dir, train_subset=args.direction,
        image_size=base_config["image_size"],
        validation_alphabet=base_config["validation_alphabet"])
    learner.test_time_views = "default"
    for name, description in rows:
        start = time.perf_counter()
        extra = {}
        if name == "fine_tune":
            best, table = one_shot.tune_fine_tuning(learner,
                                                    sets["validation"])
            extra = {"fine_tune": best, "validation_grid": table}
            print(f"fine-tuning chosen on {base_config['validation_alphabet']}"
                  f": {best}", flush=True)
        scores = one_shot.evaluate(learner, sets["tests"],
                                   num_episodes=args.num_test_episodes)
        print(f"== {name}: {description}\n"
              + one_shot.format_results(scores), flush=True)
        yield {"name": name, "change": description, "base": base,
               "config": base_config, "error": scores["pooled"]["error"],
               "error_ci95": scores["pooled"]["error_ci95"],
               "alphabets": scores["alphabets"], "steps": 0,
               "best_step": 0, "stopped_by": "not trained",
               "train_seconds": 0.0,
               "wall_seconds": time.perf_counter() - start, **extra}


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
