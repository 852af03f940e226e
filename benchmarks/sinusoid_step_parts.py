"""Where the sinusoid main job's meta-step time goes, on TensorFlow.

The main job's configuration (MAML, MLP 1-40-40-1, K=10, meta-batch 25,
one inner step, Adam, `steps_per_execution=50`, one intra-op thread, op
determinism on, no XLA), in fresh processes, `--repeats` times, medians.
Each process times, per meta-step:

- `fit`: `fit()` on `keras_meta.data.sinusoid`, as the job trains;
- `step_in_graph`: the same `train_step` run `--steps` times inside one
  `tf.function` loop on one fixed batch: the step's kernels and the graph
  runtime, without the input pipeline or Keras's loop;
- `pipeline`: drawing the episodes alone, `--steps` batches pulled inside
  one `tf.function` loop;
- `train_on_batch`: one `train_on_batch` call per step (a compiled step
  dispatched from Python each time), after a warm-up call;
- `kernel_ms` and `kernels_per_step`: `tf.profiler`'s kernel time (each
  op's own time, idle excluded) and kernel count per step of the
  `step_in_graph` loop (500 steps profiled), with the five largest kernel
  types.

`fit - step_in_graph - pipeline` is what Keras's loop adds (the
multi-step execution's iterator handling, logs and callbacks);
`train_on_batch - step_in_graph` is a single call's Python dispatch. The
kernel time is summed over ops that may run at once on TensorFlow's two
inter-op threads, under the profiler's own overhead: it says which
kernels dominate, not a part of the wall time.
Prints a table and writes JSON.

    python benchmarks/sinusoid_step_parts.py
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PARTS = ("fit", "step_in_graph", "pipeline", "train_on_batch")


def _worker(steps):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    import keras

    from keras_meta import data
    from keras_meta.experiments import catalog

    keras.utils.set_random_seed(0)
    learner = catalog.build_regressor(
        "maml", inner_learning_rate=0.01, num_inner_steps=None, epochs=1,
        seed=0)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                    steps_per_execution=50)
    train = data.sinusoid(num_shots=10, batch_size=25, seed=0)
    learner.fit(train, epochs=1, steps_per_epoch=50, verbose=0)
    result = {}

    start = time.perf_counter()
    learner.fit(train, epochs=1, steps_per_epoch=steps, verbose=0)
    result["fit"] = (time.perf_counter() - start) / steps

    batch = next(iter(train))

    @tf.function
    def loop(count):
        for _ in tf.range(count):
            learner.train_step(batch)
        return count

    loop(tf.constant(2))
    start = time.perf_counter()
    loop(tf.constant(steps))
    result["step_in_graph"] = (time.perf_counter() - start) / steps
    kernels = _profile(loop, min(steps, 500))

    iterator = iter(train)

    @tf.function
    def draw(count):
        total = tf.constant(0.0)
        for _ in tf.range(count):
            inputs, labels = next(iterator)
            total += tf.reduce_sum(labels)
        return total

    draw(tf.constant(2))
    start = time.perf_counter()
    draw(tf.constant(steps))
    result["pipeline"] = (time.perf_counter() - start) / steps

    inputs, labels = batch
    learner.compile(optimizer=learner.optimizer, loss="mse",
                    steps_per_execution=1)
    learner.train_on_batch(inputs, labels)
    calls = max(1, steps // 10)
    start = time.perf_counter()
    for _ in range(calls):
        learner.train_on_batch(inputs, labels)
    result["train_on_batch"] = (time.perf_counter() - start) / calls
    print(json.dumps({**{k: 1000 * v for k, v in result.items()},
                      **kernels}))


def _profile(loop, steps):
    """Kernel time and kernels per step of `loop(steps)`, from
    `tf.profiler` (`op_profile.kernel_stats`)."""
    import tempfile

    import tensorflow as tf

    from op_profile import kernel_stats

    with tempfile.TemporaryDirectory() as directory:
        tf.profiler.experimental.start(directory)
        loop(tf.constant(steps))
        tf.profiler.experimental.stop()
        seconds, counts = kernel_stats(directory, steps)
    return {"kernel_ms": 1000 * sum(seconds.values()),
            "kernels_per_step": sum(counts.values()),
            "top_kernels_ms": {k: 1000 * v
                               for k, v in seconds.most_common(5)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "sinusoid_step_parts.json"))
    parser.add_argument("--worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.steps)
        return
    runs = []
    for repeat in range(args.repeats):
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--steps",
             str(args.steps)], env=env, check=True, capture_output=True,
            text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(f"repeat {repeat + 1}: {runs[-1]}", flush=True)
    medians = {part: statistics.median(r[part] for r in runs)
               for part in PARTS + ("kernel_ms", "kernels_per_step")}
    derived = {
        "keras_loop": medians["fit"] - medians["step_in_graph"]
        - medians["pipeline"],
        "train_on_batch_dispatch": medians["train_on_batch"]
        - medians["step_in_graph"],
    }
    print(f"\nsinusoid MAML meta-step, main job's configuration (one "
          f"thread, op determinism), {args.steps} steps, median of "
          f"{args.repeats} fresh processes")
    for name, value in {**medians, **derived}.items():
        unit = "" if name == "kernels_per_step" else " ms"
        print(f"{name:<30}{value:>9.3f}{unit}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"command": "python " + " ".join(sys.argv),
                   "args": vars(args), "ms_per_step": medians,
                   "derived_ms": derived, "runs": runs}, f, indent=1)
    print("largest kernel types (ms per step, first process):",
          runs[0]["top_kernels_ms"])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
