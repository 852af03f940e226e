"""Why ten fixed-size steps can diverge after one-step meta-training.

Loads a sinusoid learner saved by `keras-meta train` and, on the run's own
test tasks for K=5 and K=10, measures the largest eigenvalue of each task's
support-loss Hessian at the meta-learned initialization (power iteration on
Hessian-vector products) and the query MSE after 1 and 10 steps. Plain
gradient descent with step `alpha` diverges along a direction whose
curvature exceeds `2 / alpha` (200 for the default 0.01). Prints a table
and writes JSON.

    python benchmarks/sinusoid_curvature.py keras_meta_runs/sinusoid/maml.keras
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_meta  # noqa: E402
from keras_meta.experiments import sinusoid  # noqa: E402


def top_eigenvalue(model, x, y, iterations=50):
    """Largest-magnitude eigenvalue of the support MSE's Hessian."""
    weights = [tf.convert_to_tensor(v.value) for v in model.trainable_variables]
    state = [v.value for v in model.non_trainable_variables]

    def loss_of(values):
        predictions, _ = model.stateless_call(values, state, x)
        return tf.reduce_mean(tf.square(predictions - y))

    @tf.function
    def hvp(vectors):
        with tf.GradientTape() as outer:
            outer.watch(weights)
            with tf.GradientTape() as inner:
                inner.watch(weights)
                loss = loss_of(weights)
            gradients = inner.gradient(loss, weights)
            dot = tf.add_n([tf.reduce_sum(g * v)
                            for g, v in zip(gradients, vectors)])
        return outer.gradient(dot, weights)

    rng = np.random.default_rng(0)
    vectors = [tf.constant(rng.normal(size=w.shape), w.dtype) for w in weights]
    value = 0.0
    for _ in range(iterations):
        norm = tf.sqrt(tf.add_n([tf.reduce_sum(v * v) for v in vectors]))
        vectors = [v / norm for v in vectors]
        product = hvp(vectors)
        value = float(tf.add_n([tf.reduce_sum(p * v)
                                for p, v in zip(product, vectors)]))
        vectors = product
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-tasks", type=int, default=100)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "sinusoid_curvature.json"))
    args = parser.parse_args()
    learner = keras.models.load_model(args.checkpoint)
    rate = learner.inner_learning_rate
    rows = {}
    for shots in (10, 5):
        episodes = keras_meta.data.sinusoid(
            num_shots=shots, num_queries=100, num_tasks=args.num_tasks,
            batch_size=args.num_tasks,
            seed=sinusoid.test_seed(args.seed, shots))
        inputs, labels = next(iter(episodes))
        mse = {}
        for steps in (1, 10):
            learner.eval_inner_steps = steps
            predictions = learner.predict(inputs, verbose=0)
            mse[steps] = np.mean((predictions - labels.numpy()) ** 2,
                                 axis=(1, 2))
        eigenvalues = np.array([
            top_eigenvalue(learner.model, inputs["support_inputs"][t],
                           inputs["support_labels"][t])
            for t in range(args.num_tasks)])
        unstable = np.abs(eigenvalues) > 2.0 / rate
        diverged = ~np.isfinite(mse[10]) | (mse[10] > 10 * mse[1])
        rows[f"K={shots}"] = {
            "median_top_eigenvalue": float(np.median(eigenvalues)),
            "max_top_eigenvalue": float(np.max(np.abs(eigenvalues))),
            "tasks_above_2_over_rate": int(unstable.sum()),
            "tasks_diverging_by_10_steps": int(diverged.sum()),
            "diverging_tasks_above_2_over_rate": int(
                (diverged & unstable).sum()),
            "median_mse_1_step": float(np.median(mse[1])),
            "median_mse_10_steps": float(np.nanmedian(mse[10])),
        }
    print(f"inner rate {rate}: steps diverge along curvature above "
          f"{2.0 / rate:.0f}; {args.num_tasks} test tasks per K")
    print(f"{'K':<6}{'median top eig':>16}{'max top eig':>14}"
          f"{'tasks > 2/rate':>16}{'diverged':>10}{'both':>6}")
    for key, row in rows.items():
        print(f"{key:<6}{row['median_top_eigenvalue']:>16.1f}"
              f"{row['max_top_eigenvalue']:>14.1f}"
              f"{row['tasks_above_2_over_rate']:>16}"
              f"{row['tasks_diverging_by_10_steps']:>10}"
              f"{row['diverging_tasks_above_2_over_rate']:>6}")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"args": vars(args), "inner_learning_rate": rate,
                   "rows": rows}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
