"""A Conditional or Attentive Neural Process on the sinusoid tasks.

Trains `keras_meta.CNP` (encoder and decoder of 128-unit ReLU layers, as
Garnelo et al. 2018) or `keras_meta.ANP` (the same widths, 8-head
cross-attention and a 128-d latent path, as Kim et al. 2019) on the MAML
paper's sinusoid tasks, as the papers train them: each task's context is a
random 3 to 20 of its points and every point, context or not, is a target
(`keras_meta.data.random_context`). Then scores the fixed test tasks of
`keras_meta.experiments.sinusoid` (the same seeds, so the numbers sit
beside every gradient-based learner's): query MSE of the predictive mean,
Gaussian negative log-likelihood and the fraction of targets inside the
predicted 95% interval, each with a 95% CI over tasks, at K=5, 10 and 20
context points and 100 separate query points. Writes `results.json`,
`sinusoid.png` (predictive mean and 95% band for three test tasks, through
`adapt()`) and `<algorithm>.keras`.
"""

import json
import os
import time

import keras
import numpy as np

from keras_meta import algorithms
from keras_meta import data
from keras_meta import episode
from keras_meta import losses
from keras_meta import metrics
from keras_meta import models
from keras_meta.experiments import sinusoid

ALGORITHMS = ("cnp", "anp")


TEST_SHOTS = (5, 10, 20)


def build(algorithm, *, seed=None, width=128, queries_include_support=False):
    """The paper's network for 1-d regression: `"cnp"` or `"anp"`."""
    if algorithm == "cnp":
        encoder, decoder = models.neural_process_networks(
            x_dim=1, y_dim=1, representation_dim=width,
            hidden_units=(width, width), seed=seed)
        return algorithms.CNP(decoder, encoder=encoder)
    if algorithm == "anp":
        encoder, latent_encoder, decoder = (
            models.attentive_neural_process_networks(
                x_dim=1, y_dim=1, representation_dim=width, latent_dim=width,
                hidden_units=(width, width), seed=seed))
        return algorithms.ANP(decoder, encoder=encoder,
                              latent_encoder=latent_encoder, latent_dim=width,
                              num_heads=8, seed=seed,
                              queries_include_support=queries_include_support)
    raise ValueError(f"Unknown neural process {algorithm!r}. Choose one of "
                     f"{ALGORITHMS}.")


def run(*, algorithm="cnp", output_dir="keras_meta_runs/sinusoid",
        meta_steps=20000, meta_batch_size=25, num_shots=20, min_shots=3,
        num_queries=10, learning_rate=1e-3, num_test_tasks=600,
        num_test_queries=100, steps_per_execution=50, seed=0,
        verbose="auto", width=128):
    """Trains and scores a neural process; returns the results dict.

    In training each task has `num_shots` support points and `num_queries`
    more points; a random `min_shots` to `num_shots` of the support points
    are the context, and all `num_shots + num_queries` points are targets
    (the papers' training). `min_shots=None` trains at a fixed K =
    `num_shots` with the queries alone as targets. The test tasks are
    scored at K=5, 10 and 20 whatever the training.
    """
    if min_shots is not None and not 1 <= min_shots <= num_shots:
        raise ValueError(
            f"`min_shots` must lie in [1, num_shots={num_shots}]. Received "
            f"min_shots={min_shots}.")
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    random_context = min_shots is not None
    learner = build(algorithm, seed=seed, width=width,
                    queries_include_support=random_context)
    steps_per_execution = max(1, min(steps_per_execution, meta_steps))
    epochs = 10 if meta_steps >= 10 * steps_per_execution else 1
    steps_per_epoch = max(1, meta_steps // epochs)
    learner.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=losses.GaussianNegativeLogLikelihood(),
        metrics=[metrics.PredictiveMeanSquaredError(),
                 metrics.IntervalCoverage()],
        steps_per_execution=steps_per_execution)
    train = data.sinusoid(num_shots=num_shots, num_queries=num_queries,
                          batch_size=meta_batch_size, seed=seed)
    if random_context:
        train = data.random_context(train, min_size=min_shots, seed=seed)
    if verbose != 0:
        context = (f"contexts of {min_shots}-{num_shots} points among "
                   f"{num_shots + num_queries} targets" if random_context
                   else f"K={num_shots}, {num_queries} queries")
        print(f"[1/2] training {algorithm.upper()}: {epochs * steps_per_epoch}"
              f" steps of {meta_batch_size} tasks, {context}", flush=True)
    start = time.perf_counter()
    learner.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch,
                verbose=verbose)
    training_seconds = time.perf_counter() - start

    if verbose != 0:
        print(f"[2/2] scoring {num_test_tasks} test tasks, K="
              + ", ".join(str(k) for k in TEST_SHOTS), flush=True)
    rows = {}
    start = time.perf_counter()
    for shots in TEST_SHOTS:
        test = data.sinusoid(
            num_shots=shots, num_queries=num_test_queries,
            num_tasks=num_test_tasks, batch_size=100,
            seed=sinusoid.test_seed(seed, shots))
        logs = learner.evaluate(test, return_dict=True, verbose=0)
        rows[f"K={shots}"] = {
            "mse": logs["mse"], "mse_ci95": logs["mse_ci95"],
            "nll": logs["loss"], "nll_ci95": logs["loss_ci95"],
            "coverage_95": logs["coverage_95"],
            "coverage_95_ci95": logs["coverage_95_ci95"]}
        if verbose != 0:
            print(f"      K={shots}: query MSE {logs['mse']:.3f} +- "
                  f"{logs['mse_ci95']:.3f}", flush=True)
    evaluation_seconds = time.perf_counter() - start

    results = {
        "config": {"algorithm": algorithm, "meta_steps":
                   epochs * steps_per_epoch, "meta_batch_size":
                   meta_batch_size, "num_shots": num_shots,
                   "min_shots": min_shots, "num_queries": num_queries,
                   "targets_include_context": random_context,
                   "learning_rate": learning_rate, "width": width,
                   "num_test_tasks": num_test_tasks, "seed": seed,
                   "backend": keras.backend.backend()},
        "rows": rows,
        "seconds": {"training": training_seconds,
                    "evaluation": evaluation_seconds},
    }
    learner.save(os.path.join(output_dir, f"{algorithm}.keras"))
    _plot(learner, os.path.join(output_dir, "sinusoid.png"), algorithm,
          seed, num_shots=10)
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def _plot(learner, path, algorithm, seed, num_shots):
    # A Figure without pyplot: no backend is chosen or switched.
    from matplotlib.figure import Figure

    test = data.sinusoid(num_shots=num_shots, num_queries=100, num_tasks=3,
                         batch_size=3,
                         seed=sinusoid.test_seed(seed, num_shots))
    amplitudes, phases = data.sinusoid_parameters(
        3, seed=sinusoid.test_seed(seed, num_shots))
    inputs, _ = next(iter(test))
    grid = np.linspace(-5, 5, 200, dtype="float32")[:, None]
    figure = Figure(figsize=(15, 4))
    axes = figure.subplots(1, 3)
    name = algorithm.upper()
    for task, axis in enumerate(axes):
        adapted = learner.adapt(inputs[episode.SUPPORT_INPUTS][task],
                                inputs[episode.SUPPORT_LABELS][task])
        mean, std = algorithms.CNP.split(adapted.predict(grid, verbose=0))
        axis.plot(grid[:, 0], amplitudes[task] * np.sin(
            grid[:, 0] - phases[task]), "k-", label="true function")
        axis.plot(np.asarray(inputs[episode.SUPPORT_INPUTS][task])[:, 0],
                  np.asarray(inputs[episode.SUPPORT_LABELS][task])[:, 0], "k^",
                  label=f"{num_shots} support points")
        axis.plot(grid[:, 0], mean[:, 0], "-", color="tab:blue",
                  label=f"{name} mean")
        axis.fill_between(grid[:, 0], mean[:, 0] - 1.96 * std[:, 0],
                          mean[:, 0] + 1.96 * std[:, 0], color="tab:blue",
                          alpha=0.25, label="95% interval")
        axis.set_ylim(-6, 6)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def format_table(results):
    """The results as a printable table."""
    config = results["config"]
    lines = [f"{config['algorithm'].upper()} on sinusoid, "
             f"{config['meta_steps']} steps x meta-batch "
             f"{config['meta_batch_size']}, "
             + (f"contexts of {config['min_shots']}-{config['num_shots']} "
                "points among the targets, "
                if config.get("targets_include_context") else
                f"K={config['num_shots']} in training, ")
             + f"{config['num_test_tasks']} test tasks (training "
             f"{results['seconds']['training']:.0f} s)",
             f"{'K':<6}{'query MSE':>20}{'NLL':>20}"
             f"{'inside 95% interval':>24}"]
    for key, row in results["rows"].items():
        lines.append(
            f"{key:<6}{row['mse']:>12.3f} +- {row['mse_ci95']:.3f}"
            f"{row['nll']:>12.3f} +- {row['nll_ci95']:.3f}"
            f"{row['coverage_95']:>16.3f} +- {row['coverage_95_ci95']:.3f}")
    return "\n".join(lines)
