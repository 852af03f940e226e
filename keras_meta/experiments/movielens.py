"""Cold-start recommendation on MovieLens with MeLU's, MAMO's or
RecBole-MetaRec's protocol, run by `keras-meta train --task movielens` and
`benchmarks/movielens_cold_start.py`.

Every learner wraps the same `recommendation.field_recommender` and is
scored on the same users, per user (MAE and RMSE of the query ratings the
state counts; where it counts them all, nDCG@k with the ratings as gains
and RecBole-MetaRec's precision@k and nDCG@k), mean and 95% CI over users,
in each cold-start state:

- `global_mean`: the mean training rating for every query;
- `pretrained`: the recommender trained on all training ratings, then
  fine-tuned per user by the same number of gradient steps as the
  meta-learners, its step size chosen on the validation users;
- `melu`: `ANIL` adapting the decision layers (MeLU, Lee et al. 2019);
  MeLU's network here has 6 fields (MeLU's 8 less rating class, director
  and actor, which the MovieLens files lack) and tuned rates;
- `melu_paper`: the same with MeLU's published settings, untuned (local
  rate 5e-6, global rate 5e-5, one local step);
- `maml`, `metasgd`: every weight adapts (one argument away).

Tuning budgets are equal: every tuned learner tries each (rate, steps,
outer rate) of the same-sized grid (`learning_rates` x `inner_steps` x
the inner or fine-tuning rates) and keeps the configuration with the
lowest validation MAE (validation users only). Meta-learners train on the
training users' tasks (never on new items' ratings); the epoch with the
lowest validation MAE is kept. RMSE is the mean over users of each user's
RMSE; `ndcg` uses the ratings as gains, `ndcg_exponential` MAMO's `2**r - 1`,
`ndcg_top_k` RecBole-MetaRec's binary gains (the true top k relevant).
"""

import json
import os
import time

import keras
import numpy as np

from keras_meta import algorithms
from keras_meta import episode
from keras_meta import recommendation
from keras_meta.metrics import t_95
from keras_meta.recommendation import movielens

LEARNERS = ("global_mean", "pretrained", "melu", "maml", "metasgd")
# The learners whose configuration is chosen on validation users.
TUNED = ("pretrained", "melu", "maml", "metasgd")
# MeLU's published settings (Lee et al. 2019): local and global rates, one
# local update.
MELU_PAPER = {"inner_learning_rate": 5e-6, "num_inner_steps": 1,
              "learning_rate": 5e-5}
# Each protocol as `movielens_cold_start` arguments: RecBole-MetaRec's is
# MeLU's without new items.
PROTOCOLS = {"melu": {"protocol": "melu"},
             "mamo": {"protocol": "mamo"},
             "recbole": {"protocol": "melu", "cold_item_fraction": 0.0}}
METRIC_NAMES = ("mean_absolute_error", "root_mean_squared_error",
                "ndcg", "ndcg_exponential", "precision_top_k", "ndcg_top_k")


def _metrics():
    return [keras.metrics.MeanAbsoluteError()]


def _per_user_scores(predictions, arrays, k=None):
    """Each user's scores on the query ratings the state counts.

    `mean_absolute_error`, `root_mean_squared_error`; and, where every
    query rating of the state counts, `ndcg` (nDCG@k with the ratings as
    gains), `ndcg_exponential` (gains `2**r - 1`, as MAMO's),
    `precision_top_k` and `ndcg_top_k` (RecBole-MetaRec's precision@k and
    nDCG@k, the true top k being the relevant items).
    """
    labels = arrays[episode.QUERY_LABELS][..., 0]
    predictions = np.asarray(predictions, "float32").reshape(labels.shape)
    weights = arrays["query_weights"]
    count = weights.sum(1)
    # A diverged configuration predicts inf or nan: its scores say so.
    with np.errstate(over="ignore", invalid="ignore"):
        errors = predictions - labels
        out = {
            "mean_absolute_error": (np.abs(errors) * weights).sum(1) / count,
            "root_mean_squared_error": np.sqrt(
                (errors ** 2 * weights).sum(1) / count),
        }
    if k is not None and (weights == 1).all() and labels.shape[1] > k:
        for name, metric in (
                ("ndcg", recommendation.NormalizedDCG(k=k)),
                ("ndcg_exponential", recommendation.NormalizedDCG(
                    k=k, gain="exponential")),
                ("precision_top_k", recommendation.PrecisionAtK(k=k)),
                ("ndcg_top_k", recommendation.NormalizedDCG(
                    k=k, gain="top_k"))):
            out[name] = keras.ops.convert_to_numpy(
                metric.per_task(labels, predictions, None))
    return out


def _summary(per_user):
    return {name: [float(values.mean()), float(
        t_95(len(values) - 1) * values.std(ddof=1)
        / np.sqrt(len(values)))] for name, values in per_user.items()}


def _flat(arrays):
    """Every counted (support and query) rating of a state as one
    training set."""
    support = arrays[episode.SUPPORT_WEIGHTS] > 0
    query = arrays["query_weights"] > 0
    x = np.concatenate([arrays[episode.SUPPORT_INPUTS][support],
                        arrays[episode.QUERY_INPUTS][query]])
    y = np.concatenate([arrays[episode.SUPPORT_LABELS][support],
                        arrays[episode.QUERY_LABELS][query]])
    return x, y


def _meta_learner(name, model, inner_learning_rate, num_inner_steps):
    if name in ("melu", "melu_paper"):
        return algorithms.ANIL(
            model, head=recommendation.field_recommender_head(model),
            inner_learning_rate=inner_learning_rate,
            num_inner_steps=num_inner_steps)
    if name == "maml":
        return algorithms.MAML(model, inner_learning_rate=inner_learning_rate,
                               num_inner_steps=num_inner_steps)
    if name == "metasgd":
        return algorithms.MetaSGD(
            model, inner_learning_rate=inner_learning_rate,
            num_inner_steps=num_inner_steps)
    raise ValueError(f"Unknown learner {name!r}; expected {list(LEARNERS)}.")


def _compile(learner, learning_rate):
    learner.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss="mse", metrics=_metrics())


def _predict(learner, tasks, state, batch_size=64):
    return learner.predict(tasks.episodes(state, batch_size=batch_size),
                           verbose=0)


def _validation_mae(learner, tasks):
    state = tasks.validation_state
    return float(_per_user_scores(
        _predict(learner, tasks, state), tasks.states[state])[
            "mean_absolute_error"].mean())


def paired_differences(per_user, reference):
    """Mean and 95% CI over users of `per_user - reference` (same users in
    the same order): the sign of a difference between two learners, with
    the users' own spread removed."""
    diff = np.asarray(per_user) - np.asarray(reference)
    return [float(diff.mean()),
            float(t_95(len(diff) - 1) * diff.std(ddof=1)
                  / np.sqrt(len(diff)))]


class _Experiment:
    """What every learner of a run shares: the tasks, the states scored,
    the ranking cut-off, and how a fresh recommender is built."""

    def __init__(self, tasks, counts, *, k, seed, embedding_dim):
        self.tasks = tasks
        self.states = [s for s in tasks.evaluation_states if counts[s] > 1]
        self.k = k
        self.seed = seed
        self.embedding_dim = embedding_dim

    def model(self):
        keras.utils.set_random_seed(self.seed)
        return recommendation.field_recommender(
            self.tasks.features, embedding_dim=self.embedding_dim,
            seed=self.seed)

    def score(self, predict):
        """`(per-user scores, summaries)` of `predict(state)` on every
        scored state."""
        out = {s: _per_user_scores(predict(s), self.tasks.states[s], self.k)
               for s in self.states}
        return out, {s: _summary(v) for s, v in out.items()}


def _global_mean(experiment):
    tasks = experiment.tasks
    users, scores = experiment.score(lambda s: np.full(
        tasks.states[s][episode.QUERY_LABELS].shape, tasks.global_mean))
    return users, scores, {"mean": tasks.global_mean}


def _pretrained(experiment, *, learning_rates, fine_tune_rates, inner_steps,
                verbose):
    """The recommender trained on all training ratings jointly (once per
    learning rate), then fine-tuned per user; the learning rate, step size
    and steps chosen on the validation users."""
    tasks = experiment.tasks
    x, y = _flat(tasks.states["train"])
    vx, vy = _flat(tasks.states[tasks.validation_state])
    validation, best = {}, None
    for learning_rate in learning_rates:
        net = experiment.model()
        net.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss="mse")
        net.fit(x, y, batch_size=256, epochs=100, validation_data=(vx, vy),
                verbose=verbose, callbacks=[keras.callbacks.EarlyStopping(
                    patience=5, restore_best_weights=True)])
        for rate in fine_tune_rates:
            for steps in inner_steps:
                tuner = algorithms.MAML(net, inner_learning_rate=rate,
                                        num_inner_steps=steps)
                _compile(tuner, learning_rate)
                mae = _validation_mae(tuner, tasks)
                validation[(learning_rate, rate, steps)] = mae
                if best is None or mae < best[0]:
                    best = (mae, learning_rate, rate, steps, tuner)
    _, learning_rate, rate, steps, tuner = best
    users, scores = experiment.score(lambda s: _predict(tuner, tasks, s))
    tuner.eval_inner_steps = 0
    extra = {"learning_rate": learning_rate, "inner_learning_rate": rate,
             "num_inner_steps": steps, "configurations": len(validation),
             "validation_mae": {
                 _config_name(lr, r, n): round(v, 4)
                 for (lr, r, n), v in validation.items()},
             "without_fine_tuning": experiment.score(
                 lambda s: _predict(tuner, tasks, s))[1]}
    return users, scores, extra


def _config_name(learning_rate, rate, steps):
    return f"outer {learning_rate:g}, rate {rate:g}, steps {steps}"


def _meta_learned(experiment, name, *, inner_learning_rates, inner_steps,
                  learning_rates, meta_batch_size, steps_per_epoch,
                  meta_epochs, verbose):
    """The meta-learner `name`, trained once per (outer rate, inner rate,
    steps); the configuration with the lowest validation MAE is scored."""
    tasks = experiment.tasks
    validation, best = {}, None
    for learning_rate in learning_rates:
        for rate in inner_learning_rates:
            for steps in inner_steps:
                learner = _meta_learner(name, experiment.model(), rate, steps)
                _compile(learner, learning_rate)
                history = learner.fit(
                    tasks.episodes("train", batch_size=meta_batch_size,
                                   seed=experiment.seed),
                    steps_per_epoch=steps_per_epoch, epochs=meta_epochs,
                    validation_data=tasks.episodes(
                        tasks.validation_state, batch_size=64),
                    callbacks=[keras.callbacks.EarlyStopping(
                        monitor="val_mean_absolute_error", patience=8,
                        restore_best_weights=True)],
                    verbose=verbose).history
                curve = history["val_mean_absolute_error"]
                validation[(learning_rate, rate, steps)] = {
                    "best": round(float(min(curve)), 4),
                    "best_epoch": int(np.argmin(curve)) + 1,
                    "epochs_run": len(curve)}
                if verbose == 0:
                    print(f"    {name} {_config_name(learning_rate, rate, steps)}"
                          f": validation MAE {min(curve):.4f} at epoch "
                          f"{int(np.argmin(curve)) + 1} of {len(curve)}",
                          flush=True)
                if best is None or min(curve) < best[0]:
                    best = (min(curve), learning_rate, rate, steps, learner)
    _, learning_rate, rate, steps, learner = best
    users, scores = experiment.score(lambda s: _predict(learner, tasks, s))
    learner.eval_inner_steps = 0
    extra = {
        "learning_rate": learning_rate, "inner_learning_rate": rate,
        "num_inner_steps": steps, "configurations": len(validation),
        "validation_mae": {
            _config_name(*key): v for key, v in validation.items()},
        "without_adaptation": experiment.score(
            lambda s: _predict(learner, tasks, s))[1]}
    return users, scores, extra


def _add_paired_differences(results, per_user, states):
    """Paired per-user MAE differences against the baselines."""
    for name in results:
        for baseline in ("pretrained", "global_mean"):
            if name == baseline or baseline not in per_user:
                continue
            results[name][f"mae_minus_{baseline}"] = {
                s: paired_differences(per_user[name][s], per_user[baseline][s])
                for s in states}


def _load_tasks(source, protocol, seed):
    """The protocol's tasks and the number of users in each state."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; expected one of "
                         f"{list(PROTOCOLS)}.")
    tasks = movielens.movielens_cold_start(
        source, seed=seed, **PROTOCOLS[protocol])
    counts = {state: int(len(arrays["users"]))
              for state, arrays in tasks.states.items()}
    print(tasks.description)
    print("users per state: " + ", ".join(
        f"{k} {v}" for k, v in counts.items()), flush=True)
    return tasks, counts


def run(*, source=None, learners=LEARNERS, output, protocol="melu",
        ranking_k=None, meta_epochs=30,
        steps_per_epoch=50, meta_batch_size=32, inner_learning_rates=(0.1,),
        inner_steps=(1,), learning_rates=(1e-3,), embedding_dim=32,
        fine_tune_rates=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3), seed=0,
        split_seed=None, configurations=None, verbose=0, command=None,
        learning_rate=None):
    """Trains and scores `learners`; writes JSON to `output` (unless
    `None`) after each, and returns the results.

    Each meta-learner is trained once per configuration of
    `learning_rates` x `inner_learning_rates` x `inner_steps`, and the
    pretrained model is trained once per learning rate and fine-tuned with
    every pair of `fine_tune_rates` x `inner_steps`; the configuration with
    the lowest validation MAE (the protocol's validation state, validation
    users only) is the one scored on the test states. Give
    `inner_learning_rates` and `fine_tune_rates` the same length for equal
    tuning budgets. `"melu_paper"` is not tuned (`MELU_PAPER`).
    `learning_rate` (one outer rate) is the older spelling of
    `learning_rates=(learning_rate,)`.
    `protocol` is one of `PROTOCOLS`: `"melu"`, `"mamo"` or
    `"recbole"` (RecBole-MetaRec's: MeLU's without new items). Ranking
    metrics use `ranking_k` (5 with 10 query ratings, 3 with MAMO's 5 when
    `None`).

    `seed` seeds the recommender's initial weights and the order of the
    training episodes, and `split_seed` (`seed` when `None`) the split of
    users. `configurations` (see `chosen_configurations`) fixes a tuned
    learner's configuration instead of searching the grid: to rerun the
    configurations one search chose with other seeds (`run_seeds`).
    """
    if learning_rate is not None:
        learning_rates = (learning_rate,)
    split_seed = seed if split_seed is None else split_seed
    configurations = dict(configurations or {})
    if configurations:
        missing = [name for name in learners if name in TUNED
                   and name not in configurations]
        if missing:
            raise ValueError(
                f"`configurations` fixes {sorted(configurations)} but not "
                f"{missing}, which are tuned: give every tuned learner a "
                "configuration (`chosen_configurations(results)` of a run "
                "that searched them), or leave `configurations` out to "
                "search the grid.")
    start = time.perf_counter()
    tasks, counts = _load_tasks(source, protocol, split_seed)
    queries = tasks.states["train"][episode.QUERY_LABELS].shape[1]
    k = ranking_k or (5 if queries > 5 else max(queries - 2, 1))
    experiment = _Experiment(tasks, counts, k=k, seed=seed,
                             embedding_dim=embedding_dim)
    config = dict(protocol=protocol, ranking_k=k, meta_epochs=meta_epochs,
                  steps_per_epoch=steps_per_epoch,
                  meta_batch_size=meta_batch_size,
                  inner_learning_rates=list(inner_learning_rates),
                  inner_steps=list(inner_steps),
                  learning_rates=list(learning_rates),
                  embedding_dim=embedding_dim,
                  fine_tune_rates=list(fine_tune_rates),
                  melu_paper=MELU_PAPER, seed=seed, split_seed=split_seed)
    if configurations:
        config["configurations"] = configurations
    directory = os.path.dirname(output) if output else None
    if directory:
        os.makedirs(directory, exist_ok=True)

    def grid(name):
        # (outer rates, inner or fine-tuning rates, steps) searched.
        fixed = configurations.get(name)
        if fixed is None:
            return (learning_rates, fine_tune_rates if name == "pretrained"
                    else inner_learning_rates, inner_steps)
        return ((fixed["learning_rate"],), (fixed["inner_learning_rate"],),
                (fixed["num_inner_steps"],))

    def write(done):
        # After every learner: a cut-short run keeps what it finished.
        _add_paired_differences(results, per_user, experiment.states)
        if output is None:
            return
        with open(output, "w") as f:
            json.dump(strict({
                "command": command, "protocol": tasks.description,
                "users_per_state": counts, "config": config,
                "results": results, "learners_done": done,
                "learners_requested": list(learners),
                "seconds": round(time.perf_counter() - start, 1)}),
                f, indent=1, allow_nan=False)

    results, per_user = {}, {}
    for name in learners:
        begin = time.perf_counter()
        if name == "global_mean":
            users, scores, extra = _global_mean(experiment)
        elif name == "pretrained":
            rates, tune_rates, steps = grid(name)
            users, scores, extra = _pretrained(
                experiment, learning_rates=rates,
                fine_tune_rates=tune_rates, inner_steps=steps,
                verbose=verbose)
        elif name == "melu_paper":
            users, scores, extra = _meta_learned(
                experiment, name,
                inner_learning_rates=(MELU_PAPER["inner_learning_rate"],),
                inner_steps=(MELU_PAPER["num_inner_steps"],),
                learning_rates=(MELU_PAPER["learning_rate"],),
                meta_batch_size=meta_batch_size,
                steps_per_epoch=steps_per_epoch, meta_epochs=meta_epochs,
                verbose=verbose)
        else:
            rates, inner_rates, steps = grid(name)
            users, scores, extra = _meta_learned(
                experiment, name, inner_learning_rates=inner_rates,
                inner_steps=steps, learning_rates=rates,
                meta_batch_size=meta_batch_size,
                steps_per_epoch=steps_per_epoch, meta_epochs=meta_epochs,
                verbose=verbose)
        per_user[name] = {s: v["mean_absolute_error"]
                          for s, v in users.items()}
        results[name] = {"scores": scores, **extra,
                         "seconds": round(time.perf_counter() - begin, 1)}
        print(f"{name:>12}: " + "  ".join(
            f"{s} MAE {v['mean_absolute_error'][0]:.3f}"
            f"+-{v['mean_absolute_error'][1]:.3f}"
            for s, v in scores.items()), flush=True)
        write(list(results))
    return results


def chosen_configurations(results):
    """`{learner: {"learning_rate", "inner_learning_rate",
    "num_inner_steps"}}`: the configuration each tuned learner of
    `results` (`run`'s, or its JSON's `"results"`) chose on validation
    users."""
    keys = ("learning_rate", "inner_learning_rate", "num_inner_steps")
    return {name: {k: result[k] for k in keys}
            for name, result in results.items() if name in TUNED}


def across_seeds(runs):
    """Per learner and state, the spread over seeds of `runs`
    (`{seed: results}`): each seed's mean over users and their mean and
    standard deviation over seeds, for MAE, RMSE and the ranking metrics;
    and for the paired MAE differences from the baselines, each seed's
    difference and on how many seeds its 95% interval lies wholly below
    zero (the learner better) or wholly above (worse)."""
    seeds = list(runs)
    out = {}
    for name in runs[seeds[0]]:
        per_seed = [runs[s][name] for s in seeds if name in runs[s]]
        learner = {"seeds": len(per_seed), "scores": {}}
        for state in per_seed[0]["scores"]:
            learner["scores"][state] = {}
            for metric in METRIC_NAMES:
                if metric not in per_seed[0]["scores"][state]:
                    continue
                values = [r["scores"][state][metric][0] for r in per_seed]
                learner["scores"][state][metric] = _spread(values)
        for baseline in ("pretrained", "global_mean"):
            key = f"mae_minus_{baseline}"
            if key not in per_seed[0]:
                continue
            learner[key] = {}
            for state in per_seed[0][key]:
                pairs = [r[key][state] for r in per_seed]
                learner[key][state] = {
                    **_spread([mean for mean, _ in pairs]),
                    "seeds_better": sum(m + ci < 0 for m, ci in pairs),
                    "seeds_worse": sum(m - ci > 0 for m, ci in pairs)}
        out[name] = learner
    return out


def _spread(values):
    values = [float(v) for v in values]
    return {"per_seed": [round(v, 4) for v in values],
            "mean": round(float(np.mean(values)), 4),
            "std": (round(float(np.std(values, ddof=1)), 4)
                    if len(values) > 1 else None)}


def run_seeds(*, seeds, configurations=None, output, command=None,
              **kwargs):
    """`run` once per seed of `seeds` with the `configurations` fixed
    (chosen by a search on another run; `None`: every seed searches the
    grid), on the split of `split_seed`; writes `{"runs": {seed:
    results}, "across_seeds": ...}` to `output` after every seed and
    returns it."""
    start = time.perf_counter()
    config = {k: v for k, v in kwargs.items() if k != "source"}
    directory = os.path.dirname(output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    runs = {}
    for seed in seeds:
        print(f"seed {seed}", flush=True)
        runs[seed] = run(seed=seed, configurations=configurations,
                         output=None, **kwargs)
        summary = {"command": command, "seeds": list(runs),
                   "configurations": configurations, "config": config,
                   "across_seeds": across_seeds(runs),
                   "runs": {str(s): r for s, r in runs.items()},
                   "seconds": round(time.perf_counter() - start, 1)}
        with open(output, "w") as f:
            json.dump(strict(summary), f, indent=1, allow_nan=False)
    return summary


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
    """A Markdown table: per state and learner, MAE and the ranking
    metrics where the state has them."""
    states = []
    for result in results.values():
        states += [s for s in result["scores"] if s not in states]
    lines = ["| learner | " + " | ".join(states) + " |",
             "| --- |" + " --- |" * len(states)]
    for name, result in results.items():
        cells = []
        for state in states:
            v = result["scores"].get(state)
            if v is None:
                cells.append("")
                continue
            cell = (f"MAE {v['mean_absolute_error'][0]:.3f} +- "
                    f"{v['mean_absolute_error'][1]:.3f}, RMSE "
                    f"{v['root_mean_squared_error'][0]:.3f}")
            if "ndcg" in v:
                cell += (f", nDCG {v['ndcg'][0]:.3f}"
                         + (f", nDCG(2^r) {v['ndcg_exponential'][0]:.3f}"
                            if "ndcg_exponential" in v else "")
                         + f", P "
                         f"{v['precision_top_k'][0]:.3f}, nDCG(top-k) "
                         f"{v['ndcg_top_k'][0]:.3f}")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_seeds_table(across):
    """A Markdown table of `across_seeds`: per learner and state, the MAE
    mean over seeds +- their standard deviation, and the paired MAE
    difference from the pretrained model with the number of seeds whose
    interval favours each side."""
    states = list(next(iter(across.values()))["scores"])
    lines = ["| learner | " + " | ".join(states) + " |",
             "| --- |" + " --- |" * len(states)]
    for name, learner in across.items():
        cells = []
        for state in states:
            mae = learner["scores"][state]["mean_absolute_error"]
            cell = f"{mae['mean']:.3f} +- {mae['std'] or 0:.3f}"
            diff = learner.get("mae_minus_pretrained", {}).get(state)
            if diff is not None:
                cell += (f" (vs pretrained {diff['mean']:+.3f}; better on "
                         f"{diff['seeds_better']}, worse on "
                         f"{diff['seeds_worse']} of {learner['seeds']})")
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
