"""Standard few-shot benchmarks with their published class splits.

Each function reads a TensorFlow Datasets source once and returns
`(train, validation, test)` episode datasets over disjoint classes: an
endless seeded training stream, and fixed validation and test sets of
episodes (600 test episodes by default, the usual protocol). The class
splits are stored as data in `keras_meta.data.splits`, with their sources.
"""

import numpy as np

from keras_meta.data import splits as split_data
from keras_meta.data.episode_sources import ClassIndex
from keras_meta.data.episode_sources import episodes_from_index
from keras_meta.data.tfds_source import load_tfds

SPLITS = ("train", "validation", "test")


def _partition(images, labels, assign, names=None, groups=None):
    """One `ClassIndex` per split; `assign(label)` names a label's split."""
    labels = np.asarray(labels)
    split_of = {int(label): assign(int(label)) for label in np.unique(labels)}
    indices = {}
    for split in SPLITS:
        wanted = [label for label, s in split_of.items() if s == split]
        if not wanted:
            indices[split] = None
            continue
        mask = np.isin(labels, wanted)
        indices[split] = ClassIndex(
            images[mask], labels[mask],
            class_names=names,
            groups=None if groups is None else groups[mask],
        )
    return indices


def _episode_sets(indices, *, num_ways, num_shots, num_queries, batch_size,
                  seed, num_validation_episodes, num_test_episodes,
                  rotations=False, within_groups=False, test_ways=None,
                  test_shots=None):
    common = dict(num_queries=num_queries, batch_size=batch_size,
                  rotations=rotations, within_groups=within_groups)
    outputs = []
    for offset, split in enumerate(SPLITS):
        index = indices.get(split)
        if index is None:
            outputs.append(None)
            continue
        evaluation = split != "train"
        outputs.append(episodes_from_index(
            index,
            num_ways=(test_ways or num_ways) if evaluation else num_ways,
            num_shots=(test_shots or num_shots) if evaluation else num_shots,
            seed=seed + offset,
            num_episodes=(
                None if not evaluation
                else num_test_episodes if split == "test"
                else num_validation_episodes
            ),
            **common,
        ))
    return tuple(outputs)


def _check_protocol(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"Unknown {name} {value!r}. Expected one of {list(choices)}."
        )


def omniglot(*, protocol="vinyals", num_ways=None, num_shots=1,
             num_queries=None, batch_size=32, image_size=(28, 28),
             background="train", seed=0, num_validation_episodes=600,
             num_test_episodes=600, data_dir=None, download=True):
    """Omniglot (Lake et al., 2015) episodes, from TFDS `omniglot`.

    - `protocol="vinyals"`: the split of Vinyals et al. (2016) as published
      with Prototypical Networks (Snell et al., 2017): 1028 / 172 / 423
      characters, each rotated by 0, 90, 180 and 270 degrees as four
      classes; 28x28 grayscale. Defaults to 5-way episodes with 15 queries.
    - `protocol="lake"`: Lake et al.'s one-shot protocol: 20-way episodes
      whose characters all come from one alphabet; training episodes from
      the `background` split (`"train"`, or the minimal `"small1"` /
      `"small2"`), test episodes from the evaluation alphabets (`"test"`).
      There is no validation set (`None`). Defaults to 20-way 1-shot with
      one query per class.

    Returns:
        `(train, validation, test)` episode datasets.

    Reference:
        - [Lake et al., 2015](https://doi.org/10.1126/science.aab3050)
        - [Vinyals et al., 2016](https://arxiv.org/abs/1606.04080)
        - [Snell et al., 2017](https://arxiv.org/abs/1703.05175)
    """
    _check_protocol("protocol", protocol, ("vinyals", "lake"))
    if protocol == "vinyals":
        images, labels, groups, extras, builder = load_tfds(
            "omniglot", splits=["train", "test"], group_key="alphabet",
            extra_keys=("alphabet_char_id",), image_size=image_size,
            channels=1, data_dir=data_dir, download=download,
        )
        alphabets = list(builder.info.features["alphabet"].names)
        if alphabets == [str(i) for i in range(len(alphabets))]:
            # TFDS numbers alphabets by their sorted names; the names are
            # missing only from unprepared metadata.
            alphabets = sorted(
                split_data.OMNIGLOT_BACKGROUND + split_data.OMNIGLOT_EVALUATION
            )
        characters = {}
        for label, group, char in zip(labels, groups,
                                      extras["alphabet_char_id"]):
            characters[int(label)] = (alphabets[int(group)], int(char) + 1)
        indices = _partition(
            images, labels,
            lambda label: split_data.omniglot_vinyals_split(*characters[label]),
            names=None, groups=groups,
        )
        return _episode_sets(
            indices, num_ways=num_ways or 5, num_shots=num_shots,
            num_queries=num_queries or 15, batch_size=batch_size, seed=seed,
            num_validation_episodes=num_validation_episodes,
            num_test_episodes=num_test_episodes, rotations=True,
        )
    _check_protocol("background", background, ("train", "small1", "small2"))
    indices = {"validation": None}
    for split, tfds_split in (("train", background), ("test", "test")):
        images, labels, groups, _, _ = load_tfds(
            "omniglot", splits=[tfds_split], group_key="alphabet",
            image_size=image_size, channels=1, data_dir=data_dir,
            download=download,
        )
        indices[split] = ClassIndex(images, labels, groups=groups)
    return _episode_sets(
        indices, num_ways=num_ways or 20, num_shots=num_shots,
        num_queries=num_queries or 1, batch_size=batch_size, seed=seed,
        num_validation_episodes=num_validation_episodes,
        num_test_episodes=num_test_episodes, within_groups=True,
    )


def _cifar(assign, *, num_ways, num_shots, num_queries,
           batch_size, image_size, seed, num_validation_episodes,
           num_test_episodes, data_dir, download, extra_keys=()):
    images, labels, _, extras, _ = load_tfds(
        "cifar100", splits=["train", "test"], extra_keys=extra_keys,
        image_size=image_size, data_dir=data_dir, download=download,
    )
    coarse = extras.get("coarse_label")
    fine_to_coarse = (
        None if coarse is None
        else {int(f): int(c) for f, c in zip(labels, coarse)}
    )
    indices = _partition(
        images, labels, lambda label: assign(label, fine_to_coarse),
        names=split_data.CIFAR100_CLASSES,
    )
    return _episode_sets(
        indices, num_ways=num_ways, num_shots=num_shots,
        num_queries=num_queries, batch_size=batch_size, seed=seed,
        num_validation_episodes=num_validation_episodes,
        num_test_episodes=num_test_episodes,
    )


def cifar_fs(*, num_ways=5, num_shots=1, num_queries=15, batch_size=32,
             image_size=None, seed=0, num_validation_episodes=600,
             num_test_episodes=600, data_dir=None, download=True):
    """CIFAR-FS: CIFAR-100 classes split 64 / 16 / 20, 32x32 images.

    Returns:
        `(train, validation, test)` episode datasets.

    Reference:
        - [Bertinetto et al., 2019](https://arxiv.org/abs/1805.08136)
    """
    validation = set(split_data.CIFAR_FS_VALIDATION)
    test = set(split_data.CIFAR_FS_TEST)

    def assign(label, _):
        name = split_data.CIFAR100_CLASSES[label]
        return ("test" if name in test
                else "validation" if name in validation else "train")

    return _cifar(assign, num_ways=num_ways, num_shots=num_shots,
                  num_queries=num_queries, batch_size=batch_size,
                  image_size=image_size, seed=seed,
                  num_validation_episodes=num_validation_episodes,
                  num_test_episodes=num_test_episodes, data_dir=data_dir,
                  download=download)


def fc100(*, num_ways=5, num_shots=1, num_queries=15, batch_size=32,
          image_size=None, seed=0, num_validation_episodes=600,
          num_test_episodes=600, data_dir=None, download=True):
    """FC100: CIFAR-100 split by superclass, 12 / 4 / 4 (60 / 20 / 20
    classes), so that test classes share no superclass with training ones.

    Returns:
        `(train, validation, test)` episode datasets.

    Reference:
        - [Oreshkin et al., 2018](https://arxiv.org/abs/1805.10123)
    """
    split_of = {
        superclass: split
        for split, superclasses in split_data.FC100_SUPERCLASSES.items()
        for superclass in superclasses
    }

    def assign(label, fine_to_coarse):
        return split_of[fine_to_coarse[label]]

    return _cifar(assign, num_ways=num_ways, num_shots=num_shots,
                  num_queries=num_queries, batch_size=batch_size,
                  image_size=image_size, seed=seed,
                  num_validation_episodes=num_validation_episodes,
                  num_test_episodes=num_test_episodes, data_dir=data_dir,
                  download=download, extra_keys=("coarse_label",))


def _labelled(name, tfds_splits, assign, *, num_ways, num_shots, num_queries,
              batch_size, image_size, seed, num_validation_episodes,
              num_test_episodes, data_dir, download, keep_labels=None,
              max_per_class=None, names=None):
    images, labels, _, _, _ = load_tfds(
        name, splits=tfds_splits, keep_labels=keep_labels,
        max_per_class=max_per_class, image_size=image_size,
        data_dir=data_dir, download=download,
    )
    indices = _partition(images, labels, assign, names=names)
    return _episode_sets(
        indices, num_ways=num_ways, num_shots=num_shots,
        num_queries=num_queries, batch_size=batch_size, seed=seed,
        num_validation_episodes=num_validation_episodes,
        num_test_episodes=num_test_episodes,
    )


def cub(*, num_ways=5, num_shots=1, num_queries=15, batch_size=32,
        image_size=(84, 84), seed=0, num_validation_episodes=600,
        num_test_episodes=600, data_dir=None, download=True):
    """CUB-200-2011 birds, 100 / 50 / 50 classes (Chen et al., 2019 split),
    from TFDS `caltech_birds2011`, resized to `image_size`.

    Returns:
        `(train, validation, test)` episode datasets.

    Reference:
        - [Chen et al., 2019](https://arxiv.org/abs/1904.04232)
    """
    return _labelled(
        "caltech_birds2011", ["train", "test"], split_data.cub_split,
        num_ways=num_ways, num_shots=num_shots, num_queries=num_queries,
        batch_size=batch_size, image_size=image_size, seed=seed,
        num_validation_episodes=num_validation_episodes,
        num_test_episodes=num_test_episodes, data_dir=data_dir,
        download=download,
    )


def vgg_flower(*, num_ways=5, num_shots=1, num_queries=15, batch_size=32,
               image_size=(84, 84), seed=0, num_validation_episodes=600,
               num_test_episodes=600, data_dir=None, download=True):
    """VGG Flower (Oxford Flowers 102), 71 / 15 / 16 classes as in
    Meta-Dataset, from TFDS `oxford_flowers102`, resized to `image_size`.

    Returns:
        `(train, validation, test)` episode datasets.

    Reference:
        - [Triantafillou et al., 2020](https://arxiv.org/abs/1903.03096)
    """
    validation = set(split_data.VGG_FLOWER_VALIDATION)
    test = set(split_data.VGG_FLOWER_TEST)

    def assign(label):
        class_id = label + 1  # TFDS labels count from 0, the paper from 1.
        return ("test" if class_id in test
                else "validation" if class_id in validation else "train")

    return _labelled(
        "oxford_flowers102", ["train", "validation", "test"], assign,
        num_ways=num_ways, num_shots=num_shots, num_queries=num_queries,
        batch_size=batch_size, image_size=image_size, seed=seed,
        num_validation_episodes=num_validation_episodes,
        num_test_episodes=num_test_episodes, data_dir=data_dir,
        download=download,
    )


def mini_imagenet(*, num_ways=5, num_shots=1, num_queries=15, batch_size=32,
                  image_size=(84, 84), examples_per_class=600, seed=0,
                  num_validation_episodes=600, num_test_episodes=600,
                  data_dir=None, download=True):
    """mini-ImageNet: 100 ImageNet synsets split 64 / 16 / 20 (Ravi and
    Larochelle, 2017), 84x84, built from the user's TFDS `imagenet2012`.

    TFDS cannot download ImageNet: it needs the ILSVRC2012 archives placed
    in its manual download folder (the error says where). The first
    `examples_per_class` training images of each synset in TFDS order are
    used (the original CSV files list 600 specific images; the classes are
    the same).

    Returns:
        `(train, validation, test)` episode datasets.

    Reference:
        - [Ravi and Larochelle, 2017](https://openreview.net/forum?id=rJY0-Kcll)
    """
    import tensorflow_datasets as tfds

    wnids = list(tfds.builder("imagenet2012", data_dir=data_dir)
                 .info.features["label"].names)
    split_of = {
        wnids.index(wnid): split
        for split, synsets in split_data.MINI_IMAGENET.items()
        for wnid in synsets
    }
    return _labelled(
        "imagenet2012", ["train"], split_of.__getitem__,
        num_ways=num_ways, num_shots=num_shots, num_queries=num_queries,
        batch_size=batch_size, image_size=image_size, seed=seed,
        num_validation_episodes=num_validation_episodes,
        num_test_episodes=num_test_episodes, data_dir=data_dir,
        download=download, keep_labels=sorted(split_of),
        max_per_class=examples_per_class, names=wnids,
    )


BENCHMARKS = {
    "omniglot": omniglot,
    "cifar_fs": cifar_fs,
    "fc100": fc100,
    "cub": cub,
    "vgg_flower": vgg_flower,
    "mini_imagenet": mini_imagenet,
}


def get(name, **kwargs):
    """`(train, validation, test)` episodes of the benchmark `name`.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in BENCHMARKS:
        raise ValueError(
            f"Unknown benchmark {name!r}. Available: {sorted(BENCHMARKS)}."
        )
    return BENCHMARKS[name](**kwargs)
