"""Pictures of episodes, so that a user can see what a model trains on."""

import numpy as np

from keras_meta import episode


def plot_episode(batch, path=None, *, task=0, max_per_row=15, title=None,
                 predictions=None, class_names=None):
    """Draws one episode as a grid: support above query.

    Each image is captioned with its episode label (or class name); with
    `predictions`, each query's caption is its predicted label, green when
    right and red when wrong.

    Args:
        batch: An episode batch `(inputs, query_labels)` (tensors or NumPy),
            as produced by `keras_meta.data.episodes()`.
        path: Optional string, where to write a PNG of the figure.
        task: Int, which task of the batch to draw. Defaults to `0`.
        max_per_row: Int, images per row. Defaults to `15`.
        title: Optional string for the figure.
        predictions: Optional array `[tasks, num_query]` of predicted
            episode labels (e.g. `learner.predict(inputs).argmax(-1)`).
        class_names: Optional list of strings naming the episode labels of
            task `task`, used in captions.

    Returns:
        A `matplotlib.figure.Figure` (made without pyplot: the backend a
        notebook or script uses is left as it is). Display it in a notebook
        as the cell's value, or save it with `figure.savefig(...)`.
    """
    # A Figure without pyplot: no backend is chosen or switched.
    from matplotlib.figure import Figure

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
    figure = Figure(figsize=(1.1 * columns, 1.35 * len(rows) + 0.4))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    predicted = (None if predictions is None
                 else np.asarray(predictions)[task].reshape(-1))
    query_row = 0
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
            label = int(labels[c])
            color = "black"
            if name == "query" and predicted is not None:
                position = query_row * max_per_row + c
                if position < len(predicted):
                    color = ("tab:green" if predicted[position] == label
                             else "tab:red")
                    label = int(predicted[position])
            text = (class_names[label] if class_names is not None
                    and label < len(class_names) else str(label))
            axis.set_title(text[-14:], fontsize=7, color=color)
            if c == 0:
                axis.set_ylabel(name, fontsize=9)
        if name == "query":
            query_row += 1
    caption = ("query captions are predictions (green right, red wrong)"
               if predicted is not None else "captions are episode labels")
    figure.suptitle(title or f"episode {task}: support (top), query (below); "
                    f"{caption}", fontsize=9)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=90)
    return figure
