"""Few-shot classification episodes from any labelled source.

`episodes()` turns a TFDS dataset, a `tf.data.Dataset` of `(input, label)`
or a folder with one sub-folder per class into a `tf.data.Dataset` of
episode batches (see `keras_meta.episode`). Examples are indexed by class
once; each episode is then a pure function of `(seed, episode index)`
computed in the `tf.data` graph, so a stream is reproducible, resumes at any
position, and runs without Python in the loop.
"""

import os
import warnings

import numpy as np

from keras_meta import episode
from keras_meta.checks import positive_integer
from keras_meta.data import image_files
from keras_meta.data.batching import finish_episodes


class ClassIndex:
    """Examples grouped by class, in memory.

    Attributes:
        examples: NumPy array `[num_examples, ...]`, sorted by class
            (images as float32 in [0, 1], or as `uint8` pixels that
            episodes convert; see `episodes(storage=...)`).
        offsets: Int array `[num_classes]`, first example of each class.
        counts: Int array `[num_classes]`, examples per class.
        class_names: List of strings, one per class.
        groups: Int array `[num_classes]` or `None`, a group per class
            (Omniglot's alphabet), for within-group episodes.
        decode: `None` when `examples` are in memory; for streamed sources,
            a function mapping a path tensor to an image tensor.
        description: `None`, or for an image folder a sentence saying what
            was read: how many images of which modes, to how many
            channels and what size, and how many files were skipped.
    """

    def __init__(self, examples, labels, class_names=None, groups=None,
                 decode=None):
        labels = np.asarray(labels)
        # With `decode`, `examples` are file paths read when an episode
        # needs them (streaming), and `decode(path)` returns the image.
        self.decode = decode
        self.description = None
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "Episode sources need integer class labels. Received labels "
                f"of dtype {labels.dtype}. Map labels to integers first, "
                "e.g. with `dataset.map(lambda x, y: (x, tf.cast(y, "
                "'int64')))` for whole-number floats."
            )
        order = np.argsort(labels, kind="stable")
        labels = labels[order]
        self.examples = np.asarray(examples)[order]
        classes, self.offsets, self.counts = np.unique(
            labels, return_index=True, return_counts=True
        )
        # The group (Omniglot's alphabet) of each class, if any.
        self.groups = (
            None if groups is None
            else np.asarray(groups)[order][self.offsets]
        )
        if class_names is None:
            class_names = [str(c) for c in classes]
        else:
            class_names = [class_names[c] for c in classes]
        self.class_names = list(class_names)

    @property
    def num_classes(self):
        return len(self.counts)

    def subset(self, classes):
        """A `ClassIndex` of the classes `classes` (integer class ids, in
        the order given), relabelled `0..len(classes) - 1`, with their
        names and groups."""
        classes = [int(c) for c in classes]
        if not classes:
            raise ValueError("`classes` selects no class.")
        bad = [c for c in classes if not 0 <= c < self.num_classes]
        if bad:
            raise ValueError(
                f"Class ids must lie in [0, {self.num_classes}). Received "
                f"{bad[:5]}.")
        if len(set(classes)) != len(classes):
            raise ValueError("`classes` names a class more than once.")
        examples, labels, groups = [], [], []
        for new_label, c in enumerate(classes):
            start, count = self.offsets[c], self.counts[c]
            examples.append(self.examples[start:start + count])
            labels.append(np.full(count, new_label))
            if self.groups is not None:
                groups.append(np.full(count, self.groups[c]))
        index = ClassIndex(
            np.concatenate(examples), np.concatenate(labels),
            class_names=[self.class_names[c] for c in classes],
            groups=np.concatenate(groups) if groups else None,
            decode=self.decode)
        index.description = self.description
        return index

    def check_counts(self, num_per_class, on_error="raise"):
        """This index, or with `on_error="skip"` the index without the
        classes of fewer than `num_per_class` examples (with a warning).

        Raises:
            ValueError: naming the short classes and their counts, when
                some are short and `on_error="raise"`, or when all are.
        """
        short = np.flatnonzero(self.counts < num_per_class)
        if not len(short):
            return self
        listing = ", ".join(f"'{self.class_names[c]}' has {self.counts[c]}"
                            for c in short[:8])
        if len(short) > 8:
            listing += f" and {len(short) - 8} more"
        message = (
            f"Each class needs at least num_shots + num_queries = "
            f"{num_per_class} examples, but {len(short)} of "
            f"{self.num_classes} classes have fewer: class {listing}.")
        if on_error == "raise" or len(short) == self.num_classes:
            raise ValueError(
                message + " Lower `num_shots` or `num_queries`, drop such "
                "classes with `classes=`, or pass on_error='skip' to leave "
                "them out with a warning.")
        warnings.warn(message + " They are left out (on_error='skip').",
                      stacklevel=3)
        return self.subset(np.flatnonzero(self.counts >= num_per_class))


def _load_folder(directory, image_size, channels, cache="auto",
                 memory_limit=2**32, storage="auto", on_error="raise"):
    """`(examples, labels, names, decode, description)` of an image
    folder: decoded images, or with `cache="stream"` file paths and the
    function decoding one."""
    import tensorflow as tf

    if not os.path.isdir(directory):
        raise ValueError(
            f"`source` '{directory}' is neither a TFDS name nor an existing "
            "folder. Pass a folder whose leaf sub-folders each hold one "
            "class's images, a `tf.data.Dataset` or a TFDS dataset name."
        )
    paths, labels, names = image_files.scan(directory)
    channels, readable, modes = image_files.inspect_files(
        paths, channels, on_error)
    skipped = int(np.sum(~readable))
    paths = [path for path, ok in zip(paths, readable) if ok]
    labels = labels[readable]
    first, _ = image_files.read_images(paths[:1], channels=channels,
                                       image_size=image_size)
    if cache == "auto":
        per_image = first[0].size * (1 if storage == "uint8" else 4)
        cache = ("stream" if per_image * len(paths) > memory_limit
                 else "memory")
    if cache == "stream":
        shape = first.shape[1:]

        def decode(path):
            image = tf.numpy_function(
                lambda p: image_files.decode_file(p.decode(), channels),
                [path], tf.float32, stateful=False)
            image = tf.ensure_shape(image, [None, None, channels])
            if image_size is not None:
                image = tf.image.resize(image, image_size, antialias=True)
            return tf.ensure_shape(image, shape)

        description = image_files.describe(
            len(paths), len(names), modes, channels, image_size, skipped)
        return np.array(paths), labels, names, decode, description
    images, ok = image_files.read_images(
        paths, channels=channels, image_size=image_size, on_error=on_error,
        keep_uint8=storage != "float32")
    if storage == "uint8" and images.dtype != np.uint8:
        images = np.round(np.clip(images, 0.0, 1.0) * 255.0).astype("uint8")
    labels = labels[ok]
    description = image_files.describe(
        len(images), len(names), modes, channels, image_size,
        skipped + int(np.sum(~ok)))
    return images, labels, names, None, description


# How in-memory images are kept: "auto" keeps a source's integer pixels
# when they need no resizing (exact: the pipeline divides by 255 as the
# float conversion does) and float32 otherwise; "uint8" also rounds resized
# images to 8 bits (a quarter of the memory, at most 0.2% pixel error);
# "float32" converts everything up front.
STORAGES = ("auto", "uint8", "float32")


def _stored(image, image_size, storage):
    """One decoded image as kept in memory (see `STORAGES`)."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    resize = image_size is not None and tuple(image.shape[:2]) != tuple(
        image_size)
    if image.dtype == tf.uint8 and not resize and storage != "float32":
        return image.numpy()
    converted = _convert(image, image_size)
    if storage == "uint8":
        return np.round(np.clip(converted, 0.0, 1.0) * 255.0).astype(
            "uint8")
    return converted


def _convert(image, image_size):
    import tensorflow as tf

    image = tf.image.convert_image_dtype(image, tf.float32)
    if image_size is not None:
        image = tf.image.resize(image, image_size, antialias=True)
    return image.numpy()


def _stack(images, names):
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        first = images[0].shape
        odd = next(i for i, image in enumerate(images) if image.shape != first)
        raise ValueError(
            f"Images have different shapes ({names[0]}: {first}, "
            f"{names[odd]}: {images[odd].shape}). Pass `image_size=(height, "
            "width)` to resize them all."
        )
    return np.stack(images)


def _load_dataset(dataset, image_size, storage="auto"):
    import tensorflow as tf

    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            "A `tf.data.Dataset` source must yield `(input, label)` pairs. "
            f"Received elements of spec {spec}. Use `as_supervised=True` "
            "with TFDS, or `dataset.map(lambda e: (e['image'], e['label']))`."
        )
    image_spec = spec[0]
    if image_spec.shape.is_fully_defined() and image_size is None:
        # Same-shaped examples: read in large batches, not one by one.
        images, labels = [], []
        for image, label in dataset.batch(4096).as_numpy_iterator():
            if image.dtype != np.uint8 or storage == "float32":
                if np.issubdtype(image.dtype, np.integer):
                    image = _convert(tf.convert_to_tensor(image), None)
                image = np.asarray(image, "float32")
            images.append(image)
            labels.append(label)
        if not images:
            raise ValueError("The source dataset is empty.")
        return np.concatenate(images), np.concatenate(labels)
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        if np.asarray(image).dtype == np.uint8:
            image = _stored(image, image_size, storage)
        elif np.issubdtype(np.asarray(image).dtype, np.integer) or image_size:
            image = _convert(tf.convert_to_tensor(image), image_size)
        images.append(image if image.dtype == np.uint8
                      else np.asarray(image, "float32"))
        labels.append(label)
    if not images:
        raise ValueError("The source dataset is empty.")
    return _stack(images, [f"example {i}" for i in range(len(images))]), (
        np.array(labels)
    )


def _load_tfds(name, split, data_dir, image_size, channels):
    from keras_meta.data.tfds_source import load_tfds

    if split is None:
        raise ValueError(
            f"A TFDS source needs `split=` (e.g. split='train'). Received "
            f"source={name!r} without one."
        )
    images, labels, _, _, builder = load_tfds(
        name, splits=[split], image_size=image_size, channels=channels,
        data_dir=data_dir,
    )
    names = None
    label_feature = builder.info.features["label"]
    if hasattr(label_feature, "names"):
        names = list(label_feature.names)
    return images, labels, names


def load_class_index(source, *, split=None, classes=None, image_size=None,
                     channels=None, data_dir=None, cache="auto",
                     storage="auto", on_error="raise"):
    """Indexes a source by class, in memory or as files to stream.

    Args:
        source: A TFDS name or builder, a `tf.data.Dataset` of
            `(input, label)`, or a folder of class sub-folders.
        split: String, the TFDS split (TFDS sources only).
        classes: Optional list of class labels (ints) or folder names to
            keep, in that order; others are dropped.
        image_size: Optional `(height, width)` to resize images to.
        channels: Channels to decode images to; see `episodes()`.
        data_dir: Optional TFDS data directory.
        cache: `"memory"`, `"stream"` or `"auto"`; see `episodes()`.
        storage: How images of image folders and `tf.data` sources are
            kept in memory; see `episodes()`.
        on_error: `"raise"` (the default) or `"skip"`: what an image folder's
            unreadable files do; see `episodes()`.

    Returns:
        A `ClassIndex`; for an image folder, its `description` says what
        was read and how.
    """
    if storage not in STORAGES:
        raise ValueError(
            f"`storage` must be one of {STORAGES}. Received: "
            f"storage={storage!r}.")
    if cache not in ("auto", "memory", "stream"):
        raise ValueError(
            "`cache` must be 'auto', 'memory' or 'stream'. Received: "
            f"cache={cache!r}."
        )
    decode, description = None, None
    folder = isinstance(source, (str, os.PathLike)) and (
        os.sep in str(source) or os.path.exists(source)
    )
    if cache == "stream" and not folder:
        raise ValueError(
            "`load_class_index` streams image folders only; for TFDS and "
            "`tf.data` sources `episodes(..., cache='stream')` streams "
            "through per-class buffers instead of an index."
        )
    if _is_dataset(source):
        images, labels = _load_dataset(source, image_size, storage)
        names = None
    elif folder:
        images, labels, names, decode, description = _load_folder(
            str(source), image_size, channels, cache, storage=storage,
            on_error=on_error)
    else:
        images, labels, names = _load_tfds(
            source, split, data_dir, image_size, channels
        )
    if classes is not None:
        lookup = {}
        for position, wanted in enumerate(classes):
            if isinstance(wanted, str):
                if names is None or wanted not in names:
                    raise ValueError(
                        f"Unknown class '{wanted}' in `classes`. The source "
                        f"names its classes {(names or [])[:10]}..."
                    )
                wanted = names.index(wanted)
            lookup[int(wanted)] = position
        keep = np.array([int(label) in lookup for label in labels])
        if not keep.any():
            raise ValueError(
                "None of the requested `classes` occurs in the source."
            )
        images = images[keep]
        labels = np.array([lookup[int(label)] for label in labels[keep]])
        if names is not None:
            names = [
                c if isinstance(c, str) else names[int(c)] for c in classes
            ]
        else:
            names = [str(c) for c in classes]
    index = ClassIndex(images, labels, names, groups=_folder_groups(
        names, labels) if folder else None, decode=decode)
    index.description = description
    return index


def _folder_groups(names, labels):
    """Per-example group ids from nested class folders, or `None`.

    Classes in nested folders (`alphabet/character/*.png`) are grouped by
    their top folder (Omniglot's alphabets), for within-group episodes.
    """
    if not names or not all(os.sep in name or "/" in name for name in names):
        return None
    tops = [name.replace(os.sep, "/").split("/")[0] for name in names]
    ids = {top: i for i, top in enumerate(sorted(set(tops)))}
    class_group = np.array([ids[top] for top in tops])
    return class_group[np.asarray(labels)]


def _is_dataset(source):
    return hasattr(source, "element_spec") and hasattr(source, "take")


def _count_range(name, value):
    """`(low, high)` from an int or a `(low, high)` pair of counts."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(
            f"`{name}` must be a positive integer or a `(low, high)` pair. "
            f"Received: {name}={value!r}."
        )
    for part in pair:
        positive_integer(name, part)
    if pair[0] > pair[1]:
        raise ValueError(
            f"`{name}` must be `(low, high)` with low <= high. Received: "
            f"{name}={value!r}."
        )
    return int(pair[0]), int(pair[1])


def episodes(
    source,
    *,
    num_ways,
    num_shots,
    num_queries,
    batch_size,
    split=None,
    classes=None,
    image_size=None,
    channels=None,
    rotations=False,
    seed=None,
    num_episodes=None,
    data_dir=None,
    cache="auto",
    within_groups=False,
    storage="auto",
    on_error="raise",
    augment=None,
):
    """N-way K-shot classification episodes from a labelled source.

    Each episode draws `num_ways` distinct classes and, from each,
    `num_shots + num_queries` distinct examples (support and query are
    disjoint); the classes get episode labels `0 .. num_ways - 1` in a
    random order. Episode `i` is a pure function of `(seed, i)`.

    The source is indexed by class once. Small data sets (Omniglot,
    CIFAR-FS, CUB, mini-ImageNet at 84x84 all fit in a few GB) are decoded
    into memory; an image folder too large for that (over 4 GiB decoded,
    with `cache="auto"`) is streamed: only file paths are kept, and each
    episode reads and decodes just its own images.

    Args:
        source: A TFDS dataset name or builder, a `tf.data.Dataset` of
            `(input, label)` with integer labels, or a folder in which each
            leaf sub-folder holds one class's images (nested folders
            allowed, as in Omniglot's `Alphabet/character/`).
        num_ways: Int, classes per episode, or a `(low, high)` range: each
            episode then draws its number of ways uniformly from it.
        num_shots: Int, support examples per class, or a `(low, high)`
            range drawn per class (imbalanced shots). With ranges, episodes
            are padded to `high` ways and shots: `inputs["support_weights"]`
            and the batch's `sample_weight` are 0 on padding, which the
            meta-learners and compiled metrics ignore.
        num_queries: Int, query examples per class.
        batch_size: Int, episodes per batch (meta-batch size).
        split: String, the TFDS split to read (TFDS sources only).
        classes: Optional list of labels or folder names to draw from (a
            class split).
        image_size: Optional `(height, width)`; images are resized to it.
            Image values are float32 in [0, 1] either way.
        channels: Image folders: `"auto"` (the default, also for `None`)
            decodes to 3 channels (RGB) when any image has colour and to 1
            (grayscale) otherwise; 1 or 3 force a mode. Every mode Pillow
            reads is taken (bilevel, 8- and 16-bit grayscale, palette, RGB,
            CMYK; transparency is composited over white; a GIF's first
            frame), from PNG, JPEG, BMP, GIF, WebP and TIFF files.
            TFDS sources: an int, channels to decode to.
        rotations: Bool. If `True`, each class rotated by 90, 180 and 270
            degrees is a class of its own (the Omniglot protocol of Santoro
            et al. 2016 and Vinyals et al. 2016). Defaults to `False`.
        seed: Optional int. Defaults to a random seed.
        num_episodes: Optional int. `None` gives an endless stream; an int
            gives that fixed set of episodes, identical on every pass (the
            evaluation protocol: 600 fixed test episodes).
        data_dir: Optional TFDS data directory.
        cache: `"auto"` (the default), `"memory"` or `"stream"`: where
            examples live between episodes. Streaming an image folder keeps
            its file paths and decodes each episode's images; streaming a
            TFDS or `tf.data` source reads it as a shuffled stream into
            bounded per-class buffers (`keras_meta.data.streaming`), for
            data sets of any size. `"auto"` streams image folders over
            4 GiB decoded and keeps other sources in memory.
        within_groups: Bool. If `True`, each episode draws its classes from
            one group: for a folder of nested class folders
            (`alphabet/character/*.png`), the top folder (Lake et al.'s
            within-alphabet protocol). Combines with `rotations`: a rotated
            character stays in its alphabet. Defaults to `False`.
        storage: How an image folder or `tf.data` source is kept in memory
            (episodes hold float32 in [0, 1] whatever it is): `"auto"` (the
            default) keeps 8-bit pixels that need no resizing as `uint8`,
            a quarter of float32's memory, converted per episode with no
            change to any value, and resized images as float32;
            `"uint8"` also rounds resized images to 8 bits (at most 0.2%
            pixel error); `"float32"` converts everything up front.
        on_error: `"raise"` (the default) or `"skip"`. With `"raise"`,
            unreadable image files and classes with fewer than
            `num_shots + num_queries` examples raise an error naming them
            and their counts; with `"skip"` they are left out with a
            warning.
        augment: Optional Keras preprocessing layer (or list of layers, or
            any function of an image batch) applied to every image of an
            episode, support and query alike, e.g. `[keras.layers.
            RandomFlip("horizontal"), keras.layers.RandomRotation(0.05)]`.
            Pass it for training episodes only. Its randomness is not
            seeded by `seed`: augmented episodes differ from run to run.
            It runs in the `tf.data` pipeline: on JAX, use Keras's
            preprocessing layers (which run there on every backend) or
            TensorFlow functions.

    Returns:
        A `tf.data.Dataset` of `(inputs, query_labels)` batches with
        `support_inputs` `[batch, num_ways * num_shots, ...]`,
        `support_labels` `[batch, num_ways * num_shots]`, `query_inputs`
        `[batch, num_ways * num_queries, ...]` and `query_labels`
        `[batch, num_ways * num_queries]`, ordered by episode label.

    Example:

    ```python
    train = keras_meta.data.episodes(
        "omniglot", split="train", num_ways=5, num_shots=1, num_queries=15,
        batch_size=32, image_size=(28, 28), rotations=True)
    ```
    """
    ways_range = _count_range("num_ways", num_ways)
    shots_range = _count_range("num_shots", num_shots)
    for name, value in (
        ("num_queries", num_queries),
        ("batch_size", batch_size),
    ):
        positive_integer(name, value)
    positive_integer("num_episodes", num_episodes, allow_none=True)
    folder = isinstance(source, (str, os.PathLike)) and (
        os.sep in str(source) or os.path.exists(source)
    )
    if cache == "stream" and not folder:
        if augment is not None:
            raise ValueError(
                "`augment` applies to episodes drawn from a class index; "
                "streamed TFDS and `tf.data` sources take no `augment`. "
                "Use cache='memory', or map the augmentation over the "
                "returned dataset.")
        if within_groups:
            raise ValueError(
                "`within_groups=True` needs the class index of an image "
                "folder or of a benchmark; streamed TFDS and `tf.data` "
                "sources have no groups. Use cache='memory'."
            )
        return _stream_source(
            source, split=split, classes=classes, image_size=image_size,
            channels=channels, data_dir=data_dir, ways_range=ways_range,
            shots_range=shots_range, num_queries=num_queries,
            batch_size=batch_size, rotations=rotations, seed=seed,
            num_episodes=num_episodes,
        )
    index = load_class_index(
        source, split=split, classes=classes, image_size=image_size,
        channels=channels, data_dir=data_dir, cache=cache, storage=storage,
        on_error=on_error,
    )
    return episodes_from_index(
        index, num_ways=num_ways, num_shots=num_shots,
        num_queries=num_queries, batch_size=batch_size, rotations=rotations,
        seed=seed, num_episodes=num_episodes, within_groups=within_groups,
        on_error=on_error, augment=augment,
    )


def _stream_source(source, *, split, classes, image_size, channels,
                   data_dir, ways_range, shots_range, num_queries,
                   batch_size, rotations, seed, num_episodes):
    """Episodes from a TFDS or `tf.data` source through class buffers."""
    import tensorflow as tf

    from keras_meta.data.streaming import stream_episodes

    if classes is not None and any(isinstance(c, str) for c in classes):
        raise ValueError(
            "Streamed sources take `classes` as integer labels."
        )
    if _is_dataset(source):
        dataset = source

        def convert(image, label):
            image = tf.image.convert_image_dtype(image, tf.float32)
            if image_size is not None:
                image = tf.image.resize(image, image_size, antialias=True)
            return image, tf.cast(label, tf.int64)

        dataset = dataset.map(convert)
    else:
        from keras_meta.data.tfds_source import tfds_dataset

        if split is None:
            raise ValueError("A TFDS source needs `split=`.")
        dataset, _ = tfds_dataset(
            source, splits=[split], image_size=image_size, channels=channels,
            data_dir=data_dir, shuffle_files=True,
            keep_labels=None if classes is None else classes,
        )
        dataset = dataset.map(lambda image, label, group, extras: (
            image, label))
    if classes is not None and _is_dataset(source):
        keep = tf.constant(sorted(int(c) for c in classes), tf.int64)
        dataset = dataset.filter(
            lambda image, label: tf.reduce_any(tf.equal(label, keep)))
    if not dataset.element_spec[0].shape.is_fully_defined():
        raise ValueError(
            "Streamed images must share one shape: pass `image_size=`."
        )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    return stream_episodes(
        dataset, ways_range=ways_range, shots_range=shots_range,
        num_queries=num_queries, batch_size=batch_size, rotations=rotations,
        seed=seed, num_episodes=num_episodes,
    )


# Indexes from this size on are read from a variable; see `_captured_array`.
VARIABLE_CAPTURE_BYTES = 128 << 20


def _captured_array(array):
    """`array` as the tensor a `tf.data` function reads it from.

    A constant is copied into the function's graph as well as into the
    constant, and once more, for a while, when the dataset first runs; a
    variable is captured by reference. On a mini-ImageNet-shaped index of
    242 MB the pipeline held 516 MB (peak 758 MB) beyond the index with a
    constant and 365 MB (peak 496 MB) with a variable, but drew episodes
    about 30% slower (`benchmarks/episode_memory.py`). Large indexes, whose
    copies are what can exhaust memory, are therefore read from a variable
    and small ones from a constant; so are file paths (streaming) and
    arrays inside a distribution strategy's scope, where a variable would
    be mirrored per replica.
    """
    import tensorflow as tf

    if (array.nbytes < VARIABLE_CAPTURE_BYTES or array.dtype.kind in "OSU"
            or tf.distribute.has_strategy()):
        return tf.constant(array)
    with tf.init_scope():
        return tf.Variable(array, trainable=False, name="episode_examples")


def _class_sampler(index, *, num_classes, num_ways, rotations,
                   within_groups):
    """A function from an episode's seeds to its `num_ways` distinct
    classes (int64, in label order): drawn among all classes, or, with
    `within_groups`, within one group drawn among those with at least
    `num_ways` classes."""
    import tensorflow as tf

    if not within_groups:
        def choose(seeds):
            # Distinct classes in a random order: the order is the labels.
            chosen = tf.argsort(
                tf.random.stateless_uniform([num_classes], seeds[0])
            )[:num_ways]
            return tf.cast(chosen, tf.int64)

        return choose
    if index.groups is None:
        raise ValueError(
            "`within_groups=True` needs a class index with groups "
            "(such as Omniglot's alphabets)."
        )
    # With rotations, class `4 * c + r` is character `c` turned `r`
    # quarter turns: it stays in its character's group.
    class_groups = (np.repeat(index.groups, 4) if rotations
                    else index.groups)
    _, group_of_class = np.unique(class_groups, return_inverse=True)
    members = np.argsort(group_of_class, kind="stable")
    group_counts = np.bincount(group_of_class)
    group_offsets = np.concatenate([[0], np.cumsum(group_counts)[:-1]])
    eligible = np.flatnonzero(group_counts >= num_ways)
    if not len(eligible):
        raise ValueError(
            f"Within-group episodes of {num_ways} ways need a group with "
            f"at least {num_ways} classes; the largest has "
            f"{group_counts.max()}."
        )
    members_t = tf.constant(members, tf.int64)
    group_counts_t = tf.constant(group_counts, tf.int64)
    group_offsets_t = tf.constant(group_offsets, tf.int64)
    eligible_t = tf.constant(eligible, tf.int64)
    max_group = int(group_counts.max())

    def choose_within_group(seeds):
        pick = tf.random.stateless_uniform(
            [], seeds[2], 0, len(eligible), dtype=tf.int64
        )
        group = tf.gather(eligible_t, pick)
        scores = tf.random.stateless_uniform([max_group], seeds[0])
        scores = tf.where(
            tf.range(max_group, dtype=tf.int64)
            < tf.gather(group_counts_t, group),
            scores,
            2.0,
        )
        local = tf.cast(tf.argsort(scores)[:num_ways], tf.int64)
        return tf.gather(members_t, tf.gather(group_offsets_t, group) + local)

    return choose_within_group


def _image_sampler(index, *, num_ways, per_class, rotations):
    """A function from an episode's classes and seeds to `per_class`
    distinct examples of each, `[ways, per_class, ...]` float32 images
    (decoded, and turned for rotated classes)."""
    import tensorflow as tf

    examples = _captured_array(index.examples)
    offsets = tf.constant(index.offsets, tf.int64)
    counts = tf.constant(index.counts, tf.int64)
    max_count = int(index.counts.max())

    def sample(chosen, seeds):
        base = chosen // 4 if rotations else chosen
        # Distinct examples per class: the first `per_class` of a random
        # order in which the class's real examples come first.
        scores = tf.random.stateless_uniform([num_ways, max_count], seeds[1])
        valid = tf.range(max_count, dtype=tf.int64)[None] < tf.gather(
            counts, base
        )[:, None]
        scores = tf.where(valid, scores, 2.0)
        picks = tf.cast(tf.argsort(scores, axis=1)[:, :per_class], tf.int64)
        positions = tf.gather(offsets, base)[:, None] + picks
        images = tf.gather(examples, positions)  # [ways, per_class, ...]
        if images.dtype == tf.uint8:
            # Kept as 8-bit pixels; float32 in [0, 1] from here on.
            images = tf.image.convert_image_dtype(images, tf.float32)
        if index.decode is not None:
            images = tf.map_fn(
                index.decode, tf.reshape(images, [-1]),
                fn_output_signature=tf.float32,
                parallel_iterations=16,
            )
            images = tf.reshape(
                images, tf.concat([[num_ways, per_class],
                                   tf.shape(images)[1:]], 0)
            )
        if rotations:
            images = tf.map_fn(
                lambda item: tf.image.rot90(item[0], tf.cast(item[1], tf.int32)),
                (images, chosen % 4),
                fn_output_signature=images.dtype,
            )
        return images

    return sample


def _augmenter(augment):
    """A function augmenting an episode's `[ways, per_class, ...]` images
    with `augment` (a layer, a list of layers or a function), or `None`."""
    if augment is None:
        return None
    import keras
    import tensorflow as tf

    # Layer by layer: Keras's preprocessing layers run in tf.data on every
    # backend, but a `Sequential` holding them would convert its inputs to
    # the backend's (JAX's) arrays, which a tf.data graph cannot.
    if isinstance(augment, keras.Sequential):
        steps = list(augment.layers)
    elif isinstance(augment, (list, tuple)):
        steps = list(augment)
    else:
        steps = [augment]
    if not steps or not all(callable(step) for step in steps):
        raise ValueError(
            "`augment` must be a Keras layer, a list of layers or a "
            f"function of an image batch. Received: augment={augment!r}.")

    def apply(images):
        shape = tf.shape(images)
        flat = tf.reshape(images, tf.concat([[-1], shape[2:]], 0))
        for step in steps:
            if isinstance(step, keras.layers.Layer):
                flat = step(flat, training=True)
            else:
                flat = step(flat)
        return tf.reshape(tf.cast(flat, images.dtype), shape)

    return apply


def episodes_from_index(index, *, num_ways, num_shots, num_queries,
                        batch_size, rotations=False, seed=None,
                        num_episodes=None, within_groups=False,
                        on_error="raise", augment=None):
    """Episodes from a `ClassIndex` (see `episodes()` for the arguments).

    With `within_groups=True`, each episode first draws one group of the
    index (an Omniglot alphabet) among those with at least `num_ways`
    classes, then its classes from that group alone (Lake et al.'s
    within-alphabet protocol).
    """
    import tensorflow as tf

    ways_range = _count_range("num_ways", num_ways)
    shots_range = _count_range("num_shots", num_shots)
    # Shapes are those of the largest episode; smaller ones are padded.
    num_ways, num_shots = ways_range[1], shots_range[1]
    per_class = num_shots + num_queries
    index = index.check_counts(per_class, on_error)
    num_base = index.num_classes
    num_classes = num_base * (4 if rotations else 1)
    if num_classes < num_ways:
        raise ValueError(
            f"Episodes of {num_ways} ways need at least {num_ways} classes, "
            f"but the source has {num_classes}"
            f"{' (rotations included)' if rotations else ''}. Lower "
            "`num_ways` or use a larger split."
        )
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    choose_classes = _class_sampler(
        index, num_classes=num_classes, num_ways=num_ways,
        rotations=rotations, within_groups=within_groups)
    sample_images = _image_sampler(index, num_ways=num_ways,
                                   per_class=per_class, rotations=rotations)
    augment_images = _augmenter(augment)

    def make_episode(episode_index):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), episode_index]), 3
        )
        chosen = choose_classes(seeds)
        images = sample_images(chosen, seeds)  # [ways, per_class, ...]
        if augment is not None:
            images = augment_images(images)
        labels = tf.repeat(tf.range(num_ways, dtype=tf.int32)[:, None],
                           per_class, axis=1)
        shape = tf.shape(images)[2:]

        def flat(part):
            return tf.reshape(part, tf.concat([[-1], shape], 0))

        inputs = {
            episode.SUPPORT_INPUTS: flat(images[:, :num_shots]),
            episode.SUPPORT_LABELS: tf.reshape(labels[:, :num_shots], [-1]),
            episode.QUERY_INPUTS: flat(images[:, num_shots:]),
        }
        return inputs, tf.reshape(labels[:, num_shots:], [-1])

    if num_episodes is None:
        indices = tf.data.Dataset.counter()
    else:
        indices = tf.data.Dataset.range(num_episodes)
    dataset = indices.map(
        lambda i: (i,) + make_episode(i),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )
    return finish_episodes(dataset, ways_range=ways_range,
                           shots_range=shots_range, num_queries=num_queries,
                           batch_size=batch_size, seed=seed,
                           num_episodes=num_episodes)
