"""The memory-augmented network's own protocol: accuracy by instance.

Santoro et al. (2016) score a sequence of 50 Omniglot images (10 drawings
of each of 5 characters, in random order), each predicted before its
label is shown, and report the accuracy on the 1st, 2nd, ... 10th drawing
of a class. This trains the sequence learners (`mann`, `snail`) on the
library's episodes shaped like those sequences (5-way, 9 support drawings
per class and 1 query, support order shuffled: the support sets are as
long as the paper's longest prefixes), on `images_background_small1`,
then scores `--num-test-sequences` such sequences of small2's unseen
alphabets with `predict_sequence()`: drawing t is predicted from the t
labelled drawings before it.

Differences from the paper, stated: a Conv-4 embedding in front (the paper
fed 20x20 raw pixels); a drawing's label comes with the drawing rather than
one step later; each sequence's 50 drawings are embedded together, so the
Conv-4's BatchNormalization uses their statistics (transductive within a
sequence, as a support set of 50); training uses balanced 9-shot support
sets, not the paper's sequences.

    python benchmarks/omniglot_online.py --data-dir ../shared/data/omniglot

Prints the accuracy by instance and writes JSON and a PNG.
"""

import argparse
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_meta import data  # noqa: E402
from keras_meta.experiments import omniglot  # noqa: E402

# Santoro et al. (2016), table 1, MANN (LRU access), 5 classes.
PUBLISHED = {"mann": {2: 82.8, 3: 91.0, 5: 94.9}}


def instance_numbers(labels):
    """1 for a class's first drawing in the sequence, 2 for its second..."""
    seen = {}
    numbers = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        numbers.append(seen[label])
    return np.array(numbers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot"))
    parser.add_argument("--algorithms", default="mann,snail")
    parser.add_argument("--meta-steps", type=int, default=1000)
    parser.add_argument("--meta-batch-size", type=int, default=8)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--num-test-sequences", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    # Larger values hit TensorFlow's AlreadyExistsError in the gradient of
    # the per-task map on these 50-image episodes (SNAIL).
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--append", action="store_true",
                        help="keep the rows already in --output (those of "
                             "the algorithms run again are replaced)")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "omniglot_online.json"))
    args = parser.parse_args()
    num_ways, instances = 5, 10

    train_folder, test_folder = omniglot.find_subsets(args.data_dir)
    index = data.load_class_index(test_folder, image_size=(28, 28),
                                  channels=1)
    index, _ = data.remove_shared_classes(index, data.load_class_index(
        train_folder, image_size=(28, 28), channels=1))
    # Test sequences: 5 unseen characters, 10 drawings each, shuffled.
    episodes = data.episodes_from_index(
        index, num_ways=num_ways, num_shots=instances - 1, num_queries=1,
        batch_size=1, num_episodes=args.num_test_sequences,
        seed=omniglot.test_seed(args.seed) + 1)
    rng = np.random.default_rng(args.seed)
    sequences = []
    for inputs, query_labels in episodes:
        images = np.concatenate([np.asarray(inputs["support_inputs"][0]),
                                 np.asarray(inputs["query_inputs"][0])])
        labels = np.concatenate([np.asarray(inputs["support_labels"][0]),
                                 np.asarray(query_labels[0])]).astype(int)
        order = rng.permutation(len(labels))
        sequences.append((images[order], labels[order]))

    # `--algorithms "" --append` redraws the figure of the rows in --output.
    names = [name for name in args.algorithms.split(",") if name]
    rows = []
    if args.append and os.path.exists(args.output):
        with open(args.output) as f:
            rows = [row for row in json.load(f)["rows"]
                    if row["algorithm"] not in names]
    for name in names:
        with tempfile.TemporaryDirectory() as directory:
            results = omniglot.run(
                algorithm=name, data_dir=args.data_dir, output_dir=directory,
                num_shots=instances - 1, num_queries=1,
                meta_steps=args.meta_steps,
                meta_batch_size=args.meta_batch_size, filters=args.filters,
                num_test_episodes=args.num_test_sequences, seed=args.seed,
                steps_per_execution=args.steps_per_execution, verbose=0)
            learner = keras.models.load_model(os.path.join(
                directory, f"{name}_{num_ways}way_{instances - 1}shot.keras"))
        correct = np.zeros(instances)
        counts = np.zeros(instances)
        for images, labels in sequences:
            predicted = learner.predict_sequence(images, labels).argmax(-1)
            numbers = instance_numbers(labels)
            np.add.at(correct, numbers - 1, predicted == labels)
            np.add.at(counts, numbers - 1, 1)
        accuracy = correct / counts
        # A 95% interval per instance, over the drawings scored.
        ci95 = 1.96 * np.sqrt(accuracy * (1 - accuracy) / counts)
        row = {"algorithm": name,
               "accuracy_by_instance": accuracy.tolist(),
               "ci95_by_instance": ci95.tolist(),
               "episode_accuracy_9shot": results["accuracy"],
               "episode_accuracy_9shot_ci95": results["accuracy_ci95"],
               "train_seconds": results["seconds"]["training"],
               "steps_per_execution": args.steps_per_execution,
               "published": PUBLISHED.get(name)}
        rows.append(row)
        print(f"{name:<6}" + " ".join(
            f"{100 * a:5.1f}" for a in accuracy) + f"   (9-shot episodes "
            f"{100 * results['accuracy']:.1f}%, "
            f"{results['seconds']['training']:.0f} s)", flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(args.output)),
                    exist_ok=True)
        with open(args.output, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    _plot(rows, os.path.splitext(args.output)[0] + ".png", args)
    print(f"wrote {args.output}")


def _plot(rows, path, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        accuracy = 100 * np.array(row["accuracy_by_instance"])
        ci95 = 100 * np.array(row["ci95_by_instance"])
        instances = np.arange(1, len(accuracy) + 1)
        axis.errorbar(instances, accuracy, yerr=ci95, marker="o",
                      capsize=3, label=row["algorithm"].upper())
    for name, published in PUBLISHED.items():
        axis.plot(list(published), list(published.values()), "k*",
                  markersize=10, label=f"{name.upper()}, Santoro et al.")
    axis.axhline(20, color="gray", linestyle=":", label="chance")
    axis.set_xlabel("instance of the class in the sequence")
    axis.set_ylabel("accuracy (%)")
    axis.set_title(f"Omniglot 5-way sequences of 50, unseen alphabets "
                   f"({args.meta_steps} steps x {args.meta_batch_size})")
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
