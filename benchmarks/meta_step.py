"""Trace time and step time of a MAML meta-step, Omniglot-shaped.

Conv4 (64 filters, BatchNorm) on 28x28x1, 5-way 1-shot, 15 queries per
class, second-order MAML with one inner step, through `fit()`. Prints a
table and writes JSON.

    python benchmarks/meta_step.py                      # meta-batch 4 and 32
    python benchmarks/meta_step.py --meta-batch-sizes 4 --steps 5
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_meta  # noqa: E402


def episodes(meta_batch, ways=5, shots=1, queries=15, shape=(28, 28, 1)):
    rng = np.random.default_rng(0)
    inputs = {
        "support_inputs": rng.uniform(
            size=(meta_batch, ways * shots) + shape).astype("float32"),
        "support_labels": np.tile(np.repeat(np.arange(ways), shots),
                                  (meta_batch, 1)).astype("int32"),
        "query_inputs": rng.uniform(
            size=(meta_batch, ways * queries) + shape).astype("float32"),
    }
    labels = np.tile(np.repeat(np.arange(ways), queries), (meta_batch, 1))
    return tf.data.Dataset.from_tensors((inputs, labels.astype("int32")))


class Timer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def measure(meta_batch, steps, first_order, inner_steps):
    keras.utils.set_random_seed(0)
    maml = keras_meta.MAML(
        keras_meta.models.conv4(num_outputs=5, filters=64),
        inner_learning_rate=0.4,
        num_inner_steps=inner_steps,
        first_order=first_order,
    )
    maml.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    timer = Timer()
    maml.fit(episodes(meta_batch).repeat(steps + 1), epochs=1, verbose=0,
             callbacks=[timer])
    return {
        "meta_batch": meta_batch,
        "first_order": first_order,
        "inner_steps": inner_steps,
        "first_call_s": timer.times[0],
        "step_median_s": float(np.median(timer.times[1:])),
        "steps_timed": len(timer.times) - 1,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-batch-sizes", type=int, nargs="+",
                        default=[4, 32])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--output", default="benchmarks/results/meta_step.json")
    args = parser.parse_args()
    rows = [measure(b, args.steps, args.first_order, args.inner_steps)
            for b in args.meta_batch_sizes]
    print(f"{'meta-batch':>10} {'first call (s)':>15} {'step median (s)':>16}"
          f" {'tasks/s':>8}")
    for r in rows:
        print(f"{r['meta_batch']:>10} {r['first_call_s']:>15.2f} "
              f"{r['step_median_s']:>16.3f} "
              f"{r['meta_batch'] / r['step_median_s']:>8.1f}")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({
            "benchmark": "maml_meta_step_omniglot_5w1s_conv4_64",
            "machine": {"platform": platform.platform(),
                        "cpus": os.cpu_count(),
                        "tensorflow": tf.__version__,
                        "keras": keras.__version__},
            "rows": rows,
        }, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
