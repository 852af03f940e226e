"""A Conditional Neural Process on sinusoid regression, through the Keras API.

A black-box learner: nothing adapts by gradient. The encoder summarizes
the support points, the decoder predicts a Gaussian for every query, and
`adapt()` bakes the summary into an ordinary Keras model that returns a
mean and a standard deviation per input.

    python examples/neural_process_sinusoid.py               # 20,000 steps
    python examples/neural_process_sinusoid.py --steps 2000  # a quick look

This example trains at a fixed K=10 for brevity; `--steps 2000` gave
0.281 +- 0.034 here, with 95.9% of targets inside the 95% interval. The
CNP rows of the benchmarks (query MSE 0.014 at K=10) come from
`benchmarks/sinusoid_neural_process.py`, which trains these networks for
20,000 steps as the papers do, over context sizes of 3 to 20 with the
context among the targets (`keras_meta.data.random_context`). `--anp`
trains the Attentive Neural Process instead.
"""

import argparse

import keras
import numpy as np

import keras_meta

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20000)
parser.add_argument("--anp", action="store_true")
parser.add_argument("--plot", default="neural_process_sinusoid.png")
args = parser.parse_args()
if args.steps < 10:
    parser.error("--steps must be at least 10")

train = keras_meta.data.sinusoid(num_shots=10, batch_size=25, seed=0)
test = keras_meta.data.sinusoid(
    num_shots=10, num_queries=100, num_tasks=600, batch_size=100, seed=1)

# Two ordinary Keras networks: an encoder of (x, y) pairs and a decoder of
# (representation, x) to a mean and a raw scale.
if args.anp:
    encoder, latent_encoder, decoder = (
        keras_meta.models.attentive_neural_process_networks(
            x_dim=1, y_dim=1, representation_dim=128, latent_dim=128,
            hidden_units=(128, 128), seed=0))
    learner = keras_meta.ANP(decoder, encoder=encoder,
                             latent_encoder=latent_encoder, latent_dim=128,
                             num_heads=8, seed=0)
else:
    encoder, decoder = keras_meta.models.neural_process_networks(
        x_dim=1, y_dim=1, representation_dim=128, hidden_units=(128, 128),
        seed=0)
    learner = keras_meta.CNP(decoder, encoder=encoder)

learner.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras_meta.losses.GaussianNegativeLogLikelihood(),
    metrics=[keras_meta.metrics.PredictiveMeanSquaredError(),
             keras_meta.metrics.IntervalCoverage()],
    steps_per_execution=10)
learner.fit(train, epochs=10, steps_per_epoch=args.steps // 10, verbose=2)

logs = learner.evaluate(test, return_dict=True, verbose=0)
print(f"600 test tasks, K=10: query MSE {logs['mse']:.3f} +- "
      f"{logs['mse_ci95']:.3f}, {100 * logs['coverage_95']:.1f}% of targets "
      "inside the predicted 95% interval")

# One new task: adapt() gives a plain Keras model of x -> (mean, std).
inputs, _ = next(iter(test))
support_x = np.asarray(inputs["support_inputs"][0])
support_y = np.asarray(inputs["support_labels"][0])
model = learner.adapt(support_x, support_y)
grid = np.linspace(-5, 5, 200, dtype="float32")[:, None]
mean, std = keras_meta.CNP.split(model.predict(grid, verbose=0))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

figure, axis = plt.subplots(figsize=(7, 4))
axis.plot(support_x[:, 0], support_y[:, 0], "k^", label="10 support points")
axis.plot(grid[:, 0], mean[:, 0], label="predicted mean")
axis.fill_between(grid[:, 0], mean[:, 0] - 1.96 * std[:, 0],
                  mean[:, 0] + 1.96 * std[:, 0], alpha=0.3,
                  label="95% interval")
axis.legend()
figure.tight_layout()
figure.savefig(args.plot, dpi=100)
print(f"wrote {args.plot}")
