"""A few-shot classifier from a user's folder of class sub-folders.

`keras-meta train --data-dir my_images/` runs `run()`: it splits the
folder's classes into train, validation and test classes (kept in
`splits.json`), meta-trains a learner on episodes of the training classes
while keeping the weights that score best on fixed validation episodes,
and reports query accuracy with a 95% confidence interval on fixed test
episodes of classes never trained on, at 1 and 5 shots.
"""

import json
import os
import sys
import time

import keras
import numpy as np

from keras_meta import data
from keras_meta.experiments import catalog
from keras_meta.experiments import workers

# Learners whose logits are fixed at `num_ways` by a dense head, so that
# test episodes need as many classes as training ones.
_FIXED_WAYS = ("maml", "fomaml", "maml++", "metasgd", "anil", "boil",
               "cavia", "reptile", "imaml")
# Classes a metric learner's saved model can tell apart in one prediction
# (`keras-meta predict`): its logits per query.
PREDICT_WAYS = 50
EVALUATION_SHOTS = (1, 5)


def _split_indices(index, splits):
    positions = {name: i for i, name in enumerate(index.class_names)}
    return {split: index.subset([positions[name] for name in splits[split]
                                 if name in positions])
            for split in ("train", "validation", "test")}


def _queries(index, shots, wanted=15):
    """Queries per class that every class of `index` can give beside
    `shots` support examples (at most `wanted`), or 0."""
    return int(max(0, min(wanted, int(index.counts.min()) - shots)))


def _plan(indices, num_ways, num_shots, algorithm):
    """Ways, shots and queries of the train, validation and test episodes,
    or a `ValueError` saying what the folder lacks."""
    train, validation, test = (indices["train"], indices["validation"],
                               indices["test"])
    fixed = algorithm in _FIXED_WAYS
    ways = {split: min(num_ways, index.num_classes)
            for split, index in indices.items()}
    if fixed and min(ways.values()) < num_ways:
        raise ValueError(
            f"--algorithm {algorithm} predicts exactly --num-ways "
            f"{num_ways} classes, but the split has {train.num_classes} "
            f"train, {validation.num_classes} validation and "
            f"{test.num_classes} test classes. Lower --num-ways or add "
            "classes.")
    if ways["train"] < 2 or ways["test"] < 2:
        raise ValueError("Training and testing need at least 2 classes each.")
    plan = {"train": (ways["train"], num_shots,
                      _queries(train, num_shots))}
    plan["validation"] = (max(2, ways["validation"]) if
                          validation.num_classes >= 2 else 0, num_shots,
                          _queries(validation, num_shots))
    plan["test"] = {shots: (ways["test"], shots, _queries(test, shots))
                    for shots in EVALUATION_SHOTS}
    if plan["train"][2] < 1:
        smallest = int(np.argmin(train.counts))
        raise ValueError(
            f"Training episodes of {num_shots} shots need at least "
            f"{num_shots + 1} images per class, but training class "
            f"'{train.class_names[smallest]}' has "
            f"{train.counts[smallest]}. Add images or lower --num-shots.")
    return plan


def _write_curve(path, history):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6))
    left, right = figure.subplots(1, 2)
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, metric in ((left, "loss"), (right, "accuracy")):
        axis.plot(epochs, history[metric], "o-", label="training episodes")
        if f"val_{metric}" in history:
            mean = np.array(history[f"val_{metric}"])
            axis.plot(epochs, mean, "o-", label="validation episodes")
            ci = history.get(f"val_{metric}_ci95")
            if ci is not None:
                axis.fill_between(epochs, mean - np.array(ci),
                                  mean + np.array(ci), alpha=0.2,
                                  color="tab:orange")
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"query {metric}")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("meta-training on your images (validation: 95% CI)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def _write_examples(path, learner, episodes, class_names):
    # NumPy, not tf.Tensor: JAX's predict function refuses TensorFlow
    # tensors.
    batch = keras.tree.map_structure(np.asarray, next(iter(episodes)))
    logits = learner.predict_on_batch(batch[0])
    names = [class_names] if class_names else None
    data.plot_episode(
        batch, path, predictions=np.argmax(np.asarray(logits), -1),
        class_names=names[0] if names else None,
        title="a test episode of classes never trained on: query captions "
              "are predictions (green right, red wrong)")


def _episode_class_names(index, episodes):
    """Names of the classes of the first test episode, in label order, or
    `None` (episodes carry labels, not names: recovered by matching each
    support image to its class)."""
    inputs, _ = next(iter(episodes))
    support = np.asarray(inputs["support_inputs"])[0]
    labels = np.asarray(inputs["support_labels"])[0]
    examples = index.examples
    if examples.dtype == np.uint8:
        examples = examples.astype(np.float32) / 255.0
    names = {}
    for image, label in zip(support, labels):
        match = np.flatnonzero(np.all(
            np.abs(examples - image).reshape(len(examples), -1) < 1e-6,
            axis=1))
        if len(match):
            klass = int(np.searchsorted(index.offsets, match[0], "right") - 1)
            names[int(label)] = index.class_names[klass]
    if len(names) != len(set(labels.tolist())):
        return None
    return [names[label] for label in sorted(names)]


def _validation_episodes(index, plan, num_shots, num_episodes, seed,
                         strategy):
    """`(episodes or None, how many)`: the validation episodes, in batches
    of 50, or of 50 rounded down to a multiple of a strategy's replicas
    (then as many episodes as whole batches allow)."""
    ways, _, queries = plan
    batch = 50
    if strategy is not None:
        replicas = strategy.num_replicas_in_sync
        batch = replicas * max(1, 50 // replicas)
        num_episodes = max(batch, num_episodes // batch * batch)
    if not (ways and queries):
        return None, num_episodes
    return data.episodes_from_index(
        index, num_ways=ways, num_shots=num_shots, num_queries=queries,
        batch_size=batch, num_episodes=num_episodes,
        seed=seed + 20_000), num_episodes


def _best_epoch(learner, history, best_path, strategy):
    """`(learner, best epoch or None)`: the learner with the weights of the
    epoch best on validation where it was checkpointed, as a copy outside
    `strategy` (`keras_meta.experiments.workers.local_copy`)."""
    best_epoch = None
    if "val_accuracy" in history and os.path.exists(best_path):
        learner.load_weights(best_path)
        best_epoch = int(np.argmax(history["val_accuracy"])) + 1
        os.remove(best_path)
    return workers.local_copy(learner, strategy), best_epoch


def run(
    *,
    data_dir,
    output_dir="keras_meta_runs/images",
    algorithm="protonet",
    backbone="conv4",
    image_size=32,
    channels="auto",
    num_ways=5,
    num_shots=1,
    meta_steps=1000,
    meta_batch_size=4,
    filters=64,
    inner_learning_rate=0.4,
    num_inner_steps=None,
    learning_rate=1e-3,
    num_test_episodes=600,
    num_validation_episodes=100,
    steps_per_execution=10,
    augment=None,
    on_error="raise",
    seed=0,
    verbose=1,
    strategy=None,
    splits_path=None,
):
    """Splits, meta-trains, selects on validation and tests on a folder.

    Writes to `output_dir`: `splits.json`, `results.json`, `model.keras`
    (the learner, carrying its image preprocessing for `keras-meta
    predict`), `training_curve.png` and `test_episode.png`. Returns the
    results dict.

    `strategy`: optional `tf.distribute` strategy that meta-trains the
    learner (`keras-meta train --workers`): the workers must agree on the
    class split (checked), validation episodes come in batches that split
    evenly between the replicas (50 rounded down to a multiple of their
    number, and as many episodes as whole batches allow), and the best
    epoch's learner is tested as a copy outside the strategy
    (`keras_meta.experiments.workers`). `splits_path`: the `splits.json`
    to read or write, by default in `output_dir`.
    """
    start = time.perf_counter()
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)
    splits = data.split_classes(
        data_dir, path=splits_path or os.path.join(output_dir, "splits.json"),
        seed=seed)
    workers.check_same(splits, strategy, "class splits (splits.json)")
    size = (image_size, image_size)
    index = data.load_class_index(data_dir, image_size=size,
                                  channels=channels, on_error=on_error)
    say(index.description, flush=True)
    indices = _split_indices(index, splits)
    # Short classes left out (on_error="skip") or named (raise) per split.
    for split in indices:
        per_class = num_shots + 1 if split == "train" else 2
        indices[split] = indices[split].check_counts(per_class, on_error)
    plan = _plan(indices, num_ways, num_shots, algorithm)
    say(f"Classes: {indices['train'].num_classes} train, "
        f"{indices['validation'].num_classes} validation, "
        f"{indices['test'].num_classes} test (split by {splits['by']}, "
        f"seed {seed}; {os.path.join(output_dir, 'splits.json')})",
        flush=True)
    channel_count = int(index.examples.shape[-1]) if index.decode is None \
        else int(index.decode(index.examples[0]).shape[-1])
    train_ways, _, train_queries = plan["train"]
    train = data.episodes_from_index(
        indices["train"], num_ways=train_ways, num_shots=num_shots,
        num_queries=train_queries, batch_size=meta_batch_size, seed=seed,
        augment=augment)
    validation, num_validation_episodes = _validation_episodes(
        indices["validation"], plan["validation"], num_shots,
        num_validation_episodes, seed, strategy)
    steps_per_execution = max(1, min(steps_per_execution, meta_steps))
    epochs = 10 if meta_steps >= 10 * steps_per_execution else 1
    steps_per_epoch = max(1, meta_steps // epochs)
    with workers.scope(strategy):
        learner = catalog.build_classifier(
            algorithm,
            num_ways=(train_ways if algorithm in _FIXED_WAYS
                      else max(PREDICT_WAYS, train_ways)),
            image_shape=size + (channel_count,), filters=filters,
            inner_learning_rate=inner_learning_rate,
            num_inner_steps=num_inner_steps, seed=seed, num_shots=max(
                num_shots, max(EVALUATION_SHOTS)), backbone=backbone)
        learner.preprocessing = {
            "kind": "image", "image_size": list(size),
            "channels": channel_count, "value_range": [0.0, 1.0],
            "resize": "antialiased bilinear", "transparency": "over white",
            "class_splits": "splits.json"}
        catalog.compile_classifier(learner, algorithm, learning_rate,
                                   epochs * steps_per_epoch,
                                   steps_per_execution)
    best_path = os.path.join(output_dir, "best.weights.h5")
    callbacks = []
    if validation is not None:
        callbacks.append(keras.callbacks.ModelCheckpoint(
            best_path, monitor="val_accuracy", mode="max",
            save_best_only=True, save_weights_only=True))
    say(f"[1/2] meta-training {algorithm} ({backbone}, {size[0]}x{size[1]}x"
        f"{channel_count}): {epochs} epochs of {steps_per_epoch} steps of "
        f"{meta_batch_size} {train_ways}-way {num_shots}-shot episodes"
        + (f", keeping the epoch best on {num_validation_episodes} "
           "validation episodes" if validation is not None else ""),
        flush=True)
    train_start = time.perf_counter()
    history = learner.fit(workers.shard_by_data(train, strategy),
                          epochs=epochs, steps_per_epoch=steps_per_epoch,
                          validation_data=(
                              None if validation is None else
                              workers.shard_by_data(validation, strategy)),
                          callbacks=callbacks, verbose=verbose)
    train_seconds = time.perf_counter() - train_start
    history = {key: [float(v) for v in values]
               for key, values in history.history.items()}
    learner, best_epoch = _best_epoch(learner, history, best_path, strategy)
    return _test_and_write(
        learner, indices, plan, output_dir=output_dir,
        num_test_episodes=num_test_episodes, seed=seed, verbose=verbose,
        history=history, best_epoch=best_epoch, config={
            "data_dir": os.path.abspath(data_dir), "algorithm": algorithm,
            "backbone": backbone, "image_size": image_size,
            "channels": channel_count, "num_ways": train_ways,
            "num_shots": num_shots, "num_queries": train_queries,
            "meta_steps": epochs * steps_per_epoch,
            "meta_batch_size": meta_batch_size, "filters": filters,
            "learning_rate": learning_rate, "augment": augment is not None,
            "seed": seed, "classes": {
                split: indices[split].num_classes for split in indices},
            "images": int(len(index.examples)),
            "loading": index.description},
        seconds={"training": train_seconds,
                 "total_before_testing": time.perf_counter() - start})


def _test_and_write(learner, indices, plan, *, output_dir,
                    num_test_episodes, seed, verbose, history, best_epoch,
                    config, seconds):
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"[2/2] testing on {num_test_episodes} episodes of the "
        f"{indices['test'].num_classes} test classes", flush=True)
    test_results = {}
    first_test = None
    test_start = time.perf_counter()
    for shots, (ways, _, queries) in plan["test"].items():
        if queries < 1:
            say(f"  {shots}-shot: skipped, a test class has fewer than "
                f"{shots + 1} images", file=sys.stderr)
            continue
        test = data.episodes_from_index(
            indices["test"], num_ways=ways, num_shots=shots,
            num_queries=queries, batch_size=50,
            num_episodes=num_test_episodes, seed=seed + 10_000 + shots)
        first_test = first_test or test
        scores = learner.evaluate(test, return_dict=True, verbose=0)
        test_results[f"{ways}-way {shots}-shot"] = {
            "accuracy": float(scores["accuracy"]),
            "accuracy_ci95": float(scores["accuracy_ci95"]),
            "loss": float(scores["loss"]),
            "num_ways": ways, "num_shots": shots, "num_queries": queries,
            "episodes": num_test_episodes}
    seconds["testing"] = time.perf_counter() - test_start
    results = {"config": config, "test": test_results,
               "best_epoch": best_epoch, "history": history,
               "seconds": seconds}
    learner.save(os.path.join(output_dir, "model.keras"))
    _write_curve(os.path.join(output_dir, "training_curve.png"), history)
    if first_test is not None:
        _write_examples(
            os.path.join(output_dir, "test_episode.png"), learner,
            first_test, _episode_class_names(indices["test"], first_test))
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def format_table(results):
    """The test accuracies, a line each."""
    config = results["config"]
    lines = [f"{config['algorithm']} on {config['classes']['test']} test "
             f"classes never trained on ({config['images']} images, "
             f"{config['image_size']}x{config['image_size']}x"
             f"{config['channels']}):"]
    for name, row in results["test"].items():
        lines.append(f"  {name:<16} {100 * row['accuracy']:6.2f} +- "
                     f"{100 * row['accuracy_ci95']:.2f} % (95% CI, "
                     f"{row['episodes']} episodes)")
    seconds = results["seconds"]
    lines.append(f"  training {seconds['training']:.0f} s, testing "
                 f"{seconds['testing']:.0f} s")
    return "\n".join(lines)
