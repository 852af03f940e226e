"""Lake et al.'s one-shot task: within-alphabet 20-way one-shot Omniglot,
learned from a minimal background set.

Lake, Salakhutdinov and Tenenbaum (Science, 2015) classify a new
character's image among 20 characters *of the same alphabet*, each shown
once, after learning from one of two "minimal" background sets of five
alphabets (`images_background_small1`, `images_background_small2`). The
protocol here follows theirs on the two minimal sets:

- train on one set, with one alphabet (`validation_alphabet`, Latin by
  default: in both sets, tested in neither direction) held out to choose
  the checkpoint;
- test on the alphabets of the other set that the training set lacks
  (small1 -> Japanese (katakana), Sanskrit, Tagalog; small2 -> Balinese,
  Early Aramaic, Korean), leak-free by content
  (`keras_meta.data.remove_shared_classes`);
- each trial classifies one query image among `num_ways` (20) characters
  of one alphabet, each shown by one image of another drawer; an alphabet
  with fewer characters (Tagalog, 17) is tested at as many ways as it has
  and reported apart;
- queries are classified one at a time (the learner's BatchNorm must not
  pool queries: `batch_norm="transductive"` is refused);
- the trials are fixed (seeded by the alphabet, not by the run), so every
  configuration is scored on the same trials; the error is the mean over
  episodes of 20 trials each, with a Student-t 95% interval.

Lake's 20 official runs use the 20 *evaluation* alphabets and other
drawers, so the published numbers (people 4.5% error, Bayesian program
learning 3.3%, a deep convolutional network from a minimal set 24.0% and
22.3%) are anchors, not a same-protocol comparison.
"""

import json
import os
import sys
import time

import keras
import numpy as np

from keras_meta import data
from keras_meta import metrics
from keras_meta.experiments import catalog
from keras_meta.experiments import omniglot

SUBSETS = {"small1": 0, "small2": 1}
# Error rates (%) of Lake et al. (2015), Fig. 3 and Table S1: 20-way
# within-alphabet one-shot on the 20 evaluation alphabets.
PUBLISHED_ERROR = {
    "people": 4.5,
    "Bayesian program learning (full background set)": 3.3,
    "Bayesian program learning (minimal sets 1 / 2)": (4.3, 4.0),
    "deep convolutional network (minimal sets 1 / 2)": (24.0, 22.3),
}
TEST_SEED = 20_150_000


def load(data_dir, *, train_subset="small1", image_size=28,
         validation_alphabet="Latin"):
    """The class indices of one direction of the protocol.

    Args:
        data_dir: Folder holding the two minimal sets' zips (or folders).
        train_subset: `"small1"` or `"small2"`, the set to learn from; the
            other set's alphabets that it lacks are the test alphabets.
        image_size: Int, the side images are resized to (the originals are
            105 px).
        validation_alphabet: An alphabet of the training set held out of
            training to choose the checkpoint, or `None` to train on all
            five.

    Returns:
        A dict: `"train"` and `"validation"` (`ClassIndex`, or `None`), and
        `"tests"`, `{alphabet: ClassIndex}` in alphabet order.
    """
    if train_subset not in SUBSETS:
        raise ValueError(f"`train_subset` must be one of {list(SUBSETS)}. "
                         f"Received: train_subset={train_subset!r}.")
    folders = omniglot.find_subsets(data_dir)
    train_folder = folders[SUBSETS[train_subset]]
    test_folder = folders[1 - SUBSETS[train_subset]]
    shape = (image_size, image_size)
    train = data.load_class_index(train_folder, image_size=shape, channels=1)
    other = data.load_class_index(test_folder, image_size=shape, channels=1)
    other, _ = data.remove_shared_classes(other, train)
    tests = {alphabet: _alphabet(other, alphabet)
             for alphabet in sorted(set(map(alphabet_of, other.class_names)))}
    validation = None
    if validation_alphabet is not None:
        alphabets = sorted(set(map(alphabet_of, train.class_names)))
        if validation_alphabet not in alphabets:
            raise ValueError(
                f"The validation alphabet {validation_alphabet!r} is not an "
                f"alphabet of {train_subset}; choose one of {alphabets} or "
                "None.")
        validation = _alphabet(train, validation_alphabet)
        train = train.subset([c for c, name in enumerate(train.class_names)
                              if alphabet_of(name) != validation_alphabet])
    return {"train": train, "validation": validation, "tests": tests}


def alphabet_of(class_name):
    """`"Korean"` for the class `"Korean/character07"`."""
    return class_name.replace(os.sep, "/").split("/")[0]


def _alphabet(index, alphabet):
    return index.subset([c for c, name in enumerate(index.class_names)
                         if alphabet_of(name) == alphabet])


def trials(index, *, num_episodes, seed, num_ways=20, batch_size=10):
    """Fixed one-shot trials within one alphabet: episodes of
    `min(num_ways, characters)` characters of one alphabet (of the index's
    alphabets with that many), one support image and one query image (of
    another drawer) each, no rotations."""
    ways = min(num_ways, index.num_classes)
    return data.episodes_from_index(
        index, num_ways=ways, num_shots=1, num_queries=1,
        batch_size=batch_size, num_episodes=num_episodes, seed=seed,
        within_groups=index.groups is not None)


def evaluate(learner, tests, *, num_ways=20, num_episodes=100,
             verbose=0):
    """Scores `learner` on every test alphabet.

    Args:
        learner: A compiled classifier with an `accuracy` metric.
        tests: `{alphabet: ClassIndex}`, as `load()` returns.
        num_ways: Int, the ways of a trial (20).
        num_episodes: Int, episodes per alphabet (of `num_ways` trials).

    Returns:
        A dict: `"alphabets"`, per alphabet its `ways`, `trials`, `error`
        and `error_ci95` (percent); `"pooled"`, the same over every
        `num_ways`-way episode of the alphabets with enough characters.
    """
    if getattr(learner, "batch_norm", None) == "transductive":
        raise ValueError(
            "Lake's one-shot trials classify each query on its own; a "
            "learner with batch_norm='transductive' normalizes queries "
            "together. Use batch_norm='inductive' (the default).")
    rows, full = {}, []
    for position, (alphabet, index) in enumerate(tests.items()):
        episodes = trials(index, num_episodes=num_episodes,
                          seed=TEST_SEED + position, num_ways=num_ways)
        ways = min(num_ways, index.num_classes)
        result = learner.evaluate(episodes, return_dict=True, verbose=verbose)
        rows[alphabet] = _row(result, ways, num_episodes)
        if ways == num_ways:
            full.append(rows[alphabet])
    return {"alphabets": rows,
            "pooled": _pooled(full, num_ways, num_episodes) if full else None}


def _pooled(rows, ways, num_episodes):
    """The row of every episode of `rows` together: the mean and the
    Student-t interval of the pooled episodes, recovered exactly from each
    row's mean and interval (equal episode counts)."""
    n = num_episodes
    means = np.array([row["error"] for row in rows])
    stds = np.array([row["error_ci95"] * np.sqrt(n) / metrics.t_95(n - 1)
                     for row in rows])
    total = n * len(rows)
    mean = means.mean()
    variance = ((n - 1) * np.sum(stds ** 2)
                + n * np.sum((means - mean) ** 2)) / (total - 1)
    return {"ways": ways, "trials": ways * total, "error": float(mean),
            "error_ci95": float(metrics.t_95(total - 1)
                                * np.sqrt(variance / total))}


def tune_fine_tuning(learner, validation, *, steps=(10,),
                     learning_rates=(1e-4, 1e-3, 1e-2), num_episodes=30,
                     verbose=0):
    """Chooses a metric learner's `fine_tune_steps` and
    `fine_tune_learning_rate` on validation trials (20-way within the
    validation alphabet) and leaves the best set on `learner`.

    Returns:
        `(best, table)`: the chosen `{"steps", "learning_rate", "error",
        "error_ci95"}` and every configuration tried, including no
        fine-tuning at all (0 steps), which is kept when nothing beats it.
    """
    episodes = trials(validation, num_episodes=num_episodes,
                      seed=TEST_SEED - 1)
    ways = min(20, validation.num_classes)
    table = []
    configs = [(0, learner.fine_tune_learning_rate)] + [
        (s, r) for s in steps for r in learning_rates]
    for num_steps, rate in configs:
        learner.fine_tune_steps = num_steps
        learner.fine_tune_learning_rate = rate
        result = learner.evaluate(episodes, return_dict=True,
                                  verbose=verbose)
        table.append({"steps": num_steps, "learning_rate": rate,
                      **_row(result, ways, num_episodes)})
    best = min(table, key=lambda row: row["error"])
    learner.fine_tune_steps = best["steps"]
    learner.fine_tune_learning_rate = best["learning_rate"]
    return best, table


def _row(result, ways, num_episodes):
    return {
        "ways": ways,
        "trials": ways * num_episodes,
        "error": 100.0 * (1.0 - float(result["accuracy_episode_mean"])),
        "error_ci95": 100.0 * float(result["accuracy_ci95"]),
    }


class TimeLimit(keras.callbacks.Callback):
    """Stops `fit()` at the end of the first epoch past `minutes`."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = 60.0 * minutes
        self.start = None
        self.stopped = False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True
            self.stopped = True


def _test_time_views(learner, views):
    """`run()`'s `test_time_views` for `learner`, `"auto"` resolved;
    raises before any training where the learner takes none."""
    takes_views = hasattr(learner, "test_time_views")
    if views == "auto":
        return "default" if takes_views else None
    if views is not None and not takes_views:
        raise ValueError(
            f"{type(learner).__name__} takes no test-time views; pass "
            "test_time_views=None (or 'auto') for it. Received: "
            f"test_time_views={views!r}.")
    return views


def run(
    *,
    data_dir,
    train_subset="small1",
    algorithm="protonet",
    backbone="conv4",
    filters=64,
    image_size=28,
    train_ways=20,
    train_queries=5,
    meta_batch_size=4,
    within_alphabet=True,
    rotations=True,
    augment=False,
    learning_rate=1e-3,
    meta_steps=4000,
    eval_every=250,
    patience=6,
    max_minutes=60.0,
    validation_alphabet="Latin",
    num_validation_episodes=100,
    num_test_episodes=100,
    seed=0,
    output=None,
    verbose=2,
    test_time_views="auto",
):
    """Trains a learner on one minimal set and scores it on Lake's task.

    Meta-trains `algorithm` (ProtoNet by default) on `train_ways`-way
    one-shot episodes of the training set (characters at 4 rotations as
    new classes with `rotations`; episodes drawn within one alphabet with
    `within_alphabet`; images distorted by
    `keras_meta.data.affine_distortions()` with `augment`), scores the
    held-out validation alphabet (20-way within-alphabet one-shot) every
    `eval_every` steps, keeps the best weights, stops after `patience`
    scores without a gain, at `meta_steps` or past `max_minutes`, and
    scores the test alphabets with `evaluate()`, with `test_time_views`
    set on the learner first: `"auto"` (the default) gives the metric
    learners that take views (ProtoNet, MatchingNet, R2D2) the default
    ones and the others none; `None`, `"default"` or a list of views as
    `ProtoNet(test_time_views=...)` takes them.

    The defaults are the configuration best on the validation alphabet in
    `benchmarks/omniglot_one_shot.py`'s ladder: ProtoNet, Conv-4-64 at
    28 px, 20-way episodes drawn within one alphabet, characters at 4
    rotations as classes, scored with test-time views.

    Returns:
        The results dict, also written as JSON to `output` with a learning
        curve beside it (PNG) and the learner (`.keras`), when `output` is
        given.
    """
    keras.utils.set_random_seed(seed)
    sets = load(data_dir, train_subset=train_subset, image_size=image_size,
                validation_alphabet=validation_alphabet)
    train_index = sets["train"]
    shape = (image_size, image_size, 1)
    train = data.episodes_from_index(
        train_index, num_ways=train_ways, num_shots=1,
        num_queries=train_queries, batch_size=meta_batch_size,
        rotations=rotations, within_groups=within_alphabet, seed=seed,
        augment=data.affine_distortions(seed=seed) if augment else None)
    validation = None
    if sets["validation"] is not None:
        # Seeded apart from the test trials and from the run.
        validation = trials(sets["validation"],
                            num_episodes=num_validation_episodes,
                            seed=TEST_SEED - 1)
    learner = catalog.build_classifier(
        algorithm, num_ways=max(train_ways, 20), image_shape=shape,
        filters=filters, seed=seed, backbone=backbone)
    views = _test_time_views(learner, test_time_views)
    learner.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    callbacks = [TimeLimit(max_minutes)]
    stopping = None
    if validation is not None:
        stopping = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=patience,
            restore_best_weights=True)
        callbacks.append(stopping)
    eval_every = max(1, min(eval_every, meta_steps))
    if verbose:
        print(f"training {algorithm} ({backbone}) on {train_subset}: "
              f"{train_index.num_classes} characters"
              f"{' x 4 rotations' if rotations else ''}, "
              f"{train_ways}-way episodes"
              f"{' within alphabets' if within_alphabet else ''}"
              f"{', affine distortions' if augment else ''}; validating on "
              f"{validation_alphabet}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    history = learner.fit(
        train, epochs=max(1, meta_steps // eval_every),
        steps_per_epoch=eval_every, validation_data=validation,
        callbacks=callbacks, verbose=verbose)
    train_seconds = time.perf_counter() - start
    curve = {key: [float(v) for v in values]
             for key, values in history.history.items()}
    curve["step"] = [eval_every * (e + 1)
                     for e in range(len(curve["loss"]))]
    best_step = curve["step"][-1]
    if stopping is not None:
        best = int(np.argmax(curve["val_accuracy"]))
        best_step = curve["step"][best]
        # EarlyStopping restores the best weights only when it stops
        # training itself.
        if stopping.best_weights is not None and not stopping.stopped_epoch:
            learner.set_weights(stopping.best_weights)
    if views is not None:
        learner.test_time_views = views
    start = time.perf_counter()
    scores = evaluate(learner, sets["tests"], num_episodes=num_test_episodes)
    results = {
        "config": {
            "train_subset": train_subset, "algorithm": algorithm,
            "backbone": backbone, "filters": filters,
            "image_size": image_size, "train_ways": train_ways,
            "train_queries": train_queries,
            "meta_batch_size": meta_batch_size,
            "within_alphabet": within_alphabet, "rotations": rotations,
            "augment": augment, "learning_rate": learning_rate,
            "meta_steps": meta_steps, "eval_every": eval_every,
            "patience": patience, "max_minutes": max_minutes,
            "validation_alphabet": validation_alphabet,
            "num_validation_episodes": num_validation_episodes,
            "num_test_episodes": num_test_episodes, "seed": seed,
            "test_time_views": views,
        },
        "train_characters": int(train_index.num_classes),
        "steps": curve["step"][-1],
        "best_step": best_step,
        "stopped_by": ("time limit" if callbacks[0].stopped else
                       "early stopping" if stopping is not None
                       and stopping.stopped_epoch else "step limit"),
        "train_seconds": train_seconds,
        "test_seconds": time.perf_counter() - start,
        "curve": curve,
        **scores,
    }
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as f:
            json.dump(results, f, indent=2)
        stem = os.path.splitext(output)[0]
        plot_curve(curve, stem + ".png", title=f"{algorithm} on "
                   f"{train_subset}: validation error on {validation_alphabet}")
        learner.save(stem + ".keras")
    return results


def plot_curve(curve, path, title):
    """Training and validation error against meta-steps (PNG)."""
    # A Figure without pyplot: a notebook's backend is left alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    steps = curve["step"]
    axis.plot(steps, [100 * (1 - a) for a in curve["accuracy"]],
              label="training episodes")
    if "val_accuracy" in curve:
        axis.plot(steps, [100 * (1 - a) for a in curve["val_accuracy"]],
                  label="validation alphabet, 20-way within-alphabet")
    axis.set_xlabel("meta-steps")
    axis.set_ylabel("error (%)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def format_results(results):
    """The per-alphabet table of `run()` or `evaluate()`'s results."""
    lines = [f"{'alphabet':24s} {'ways':>4s} {'trials':>6s}  error (%)"]
    for alphabet, row in results["alphabets"].items():
        lines.append(f"{alphabet:24s} {row['ways']:4d} {row['trials']:6d}  "
                     f"{row['error']:5.1f} +- {row['error_ci95']:.1f}")
    if results.get("pooled"):
        row = results["pooled"]
        lines.append(f"{'pooled ' + str(row['ways']) + '-way':24s} "
                     f"{row['ways']:4d} {row['trials']:6d}  "
                     f"{row['error']:5.1f} +- {row['error_ci95']:.1f}")
    return "\n".join(lines)
