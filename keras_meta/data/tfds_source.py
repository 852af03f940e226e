"""Reading TensorFlow Datasets into memory for episode sampling."""

import os
import shutil

import numpy as np


def prepare(builder, download=True):
    """Makes sure `builder`'s data is prepared, or says how to prepare it.

    A failed download leaves nothing behind: the data directory TFDS created
    for it is removed.

    Raises:
        ValueError: if the data is missing and cannot be prepared here.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json")):
        return
    how = (
        f"On a machine with network access run `tfds build {builder.name}` "
        f"(or `tfds.builder('{builder.name}').download_and_prepare()`), then "
        f"copy its data directory to '{builder.data_dir}' or pass "
        "`data_dir=`."
    )
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if manual:
        how = (
            f"'{builder.name}' needs a manual download: "
            f"{' '.join(manual.split())} Place the files in "
            f"'{os.path.join(builder.data_dir, '..', '..', 'downloads', 'manual')}'"
            " (or pass `download_config`-style `data_dir=`), then call again."
        )
    if not download:
        raise ValueError(
            f"The TFDS dataset '{builder.name}' is not prepared in "
            f"'{builder.data_dir}' and `download=False`. {how}"
        )
    existed = tf.io.gfile.exists(builder.data_dir)
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
            )
        )
    except Exception as error:  # Network, checksum or manual-download errors.
        if not existed:
            shutil.rmtree(builder.data_dir, ignore_errors=True)
        raise ValueError(
            f"TFDS could not prepare '{builder.name}' in "
            f"'{builder.data_dir}' ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). {how}"
        ) from error


def load_tfds(
    name,
    *,
    splits,
    label_key="label",
    group_key=None,
    extra_keys=(),
    keep_labels=None,
    max_per_class=None,
    image_size=None,
    channels=None,
    data_dir=None,
    download=True,
):
    dataset, builder = tfds_dataset(
        name, splits=splits, label_key=label_key, group_key=group_key,
        extra_keys=extra_keys, keep_labels=keep_labels,
        image_size=image_size, channels=channels, data_dir=data_dir,
        download=download,
    )
    return _materialize(dataset, builder, splits, group_key, extra_keys,
                        max_per_class)


def tfds_dataset(
    name,
    *,
    splits,
    label_key="label",
    group_key=None,
    extra_keys=(),
    keep_labels=None,
    image_size=None,
    channels=None,
    data_dir=None,
    download=True,
    shuffle_files=False,
):
    """A `tf.data.Dataset` of `(image, label, group, extras)` from TFDS.

    Images are float32 in [0, 1], decoded after `keep_labels` filtering.
    See `load_tfds` for the arguments.

    Returns:
        `(dataset, builder)`.
    """
    """Reads image examples from TFDS splits into NumPy arrays.

    Reads through `tfds_dataset` and keeps everything in memory.

    Args:
        name: TFDS dataset name, or a builder.
        splits: List of split names to read and concatenate.
        label_key: Feature holding the class label.
        group_key: Optional feature grouping classes (Omniglot's alphabet).
        extra_keys: Other integer features to return, per example.
        keep_labels: Optional collection of labels to keep; others are
            dropped before their images are decoded.
        max_per_class: Optional int, keep the first this many examples of
            each class (in the data set's order).
        image_size: Optional `(height, width)` to resize to.
        channels: Optional int: 1 converts RGB to grayscale.
        data_dir: Optional TFDS data directory.
        download: Bool, whether TFDS may download the data.

    Returns:
        `(images, labels, groups, extras, builder)`: float32 images in
        [0, 1], int labels, group ids (or `None`) and a dict of the
        `extra_keys` arrays.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = (
        tfds.builder(name, data_dir=data_dir) if isinstance(name, str) else name
    )
    prepare(builder, download)
    known = list(builder.info.splits)
    for split in splits:
        if known and split not in known:
            raise ValueError(
                f"Unknown split '{split}' for '{builder.name}'. Known splits: "
                f"{sorted(known)}."
            )
    dataset = None
    for split in splits:
        # Images are decoded after filtering, so skipped classes cost nothing.
        part = builder.as_dataset(
            split=split,
            shuffle_files=shuffle_files,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        dataset = part if dataset is None else dataset.concatenate(part)
    if keep_labels is not None:
        keep = tf.constant(sorted(int(k) for k in keep_labels), tf.int64)
        dataset = dataset.filter(
            lambda e: tf.reduce_any(tf.equal(tf.cast(e[label_key], tf.int64), keep))
        )

    image_feature = builder.info.features["image"]

    def convert(example):
        image = example["image"]
        if image.dtype == tf.string:
            image = tf.io.decode_image(
                image, channels=image_feature.shape[-1] or 0,
                expand_animations=False,
            )
            image.set_shape(image_feature.shape)
        if channels == 1 and image.shape[-1] == 3:
            image = tf.image.rgb_to_grayscale(image)
        image = tf.image.convert_image_dtype(image, tf.float32)
        if image_size is not None:
            image = tf.image.resize(image, image_size, antialias=True)
        group = example[group_key] if group_key else tf.constant(0, tf.int64)
        extras = tuple(example[key] for key in extra_keys)
        return image, example[label_key], group, extras

    dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, builder


def _materialize(dataset, builder, splits, group_key, extra_keys,
                 max_per_class):
    if not dataset.element_spec[0].shape.is_fully_defined():
        raise ValueError(
            f"'{builder.name}' has images of varying sizes: pass "
            "`image_size=(height, width)`."
        )
    images, labels, groups, extras = [], [], [], []
    counts = {}
    for image, label, group, extra in dataset.batch(1024).as_numpy_iterator():
        if max_per_class is not None:
            keep = np.zeros(len(label), bool)
            for i, value in enumerate(label):
                counts[value] = counts.get(value, 0) + 1
                keep[i] = counts[value] <= max_per_class
            image, label, group = image[keep], label[keep], group[keep]
            extra = tuple(e[keep] for e in extra)
        images.append(image)
        labels.append(label)
        groups.append(group)
        extras.append(extra)
    if not images:
        raise ValueError(
            f"No examples read from '{builder.name}' splits {splits}."
        )
    extras = {
        key: np.concatenate([e[i] for e in extras])
        for i, key in enumerate(extra_keys)
    }
    return (
        np.concatenate(images),
        np.concatenate(labels),
        np.concatenate(groups) if group_key else None,
        extras,
        builder,
    )
