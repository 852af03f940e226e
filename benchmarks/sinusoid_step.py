"""Milliseconds per meta-step of the sinusoid main job through `fit()`.

The main job's learner (MAML, MLP 1-40-40-1, K=10, meta-batch 25, one inner
step, Adam, `steps_per_execution=50`) trained on `keras_meta.data.sinusoid`
through `fit()` in four modes, each in a fresh process, alternating,
`--repeats` times: `tensorflow_before` (TensorFlow without XLA, tasks
mapped with `tf.map_fn` and episodes drawn one task at a time, as before
both were vectorized), `tensorflow` (without XLA), `tensorflow_one_thread`
(without XLA, one intra-op thread, as `keras-meta train` runs it),
`tensorflow_xla` (`jit_compile=True`), `tensorflow_xla_one_thread` and
`jax`. Each process traces
with one execution, then times `--steps` meta-steps; the table shows
medians and the ratio to the first mode, and the training loss after the
timed steps (the same seeds in every mode: the modes differ by rounding
only). Prints a table and writes JSON.

    python benchmarks/sinusoid_step.py
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# mode: (backend, jit_compile, TensorFlow intra-op threads or None)
MODES = {"tensorflow_before": ("tensorflow", False, None),
         "tensorflow": ("tensorflow", False, None),
         "tensorflow_one_thread": ("tensorflow", False, 1),
         "tensorflow_xla": ("tensorflow", True, None),
         "tensorflow_xla_one_thread": ("tensorflow", True, 1),
         "jax": ("jax", None, None)}


def _per_task_sinusoid(num_shots, batch_size, seed):
    """The episode pipeline as it was: each task drawn by its own ops, then
    batched (the same tasks as `keras_meta.data.sinusoid`)."""
    import tensorflow as tf

    from keras_meta import episode

    def make_task(index):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), index]), 3)
        amplitude = tf.random.stateless_uniform((), seeds[0], 0.1, 5.0)
        phase = tf.random.stateless_uniform((), seeds[1], 0.0, math.pi)
        x = tf.random.stateless_uniform((2 * num_shots, 1), seeds[2], -5.0,
                                        5.0)
        y = amplitude * tf.sin(x - phase)
        return {episode.SUPPORT_INPUTS: x[:num_shots],
                episode.SUPPORT_LABELS: y[:num_shots],
                episode.QUERY_INPUTS: x[num_shots:]}, y[num_shots:]

    dataset = tf.data.Dataset.counter().map(
        make_task, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(
        tf.data.AUTOTUNE)


def _worker(mode, steps):
    import keras

    from keras_meta import data
    from keras_meta.experiments import catalog

    _, jit, threads = MODES[mode]
    if threads is not None:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
    keras.utils.set_random_seed(0)
    learner = catalog.build_regressor(
        "maml", inner_learning_rate=0.01, num_inner_steps=None, epochs=1,
        seed=0)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                    steps_per_execution=50,
                    **({} if jit is None else {"jit_compile": jit}))
    if mode == "tensorflow_before":
        train = _per_task_sinusoid(num_shots=10, batch_size=25, seed=0)
    else:
        train = data.sinusoid(num_shots=10, batch_size=25, seed=0)
    start = time.perf_counter()
    learner.fit(train, epochs=1, steps_per_epoch=50, verbose=0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    history = learner.fit(train, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "ms_per_step": 1000 * seconds / steps,
                      "first_fit_s": first,
                      "loss": float(history.history["loss"][-1])}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "sinusoid_step.json"))
    parser.add_argument("--worker", choices=list(MODES),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.steps)
        return
    modes = args.modes.split(",")
    runs = {mode: [] for mode in modes}
    for repeat in range(args.repeats):
        for mode in modes:
            env = dict(os.environ, KERAS_BACKEND=MODES[mode][0])
            if mode == "tensorflow_before":
                env["KERAS_META_TASK_MAPPING"] = "map"
            out = subprocess.run(
                [sys.executable, __file__, "--worker", mode, "--steps",
                 str(args.steps)], env=env, check=True,
                capture_output=True, text=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {repeat + 1}: {runs[mode][-1]}", flush=True)
    medians = {mode: {k: statistics.median(r[k] for r in rows) for k in (
        "ms_per_step", "first_fit_s", "loss")} for mode, rows in runs.items()}
    first = medians[modes[0]]["ms_per_step"]
    print()
    print(f"sinusoid MAML meta-step through fit(), {args.steps} steps, "
          f"median of {args.repeats} fresh processes")
    print(f"{'mode':<26}{'ms/step':>9}{'vs ' + modes[0]:>22}"
          f"{'first fit (s)':>15}{'loss':>9}")
    for mode, m in medians.items():
        print(f"{mode:<26}{m['ms_per_step']:>9.2f}"
              f"{first / m['ms_per_step']:>21.2f}x"
              f"{m['first_fit_s']:>15.1f}{m['loss']:>9.3f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"command": "python " + " ".join(sys.argv),
                   "args": vars(args), "medians": medians, "runs": runs},
                  f, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
