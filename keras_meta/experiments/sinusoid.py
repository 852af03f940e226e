"""Sinusoid regression (Finn et al., 2017, section 5.1), end to end.

Meta-trains a gradient-based learner (MAML by default), trains the
"pretrained" baseline (the same network fit jointly on all tasks), adapts
both on 600 fixed test tasks with 0 to 10 inner steps (the learner with its
own adaptation: learned rates, context, head only...), and writes a
results JSON and a figure.
"""

import json
import os
import time

import keras
import numpy as np

from keras_meta import algorithms
from keras_meta import data
from keras_meta import episode
from keras_meta import metrics
from keras_meta import models
from keras_meta.experiments import catalog
from keras_meta.experiments import workers

# Targets for K=10 after one step. 0.77 is MAML's MSE as reported by Li et
# al. (2017, Meta-SGD, table 1).
TARGET_ONE_STEP = 0.77
TARGET_TEN_STEPS = 0.2
TARGET_BASELINE_RATIO = 5.0


def test_seed(seed, num_shots):
    """The seed of the fixed test tasks of a run seeded `seed` (shared with
    `keras-meta evaluate`, which scores the same tasks)."""
    return seed + 10_000 + num_shots


def _pooled_points(dataset):
    """Turns episodes into plain (x, y) regression batches over all tasks."""
    import tensorflow as tf  # A tf.data pipeline, whatever the backend.

    def flatten(inputs, query_labels):
        x = tf.concat([inputs[episode.SUPPORT_INPUTS],
                       inputs[episode.QUERY_INPUTS]], 1)
        y = tf.concat([inputs[episode.SUPPORT_LABELS], query_labels], 1)
        return tf.reshape(x, (-1, 1)), tf.reshape(y, (-1, 1))

    return dataset.map(flatten)


def _evaluate_curve(model, test_sets, steps, inner_learning_rate,
                    progress=None):
    """Per-task query MSE after each number of plain fine-tuning steps."""
    evaluator = algorithms.MAML(model, inner_learning_rate=inner_learning_rate)
    evaluator.compile(loss="mse")
    return _evaluate_learner(evaluator, test_sets, steps, progress)


def _cpu_only_tensorflow():
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not [d for d in tf.config.list_physical_devices()
                if d.device_type != "CPU"]


def _op_determinism():
    """Whether TensorFlow's op determinism is on: Keras then compiles
    without XLA whatever `jit_compile` says."""
    if keras.backend.backend() != "tensorflow":
        return False
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


def _intra_op_threads():
    """TensorFlow's intra-op threads (0: its default, one per core);
    `None` on other backends."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


def _phase(verbose, text):
    if verbose != 0:
        print(text, flush=True)


def choose_jit_compile(make_learner, dataset, *, steps_per_execution,
                       executions=10, repeats=2):
    """Whether XLA makes meta-training faster here, measured.

    `make_learner(jit_compile)` returns a compiled learner; each of the two
    (with and without XLA) is traced, then trained `executions` x
    `steps_per_execution` steps on `dataset`, alternating, `repeats`
    times. Their weights are thrown away. Returns `(use_xla, timings)`,
    `timings` the best milliseconds per meta-step of each.
    """
    learners = {jit: make_learner(jit) for jit in (False, True)}
    for learner in learners.values():
        learner.fit(dataset, epochs=1, steps_per_epoch=steps_per_execution,
                    verbose=0)
    timings = {False: [], True: []}
    steps = executions * steps_per_execution
    for _ in range(repeats):
        for jit, learner in learners.items():
            start = time.perf_counter()
            learner.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
            timings[jit].append(1000 * (time.perf_counter() - start) / steps)
    best = {jit: min(values) for jit, values in timings.items()}
    return best[True] < best[False], {
        "xla_ms_per_step": best[True], "plain_ms_per_step": best[False],
        "steps_timed": steps * repeats}


def _evaluate_learner(evaluator, test_sets, steps, progress=None):
    """Per-task query MSE after each number of the learner's inner steps;
    `progress` (a `keras.utils.Progbar`) advances once per step count."""
    curves = {}
    for num_shots, dataset in test_sets.items():
        inputs, labels = dataset
        rows = []
        for num_steps in steps:
            if progress is not None:
                progress.add(1)
            evaluator.eval_inner_steps = num_steps
            predictions = evaluator.predict(inputs, batch_size=100, verbose=0)
            per_task = np.mean((predictions - labels) ** 2, axis=(1, 2))
            mean, ci95 = metrics.confidence_interval(per_task)
            rows.append({"steps": num_steps, "mse": mean, "ci95": ci95})
        curves[f"K={num_shots}"] = rows
    return curves


def _materialize(dataset):
    batches = list(dataset.as_numpy_iterator())
    inputs = {
        key: np.concatenate([b[0][key] for b in batches])
        for key in batches[0][0]
    }
    return inputs, np.concatenate([b[1] for b in batches])


def _plot(path, curves, examples, config):
    # A Figure without pyplot: no backend is chosen or switched.
    from matplotlib.figure import Figure

    learner = config["algorithm"]
    figure = Figure(figsize=(15, 8.5))
    axes = figure.subplots(2, 3)
    colors = {learner: "tab:blue", "pretrained": "tab:orange"}
    for column, shots in enumerate(sorted(curves[learner], reverse=True)):
        axis = axes[0, column]
        for method in (learner, "pretrained"):
            rows = curves[method][shots]
            steps = [r["steps"] for r in rows]
            mse = np.array([r["mse"] for r in rows])
            ci95 = np.array([r["ci95"] for r in rows])
            axis.plot(steps, mse, "o-", color=colors[method], label=method if method == "pretrained"
                      else method.upper())
            axis.fill_between(steps, mse - ci95, mse + ci95,
                              color=colors[method], alpha=0.2)
        axis.set_yscale("log")
        axis.set_xlabel("gradient steps on the support set")
        axis.set_ylabel("query MSE (600 tasks, 95% CI)")
        axis.set_title(f"sinusoid, {shots}")
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0, 2].axis("off")
    axes[0, 2].text(
        0.0, 0.95,
        "\n".join(f"{k}: {v}" for k, v in config.items()),
        va="top", family="monospace", fontsize=9,
    )
    for axis, example in zip(axes[1], examples):
        axis.plot(example["grid"], example["truth"], "k-", label="true function")
        axis.plot(example["support_x"], example["support_y"], "k^",
                  label="support points")
        for label, style in (("0 steps", ":"), ("1 step", "--"),
                             ("10 steps", "-")):
            axis.plot(example["grid"], example[learner][label], style,
                      color=colors[learner],
                      label=f"{learner.upper()}, {label}")
        axis.plot(example["grid"], example["pretrained"]["10 steps"], "-",
                  color=colors["pretrained"], label="pretrained, 10 steps")
        axis.set_title(
            f"task: A={example['amplitude']:.2f}, phase={example['phase']:.2f}"
        )
        axis.set_ylim(-6, 6)
        axis.grid(alpha=0.3)
    axes[1, 0].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _choose_xla(jit_compile, make_learner, train, steps_per_execution,
                meta_steps, verbose, seed):
    """`(jit_compile, probe)`: whether the learner compiles with XLA, and
    what decided it (`None`, or a dict recorded in results.json)."""
    xla = None
    if jit_compile is not False and _op_determinism():
        # `keras-meta train` runs deterministically; Keras would silently
        # compile without XLA. Say so instead of timing the same step twice.
        jit_compile = False
        xla = {"skipped": "TensorFlow's op determinism is on; Keras does "
                          "not compile with XLA under it"}
        _phase(verbose, "[0/3] XLA: off (TensorFlow's op determinism is on, "
                        "and Keras compiles without XLA under it)")
    elif jit_compile == "auto" and _cpu_only_tensorflow() and (
            meta_steps >= 50 * steps_per_execution):
        use, xla = choose_jit_compile(
            make_learner, train, steps_per_execution=steps_per_execution)
        jit_compile = use
        _phase(verbose, f"[0/3] XLA: {xla['xla_ms_per_step']:.2f} ms per "
                        f"meta-step against {xla['plain_ms_per_step']:.2f} "
                        f"without (best of 2 x {xla['steps_timed'] // 2} "
                        f"steps): {'compiling with' if use else 'without'} "
                        "XLA")
        keras.utils.set_random_seed(seed)
    return jit_compile, xla


def _test_sets(shots, num_tasks, num_queries, seed):
    """The fixed test tasks for each support size in `shots`, in memory."""
    return {
        k: _materialize(
            data.sinusoid(num_shots=k, num_queries=num_queries,
                          num_tasks=num_tasks, batch_size=100,
                          seed=test_seed(seed, k))
        )
        for k in shots
    }


def _example_tasks(algorithm, learner, pretrained, test_sets, num_shots,
                   num_test_tasks, inner_learning_rate, seed):
    """Three test tasks for the figure, each adapted by the learner and the
    pretrained baseline through the public `adapt()`."""
    grid = np.linspace(-5, 5, 200, dtype="float32")[:, None]
    amplitudes, phases = data.sinusoid_parameters(
        min(30, num_test_tasks), seed=test_seed(seed, num_shots)
    )
    inputs, _ = test_sets[num_shots]
    examples = []
    # Three contrasting tasks: the smallest and largest phase, and the
    # largest amplitude among the first 30 test tasks.
    chosen = [int(np.argmin(phases)), int(np.argmax(phases)),
              int(np.argmax(amplitudes))]
    for task in dict.fromkeys(chosen):
        support_x = inputs[episode.SUPPORT_INPUTS][task]
        support_y = inputs[episode.SUPPORT_LABELS][task]
        example = {
            "grid": grid[:, 0], "support_x": support_x[:, 0],
            "support_y": support_y[:, 0],
            "amplitude": amplitudes[task], "phase": phases[task],
            "truth": amplitudes[task] * np.sin(grid[:, 0] - phases[task]),
        }
        baseline = algorithms.MAML(pretrained,
                                   inner_learning_rate=inner_learning_rate)
        baseline.compile(loss="mse")
        for name, adapter in ((algorithm, learner), ("pretrained", baseline)):
            example[name] = {}
            for label, num_steps in (("0 steps", 0), ("1 step", 1),
                                     ("10 steps", 10)):
                adapter.eval_inner_steps = num_steps
                adapted = adapter.adapt(support_x, support_y)
                example[name][label] = adapted.predict(grid, verbose=0)[:, 0]
        examples.append(example)
    return examples


def _summarize(curves, algorithm):
    """`(summary, non_finite, targets_met)` of the evaluated curves."""
    def at(method, shots, num_steps):
        return curves[method][f"K={shots}"][num_steps]["mse"]

    summary = {
        "K10_1_step": at(algorithm, 10, 1),
        "K10_10_steps": at(algorithm, 10, 10),
        "pretrained_K10_1_step": at("pretrained", 10, 1),
        "baseline_ratio_1_step": (
            at("pretrained", 10, 1) / at(algorithm, 10, 1)),
    }
    non_finite = [
        f"{method} {shots} after {row['steps']} steps"
        for method, by_shots in curves.items()
        for shots, rows in by_shots.items() for row in rows
        if not np.isfinite(row["mse"])]
    checks = {
        "every evaluated MSE is finite": not non_finite,
        f"{algorithm} K=10 after 1 step <= {TARGET_ONE_STEP}":
            summary["K10_1_step"] <= TARGET_ONE_STEP,
        f"{algorithm} K=10 after 10 steps <= {TARGET_TEN_STEPS}":
            summary["K10_10_steps"] <= TARGET_TEN_STEPS,
        f"pretrained / {algorithm} after 1 step >= {TARGET_BASELINE_RATIO}":
            summary["baseline_ratio_1_step"] >= TARGET_BASELINE_RATIO,
    }
    return summary, non_finite, checks


def _evaluate_learner_only(algorithm, learner, num_test_tasks,
                           num_test_queries, seed, meta_steps, meta_seconds):
    """The results of a run without the baseline: the learner's K=10
    curve on the same test tasks."""
    test_sets = _test_sets((10,), num_test_tasks, num_test_queries,
                           seed)
    start = time.perf_counter()
    curves = {algorithm: _evaluate_learner(learner, test_sets,
                                           list(range(11)))}
    return {
        "config": {"algorithm": algorithm,
                   "num_inner_steps": getattr(
                       learner, "num_inner_steps", None),
                   "meta_steps": meta_steps},
        "curves": curves,
        "seconds": {"meta_training": meta_seconds,
                    "evaluation": time.perf_counter() - start},
    }


def _config(algorithm, learner, *, meta_steps, meta_batch_size, num_shots,
            inner_learning_rate, learning_rate, num_test_tasks,
            num_test_queries, seed, jit_compile, xla):
    """The run's settings as results.json records them."""
    config = {
        "algorithm": algorithm,
        "model": "MLP 1-40-40-1 ReLU" + (
            " (+4 context inputs)" if algorithm == "cavia" else ""),
        "meta_steps": meta_steps,
        "meta_batch_size": meta_batch_size,
        "train K": num_shots,
        "inner_learning_rate": inner_learning_rate,
        "num_inner_steps": getattr(learner, "num_inner_steps", None),
        "optimizer": f"Adam({learning_rate})" + (
            ", cosine decay" if algorithm == "maml++" else ""),
        "test tasks": num_test_tasks,
        "query points per test task": num_test_queries,
        "seed": seed,
        "jit_compile": jit_compile,
        "xla_probe": xla,
        "intra_op_threads": _intra_op_threads(),
    }
    return config


def run(
    *,
    algorithm="maml",
    output_dir="keras_meta_runs/sinusoid",
    meta_steps=70000,
    meta_batch_size=25,
    num_shots=10,
    inner_learning_rate=0.01,
    learning_rate=1e-3,
    num_inner_steps=None,
    num_test_tasks=600,
    num_test_queries=100,
    steps_per_execution=50,
    seed=0,
    verbose="auto",
    baseline=True,
    jit_compile="auto",
    strategy=None,
):
    """Runs the whole experiment and returns the results dict.

    Writes `results.json`, `sinusoid.png` and `<algorithm>.keras` to
    `output_dir`. `algorithm` names a regression-capable learner of
    `keras_meta.experiments.catalog`; `num_inner_steps=None` takes its
    default (1, or more for Reptile, iMAML and MAML++). With
    `baseline=False` only the learner is trained and evaluated (K=10, the
    same test tasks), and nothing is written.

    `jit_compile`: `True` or `False` compiles the learner with XLA or
    without; `"auto"` on TensorFlow without an accelerator times both on a
    few hundred meta-steps first (`choose_jit_compile`) and takes the
    faster, saying so; elsewhere Keras decides (JAX always compiles).

    `strategy`: Optional `tf.distribute` strategy (TensorFlow) that
    meta-trains the learner, each worker taking its share of every
    meta-batch (`keras-meta train --workers`); it trains without XLA, and
    the rest (baseline, evaluation, files) runs on a copy of the trained
    learner outside the strategy (`keras_meta.experiments.workers`).
    """
    os.makedirs(output_dir, exist_ok=True)
    if keras.backend.backend() == "tensorflow":
        # Evaluating after 0..10 inner steps retraces once per step count,
        # on purpose; TensorFlow's retracing warning would be noise here.
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(seed)
    steps_per_execution = max(1, min(steps_per_execution, meta_steps))
    epochs = 10 if meta_steps >= 10 * steps_per_execution else 1
    steps_per_epoch = max(1, meta_steps // epochs)
    train = data.sinusoid(num_shots=num_shots, batch_size=meta_batch_size,
                          seed=seed)

    def make_learner(jit):
        with workers.scope(strategy):
            learner = catalog.build_regressor(
                algorithm, inner_learning_rate=inner_learning_rate,
                num_inner_steps=num_inner_steps, epochs=epochs, seed=seed)
            learner.compile(
                optimizer=catalog.outer_optimizer(
                    algorithm, learning_rate, epochs * steps_per_epoch),
                loss="mse",
                steps_per_execution=steps_per_execution,
                jit_compile=jit,
            )
        return learner

    if strategy is not None:
        jit_compile = False
    jit_compile, xla = _choose_xla(jit_compile, make_learner, train,
                                   steps_per_execution, meta_steps,
                                   verbose, seed)
    learner = make_learner(jit_compile)
    _phase(verbose, f"[1/3] meta-training {algorithm.upper()}: "
                    f"{epochs * steps_per_epoch} steps of {meta_batch_size} "
                    "tasks")
    start = time.perf_counter()
    history = learner.fit(workers.shard_by_data(train, strategy),
                          epochs=epochs, steps_per_epoch=steps_per_epoch,
                          verbose=verbose)
    meta_seconds = time.perf_counter() - start
    learner = workers.local_copy(learner, strategy)
    trained_with_xla = bool(learner.jit_compile)
    if trained_with_xla and keras.backend.backend() == "tensorflow":
        # XLA pays off over many training steps; evaluating after 0..10
        # inner steps would compile one program per count. The optimizer
        # (and its state) stays. (On JAX, `jit_compile=False` would run
        # eagerly.)
        learner.compile(optimizer=learner.optimizer, loss="mse",
                        steps_per_execution=steps_per_execution,
                        jit_compile=False)

    if not baseline:
        return _evaluate_learner_only(
            algorithm, learner, num_test_tasks, num_test_queries, seed,
            epochs * steps_per_epoch, meta_seconds)
    pretrained = models.mlp(seed=seed)
    pretrained.compile(optimizer=keras.optimizers.Adam(learning_rate),
                       loss="mse", steps_per_execution=steps_per_execution)
    _phase(verbose, "[2/3] training the pretrained baseline (the same "
                    "network on all tasks jointly)")
    start = time.perf_counter()
    pretrained.fit(_pooled_points(train), epochs=epochs, shuffle=False,
                   steps_per_epoch=steps_per_epoch, verbose=verbose)
    pretrained_seconds = time.perf_counter() - start

    test_sets = _test_sets((10, 5), num_test_tasks, num_test_queries, seed)
    steps = list(range(11))
    _phase(verbose, f"[3/3] evaluating both on {num_test_tasks} test tasks, "
                    "K=10 and K=5, after 0..10 steps")
    progress = (keras.utils.Progbar(4 * len(steps), unit_name="curve point")
                if verbose != 0 else None)
    start = time.perf_counter()
    curves = {
        algorithm: _evaluate_learner(learner, test_sets, steps, progress),
        "pretrained": _evaluate_curve(pretrained, test_sets, steps,
                                      inner_learning_rate, progress),
    }
    evaluation_seconds = time.perf_counter() - start

    examples = _example_tasks(algorithm, learner, pretrained, test_sets,
                              num_shots, num_test_tasks, inner_learning_rate,
                              seed)

    summary, non_finite, checks = _summarize(curves, algorithm)
    config = _config(
        algorithm, learner, meta_steps=epochs * steps_per_epoch,
        meta_batch_size=meta_batch_size, num_shots=num_shots,
        inner_learning_rate=inner_learning_rate, learning_rate=learning_rate,
        num_test_tasks=num_test_tasks, num_test_queries=num_test_queries,
        seed=seed, jit_compile=trained_with_xla, xla=xla)
    results = {
        "config": config,
        "summary": summary,
        "non_finite": non_finite,
        "targets_met": checks,
        "curves": curves,
        "final_meta_train_loss": float(history.history["loss"][-1]),
        "seconds": {
            "meta_training": meta_seconds,
            "pretrained_training": pretrained_seconds,
            "evaluation": evaluation_seconds,
        },
    }
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        # Strict JSON: a diverged value is written as null (and listed in
        # "non_finite"), never as the NaN or Infinity tokens JSON lacks.
        json.dump(finite_or_none(results), f, indent=2, allow_nan=False)
    _plot(os.path.join(output_dir, "sinusoid.png"), curves, examples, config)
    learner.eval_inner_steps = learner.num_inner_steps
    learner.save(os.path.join(output_dir, f"{algorithm}.keras"))
    return results


def finite_or_none(value):
    """`value` with every non-finite float replaced by `None`."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def format_table(results):
    """The results as a plain-text table."""
    lines = [
        f"{'method':<12}{'K':>4}{'0 steps':>18}{'1 step':>18}{'10 steps':>18}",
    ]
    learner = results["config"]["algorithm"]
    for method in (learner, "pretrained"):
        for shots, rows in sorted(results["curves"][method].items(),
                                  reverse=True):
            cells = "".join(
                f"{rows[s]['mse']:>10.3f} +- {rows[s]['ci95']:<5.3f}"
                for s in (0, 1, 10)
            )
            lines.append(f"{method:<12}{shots[2:]:>4}{cells}")
    for check, met in results["targets_met"].items():
        lines.append(f"{'PASS' if met else 'MISS'}  {check}")
    for entry in results.get("non_finite", []):
        lines.append(f"FAIL  diverged (non-finite MSE): {entry}")
    return "\n".join(lines)
