"""A Conditional or Attentive Neural Process on the MAML paper's sinusoids.

Trains `keras_meta.CNP` (`--model cnp`: encoder and decoder of 128-unit
ReLU layers, as Garnelo et al. 2018) or `keras_meta.ANP` (`--model anp`:
the same widths, 8-head cross-attention and a 128-d latent path, as Kim
et al. 2019) on sinusoid episodes with K=10 support points,
meta-batch 25 and Adam 1e-3 for `--meta-steps` steps (20,000, the budget
of `sinusoid_algorithms.py`), then scores the same 600 fixed test tasks
(100 query points each) as that benchmark: query MSE of the predictive
mean, Gaussian negative log-likelihood and the fraction of targets inside
the predicted 95% interval, each with a 95% CI over tasks. Also draws the
predictive mean and 95% band for three test tasks. Prints a table and
writes JSON and a PNG.

    python benchmarks/sinusoid_neural_process.py
    python benchmarks/sinusoid_neural_process.py --model anp \
        --output benchmarks/results/sinusoid_attentive_neural_process.json
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_meta  # noqa: E402
from keras_meta.experiments import sinusoid  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("cnp", "anp"), default="cnp")
    parser.add_argument("--meta-steps", type=int, default=20000)
    parser.add_argument("--meta-batch-size", type=int, default=25)
    parser.add_argument("--num-test-tasks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "sinusoid_neural_process.json"))
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    if args.model == "cnp":
        encoder, decoder = keras_meta.models.neural_process_networks(
            x_dim=1, y_dim=1, representation_dim=128,
            hidden_units=(128, 128), seed=args.seed)
        cnp = keras_meta.CNP(decoder, encoder=encoder)
    else:
        encoder, latent_encoder, decoder = (
            keras_meta.models.attentive_neural_process_networks(
                x_dim=1, y_dim=1, representation_dim=128, latent_dim=128,
                hidden_units=(128, 128), seed=args.seed))
        cnp = keras_meta.ANP(decoder, encoder=encoder,
                             latent_encoder=latent_encoder, latent_dim=128,
                             num_heads=8, seed=args.seed)
    name = args.model.upper()
    cnp.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras_meta.losses.GaussianNegativeLogLikelihood(),
        metrics=[keras_meta.metrics.PredictiveMeanSquaredError(),
                 keras_meta.metrics.IntervalCoverage()],
        steps_per_execution=50)
    train = keras_meta.data.sinusoid(
        num_shots=10, batch_size=args.meta_batch_size, seed=args.seed)
    start = time.perf_counter()
    cnp.fit(train, epochs=10, steps_per_epoch=args.meta_steps // 10,
            verbose=2)
    seconds = time.perf_counter() - start
    rows = {}
    for shots in (10, 5):
        test = keras_meta.data.sinusoid(
            num_shots=shots, num_queries=100,
            num_tasks=args.num_test_tasks, batch_size=100,
            seed=sinusoid.test_seed(args.seed, shots))
        logs = cnp.evaluate(test, return_dict=True, verbose=0)
        rows[f"K={shots}"] = {
            "mse": logs["mse"], "mse_ci95": logs["mse_ci95"],
            "nll": logs["loss"], "nll_ci95": logs["loss_ci95"],
            "coverage_95": logs["coverage_95"],
            "coverage_95_ci95": logs["coverage_95_ci95"]}
    print(f"\n{name} on sinusoid, {args.meta_steps} steps x meta-batch "
          f"{args.meta_batch_size}, {args.num_test_tasks} test tasks "
          f"(training {seconds:.0f} s)")
    print(f"{'K':<6}{'query MSE':>20}{'NLL':>20}{'inside 95% interval':>24}")
    for key, row in rows.items():
        print(f"{key:<6}{row['mse']:>12.3f} +- {row['mse_ci95']:.3f}"
              f"{row['nll']:>12.3f} +- {row['nll_ci95']:.3f}"
              f"{row['coverage_95']:>16.3f} +- {row['coverage_95_ci95']:.3f}")

    # Predictive mean and 95% band for three test tasks, through adapt().
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = keras_meta.data.sinusoid(
        num_shots=10, num_queries=100, num_tasks=3, batch_size=3,
        seed=sinusoid.test_seed(args.seed, 10))
    amplitudes, phases = keras_meta.data.sinusoid_parameters(
        3, seed=sinusoid.test_seed(args.seed, 10))
    inputs, _ = next(iter(test))
    grid = np.linspace(-5, 5, 200, dtype="float32")[:, None]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for task, axis in enumerate(axes):
        learner = cnp.adapt(inputs["support_inputs"][task],
                            inputs["support_labels"][task])
        mean, std = keras_meta.CNP.split(learner.predict(grid, verbose=0))
        axis.plot(grid[:, 0], amplitudes[task] * np.sin(
            grid[:, 0] - phases[task]), "k-", label="true function")
        axis.plot(inputs["support_inputs"][task][:, 0],
                  inputs["support_labels"][task][:, 0], "k^",
                  label="10 support points")
        axis.plot(grid[:, 0], mean[:, 0], "-", color="tab:blue",
                  label=f"{name} mean")
        axis.fill_between(grid[:, 0], mean[:, 0] - 1.96 * std[:, 0],
                          mean[:, 0] + 1.96 * std[:, 0], color="tab:blue",
                          alpha=0.25, label="95% interval")
        axis.set_ylim(-6, 6)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    png = os.path.splitext(args.output)[0] + ".png"
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    figure.savefig(png, dpi=100)
    with open(args.output, "w") as f:
        json.dump({"model": name, "args": vars(args),
                   "training_seconds": seconds,
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.output} and {png}")


if __name__ == "__main__":
    main()
