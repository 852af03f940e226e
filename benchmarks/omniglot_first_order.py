"""First- against second-order MAML on Omniglot: learning curves and causes.

Trains MAML and first-order MAML variants on `images_background_small1`
(4 rotations per character) from the same initial weights and episodes,
logging the training episodes' post-adaptation query accuracy every
`--eval-every` steps, then scores each on 600 fixed 5-way episodes of
small2's unseen alphabets (as `benchmarks/omniglot_algorithms.py`). The
variants isolate what the MAML paper's setup differs in:

- `maml`, `fomaml`: the catalog's learners (one inner step of 0.4, every
  weight adapts, inductive BatchNorm);
- `*_fixed_norm`: BatchNorm scale and offset kept out of the inner loop
  (`adapt_normalization=False`), as the paper's reference code;
- `*_transductive`: queries normalized with their own batch statistics;
- `fomaml_lr0.1`, `fomaml_lr1.0`: other inner step sizes;
- `fomaml_5steps`: five inner steps of 0.1.

    python benchmarks/omniglot_first_order.py --data-dir ../shared/data/omniglot

Writes the curves and test accuracies to `--output` (JSON, after every
variant) and a figure beside it.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_meta import data  # noqa: E402
from keras_meta.experiments import catalog  # noqa: E402
from keras_meta.experiments import omniglot  # noqa: E402

VARIANTS = {
    "maml": {"algorithm": "maml"},
    "fomaml": {"algorithm": "fomaml"},
    "maml_fixed_norm": {"algorithm": "maml", "adapt_normalization": False},
    "fomaml_fixed_norm": {"algorithm": "fomaml",
                          "adapt_normalization": False},
    "fomaml_transductive": {"algorithm": "fomaml",
                            "batch_norm": "transductive"},
    "fomaml_fixed_norm_transductive": {
        "algorithm": "fomaml", "adapt_normalization": False,
        "batch_norm": "transductive"},
    "fomaml_lr0.1": {"algorithm": "fomaml", "inner_learning_rate": 0.1},
    "fomaml_lr1.0": {"algorithm": "fomaml", "inner_learning_rate": 1.0},
    "fomaml_5steps": {"algorithm": "fomaml", "inner_learning_rate": 0.1,
                      "num_inner_steps": 5},
}


def build(variant, *, num_ways, filters, seed):
    options = dict(VARIANTS[variant])
    learner = catalog.build_classifier(
        options.pop("algorithm"), num_ways=num_ways, image_shape=(28, 28, 1),
        filters=filters, seed=seed,
        inner_learning_rate=options.pop("inner_learning_rate", 0.4),
        num_inner_steps=options.pop("num_inner_steps", None),
        batch_norm=options.pop("batch_norm", "inductive"))
    if options:
        rebuilt = type(learner).from_config(
            {**learner.get_config(), **options})
        rebuilt.set_weights(learner.get_weights())
        learner = rebuilt
    return learner


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for row in rows:
        style = "-" if row["variant"].startswith("fomaml") else "--"
        axis.plot(row["curve"]["step"], row["curve"]["accuracy"], style,
                  label=f"{row['variant']} (test {100 * row['accuracy']:.1f}"
                        "%)")
    axis.set_xlabel("meta-steps")
    axis.set_ylabel("training query accuracy after adaptation")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot"))
    parser.add_argument("--variants", default="maml,fomaml")
    parser.add_argument("--num-ways", type=int, default=5)
    parser.add_argument("--meta-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--meta-batch-size", type=int, default=8)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--num-test-episodes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "omniglot_first_order.json"))
    parser.add_argument("--append", action="store_true",
                        help="keep the rows already in --output (a run "
                             "continued with other variants)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from "
                     f"{sorted(VARIANTS)}")

    small1, small2 = omniglot.find_subsets(args.data_dir)
    train_index = data.load_class_index(small1, image_size=(28, 28),
                                        channels=1)
    test_index = data.load_class_index(small2, image_size=(28, 28),
                                       channels=1)
    test_index, _ = data.remove_shared_classes(test_index, train_index)
    rows = []
    if args.append and os.path.exists(args.output):
        with open(args.output) as f:
            previous = json.load(f)
        rows = [row for row in previous["rows"]
                if row["variant"] not in variants]
    for variant in variants:
        keras.utils.set_random_seed(args.seed)
        train = data.episodes_from_index(
            train_index, num_ways=args.num_ways, num_shots=1,
            num_queries=15, batch_size=args.meta_batch_size, rotations=True,
            seed=args.seed)
        test = data.episodes_from_index(
            test_index, num_ways=args.num_ways, num_shots=1, num_queries=15,
            batch_size=50, num_episodes=args.num_test_episodes,
            seed=omniglot.test_seed(args.seed))
        learner = build(variant, num_ways=args.num_ways,
                        filters=args.filters, seed=args.seed)
        learner.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True),
            metrics=["accuracy"], steps_per_execution=10)
        epochs = max(1, args.meta_steps // args.eval_every)
        print(f"{variant}: {epochs * args.eval_every} steps", flush=True)
        start = time.perf_counter()
        history = learner.fit(train, epochs=epochs,
                              steps_per_epoch=args.eval_every, verbose=2)
        seconds = time.perf_counter() - start
        result = learner.evaluate(test, return_dict=True, verbose=0)
        rows.append({
            "variant": variant,
            "options": VARIANTS[variant],
            "accuracy": float(result["accuracy"]),
            "accuracy_ci95": float(result["accuracy_ci95"]),
            "train_seconds": seconds,
            "curve": {
                "step": [args.eval_every * (e + 1) for e in range(epochs)],
                "accuracy": [float(a) for a in history.history["accuracy"]],
                "loss": [float(v) for v in history.history["loss"]],
            },
        })
        print(f"{variant:32s} test {100 * result['accuracy']:6.2f} +- "
              f"{100 * result['accuracy_ci95']:.2f} %  final training "
              f"{100 * rows[-1]['curve']['accuracy'][-1]:.1f} %  "
              f"({seconds / 60:.1f} min)", flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(args.output)),
                    exist_ok=True)
        with open(args.output, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)
        plot(rows, os.path.splitext(args.output)[0] + ".png",
             f"Omniglot {args.num_ways}-way 1-shot, meta-batch "
             f"{args.meta_batch_size}, Conv-4-{args.filters}")


if __name__ == "__main__":
    main()
