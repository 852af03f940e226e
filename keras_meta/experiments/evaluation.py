"""Paper-style evaluation of a saved meta-learner: `mean +- 95% CI`."""

import keras


def load(path):
    """Loads a `.keras` meta-learner saved after `compile()`."""
    import os

    if not os.path.isfile(path):
        raise ValueError(
            f"No checkpoint at {path!r}: pass a `.keras` file written by "
            "`MetaModel.save()` or `keras-meta train`.")
    learner = keras.models.load_model(path)
    if getattr(learner, "loss", None) is None:
        raise ValueError(
            f"The checkpoint {path!r} holds no compiled loss, so there is "
            "nothing to evaluate. Save the learner after `compile(loss=..., "
            "metrics=...)`.")
    return learner


def evaluate_steps(learner, episodes, steps=None):
    """Evaluates before and after adaptation.

    Args:
        learner: A compiled `MetaModel`.
        episodes: A finite `tf.data.Dataset` of episode batches (or an
            `(inputs, labels)` tuple of arrays).
        steps: List of inner-step counts to evaluate with. Defaults to
            `[0, learner.eval_inner_steps]` for learners with inner steps
            (0 is the unadapted initialization, so the table shows what
            adaptation bought) and a single row for the others.

    Returns:
        A list of `{"steps": count or None, "metrics": {name: (mean,
        ci95)}}`.
    """
    has_steps = hasattr(learner, "eval_inner_steps")
    if steps is None:
        steps = [0, learner.eval_inner_steps] if has_steps else [None]
    elif not has_steps:
        raise ValueError(
            f"`{type(learner).__name__}` adapts without inner steps; "
            "evaluate it without `--inner-steps`.")
    original = learner.eval_inner_steps if has_steps else None
    rows = []
    try:
        for count in steps:
            if count is not None:
                learner.eval_inner_steps = count
            if isinstance(episodes, tuple):
                logs = learner.evaluate(*episodes, return_dict=True,
                                        verbose=0)
            else:
                logs = learner.evaluate(episodes, return_dict=True,
                                        verbose=0)
            # Each interval with the mean over episodes it belongs to.
            metrics = {
                name: (float(logs.get(f"{name}_episode_mean", value)),
                       float(logs[f"{name}_ci95"]))
                for name, value in logs.items()
                if not name.endswith("_ci95") and f"{name}_ci95" in logs
            }
            rows.append({"steps": count, "metrics": metrics})
    finally:
        if has_steps:
            learner.eval_inner_steps = original
    return rows


def format_rows(rows, title=None):
    """The rows as a plain-text `mean +- ci` table."""
    names = list(rows[0]["metrics"])
    percent = {n for n in names if "accuracy" in n}
    lines = [title] if title else []
    lines.append(f"{'inner steps':<12}" + "".join(f"{n:>22}" for n in names))
    for row in rows:
        label = "-" if row["steps"] is None else str(row["steps"])
        cells = ""
        for name in names:
            mean, ci = row["metrics"][name]
            scale = 100.0 if name in percent else 1.0
            unit = " %" if name in percent else "  "
            cells += f"{scale * mean:>11.3f} +- {scale * ci:<6.3f}{unit}"
        lines.append(f"{label:<12}{cells}")
    return "\n".join(lines)
