"""Few-shot Omniglot from the two background subsets, end to end.

Meta-trains a learner on episodes from `images_background_small1` (136
characters of 5 alphabets, each seen at 4 rotations as new classes) and
evaluates it on 600 fixed episodes from `images_background_small2`: query
accuracy with a 95% confidence interval. The two subsets share two
alphabets (Greek and Latin, byte for byte), so the test classes are the
characters of small2 whose images form no class of small1: the 106
characters of Japanese (katakana), Sanskrit and Tagalog, alphabets never
seen in training. Both subsets are the zips published in the
Omniglot repository (brendenlake/omniglot, `python/`); pass the folder that
holds them.
"""

import json
import os
import sys
import time
import zipfile

import keras

from keras_meta import data
from keras_meta.experiments import catalog
from keras_meta.experiments import workers

SUBSETS = ("images_background_small1", "images_background_small2")


def find_subsets(data_dir, cache_dir=None):
    """Paths of the two extracted background subsets.

    Args:
        data_dir: Folder holding `images_background_small1.zip` and
            `images_background_small2.zip`, or their extracted folders.
        cache_dir: Where to extract the zips. Defaults to
            `~/.keras/keras_meta/omniglot`.

    Returns:
        `(small1_folder, small2_folder)`.
    """
    if data_dir is None or not os.path.isdir(data_dir):
        raise ValueError(
            f"The Omniglot folder {data_dir!r} does not exist. Pass the "
            "folder holding images_background_small1.zip and "
            "images_background_small2.zip (from github.com/brendenlake/"
            "omniglot, folder python/) with `--data-dir`."
        )
    cache_dir = cache_dir or os.path.join(
        os.path.expanduser("~"), ".keras", "keras_meta", "omniglot")
    folders = []
    for name in SUBSETS:
        extracted = os.path.join(data_dir, name)
        if os.path.isdir(extracted):
            folders.append(extracted)
            continue
        archive = os.path.join(data_dir, name + ".zip")
        if not os.path.isfile(archive):
            raise ValueError(
                f"{data_dir!r} holds neither {name}.zip nor the folder "
                f"{name}/. Download {name}.zip from github.com/brendenlake/"
                "omniglot (folder python/) into it."
            )
        target = os.path.join(cache_dir, name)
        if not os.path.isdir(target):
            # Extract beside the target and rename: an interrupted
            # extraction never leaves a partial folder behind.
            partial = target + ".partial"
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(partial)
            os.replace(os.path.join(partial, name), target)
            os.rmdir(partial)
        folders.append(target)
    return tuple(folders)


def test_seed(seed):
    """The seed of the fixed test episodes of a run seeded `seed` (shared
    with `keras-meta evaluate`, which scores the same episodes)."""
    return seed + 10_000


def run(
    *,
    algorithm="protonet",
    data_dir,
    output_dir="keras_meta_runs/omniglot",
    num_ways=5,
    num_shots=1,
    num_queries=15,
    meta_steps=2000,
    meta_batch_size=8,
    filters=64,
    image_size=28,
    inner_learning_rate=0.4,
    num_inner_steps=None,
    learning_rate=1e-3,
    num_test_episodes=600,
    steps_per_execution=10,
    seed=0,
    batch_norm="inductive",
    verbose="auto",
    strategy=None,
):
    """Trains `algorithm` on small1 and evaluates it on small2's alphabets
    that small1 lacks.

    Writes `results.json` and `<algorithm>.keras` to `output_dir` and
    returns the results dict. `strategy`: optional `tf.distribute`
    strategy that meta-trains the learner (`keras-meta train --workers`);
    the test episodes are scored on a copy outside it
    (`keras_meta.experiments.workers`).
    """
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    train_folder, test_folder = find_subsets(data_dir)
    shape = (image_size, image_size)
    train_index = data.load_class_index(train_folder, image_size=shape,
                                        channels=1)
    test_index = data.load_class_index(test_folder, image_size=shape,
                                       channels=1)
    test_index, shared = data.remove_shared_classes(test_index, train_index)
    if shared:
        alphabets = sorted({name.split(os.sep)[0].split("/")[0]
                            for name in shared})
        print(
            f"Omniglot: removed {len(shared)} test classes whose images are "
            f"a training class too (alphabets {', '.join(alphabets)}); "
            f"testing on {test_index.num_classes} characters.",
            file=sys.stderr)
    train = data.episodes_from_index(
        train_index, num_ways=num_ways, num_shots=num_shots,
        num_queries=num_queries, batch_size=meta_batch_size, rotations=True,
        seed=seed)
    test = data.episodes_from_index(
        test_index, num_ways=num_ways, num_shots=num_shots,
        num_queries=num_queries, batch_size=50,
        num_episodes=num_test_episodes, seed=test_seed(seed))

    steps_per_execution = max(1, min(steps_per_execution, meta_steps))
    epochs = 10 if meta_steps >= 10 * steps_per_execution else 1
    steps_per_epoch = max(1, meta_steps // epochs)
    with workers.scope(strategy):
        learner = catalog.build_classifier(
            algorithm, num_ways=num_ways, image_shape=shape + (1,),
            filters=filters, inner_learning_rate=inner_learning_rate,
            num_inner_steps=num_inner_steps, epochs=epochs, seed=seed,
            batch_norm=batch_norm, num_shots=num_shots)
        catalog.compile_classifier(learner, algorithm, learning_rate,
                                   epochs * steps_per_epoch,
                                   steps_per_execution)
    if verbose != 0:
        print(f"[1/2] meta-training {algorithm}: {epochs * steps_per_epoch} "
              f"steps of {meta_batch_size} {num_ways}-way {num_shots}-shot "
              "episodes", flush=True)
    start = time.perf_counter()
    history = learner.fit(workers.shard_by_data(train, strategy),
                          epochs=epochs, steps_per_epoch=steps_per_epoch,
                          verbose=verbose)
    train_seconds = time.perf_counter() - start
    learner = workers.local_copy(learner, strategy)
    if verbose != 0:
        print(f"[2/2] evaluating on {num_test_episodes} test episodes",
              flush=True)
    start = time.perf_counter()
    evaluation = learner.evaluate(test, return_dict=True, verbose=verbose)
    evaluation_seconds = time.perf_counter() - start

    results = {
        "config": {
            "algorithm": algorithm,
            "train": "images_background_small1, 4 rotations",
            "test": "images_background_small2 without the classes of "
                    "small1 (unseen alphabets)",
            "test_classes": test_index.num_classes,
            "test_classes_removed": len(shared),
            "batch_norm": getattr(learner, "batch_norm", None),
            "num_ways": num_ways, "num_shots": num_shots,
            "num_queries": num_queries,
            "image_size": image_size, "filters": filters,
            "meta_steps": epochs * steps_per_epoch,
            "meta_batch_size": meta_batch_size,
            "num_inner_steps": getattr(learner, "num_inner_steps", None),
            "inner_learning_rate": getattr(
                learner, "inner_learning_rate", None),
            "learning_rate": learning_rate,
            "test_episodes": num_test_episodes,
            "seed": seed,
        },
        "accuracy": float(evaluation["accuracy"]),
        "accuracy_ci95": float(evaluation["accuracy_ci95"]),
        "loss": float(evaluation["loss"]),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
        # Per epoch of `fit()` (a tenth of the steps), every logged metric.
        "history": {key: [float(v) for v in values]
                    for key, values in history.history.items()},
        "seconds": {"training": train_seconds,
                    "evaluation": evaluation_seconds},
    }
    name = f"{algorithm}_{num_ways}way_{num_shots}shot"
    with open(os.path.join(output_dir, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=2)
    learner.save(os.path.join(output_dir, f"{name}.keras"))
    return results


def format_row(results):
    config = results["config"]
    return (f"{config['algorithm']:<12} {config['num_ways']}-way "
            f"{config['num_shots']}-shot  "
            f"{100 * results['accuracy']:6.2f} +- "
            f"{100 * results['accuracy_ci95']:.2f} %  "
            f"({config['meta_steps']} steps, "
            f"{results['seconds']['training']:.0f} s)")
