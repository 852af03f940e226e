"""Pictures of episodes, so that a user can see what a model trains on."""

import numpy as np

from keras_meta import episode


def plot_episode(batch, path, *, task=0, max_per_row=15, title=None):
    """Writes a PNG grid of one episode: support above query.

    Each image is captioned with its episode label.

    Args:
        batch: An episode batch `(inputs, query_labels)` (tensors or NumPy),
            as produced by `keras_meta.data.episodes()`.
        path: String, where to write the PNG.
        task: Int, which task of the batch to draw. Defaults to `0`.
        max_per_row: Int, images per row. Defaults to `15`.
        title: Optional string for the figure.

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inputs, query_labels = batch[0], batch[1]
    support = np.asarray(inputs[episode.SUPPORT_INPUTS])[task]
    support_labels = np.asarray(inputs[episode.SUPPORT_LABELS])[task]
    query = np.asarray(inputs[episode.QUERY_INPUTS])[task]
    query_labels = np.asarray(query_labels)[task]
    if support.ndim != 4 or support.shape[-1] not in (1, 3):
        raise ValueError(
            "`plot_episode` draws image episodes, shape [tasks, examples, "
            f"height, width, 1 or 3]. Received support shape "
            f"{np.asarray(inputs[episode.SUPPORT_INPUTS]).shape}."
        )
    sections = [("support", support, support_labels),
                ("query", query, query_labels)]
    rows = [
        (name, images[i:i + max_per_row], labels[i:i + max_per_row])
        for name, images, labels in sections
        for i in range(0, len(images), max_per_row)
    ]
    columns = min(max_per_row, max(len(images) for _, images, _ in rows))
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(1.1 * columns, 1.35 * len(rows) + 0.4),
        squeeze=False,
    )
    for r, (name, images, labels) in enumerate(rows):
        for c in range(columns):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c >= len(images):
                axis.axis("off")
                continue
            image = images[c]
            if image.shape[-1] == 1:
                axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                axis.imshow(np.clip(image, 0, 1))
            axis.set_title(f"{labels[c]}", fontsize=8)
            if c == 0:
                axis.set_ylabel(name, fontsize=9)
    figure.suptitle(title or f"episode {task}: support (top), query (below); "
                    "captions are episode labels", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
