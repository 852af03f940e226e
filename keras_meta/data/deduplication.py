"""Keeping test classes out of training: classes shared across sources."""

import hashlib

import numpy as np


def class_fingerprints(index):
    """A content hash per class of an in-memory `ClassIndex`.

    Two classes get the same fingerprint when they hold the same examples
    in any order (the hash of the sorted per-example hashes).
    """
    if index.decode is not None:
        raise ValueError(
            "`class_fingerprints` reads examples in memory; the index "
            "streams its files. Load it with `cache='memory'`."
        )
    fingerprints = []
    for offset, count in zip(index.offsets, index.counts):
        digests = sorted(
            hashlib.sha1(np.ascontiguousarray(example).tobytes()).digest()
            for example in index.examples[offset:offset + count])
        fingerprints.append(hashlib.sha1(b"".join(digests)).hexdigest())
    return fingerprints


def remove_shared_classes(index, reference):
    """`index` without the classes whose examples also form a class of
    `reference` (byte for byte, in any order).

    Use it to keep test classes out of training when two sources overlap,
    as Omniglot's `images_background_small1` and `images_background_small2`
    do (both hold the Greek and Latin alphabets).

    Args:
        index: The `ClassIndex` to filter (the test classes).
        reference: The `ClassIndex` of the training classes.

    Returns:
        `(filtered_index, removed_class_names)`.
    """
    seen = set(class_fingerprints(reference))
    keep = [c for c, fingerprint in enumerate(class_fingerprints(index))
            if fingerprint not in seen]
    removed = [name for c, name in enumerate(index.class_names)
               if c not in set(keep)]
    if not removed:
        return index, []
    if not keep:
        raise ValueError(
            "Every class of the index also appears in the reference: no "
            "class is left to test on."
        )
    filtered = index.subset(keep)
    return filtered, removed
