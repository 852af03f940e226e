"""Cold-start recommendation on MovieLens with MeLU's protocol, run by
`keras-meta train --task movielens` and
`benchmarks/movielens_cold_start.py`.

Every learner wraps the same `keras_meta.models.field_recommender` and is
scored on the same users, per user (MAE, RMSE, nDCG@5 of the 10 query
ratings), mean and 95% CI over users, in each cold-start state:

- `global_mean`: the mean training rating for every query;
- `pretrained`: the recommender trained on all training ratings, then
  fine-tuned per user by the same number of gradient steps as the
  meta-learners, its step size chosen on the validation users;
- `melu`: `ANIL` adapting the decision layers (MeLU, Lee et al. 2019);
- `maml`, `metasgd`: every weight adapts (one argument away).

Meta-learners train on the training users' existing-item tasks; the epoch
with the lowest validation MAE (validation users, existing items) is kept.
"""

import json
import os
import time

import keras
import numpy as np

import keras_meta
from keras_meta.data import movielens

LEARNERS = ("global_mean", "pretrained", "melu", "maml", "metasgd")
STATES = ("user_cold", "item_cold", "user_item_cold", "warm")
METRIC_NAMES = ("mean_absolute_error", "root_mean_squared_error",
                "ndcg_at_5")


def _metrics():
    return [keras.metrics.MeanAbsoluteError(),
            keras.metrics.RootMeanSquaredError(),
            keras_meta.metrics.NormalizedDCG(k=5)]


def _summary(logs):
    return {name: [float(logs[name]), float(logs[f"{name}_ci95"])]
            for name in METRIC_NAMES}


def _global_mean_scores(arrays, mean):
    labels = arrays["query_labels"][..., 0]
    predictions = np.full_like(labels, mean)
    per_user = {
        "mean_absolute_error": np.abs(labels - predictions).mean(1),
        "root_mean_squared_error": np.sqrt(
            ((labels - predictions) ** 2).mean(1)),
    }
    out = {}
    for name, values in per_user.items():
        out[name] = [float(values.mean()),
                     float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))]
    # Every item gets the same score: the ranking is the query order.
    metric = keras_meta.metrics.NormalizedDCG(k=5)
    per_task = keras.ops.convert_to_numpy(metric._per_task(
        labels, predictions, None))
    out["ndcg_at_5"] = [float(per_task.mean()), float(
        1.96 * per_task.std(ddof=1) / np.sqrt(len(per_task)))]
    return out


def _flat(arrays):
    weights = arrays["support_weights"] > 0
    x = np.concatenate([arrays["support_inputs"][weights],
                        arrays["query_inputs"].reshape(
                            -1, arrays["query_inputs"].shape[-1])])
    y = np.concatenate([arrays["support_labels"][weights],
                        arrays["query_labels"].reshape(-1, 1)])
    return x, y


def _meta_learner(name, model, inner_learning_rate, num_inner_steps):
    if name == "melu":
        return keras_meta.ANIL(
            model, head=keras_meta.models.field_recommender_head(model),
            inner_learning_rate=inner_learning_rate,
            num_inner_steps=num_inner_steps)
    if name == "maml":
        return keras_meta.MAML(model, inner_learning_rate=inner_learning_rate,
                               num_inner_steps=num_inner_steps)
    if name == "metasgd":
        return keras_meta.MetaSGD(
            model, inner_learning_rate=inner_learning_rate,
            num_inner_steps=num_inner_steps)
    raise ValueError(f"Unknown learner {name!r}; expected {list(LEARNERS)}.")


def _compile(learner, learning_rate):
    learner.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss="mse", metrics=_metrics())


def _score(learner, tasks, states, batch_size=64):
    return {state: _summary(learner.evaluate(
        tasks.episodes(state, batch_size=batch_size), verbose=0,
        return_dict=True)) for state in states}


def _per_user_mae(learner, tasks, states, batch_size=64):
    """Each user's query MAE, from `predict()` (for paired comparisons)."""
    out = {}
    for state in states:
        predictions = learner.predict(
            tasks.episodes(state, batch_size=batch_size), verbose=0)
        labels = tasks.states[state]["query_labels"]
        out[state] = np.abs(predictions - labels).mean(axis=(1, 2))
    return out


def paired_differences(per_user, reference):
    """Mean and 95% CI over users of `per_user - reference` (same users in
    the same order): the sign of a difference between two learners, with
    the users' own spread removed."""
    diff = np.asarray(per_user) - np.asarray(reference)
    return [float(diff.mean()),
            float(1.96 * diff.std(ddof=1) / np.sqrt(len(diff)))]


def run(*, source=None, learners=LEARNERS, output, meta_epochs=30,
        steps_per_epoch=50, meta_batch_size=32, inner_learning_rates=(0.1,),
        inner_steps=(1,), learning_rate=1e-3, embedding_dim=32,
        fine_tune_rates=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3), seed=0,
        verbose=0, command=None):
    """Trains and scores `learners`; writes JSON to `output`.

    Each meta-learner is trained once per (inner rate, inner steps) pair of
    `inner_learning_rates` x `inner_steps`, and the pretrained model is
    fine-tuned with every pair of `fine_tune_rates` x `inner_steps`; the
    pair with the lowest validation MAE (validation users, existing items)
    is the one scored on the test states.
    """
    start = time.perf_counter()
    tasks = movielens.movielens_cold_start(source, seed=seed)
    counts = {state: int(len(arrays["users"]))
              for state, arrays in tasks.states.items()}
    print(tasks.description)
    print("users per state: " + ", ".join(
        f"{k} {v}" for k, v in counts.items()), flush=True)
    states = [s for s in STATES if counts[s] > 1]
    results, per_user = {}, {}

    def model():
        keras.utils.set_random_seed(seed)
        return keras_meta.models.field_recommender(
            tasks.features, embedding_dim=embedding_dim, seed=seed)

    for name in learners:
        begin = time.perf_counter()
        if name == "global_mean":
            scores = {s: _global_mean_scores(tasks.states[s],
                                             tasks.global_mean)
                      for s in states}
            extra = {"mean": tasks.global_mean}
            per_user[name] = {
                s: np.abs(tasks.states[s]["query_labels"]
                          - tasks.global_mean).mean(axis=(1, 2))
                for s in states}
        elif name == "pretrained":
            net = model()
            net.compile(optimizer=keras.optimizers.Adam(learning_rate),
                        loss="mse")
            x, y = _flat(tasks.states["train"])
            vx, vy = _flat(tasks.states["validation_user_cold"])
            net.fit(x, y, batch_size=256, epochs=100,
                    validation_data=(vx, vy), verbose=verbose,
                    callbacks=[keras.callbacks.EarlyStopping(
                        patience=5, restore_best_weights=True)])
            # The fine-tuning step size and steps, chosen on the
            # validation users.
            validation = {}
            for rate in fine_tune_rates:
                for steps in inner_steps:
                    tuner = keras_meta.MAML(
                        net, inner_learning_rate=rate,
                        num_inner_steps=steps)
                    _compile(tuner, learning_rate)
                    validation[(rate, steps)] = _score(
                        tuner, tasks, ["validation_user_cold"])[
                            "validation_user_cold"][
                                "mean_absolute_error"][0]
            rate, steps = min(validation, key=validation.get)
            tuner = keras_meta.MAML(net, inner_learning_rate=rate,
                                    num_inner_steps=steps)
            _compile(tuner, learning_rate)
            scores = _score(tuner, tasks, states)
            per_user[name] = _per_user_mae(tuner, tasks, states)
            tuner.eval_inner_steps = 0
            extra = {"inner_learning_rate": rate, "num_inner_steps": steps,
                     "validation_mae": {
                         f"rate {k[0]}, steps {k[1]}": round(v, 4)
                         for k, v in validation.items()},
                     "without_fine_tuning": _score(tuner, tasks, states)}
        else:
            validation, best = {}, None
            for rate in inner_learning_rates:
                for steps in inner_steps:
                    learner = _meta_learner(name, model(), rate, steps)
                    _compile(learner, learning_rate)
                    history = learner.fit(
                        tasks.episodes("train", batch_size=meta_batch_size,
                                       seed=seed),
                        steps_per_epoch=steps_per_epoch, epochs=meta_epochs,
                        validation_data=tasks.episodes(
                            "validation_user_cold", batch_size=64),
                        callbacks=[keras.callbacks.EarlyStopping(
                            monitor="val_mean_absolute_error", patience=8,
                            restore_best_weights=True)],
                        verbose=verbose).history
                    curve = history["val_mean_absolute_error"]
                    validation[(rate, steps)] = {
                        "best": round(float(min(curve)), 4),
                        "best_epoch": int(np.argmin(curve)) + 1,
                        "epochs_run": len(curve)}
                    if best is None or min(curve) < best[0]:
                        best = (min(curve), rate, steps, learner)
            _, rate, steps, learner = best
            scores = _score(learner, tasks, states)
            per_user[name] = _per_user_mae(learner, tasks, states)
            learner.eval_inner_steps = 0
            extra = {
                "inner_learning_rate": rate, "num_inner_steps": steps,
                "validation_mae": {
                    f"rate {k[0]}, steps {k[1]}": v
                    for k, v in validation.items()},
                "without_adaptation": _score(learner, tasks, states)}
        results[name] = {"scores": scores, **extra,
                         "seconds": round(time.perf_counter() - begin, 1)}
        print(f"{name:>12}: " + "  ".join(
            f"{s} MAE {v['mean_absolute_error'][0]:.3f}"
            f"+-{v['mean_absolute_error'][1]:.3f}"
            for s, v in scores.items()), flush=True)
    # Paired per-user MAE differences against the baselines.
    for name in results:
        for baseline in ("pretrained", "global_mean"):
            if name == baseline or baseline not in per_user:
                continue
            results[name][f"mae_minus_{baseline}"] = {
                s: paired_differences(per_user[name][s], per_user[baseline][s])
                for s in states}
    config = dict(meta_epochs=meta_epochs, steps_per_epoch=steps_per_epoch,
                  meta_batch_size=meta_batch_size,
                  inner_learning_rates=list(inner_learning_rates),
                  inner_steps=list(inner_steps),
                  learning_rate=learning_rate, embedding_dim=embedding_dim,
                  fine_tune_rates=list(fine_tune_rates), seed=seed)
    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(output, "w") as f:
        json.dump(strict({"command": command, "protocol": tasks.description,
                          "users_per_state": counts, "config": config,
                          "results": results,
                          "seconds": round(time.perf_counter() - start, 1)}),
                  f, indent=1, allow_nan=False)
    return results


def strict(value):
    """`value` with every non-finite float (a diverged configuration)
    replaced by `None`, so that the JSON is strict."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def format_table(results):
    """A Markdown table: MAE, RMSE and nDCG@5 per state and learner."""
    states = [s for s in STATES if any(
        s in r["scores"] for r in results.values())]
    lines = ["| learner | " + " | ".join(states) + " |",
             "| --- |" + " --- |" * len(states)]
    for name, result in results.items():
        cells = []
        for state in states:
            v = result["scores"].get(state)
            if v is None:
                cells.append("")
                continue
            cells.append(
                f"MAE {v['mean_absolute_error'][0]:.3f} +- "
                f"{v['mean_absolute_error'][1]:.3f}, RMSE "
                f"{v['root_mean_squared_error'][0]:.3f}, nDCG@5 "
                f"{v['ndcg_at_5'][0]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
