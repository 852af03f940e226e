"""Seeded train/validation/test splits of a source's classes, kept in a
`splits.json` so that a rerun uses the same classes and test classes
never leak into training.

Classes in nested folders (`group/class/`) are split by their top folder
(Omniglot's alphabets): a group's classes all land in one split.
"""

import json
import os
import warnings

import numpy as np

SPLITS = ("train", "validation", "test")
# mini-ImageNet's proportions (64 / 16 / 20 classes of 100).
DEFAULT_FRACTIONS = (0.64, 0.16, 0.20)


def _class_names(source):
    if isinstance(source, (str, os.PathLike)):
        from keras_meta.data import image_files

        return image_files.scan(str(source))[2]
    if hasattr(source, "class_names"):
        return list(source.class_names)
    names = [str(name) for name in source]
    if len(set(names)) != len(names):
        raise ValueError("The class names given to `split_classes` repeat.")
    return names


def _group_of(name):
    return name.split("/")[0] if "/" in name else None


def _sizes(total, fractions, unit):
    """Split sizes of `total` units: at least 2 train, 1 validation and
    2 test units (the smallest episodes have 2 ways)."""
    if total < 5:
        raise ValueError(
            f"Splitting classes into train, validation and test needs at "
            f"least 5 {unit} (2 to train on, 1 to validate, 2 to test); "
            f"the source has {total}. Add {unit}, or pass your own "
            "`classes=` to `episodes()`.")
    test = max(2, int(round(fractions[2] * total)))
    validation = max(1, int(round(fractions[1] * total)))
    train = total - test - validation
    if train < 2:
        test, validation = 2, 1
        train = total - 3
    return train, validation, test


def _check_fractions(fractions):
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(
            sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            "`fractions` must be three positive numbers summing to 1 (train, "
            f"validation, test). Received: fractions={fractions!r}.")
    return fractions


def make_splits(class_names, *, fractions=DEFAULT_FRACTIONS, seed=0):
    """A seeded split of class names (by top folder when all are nested
    and there are at least 5 top folders); see `split_classes`."""
    fractions = _check_fractions(fractions)
    groups = [_group_of(name) for name in class_names]
    rng = np.random.default_rng(seed)
    unique_groups = sorted(set(groups)) if None not in groups else []
    if len(unique_groups) >= 5:
        order = [unique_groups[i] for i in rng.permutation(
            len(unique_groups))]
        train, validation, _ = _sizes(len(order), fractions, "groups")
        assigned = {group: SPLITS[0 if i < train else 1 if i < train +
                                  validation else 2]
                    for i, group in enumerate(order)}
        split_of = [assigned[group] for group in groups]
        by = "group"
    else:
        order = rng.permutation(len(class_names))
        train, validation, _ = _sizes(len(order), fractions, "classes")
        split_of = [None] * len(class_names)
        for i, position in enumerate(order):
            split_of[position] = SPLITS[
                0 if i < train else 1 if i < train + validation else 2]
        by = "class"
    splits = {"seed": int(seed), "fractions": list(fractions), "by": by}
    for split in SPLITS:
        splits[split] = sorted(name for name, s in zip(class_names, split_of)
                               if s == split)
    return splits


def split_classes(source, *, path=None, fractions=DEFAULT_FRACTIONS,
                  seed=0):
    """Splits a source's classes into train, validation and test classes.

    With `path`, a split already written there is read back (and checked
    against the source's classes); otherwise a new one is drawn from
    `seed` and written there.

    Args:
        source: A folder of class sub-folders, a `ClassIndex` or a list of
            class names.
        path: Optional path of the `splits.json` to read or write.
        fractions: `(train, validation, test)` fractions of the classes
            (or of the top folders). Defaults to mini-ImageNet's
            `(0.64, 0.16, 0.20)`. Each split gets at least 2, 1 and 2.
        seed: Int, seeds the split.

    Returns:
        A dict with the class names of `"train"`, `"validation"` and
        `"test"` (sorted), and the `"seed"`, `"fractions"` and `"by"`
        (`"class"` or `"group"`) that made it. Pass a split's names as
        `episodes(..., classes=splits["train"])`.

    Example:

    ```python
    splits = keras_meta.data.split_classes("my_images", path="splits.json")
    train = keras_meta.data.episodes(
        "my_images", classes=splits["train"], image_size=(84, 84),
        num_ways=5, num_shots=1, num_queries=15, batch_size=4)
    ```
    """
    names = _class_names(source)
    if path is not None and os.path.exists(path):
        return load_splits(path, names)
    splits = make_splits(names, fractions=fractions, seed=seed)
    if path is not None:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        partial = path + ".partial"
        with open(partial, "w") as f:
            json.dump(splits, f, indent=2)
        os.replace(partial, path)
    return splits


def load_splits(path, class_names=None):
    """Reads a `splits.json`, checking it against `class_names` if given.

    Raises:
        ValueError: if the file is not a split, if a class is in two
            splits, or if it names classes the source lacks.
    """
    with open(path) as f:
        try:
            splits = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"'{path}' is not valid JSON ({error}). Delete "
                             "it to draw a new split.") from None
    missing = [split for split in SPLITS
               if not isinstance(splits.get(split), list)]
    if missing:
        raise ValueError(
            f"'{path}' lacks the class lists {missing}; a split file holds "
            "'train', 'validation' and 'test' lists of class names.")
    seen = {}
    for split in SPLITS:
        for name in splits[split]:
            if name in seen:
                raise ValueError(
                    f"'{path}' puts class '{name}' in both '{seen[name]}' "
                    f"and '{split}'.")
            seen[name] = split
    if class_names is not None:
        unknown = sorted(set(seen) - set(class_names))
        if unknown:
            raise ValueError(
                f"'{path}' names {len(unknown)} classes the source lacks "
                f"(first: {unknown[:3]}). Use the folder the split was made "
                "for, or delete the file to draw a new split.")
        new = sorted(set(class_names) - set(seen))
        if new:
            warnings.warn(
                f"{len(new)} classes of the source are in no split of "
                f"'{path}' (first: {new[:3]}) and are not used.",
                stacklevel=3)
    return splits
