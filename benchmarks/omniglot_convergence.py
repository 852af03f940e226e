"""Metric learners trained on Omniglot until validation accuracy stops rising.

Trains one learner (ProtoNet, MatchingNet or R2D2; Conv-4-64 on 28x28
images) on `images_background_small1` with each character at 4 rotations
as classes, on `--train-ways`-way episodes (60, as the ProtoNets paper).
One alphabet of small1 (`--validation-alphabet`, Early Aramaic by default)
is held out of training for early stopping: every `--eval-every` steps the
learner is scored on fixed 20-way episodes of it, and training stops when
that accuracy has not risen for `--patience` evaluations, or at
`--max-minutes`; the best weights are kept. The test classes are the
characters of `images_background_small2` that are not classes of small1
(Japanese (katakana), Sanskrit, Tagalog), also at 4 rotations, scored at
5-way and 20-way, 1-shot and 5-shot (600 fixed episodes each) with the one
trained learner: metric learners take each episode's classes from its
support labels.

    python benchmarks/omniglot_convergence.py --algorithm protonet \\
        --data-dir ../shared/data/omniglot

Writes the training curve (JSON and PNG) and the test table to
`--output` (default `benchmarks/results/omniglot_convergence_NAME.json`).
The papers trained on 1,200 characters of 30 alphabets and tested on the
other 20 alphabets; here 114 characters of 4 alphabets train, so these
numbers are a lower bound on what the same learner reaches with the
papers' data.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_meta import data  # noqa: E402
from keras_meta.experiments import catalog  # noqa: E402
from keras_meta.experiments import omniglot  # noqa: E402
from keras_meta.experiments.one_shot import TimeLimit  # noqa: E402

PUBLISHED = {
    # Full Omniglot (Vinyals split), 5w1s / 5w5s / 20w1s / 20w5s.
    "protonet": {"5w1s": 0.988, "5w5s": 0.997, "20w1s": 0.960,
                 "20w5s": 0.989},
    "matchingnet": {"5w1s": 0.981, "5w5s": 0.989, "20w1s": 0.938,
                    "20w5s": 0.985},
    # R2D2 reports mini-ImageNet and CIFAR-FS only.
    "r2d2": {},
}
TESTS = (("5w1s", 5, 1), ("5w5s", 5, 5), ("20w1s", 20, 1), ("20w5s", 20, 5))


def _split_validation(index, alphabet):
    groups = [name.split("/")[0] for name in index.class_names]
    if alphabet not in groups:
        raise SystemExit(
            f"--validation-alphabet {alphabet!r} is not an alphabet of the "
            f"training subset; choose one of {sorted(set(groups))}.")
    train = [c for c, g in enumerate(groups) if g != alphabet]
    validation = [c for c, g in enumerate(groups) if g == alphabet]
    return index.subset(train), index.subset(validation)


def _plot(history, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = history["step"]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, history["accuracy"], label="training episodes")
    axis.plot(steps, history["val_accuracy"],
              label="validation alphabet, 20-way 1-shot")
    axis.set_xlabel("meta-steps")
    axis.set_ylabel("query accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithm", default="protonet",
                        choices=("protonet", "matchingnet", "r2d2"))
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot"))
    parser.add_argument("--train-ways", type=int, default=60)
    parser.add_argument("--train-shots", type=int, default=1)
    parser.add_argument("--train-queries", type=int, default=5)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=500,
                        help="meta-steps between validation scores")
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--max-minutes", type=float, default=55.0)
    parser.add_argument("--validation-alphabet", default="Early_Aramaic")
    parser.add_argument("--num-validation-episodes", type=int, default=200)
    parser.add_argument("--num-test-episodes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    output = args.output or os.path.join(
        os.path.dirname(__file__), "results",
        f"omniglot_convergence_{args.algorithm}.json")

    keras.utils.set_random_seed(args.seed)
    small1, small2 = omniglot.find_subsets(args.data_dir)
    shape = (28, 28)
    full_train = data.load_class_index(small1, image_size=shape, channels=1)
    test_index = data.load_class_index(small2, image_size=shape, channels=1)
    test_index, shared = data.remove_shared_classes(test_index, full_train)
    train_index, validation_index = _split_validation(
        full_train, args.validation_alphabet)
    print(f"training on {train_index.num_classes} characters x 4 rotations, "
          f"validating on {validation_index.num_classes} of "
          f"{args.validation_alphabet} x 4, testing on "
          f"{test_index.num_classes} unseen characters x 4 ({len(shared)} "
          "shared test classes removed)", flush=True)

    train = data.episodes_from_index(
        train_index, num_ways=args.train_ways, num_shots=args.train_shots,
        num_queries=args.train_queries, batch_size=1, rotations=True,
        seed=args.seed)
    validation = data.episodes_from_index(
        validation_index, num_ways=20, num_shots=1, num_queries=5,
        batch_size=20, rotations=True,
        num_episodes=args.num_validation_episodes, seed=args.seed + 1)
    learner = catalog.build_classifier(
        args.algorithm, num_ways=max(args.train_ways, 20),
        image_shape=shape + (1,),
        filters=args.filters, seed=args.seed)
    learner.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], steps_per_execution=1)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=args.patience,
        restore_best_weights=True, verbose=1)
    limit = TimeLimit(args.max_minutes)
    start = time.perf_counter()
    history = learner.fit(
        train, epochs=10_000, steps_per_epoch=args.eval_every,
        validation_data=validation, callbacks=[stopping, limit], verbose=2)
    train_seconds = time.perf_counter() - start
    curve = {key: [float(v) for v in values]
             for key, values in history.history.items()}
    epochs = len(curve["val_accuracy"])
    curve["step"] = [args.eval_every * (e + 1) for e in range(epochs)]
    best = int(np.argmax(curve["val_accuracy"]))
    # EarlyStopping restores the best weights only when it stops training;
    # after the time limit the best epoch's weights are restored here.
    if stopping.best_weights is not None and not stopping.stopped_epoch:
        learner.set_weights(stopping.best_weights)

    tests = {}
    for name, ways, shots in TESTS:
        episodes = data.episodes_from_index(
            test_index, num_ways=ways, num_shots=shots, num_queries=15,
            batch_size=10, rotations=True,
            num_episodes=args.num_test_episodes,
            seed=omniglot.test_seed(args.seed))
        result = learner.evaluate(episodes, return_dict=True, verbose=0)
        tests[name] = {"accuracy": float(result["accuracy"]),
                       "accuracy_ci95": float(result["accuracy_ci95"])}
        published = PUBLISHED[args.algorithm].get(name)
        print(f"{name:6s} {100 * result['accuracy']:6.2f} +- "
              f"{100 * result['accuracy_ci95']:.2f} %"
              + (f"   (paper, full Omniglot: {100 * published:.1f})"
                 if published else ""), flush=True)

    results = {
        "algorithm": args.algorithm,
        "args": vars(args),
        "train_classes": int(train_index.num_classes) * 4,
        "validation_classes": int(validation_index.num_classes) * 4,
        "test_classes": int(test_index.num_classes) * 4,
        "steps": curve["step"][-1],
        "best_step": curve["step"][best],
        "best_val_accuracy": curve["val_accuracy"][best],
        "stopped_by": ("time limit" if limit.stopped else
                       "early stopping" if stopping.stopped_epoch else
                       "epoch limit"),
        "train_seconds": train_seconds,
        "curve": curve,
        "test": tests,
        "published_full_omniglot": PUBLISHED[args.algorithm],
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(results, f, indent=2)
    _plot(curve, os.path.splitext(output)[0] + ".png",
          f"{args.algorithm}: {args.train_ways}-way {args.train_shots}-shot "
          "training on Omniglot small1")
    print(f"stopped by {results['stopped_by']} after {results['steps']} "
          f"steps ({train_seconds / 60:.1f} min); best validation accuracy "
          f"{results['best_val_accuracy']:.4f} at step "
          f"{results['best_step']}; wrote {output}", flush=True)


if __name__ == "__main__":
    main()
