"""What the backends share: how the tasks of a meta-batch are mapped."""

import os

TASK_MAPPINGS = ("auto", "vmap", "map")


def task_mapping_override():
    """`KERAS_META_TASK_MAPPING`: `"vmap"`, `"map"`, or `None` for auto."""
    choice = os.environ.get("KERAS_META_TASK_MAPPING", "auto").lower()
    if choice not in TASK_MAPPINGS:
        raise ValueError(
            "`KERAS_META_TASK_MAPPING` must be one of "
            f"{list(TASK_MAPPINGS)}. Received: {choice!r}. Unset it to let "
            "keras_meta choose."
        )
    return None if choice == "auto" else choice
