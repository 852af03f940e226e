"""MAML on sinusoid regression with the keras_meta Python API.

The experiment of Finn et al. (2017), section 5.1: meta-train a 1-40-40-1
MLP so that one gradient step on K=10 points of a new sine wave fits it.

    python examples/sinusoid_maml.py            # several minutes, see below
    python examples/sinusoid_maml.py --steps 2000   # a quick look

Its training is the main job's MAML training (70,000 steps: 198 s on 2 idle
cores, 504 s on 2 busy ones, as measured for `keras-meta train`), followed
by three evaluations of 600 tasks.
"""

import argparse

import keras
import numpy as np

import keras_meta

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=70000)
parser.add_argument("--plot", default="sinusoid_maml.png")
args = parser.parse_args()

# Episodes: an endless stream of training tasks, 600 fixed test tasks.
train = keras_meta.data.sinusoid(num_shots=10, batch_size=25, seed=0)
test = keras_meta.data.sinusoid(
    num_shots=10, num_queries=100, num_tasks=600, batch_size=100, seed=1
)

# Wrap an ordinary Keras model; compile and fit as usual.
maml = keras_meta.MAML(
    keras_meta.models.mlp(hidden_units=(40, 40)),
    inner_learning_rate=0.01,
    num_inner_steps=1,
    eval_inner_steps=1,
)
maml.compile(
    optimizer=keras.optimizers.Adam(1e-3), loss="mse", steps_per_execution=50
)
maml.fit(train, epochs=10, steps_per_epoch=max(1, args.steps // 10))

# Query MSE after adaptation, with a 95% confidence interval over tasks.
for steps in (0, 1, 10):
    maml.eval_inner_steps = steps
    result = maml.evaluate(test, verbose=0, return_dict=True)
    print(f"{steps:>2} steps: MSE {result['loss']:.3f} +- {result['loss_ci95']:.3f}")

# Adapt to one new task and use the result as a plain Keras model.
inputs, _ = next(iter(test))
support_x = inputs["support_inputs"][0]
support_y = inputs["support_labels"][0]
maml.eval_inner_steps = 10
learner = maml.adapt(support_x, support_y)  # an ordinary keras.Model

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

amplitude, phase = keras_meta.data.sinusoid_parameters(1, seed=1)
grid = np.linspace(-5, 5, 200, dtype="float32")[:, None]
plt.plot(grid, amplitude[0] * np.sin(grid - phase[0]), "k", label="true")
plt.plot(support_x, support_y, "k^", label="support points")
plt.plot(grid, maml.model.predict(grid, verbose=0), ":", label="meta-init")
plt.plot(grid, learner.predict(grid, verbose=0), label="after 10 steps")
plt.legend()
plt.savefig(args.plot)
print(f"wrote {args.plot}")
